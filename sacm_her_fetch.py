"""SAC and SACM with Hindsight Experience Replay, for the sparse-reward Fetch tasks (Table 1, Fetch rows).

Dey & Sharon, "Comparing Deterministic and Soft Policy Gradients for Optimizing Gaussian Mixture
Actors" (TMLR), the stochastic-gradient baselines of the Fetch rows: Soft Actor-Critic whose actor
is a tanh-squashed mixture of K Gaussians (SACM, Baram et al., 2021), trained by marginalized
reparameterization on the exact mixture log-density with twin critics and automatic entropy tuning.
K = 1 is plain SAC. Actor and critics see `observation` + `desired_goal`. The replay buffer stores
whole episodes and relabels goals when sampling (HER, `future` strategy, Andrychowicz et al., 2017).
Fetch episodes end by their 50-step time limit only: every transition bootstraps.

Hyperparameters: the task's column of the paper's Table 8 fills every field left unset; a flag given
on the command line wins. Table 8 prints no tau, train_freq or gradient_steps: tau is the 0.05 of the
zoo's SAC Fetch entries (which Table 8 otherwise transcribes), training is SB3 1.6.2's SAC default, one
gradient step per env step. The resolved values are printed at the start and saved to the run
directory's `hyperparameters.json`.

    python sacm_her_fetch.py --env-id FetchPush-v1                    # SACM, K = 3
    python sacm_her_fetch.py --env-id FetchPush-v1 --n-components 1   # SAC
    python sacm_her_fetch.py --env-id FetchReach-v4 --total-timesteps 20000 --net-arch 64 64 --batch-size 256 \
        --tau 0.005 --normalize-obs                                    # the zoo's FetchReach settings
    python sacm_her_fetch.py --evaluate runs/<run>/sacm_her_fetch.model     # watch a saved model
"""

import json
import math
import os
import random
import signal
import time
from collections import deque
from dataclasses import asdict, dataclass
from functools import partial
from typing import Callable, Literal, NamedTuple, Optional

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from torch.utils.tensorboard import SummaryWriter


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment"""
    seed: int = 1
    """seed of the experiment"""
    cuda: bool = True
    """use a GPU when one is present (falls back to the CPU silently)"""
    capture_video: bool = False
    """record evaluation episodes to the run's `videos/` (needs a renderer: on a headless machine set MUJOCO_GL=egl)"""
    save_model: bool = False
    """save the actor, critics, entropy coefficient and input normalizer to the run directory at the end"""
    runs_dir: str = "runs"
    """where run directories are created"""

    env_id: str = "FetchPush-v4"
    """goal env id; the paper's Fetch*-v1 ids run on -v4 (v1 needs mujoco-py, which no longer installs)"""
    n_components: int = 3
    """number of Gaussians K (Table 8); 1 is plain SAC"""
    learn_weights: bool = False
    """learn state-dependent mixing weights (otherwise uniform, as Baram et al.)"""
    total_timesteps: int = 1_000_000
    """total environment steps (Table 8)"""
    learning_rate: float = 1e-3
    """Adam learning rate of actor, critics and entropy coefficient (Table 8)"""
    buffer_size: int = 1_000_000
    """replay buffer capacity in transitions (held as buffer_size // episode length whole episodes)"""
    gamma: float = 0.95
    """discount factor (Table 8)"""
    tau: float = 0.05
    """Polyak rate of the target critics (Table 8 prints none; the zoo's SAC Fetch entries it transcribes set 0.05)"""
    batch_size: Optional[int] = None
    """minibatch size (preset: Table 8)"""
    learning_starts: int = 1_000
    """uniform random actions and no updates before this step (Table 8)"""
    train_freq: Literal["step", "episode"] = "step"
    """train after every env step, or at the end of every episode (SB3 1.6.2 SAC default: step)"""
    gradient_steps: int = 1
    """gradient steps per training round; -1 = as many as env steps collected (SB3 1.6.2 SAC default: 1)"""
    net_arch: tuple[int, ...] = (512, 512, 512)
    """hidden layer sizes of actor and critics (Table 8)"""
    autotune: bool = True
    """learn the entropy coefficient alpha toward the target entropy -|A| (Table 8's ent_coef 'auto')"""
    ent_coef: float = 1.0
    """alpha: its initial value with --autotune (as SB3's 'auto'), else fixed"""
    n_sampled_goal: int = 4
    """HER k: relabelled goals per real one; a sampled transition gets a `future` goal with probability k/(k+1)"""
    normalize_obs: bool = False
    """standardize observation and goal by running mean/std, clipped to +-5, as OpenAI baselines' HER (not Table 8)"""

    eval_freq: int = 10_000
    """greedy evaluation every this many env steps (and at the end)"""
    eval_episodes: int = 10
    """episodes per evaluation"""
    log_freq: int = 1_000
    """TensorBoard scalars every this many env steps"""

    checkpoint_freq: int = 50_000
    """write checkpoint.pt every this many env steps, at the end of an episode (0 = never)"""
    resume: Optional[str] = None
    """continue the run in this directory from its checkpoint.pt, with the run's saved hyperparameters"""
    evaluate: Optional[str] = None
    """watch a saved model or checkpoint: --eval-episodes greedy episodes, print mean +- std, train nothing"""
    track: bool = False
    """log the run to Weights & Biases (TensorBoard synced, hyperparameters as config, videos)"""
    wandb_project_name: str = "gamid-pg"
    """the Weights & Biases project"""
    wandb_entity: Optional[str] = None
    """the Weights & Biases team or user"""


# Paper Table 8 (SAC and SACM on Fetch), one entry per column. The fields the three columns share
# (1M steps, lr 1e-3, learning_starts 1000, gamma 0.95, ent_coef auto, 512x512x512, K = 3, HER future
# with k = 4) are the defaults of Args. Other goal envs (e.g. FetchReach-v4) take FetchPush's column.
PRESETS = {
    "FetchPush": dict(batch_size=2048),
    "FetchSlide": dict(batch_size=2048),
    "FetchPickAndPlace": dict(batch_size=1024),
}
SUPPORTED = ", ".join(f"{task}-v1/-v4" for task in PRESETS)
GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SB3's SAC clamp (the paper's baselines are SB3)


def register_robotics_envs():
    """Make gymnasium-robotics' ids (FetchPush-v4, ...) known to gym.make; importing the package registers them."""
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)


def resolve_fetch_env_id(env_id: str) -> str:
    """Map the paper's Fetch*-v1 ids (mujoco-py, no longer installable) to -v4; reject unknown ids."""
    register_robotics_envs()
    task, _, version = env_id.rpartition("-")
    if task.startswith("Fetch") and version == "v1":
        print(
            f"{env_id} needs mujoco-py, which no longer installs; running {task}-v4 (same task, maintained bindings)."
        )
        return f"{task}-v4"
    if env_id not in gym.registry:
        raise SystemExit(
            f"Unknown env id '{env_id}'; supported paper tasks are {SUPPORTED} "
            f"(other registered goal envs such as FetchReach-v4 also run)."
        )
    return env_id


def resolve_args(args: Args) -> Args:
    """Fill every field left unset from the task's Table 8 column, then check the values (refusals in one sentence)."""
    args.env_id = resolve_fetch_env_id(args.env_id)
    make_goal_env(args.env_id, args.seed).close()  # refuses non-goal envs before anything is printed or written
    task = args.env_id.rpartition("-")[0]
    if task not in PRESETS:
        print(f"{args.env_id} is not one of the paper's tasks; unset hyperparameters use the FetchPush preset.")
    for field, value in PRESETS.get(task, PRESETS["FetchPush"]).items():
        if getattr(args, field) is None:
            setattr(args, field, value)
    positive = (args.batch_size, args.eval_freq, args.eval_episodes, args.log_freq)
    problems = [
        (args.n_components < 1, f"--n-components must be at least 1, got {args.n_components}."),
        (
            args.batch_size > args.buffer_size,
            f"--batch-size {args.batch_size} is larger than --buffer-size {args.buffer_size}.",
        ),
        (
            args.total_timesteps <= args.learning_starts,
            f"--total-timesteps {args.total_timesteps} must exceed --learning-starts {args.learning_starts}, "
            f"or nothing is trained.",
        ),
        (
            args.gradient_steps == 0 or args.gradient_steps < -1,
            "--gradient-steps must be positive, or -1 for one per env step.",
        ),
        (not 0 < args.tau <= 1, f"--tau must lie in (0, 1], got {args.tau}."),
        (args.ent_coef <= 0, f"--ent-coef must be positive, got {args.ent_coef}."),
        (args.n_sampled_goal < 0, f"--n-sampled-goal must not be negative, got {args.n_sampled_goal}."),
        (args.checkpoint_freq < 0, "--checkpoint-freq must not be negative (0 turns checkpoints off)."),
        (min(positive) < 1, "--batch-size, --eval-freq, --eval-episodes and --log-freq must be positive."),
    ]
    for failed, sentence in problems:
        if failed:
            raise SystemExit(sentence)
    return args


class EnsembleMLP(nn.Module):
    """`n` independent ReLU MLPs evaluated together: one batched matmul per layer, not a Python loop over members.

    Input (n, B, in), or (1, B, in) broadcast to every member; output (n, B, out). Each member is initialised
    like nn.Linear. `members=m` evaluates only the first m (e.g. Q1 of the twin critics).
    """

    def __init__(self, n: int, in_dim: int, out_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        dims = (in_dim, *hidden, out_dim)
        # nn.Linear's initialisation U(-1/sqrt(fan_in), 1/sqrt(fan_in)); every layer's weights first, then biases.
        self.weights = nn.ParameterList()
        for fan_in, fan_out in zip(dims, dims[1:]):
            bound = fan_in**-0.5
            self.weights.append(nn.Parameter(torch.empty(n, fan_in, fan_out).uniform_(-bound, bound)))
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(dims, dims[1:]):
            bound = fan_in**-0.5
            self.biases.append(nn.Parameter(torch.empty(n, 1, fan_out).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor, members: Optional[int] = None) -> torch.Tensor:
        if members is None:
            members = len(self.weights[0])
        x = x.expand(members, -1, -1)
        last = len(self.weights) - 1
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(bias[:members], x, weight[:members])  # bias + x @ weight, member by member
            if layer < last:
                x = F.relu_(x)  # in place: baddbmm does not need its output for backward
        return x


class MixtureActor(nn.Module):
    """pi(.|s): a mixture of K Gaussians squashed by tanh into the [-1, 1] action scale.

    One ReLU trunk and one linear head for all K means, K log-stds and, with `learn_weights`, K
    mixing logits. Without them the weights are uniform, 1/K (Baram et al.).
    """

    def __init__(self, n_components: int, obs_dim: int, act_dim: int, hidden: tuple[int, ...], learn_weights=False):
        super().__init__()
        self.k, self.act_dim, self.learn_weights = n_components, act_dim, learn_weights
        dims = (obs_dim, *hidden)
        layers = [layer for i, o in zip(dims, dims[1:]) for layer in (nn.Linear(i, o), nn.ReLU(inplace=True))]
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(dims[-1], n_components * (2 * act_dim + int(learn_weights)))

    def forward(self, obs: torch.Tensor):
        """(B, obs) -> means (K, B, act), log-stds (K, B, act), log mixing weights (K, B), before the tanh."""
        out = self.head(self.trunk(obs)).view(obs.shape[0], self.k, -1).transpose(0, 1)
        mean = out[..., : self.act_dim]
        log_std = out[..., self.act_dim : 2 * self.act_dim].clamp(LOG_STD_MIN, LOG_STD_MAX)
        if self.learn_weights:
            log_weights = out[..., -1].log_softmax(0)
        else:
            log_weights = mean.new_full(mean.shape[:2], -math.log(self.k))
        return mean, log_std, log_weights


class TwinQ(nn.Module):
    """TD3's two critics as one two-member ensemble."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.net = EnsembleMLP(2, obs_dim + act_dim, 1, hidden)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, members: int = 2) -> torch.Tensor:
        """Q_k(s, a) for k < members. actions (..., B, act) may carry a leading Gaussian axis; -> (members, ..., B)."""
        obs = obs.expand(*actions.shape[:-1], -1)  # the same state for each Gaussian's action
        x = torch.cat([obs, actions], dim=-1)
        q = self.net(x.reshape(1, -1, x.shape[-1]), members)  # every (Gaussian, state) pair in one batch
        return q.view(members, *actions.shape[:-1])


def mixture_log_prob(
    u: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor, log_weights: torch.Tensor
) -> torch.Tensor:
    """Exact log pi(tanh(u)|s) of the squashed mixture, from the pre-squash sample u = atanh(a).

    u (..., B, act) with any leading axes; mean, log_std (K, B, act); log_weights (K, B) -> (..., B).
    logsumexp_j(log w_j + log N(u; mu_j, sigma_j)) - sum_d log(1 - tanh(u_d)^2), the last term in the
    overflow-free form 2 (log 2 - u - softplus(-2u)).
    """
    z = (u.unsqueeze(-3) - mean) / log_std.exp()  # (..., K, B, act)
    log_normal = (-0.5 * z.pow(2) - log_std).sum(-1) - 0.5 * math.log(2 * math.pi) * u.shape[-1]
    log_det = (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
    return torch.logsumexp(log_weights + log_normal, dim=-2) - log_det


def sample_mixture(mean: torch.Tensor, log_std: torch.Tensor, log_weights: torch.Tensor) -> torch.Tensor:
    """A pre-squash action u (B, act) per state: component c ~ Categorical(w), u = mu_c + sigma_c eps.

    The component is drawn by the Gumbel-max trick (no host sync).
    """
    gumbel = -torch.empty_like(log_weights).exponential_().log()  # Gumbel(0, 1): minus the log of an Exp(1) draw
    c = (log_weights + gumbel).argmax(0)  # (B,)
    u = mean + log_std.exp() * torch.randn_like(mean)  # (K, B, act): every component samples, c picks one
    return u[c, torch.arange(u.shape[1], device=u.device)]


@torch.no_grad()
def greedy_mixture_action(actor: MixtureActor, qf: TwinQ, obs: torch.Tensor) -> torch.Tensor:
    """The greedy action: tanh of the component mean with the highest Q1 (the rule Gamid evaluates with).

    obs (B, obs) -> actions (B, act) in the [-1, 1] scale. An argmax, not a sample: it draws from no random
    stream, so evaluating more or less often cannot change a training run.
    """
    means = torch.tanh(actor(obs)[0])  # (K, B, act)
    best = qf(obs, means, members=1)[0].argmax(0)  # (B,)
    return means[best, torch.arange(obs.shape[0], device=obs.device)]


@torch.no_grad()
def policy_action(actor: MixtureActor, obs: np.ndarray, device: torch.device) -> np.ndarray:
    """One exploring action in the [-1, 1] scale for one network input: a sample of the squashed mixture."""
    obs_tensor = torch.as_tensor(obs, dtype=torch.float32, device=device)[None]  # a batch of one
    mean, log_std, log_weights = actor(obs_tensor)
    u = sample_mixture(mean, log_std, log_weights)
    return torch.tanh(u)[0].cpu().numpy()


def actor_loss(actor: MixtureActor, qf: TwinQ, obs: torch.Tensor, alpha: torch.Tensor):
    """Marginalized reparameterization (Baram et al.): sum_i w_i mean_s[alpha log pi(a_i|s) - min_k Q_k(s, a_i)].

    a_i = tanh(mu_i + sigma_i eps_i) is one reparameterized sample of each component, so every
    component gets gradient; learned weights get it through w_i and log pi. Returns the loss, the
    mixture entropy estimate -sum_i w_i mean_s log pi(a_i|s) (detached), and the weights (K, B) and
    stds (K, B, act) for diagnostics.
    """
    mean, log_std, log_weights = actor(obs)
    u = mean + log_std.exp() * torch.randn_like(mean)  # (K, B, act)
    log_prob = mixture_log_prob(u, mean, log_std, log_weights)  # (K, B)
    qf.requires_grad_(False)  # Q is a fixed function of the action here: skip its weight gradients
    q = qf(obs, torch.tanh(u)).min(0).values  # (K, B)
    qf.requires_grad_(True)
    weights = log_weights.exp()
    loss = (weights * (alpha * log_prob - q)).sum(0).mean()
    entropy = -(weights * log_prob).sum(0).mean().detach()
    return loss, entropy, weights.detach(), log_std.detach().exp()


class Batch(NamedTuple):
    """A minibatch of transitions; actions in the [-1, 1] scale."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor


class Normalizer:
    """Running mean/std of the network input observation + goal; inputs are standardized and clipped to
    +-clip (OpenAI baselines' HER, with std floored at eps). The identity unless `enabled` (--normalize-obs)."""

    def __init__(self, dim: int, enabled: bool, clip: float = 5.0, eps: float = 1e-2):
        self.enabled, self.clip, self.eps = enabled, clip, eps
        self.count, self.mean, self.var = 0, np.zeros(dim), np.ones(dim)

    def update(self, x: np.ndarray):
        """Merge the statistics of the rows of x (n, dim) (Chan et al.'s parallel update)."""
        n, delta = len(x), x.mean(0) - self.mean
        total = self.count + n
        self.var = (self.var * self.count + x.var(0) * n + delta**2 * self.count * n / total) / total
        self.mean, self.count = self.mean + delta * n / total, total

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.enabled:
            x = np.clip((x - self.mean) / np.maximum(np.sqrt(self.var), self.eps), -self.clip, self.clip)
        return x.astype(np.float32)

    def state_dict(self) -> dict:  # plain Python values: loads with torch.load's default weights_only=True
        return {"enabled": self.enabled, "count": self.count, "mean": self.mean.tolist(), "var": self.var.tolist()}

    def load_state_dict(self, state: dict):
        self.enabled, self.count = state["enabled"], state["count"]
        self.mean, self.var = np.asarray(state["mean"]), np.asarray(state["var"])


def policy_input(obs: dict, normalizer: Normalizer) -> np.ndarray:
    """Network input of a goal-env observation dict: observation + desired_goal, as in HER (Andrychowicz et al.)."""
    return normalizer(np.concatenate([obs["observation"], obs["desired_goal"]], -1))


def her_goals(
    achieved_goals: np.ndarray,
    desired_goals: np.ndarray,
    episodes: np.ndarray,
    t: np.ndarray,
    her_prob: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """HER `future` relabelling (Andrychowicz et al., 2017) of the sampled transitions (episodes[b], t[b]).

    achieved_goals (E, T + 1, g) holds the goals achieved in the T + 1 states of each episode and
    desired_goals (E, T, g) the goal of each step. Each transition keeps its desired goal or, with
    probability her_prob = k / (k + 1), takes the goal achieved in a uniformly chosen later state
    t' in [t + 1, T] of the same episode, i.e. after this step's action or a later one (as OpenAI
    baselines; every transition can be relabelled). -> goals (B, g).
    """
    future = rng.integers(t + 1, desired_goals.shape[1] + 1)
    relabel = rng.random(len(t)) < her_prob
    return np.where(relabel[:, None], achieved_goals[episodes, future], desired_goals[episodes, t])


class HerReplayBuffer:
    """Whole episodes of a goal env, FIFO over episodes, with goals relabelled at sampling time (HER).

    Episodes enter whole (`add_episode`), so a buffer that wraps around drops whole episodes and a
    sampled transition never spans two. Arrays live in host memory: rewards are recomputed by the
    env's own (numpy) vectorized compute_reward; one sampled batch is then copied to the device.
    Actions are stored in the [-1, 1] scale.
    """

    def __init__(
        self,
        n_episodes: int,
        horizon: int,
        obs_dim: int,
        goal_dim: int,
        act_dim: int,
        compute_reward: Callable,
        n_sampled_goal: int,
        normalizer: Normalizer,
        device: torch.device,
        rng: np.random.Generator,
    ):
        self.capacity, self.horizon, self.pos, self.n_episodes = n_episodes, horizon, 0, 0
        self.compute_reward, self.normalizer, self.device, self.rng = compute_reward, normalizer, device, rng
        self.her_prob = n_sampled_goal / (n_sampled_goal + 1)
        self.obs = np.zeros((n_episodes, horizon + 1, obs_dim), np.float32)
        self.achieved_goals = np.zeros((n_episodes, horizon + 1, goal_dim), np.float32)
        self.desired_goals = np.zeros((n_episodes, horizon, goal_dim), np.float32)
        self.actions = np.zeros((n_episodes, horizon, act_dim), np.float32)

    def add_episode(self, obs, achieved_goals, desired_goals, actions):
        """Store one episode: obs and achieved_goals of its T + 1 states, desired_goals and actions of its T steps."""
        self.obs[self.pos] = obs
        self.achieved_goals[self.pos] = achieved_goals
        self.desired_goals[self.pos] = desired_goals
        self.actions[self.pos] = actions
        if self.normalizer.enabled:  # as baselines: statistics of the episode's inputs, with HER-relabelled goals
            t = np.arange(self.horizon)
            episodes = np.full_like(t, self.pos)
            goals = her_goals(self.achieved_goals, self.desired_goals, episodes, t, self.her_prob, self.rng)
            self.normalizer.update(np.concatenate([self.obs[self.pos, :-1], goals], -1))
        self.pos = (self.pos + 1) % self.capacity
        self.n_episodes = min(self.n_episodes + 1, self.capacity)

    def sample(self, batch_size: int) -> Batch:
        """Uniform over stored transitions (all episodes have T steps), goals relabelled, rewards recomputed.

        obs and next_obs are observation + (relabelled) goal, normalized with --normalize-obs; terminated
        is always 0, as Fetch episodes end by time limit only.
        """
        episodes = self.rng.integers(self.n_episodes, size=batch_size)
        t = self.rng.integers(self.horizon, size=batch_size)
        goals = her_goals(self.achieved_goals, self.desired_goals, episodes, t, self.her_prob, self.rng)
        rewards = self.compute_reward(self.achieved_goals[episodes, t + 1], goals, None)
        obs = self.normalizer(np.concatenate([self.obs[episodes, t], goals], -1))
        next_obs = self.normalizer(np.concatenate([self.obs[episodes, t + 1], goals], -1))
        return Batch(
            obs=torch.as_tensor(obs, device=self.device),
            actions=torch.as_tensor(self.actions[episodes, t], device=self.device),
            rewards=torch.as_tensor(rewards, dtype=torch.float32, device=self.device),
            next_obs=torch.as_tensor(next_obs, device=self.device),
            terminated=torch.zeros(batch_size, device=self.device),
        )

    def state_dict(self) -> dict:
        """The filled part of the buffer, its write position and its random stream (for checkpoints)."""
        n = self.n_episodes
        return {
            "obs": self.obs[:n].copy(),
            "achieved_goals": self.achieved_goals[:n].copy(),
            "desired_goals": self.desired_goals[:n].copy(),
            "actions": self.actions[:n].copy(),
            "pos": self.pos,
            "n_episodes": n,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict):
        n = state["n_episodes"]
        self.obs[:n] = state["obs"]
        self.achieved_goals[:n] = state["achieved_goals"]
        self.desired_goals[:n] = state["desired_goals"]
        self.actions[:n] = state["actions"]
        self.pos, self.n_episodes = state["pos"], n
        self.rng.bit_generator.state = state["rng"]


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Target networks trail the trained ones: target <- (1 - tau) target + tau source (TD3, SAC)."""
    # A plain loop is cheap: each ensemble keeps a whole layer of all its members in one tensor.
    for target_param, param in zip(target.parameters(), source.parameters()):
        target_param.lerp_(param, tau)


@torch.no_grad()
def soft_td_target(
    actor: MixtureActor, qf_target: TwinQ, batch: Batch, alpha: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Soft target, a' ~ pi(.|s'): y = r + gamma (1 - d) (min_k Q_targ,k(s', a') - alpha log pi(a'|s'))."""
    mean, log_std, log_weights = actor(batch.next_obs)
    u = sample_mixture(mean, log_std, log_weights)
    next_q = qf_target(batch.next_obs, torch.tanh(u)).min(0).values
    next_v = next_q - alpha * mixture_log_prob(u, mean, log_std, log_weights)
    return batch.rewards + gamma * (1 - batch.terminated) * next_v


def train_step(
    actor, qf, qf_target, log_alpha, actor_optimizer, q_optimizer, alpha_optimizer, batch: Batch, args: Args
) -> dict:
    """One SAC(M) gradient step: critics, actor, entropy coefficient, then Polyak averaging of the critics.

    log_alpha is a scalar tensor (requires_grad with --autotune); alpha_optimizer is None for a fixed
    alpha. Uses args.gamma and args.tau; the target entropy is -|A| = -batch.actions.shape[1].
    Returns detached diagnostics (no host sync).
    benchmarks/sps.py times this function and the buffer's `sample` by name: keep both names in a fork.
    """
    alpha = log_alpha.detach().exp()  # the value before this step's alpha update, in every loss (as SB3)
    q = qf(batch.obs, batch.actions)  # (2, B)
    y = soft_td_target(actor, qf_target, batch, alpha, args.gamma)
    qf_loss = (q - y).pow(2).mean(1).sum()
    q_optimizer.zero_grad(set_to_none=True)
    qf_loss.backward()
    q_optimizer.step()

    loss, entropy, weights, stds = actor_loss(actor, qf, batch.obs, alpha)
    actor_optimizer.zero_grad(set_to_none=True)
    loss.backward()
    actor_optimizer.step()
    stats = {
        "losses/qf_loss": qf_loss.detach(),
        "losses/qf1_values": q[0].detach().mean(),
        "losses/qf2_values": q[1].detach().mean(),
        "losses/actor_loss": loss.detach(),
        "losses/alpha": alpha,
        "charts/entropy": entropy,
    }
    stats |= {f"charts/component_{i}/weight": w for i, w in enumerate(weights.mean(1).unbind())}
    stats |= {f"charts/component_{i}/std": s for i, s in enumerate(stds.mean((1, 2)).unbind())}

    if alpha_optimizer is not None:
        # SAC's temperature loss with the mixture entropy estimate: alpha falls while H > -|A|.
        alpha_loss = log_alpha * (entropy + batch.actions.shape[1])
        alpha_optimizer.zero_grad(set_to_none=True)
        alpha_loss.backward()
        alpha_optimizer.step()
        stats["losses/alpha_loss"] = alpha_loss.detach()

    polyak_update(qf_target, qf, args.tau)  # SAC has no target actor
    return stats


def to_env_action(action: np.ndarray, space: gym.spaces.Box) -> np.ndarray:
    """[-1, 1] -> the env's [low, high]."""
    return space.low + (action + 1) * 0.5 * (space.high - space.low)


def from_env_action(action: np.ndarray, space: gym.spaces.Box) -> np.ndarray:
    """The env's [low, high] -> [-1, 1]."""
    return 2 * (action - space.low) / (space.high - space.low) - 1


def evaluate_goal_env(
    policy: Callable[[torch.Tensor], torch.Tensor],
    env: gym.Env,
    episodes: int,
    normalizer: Normalizer,
    device: torch.device,
    seed: int,
) -> tuple[list[float], list[float]]:
    """Returns and successes of `episodes` episodes of a deterministic policy; episode i starts from seed + i.

    policy maps network inputs (B, obs + goal) to actions (B, act) in the [-1, 1] scale (here the greedy
    Gaussian). Success is info["is_success"] at the episode's last step (NaN if the env reports none).
    """
    returns, successes = [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)  # the same goals and start states at every evaluation
        done, total = False, 0.0
        while not done:
            x = torch.as_tensor(policy_input(obs, normalizer), device=device)[None]
            action = policy(x)[0].cpu().numpy()
            obs, reward, terminated, truncated, info = env.step(to_env_action(action, env.action_space))
            done = terminated or truncated
            total += float(reward)
        returns.append(total)
        successes.append(float(info.get("is_success", np.nan)))
    return returns, successes


def make_goal_env(env_id: str, seed: int, video_dir: Optional[str] = None) -> gym.Env:
    """A single goal env (no vector env: episode boundaries stay explicit, so episodes enter the buffer whole)."""
    register_robotics_envs()
    env = gym.make(env_id, render_mode="rgb_array" if video_dir else None)
    space = env.observation_space
    is_goal_env = (
        isinstance(space, gym.spaces.Dict)
        and all(isinstance(space.get(key), gym.spaces.Box) for key in GOAL_KEYS)
        and hasattr(env.unwrapped, "compute_reward")
    )
    if not is_goal_env:
        env.close()
        raise SystemExit(
            f"{env_id} is not a goal env (HER needs Dict observations with 'observation', 'achieved_goal' and "
            f"'desired_goal' and a compute_reward method); supported paper tasks are {SUPPORTED}, and other "
            f"goal envs such as FetchReach-v4 also run."
        )
    if not isinstance(env.action_space, gym.spaces.Box):
        name = type(env.action_space).__name__
        raise SystemExit(f"{env_id} has a {name} action space; this script needs a continuous (Box) one.")
    if env.spec.max_episode_steps is None:
        raise SystemExit(f"{env_id} has no time limit; the HER buffer stores fixed-length, time-limited episodes.")
    if video_dir:
        env = gym.wrappers.RecordVideo(env, video_dir, episode_trigger=lambda episode: True, disable_logger=True)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    env.action_space.seed(seed)
    return env


def new_episode(obs: dict) -> dict:
    """Per-episode lists for HerReplayBuffer.add_episode, starting from the reset observation."""
    return {"obs": [obs["observation"]], "achieved_goals": [obs["achieved_goal"]], "desired_goals": [], "actions": []}


def build_networks(args: Args, env: gym.Env, device: torch.device):
    """Actor, twin critics and their target, log alpha, from the goal env's sizes: input = observation + goal."""
    spaces = env.observation_space
    in_dim = spaces["observation"].shape[0] + spaces["desired_goal"].shape[0]
    act_dim = env.action_space.shape[0]
    actor = MixtureActor(args.n_components, in_dim, act_dim, args.net_arch, args.learn_weights).to(device)
    qf = TwinQ(in_dim, act_dim, args.net_arch).to(device)
    qf_target = TwinQ(in_dim, act_dim, args.net_arch).to(device)
    qf_target.load_state_dict(qf.state_dict())
    log_alpha = torch.tensor(math.log(args.ent_coef), device=device, requires_grad=args.autotune)
    return actor, qf, qf_target, log_alpha


def main(args: Args) -> str:
    """Train SACM + HER (SAC + HER for K = 1); returns the run directory."""
    if args.evaluate:
        return watch(args)
    checkpoint = None
    if args.resume:
        args = resume_args(args)
        checkpoint = load_checkpoint(args.resume)
        if checkpoint["step"] >= args.total_timesteps:
            print(f"{args.resume} already finished at step {checkpoint['step']}; nothing to do.")
            return args.resume
    args = resolve_args(args)
    run_name = f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    run_dir = args.resume or os.path.join(args.runs_dir, run_name)
    video_dir = os.path.join(run_dir, "videos") if args.capture_video else None
    env = make_goal_env(args.env_id, args.seed)
    eval_env = make_goal_env(args.env_id, args.seed, video_dir)
    horizon = env.spec.max_episode_steps
    if args.buffer_size < horizon:
        raise SystemExit(f"--buffer-size {args.buffer_size} cannot hold one {horizon}-step episode.")

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)  # HER sampling
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    if args.track:
        start_tracking(args, run_name=os.path.basename(run_dir))
    writer = SummaryWriter(run_dir, purge_step=checkpoint["step"] + 1 if checkpoint else None)
    hyperparameters = asdict(args)
    if not checkpoint:
        table = "\n".join(f"|{key}|{value}|" for key, value in hyperparameters.items())
        writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + table)
        with open(os.path.join(run_dir, "hyperparameters.json"), "w") as f:
            json.dump(hyperparameters, f, indent=2)
    print("hyperparameters: " + ", ".join(f"{key}={value}" for key, value in hyperparameters.items()))

    actor, qf, qf_target, log_alpha = build_networks(args, env, device)
    actor_optimizer = torch.optim.Adam(actor.parameters(), lr=args.learning_rate, fused=True)
    q_optimizer = torch.optim.Adam(qf.parameters(), lr=args.learning_rate, fused=True)
    alpha_optimizer = torch.optim.Adam([log_alpha], lr=args.learning_rate, fused=True) if args.autotune else None
    obs_dim = env.observation_space["observation"].shape[0]
    goal_dim = env.observation_space["desired_goal"].shape[0]
    normalizer = Normalizer(obs_dim + goal_dim, args.normalize_obs)
    rb = HerReplayBuffer(
        n_episodes=args.buffer_size // horizon,
        horizon=horizon,
        obs_dim=obs_dim,
        goal_dim=goal_dim,
        act_dim=env.action_space.shape[0],
        compute_reward=env.unwrapped.compute_reward,
        n_sampled_goal=args.n_sampled_goal,
        normalizer=normalizer,
        device=device,
        rng=rng,
    )

    recent_returns, recent_successes = deque(maxlen=20), deque(maxlen=20)
    stats = {}
    learner = {
        "actor": actor,
        "qf": qf,
        "qf_target": qf_target,
        "actor_optimizer": actor_optimizer,
        "q_optimizer": q_optimizer,
        "alpha_optimizer": alpha_optimizer,
    }
    if checkpoint:
        restore_training(checkpoint, learner, log_alpha, normalizer, rb)
        stats = checkpoint["stats"]
        recent_returns.extend(checkpoint["recent_returns"])
        recent_successes.extend(checkpoint["recent_successes"])
        restore_random_states(checkpoint["random"], [env])
        obs, _ = env.reset()  # no seed: draws from the restored env generator, as the uninterrupted run did
        start_step, last_checkpoint = checkpoint["step"] + 1, checkpoint["step"]
    else:
        obs, _ = env.reset(seed=args.seed)
        start_step, last_checkpoint = 1, 0
    episode = new_episode(obs)
    start_time = last_print = time.time()
    with StopSignal() as stop:
        for global_step in range(start_step, args.total_timesteps + 1):
            # Act: before learning_starts uniformly at random, then a sample of the squashed mixture.
            if global_step <= args.learning_starts:
                action = from_env_action(env.action_space.sample(), env.action_space)
            else:
                action = policy_action(actor, policy_input(obs, normalizer), device)
            next_obs, reward, terminated, truncated, info = env.step(to_env_action(action, env.action_space))
            episode["obs"].append(next_obs["observation"])
            episode["achieved_goals"].append(next_obs["achieved_goal"])
            episode["desired_goals"].append(obs["desired_goal"])
            episode["actions"].append(action)
            obs = next_obs
            episode_over = terminated or truncated
            if episode_over:
                episode_steps = len(episode["actions"])
                if episode_steps != horizon:
                    raise SystemExit(
                        f"{args.env_id} ended an episode after {episode_steps} of {horizon} steps; "
                        f"this HER buffer needs episodes that end by their time limit only."
                    )
                rb.add_episode(**{key: np.array(value) for key, value in episode.items()})  # always bootstrap: d = 0
                recent_returns.append(float(info["episode"]["r"]))
                recent_successes.append(float(info.get("is_success", np.nan)))
                writer.add_scalar("charts/episodic_return", info["episode"]["r"], global_step)
                writer.add_scalar("charts/episodic_length", info["episode"]["l"], global_step)

            # Train per env step (SB3's SAC) or, as SB3's train_freq=(1, "episode"), at each episode's end.
            train_now = args.train_freq == "step" or episode_over
            if global_step > args.learning_starts and rb.n_episodes > 0 and train_now:
                if args.gradient_steps > 0:
                    n_steps = args.gradient_steps
                else:
                    n_steps = 1 if args.train_freq == "step" else horizon
                for _ in range(n_steps):
                    stats |= train_step(
                        actor=actor,
                        qf=qf,
                        qf_target=qf_target,
                        log_alpha=log_alpha,
                        actor_optimizer=actor_optimizer,
                        q_optimizer=q_optimizer,
                        alpha_optimizer=alpha_optimizer,
                        batch=rb.sample(args.batch_size),
                        args=args,
                    )

            if global_step % args.log_freq == 0 and recent_successes:  # last 20 training episodes, exploring
                writer.add_scalar("charts/success_rate", np.mean(recent_successes), global_step)
            if global_step % args.log_freq == 0 and stats:
                values = {tag: value.item() for tag, value in stats.items()}
                bad = [tag for tag, value in values.items() if not np.isfinite(value)]
                if bad:
                    writer.close()
                    raise SystemExit(
                        f"{bad[0]} is {values[bad[0]]} at step {global_step}; stopping (logs kept in {run_dir})."
                    )
                for tag, value in values.items():
                    writer.add_scalar(tag, value, global_step)
                steps_per_second = (global_step - start_step + 1) / (time.time() - start_time)
                writer.add_scalar("charts/SPS", steps_per_second, global_step)
            if time.time() - last_print > 5:
                last_print = time.time()
                line = progress_line(global_step, args.total_timesteps, start_step, start_time, recent_returns)
                success = f", success {np.mean(recent_successes):.2f}" if recent_successes else ""
                print(line + success, flush=True)

            if global_step % args.eval_freq == 0 or global_step == args.total_timesteps:
                returns, successes = evaluate_goal_env(
                    policy=partial(greedy_mixture_action, actor, qf),
                    env=eval_env,
                    episodes=args.eval_episodes,
                    device=device,
                    normalizer=normalizer,
                    seed=args.seed + 10_000,
                )
                writer.add_scalar("eval/episodic_return", np.mean(returns), global_step)
                writer.add_scalar("eval/success_rate", np.mean(successes), global_step)
                print(
                    f"step {global_step}, eval return {np.mean(returns):.1f} +- {np.std(returns):.1f}, "
                    f"success rate {np.mean(successes):.2f}",
                    flush=True,
                )

            # Run control: a checkpoint at the end of an episode, after its updates; also one that marks the end.
            finished = global_step == args.total_timesteps
            if episode_over or finished:
                due = args.checkpoint_freq and global_step - last_checkpoint >= args.checkpoint_freq
                marks_end = finished and (args.checkpoint_freq > 0 or checkpoint is not None)  # --resume: "finished"
                if due or marks_end or stop.received:
                    loop = {
                        "step": global_step,
                        "stats": stats,
                        "recent_returns": list(recent_returns),
                        "recent_successes": list(recent_successes),
                        "random": random_states([env]),
                    }
                    writer.flush()  # the logs up to this step are on disk before the checkpoint says so
                    save_checkpoint(training_checkpoint(learner, log_alpha, normalizer, rb, args, loop), run_dir)
                    last_checkpoint = global_step
                if stop.received and not finished:
                    writer.close()
                    env.close()
                    eval_env.close()
                    script = os.path.basename(__file__)
                    print(f"interrupted at step {global_step}; resume with: python {script} --resume {run_dir}")
                    raise SystemExit(INTERRUPTED_EXIT_CODE)
            if episode_over:
                obs, _ = env.reset()  # after the checkpoint: a resumed run's reset draws the same start
                episode = new_episode(obs)

    if args.save_model:
        path = os.path.join(run_dir, f"{args.exp_name}.model")
        model = {
            "actor": actor.state_dict(),
            "qf": qf.state_dict(),
            "log_alpha": log_alpha.detach().cpu(),
            "normalizer": normalizer.state_dict(),
            "args": asdict(args),
        }
        torch.save(model, path)
        print(f"model saved to {path}")
    env.close()
    eval_env.close()
    writer.close()
    if args.track:
        finish_tracking(video_dir)
    return run_dir


# ==============================================================================================================
# Run control: checkpoints, signals, resume, tracking. Not part of the algorithm: a fork may delete this section
# and the few lines of main() that call it.
# ==============================================================================================================
INTERRUPTED_EXIT_CODE = 75  # EX_TEMPFAIL ("try again later"): benchmarks/reproduce.py resumes runs that exit so


class StopSignal:
    """Remembers a SIGTERM, SIGUSR1 or SIGINT, so the loop can finish its episode and checkpoint before exiting."""

    def __init__(self):
        self.received = None
        self.previous_handlers = {}

    def __enter__(self):
        for signum in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
            self.previous_handlers[signum] = signal.signal(signum, self.handle)
        return self

    def handle(self, signum, frame):
        if self.received and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once, without a checkpoint
        self.received = signal.Signals(signum).name
        print(f"{self.received} received: finishing this episode, then saving a checkpoint.", flush=True)

    def __exit__(self, *exception):
        for signum, handler in self.previous_handlers.items():
            signal.signal(signum, handler)


def random_states(envs: list) -> dict:
    """Every random stream a run draws from: Python, NumPy, torch (CPU and GPU), each env and its action space."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "envs": [env.unwrapped.np_random.bit_generator.state for env in envs],
        "action_spaces": [env.action_space.np_random.bit_generator.state for env in envs],
    }


def restore_random_states(states: dict, envs: list) -> None:
    """Put every random stream back where random_states() found it."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    for env, env_state, space_state in zip(envs, states["envs"], states["action_spaces"]):
        env.unwrapped.np_random.bit_generator.state = env_state
        env.action_space.np_random.bit_generator.state = space_state


def save_checkpoint(state: dict, run_dir: str) -> None:
    """Write run_dir/checkpoint.pt atomically: a crash during the write leaves the previous checkpoint whole."""
    path = os.path.join(run_dir, "checkpoint.pt")
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)  # a rename is atomic on POSIX file systems


def load_checkpoint(path: str) -> dict:
    """A run directory's checkpoint.pt (or the file itself); one sentence and a non-zero exit if it is unusable."""
    if os.path.isdir(path):
        path = os.path.join(path, "checkpoint.pt")
    if not os.path.exists(path):
        raise SystemExit(f"There is no checkpoint at {path}; runs write one every --checkpoint-freq steps.")
    try:
        # weights_only=False: the file holds random states and hyperparameters, and we wrote it ourselves.
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise SystemExit(f"{path} cannot be read ({type(error).__name__}): it is truncated or corrupt.")


def resume_args(args):
    """The hyperparameters saved in args.resume; a flag given now that contradicts them is refused."""
    path = os.path.join(args.resume, "hyperparameters.json")
    if not os.path.exists(path):
        raise SystemExit(f"{args.resume} is not a run directory of this script (no hyperparameters.json).")
    with open(path) as f:
        saved = json.load(f)
    defaults = asdict(type(args)())
    for name, value in asdict(args).items():
        as_saved = json.loads(json.dumps(value))  # tuples become lists, as in the file
        changed = value != defaults[name] and as_saved != saved.get(name)
        if name not in ("resume", "evaluate") and changed:
            raise SystemExit(f"--{name.replace('_', '-')} {value} conflicts with the run's saved value {saved[name]}.")
    fields = {name: tuple(value) if isinstance(value, list) else value for name, value in saved.items()}
    return type(args)(**{**fields, "resume": args.resume})


def start_tracking(args, run_name: str) -> None:
    """Log to Weights & Biases as CleanRL does; call before creating the SummaryWriter, which it syncs."""
    import wandb  # imported only with --track

    wandb.init(
        project=args.wandb_project_name,
        entity=args.wandb_entity,
        name=run_name,
        id=run_name.replace(".", "-"),  # a resumed run continues the same W&B run
        resume="allow",
        config=asdict(args),
        sync_tensorboard=True,
        save_code=True,
    )


def finish_tracking(video_dir) -> None:
    """Upload the recorded evaluation videos, if any, and close the W&B run."""
    import wandb

    if video_dir and os.path.isdir(video_dir):
        for name in sorted(os.listdir(video_dir)):
            if name.endswith(".mp4"):
                wandb.log({"videos": wandb.Video(os.path.join(video_dir, name), format="mp4")})
    wandb.finish()


def progress_line(step: int, total: int, start_step: int, start_time: float, recent_returns) -> str:
    """`step 12000/1000000 (1.2%), 105 SPS, ETA 2h36m, recent return 512.3`: what a person watching wants to see."""
    steps_per_second = (step - start_step + 1) / max(time.time() - start_time, 1e-9)
    seconds_left = int((total - step) / max(steps_per_second, 1e-9))
    eta = f"{seconds_left // 3600}h{seconds_left % 3600 // 60:02d}m{seconds_left % 60:02d}s"
    recent = f"{np.mean(recent_returns):.1f}" if len(recent_returns) else "n/a"
    return f"step {step}/{total} ({step / total:.1%}), {steps_per_second:.0f} SPS, ETA {eta}, recent return {recent}"


def training_checkpoint(learner: dict, log_alpha, normalizer: Normalizer, rb: HerReplayBuffer, args: Args, loop: dict):
    """Everything the loop carries from one step to the next: networks, targets, optimizers, alpha, the input
    statistics, the buffer's filled episodes and its random stream, plus `loop` (step, stats, random states, ...)."""
    state = {name: part.state_dict() for name, part in learner.items() if part is not None}
    state |= {"log_alpha": log_alpha.detach().cpu(), "normalizer": normalizer.state_dict(), "buffer": rb.state_dict()}
    return state | loop | {"args": asdict(args)}


def restore_training(checkpoint: dict, learner: dict, log_alpha, normalizer: Normalizer, rb: HerReplayBuffer):
    """Load what training_checkpoint saved into the freshly built networks, optimizers, normalizer and buffer."""
    for name, part in learner.items():
        if part is not None:
            part.load_state_dict(checkpoint[name])
    with torch.no_grad():
        log_alpha.copy_(checkpoint["log_alpha"])
    normalizer.load_state_dict(checkpoint["normalizer"])
    rb.load_state_dict(checkpoint["buffer"])


def watch(args: Args) -> str:
    """--evaluate PATH: greedy episodes of a model saved with --save-model, or of a checkpoint; trains nothing.

    Prints the mean +- std return and the success rate; returns the directory that holds the model.
    """
    saved = load_checkpoint(args.evaluate)
    saved_args = Args(
        **{name: tuple(value) if isinstance(value, list) else value for name, value in saved["args"].items()}
    )
    path = os.path.abspath(args.evaluate)
    model_dir = path if os.path.isdir(path) else os.path.dirname(path)  # a run directory means its checkpoint
    video_dir = os.path.join(model_dir, "videos_evaluate")
    env = make_goal_env(saved_args.env_id, args.seed, video_dir if args.capture_video else None)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    actor, qf, _, _ = build_networks(saved_args, env, device)
    actor.load_state_dict(saved["actor"])
    qf.load_state_dict(saved["qf"])
    normalizer = Normalizer(actor.trunk[0].in_features, saved_args.normalize_obs)
    normalizer.load_state_dict(saved["normalizer"])
    returns, successes = evaluate_goal_env(
        policy=partial(greedy_mixture_action, actor, qf),
        env=env,
        episodes=args.eval_episodes,
        normalizer=normalizer,
        device=device,
        seed=args.seed + 10_000,
    )
    env.close()
    print(
        f"{args.evaluate}: return {np.mean(returns):.1f} +- {np.std(returns):.1f}, "
        f"success rate {np.mean(successes):.2f} over {args.eval_episodes} greedy episodes"
    )
    return model_dir


# ==============================================================================================================
# End of run control.
# ==============================================================================================================


if __name__ == "__main__":
    main(tyro.cli(Args))
