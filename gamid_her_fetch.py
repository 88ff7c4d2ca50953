"""Gamid on TD3 with Hindsight Experience Replay, for the sparse-reward Fetch tasks (Table 1, Fetch rows).

Dey & Sharon, "Comparing Deterministic and Soft Policy Gradients for Optimizing Gaussian Mixture
Actors" (TMLR). The actor is a mixture of N Gaussians with learned means mu_i(s, g) and one shared,
fixed covariance sigma^2 I; each mean follows the deterministic policy gradient of Q1 plus the
diversity bonus D_var (Algorithm 1, Eq. 4). Actor and critics see `observation` + `desired_goal`.
The replay buffer stores whole episodes and relabels goals when sampling (HER, `future` strategy,
Andrychowicz et al., 2017). Fetch episodes end by their 50-step time limit only: every transition
bootstraps. With N = 1 this file computes exactly TD3 + HER (the paper's TD3 row).

Hyperparameters: the task's paper preset (Tables 4 and 5) fills every field left unset; a flag given
on the command line wins. The resolved values are printed at the start and saved to the run
directory's `hyperparameters.json`.

    python gamid_her_fetch.py --env-id FetchPush-v1
    python gamid_her_fetch.py --env-id FetchReach-v4 --total-timesteps 50000 --n-actors 1
    python gamid_her_fetch.py --evaluate runs/<run>/gamid_her_fetch.model     # watch a saved model
"""

import json
import math
import os
import random
import signal
import time
from collections import deque
from dataclasses import asdict, dataclass
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
    """Gamid + HER on one goal env. The task's preset (paper Tables 4 and 5) fills every field left unset; the
    resolved values are printed at the start and saved to hyperparameters.json in the run directory."""

    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment"""
    seed: int = 1
    """seed of the experiment"""
    cuda: bool = True
    """use a GPU when one is present (falls back to the CPU silently)"""
    capture_video: bool = False
    """record evaluation episodes to the run's `videos/` (headless: set MUJOCO_GL=egl or osmesa)"""
    save_model: bool = False
    """save the actor, critics and input normalizer to the run directory at the end"""
    runs_dir: str = "runs"
    """where run directories are created"""

    env_id: str = "FetchPush-v4"
    """goal env id; the paper's Fetch*-v1 ids need mujoco-py and run as -v4"""
    total_timesteps: int = 1_000_000
    """total environment steps (Table 4 n_timesteps)"""
    learning_rate: float = 1e-3
    """Adam learning rate of actor and critics (Table 4)"""
    buffer_size: int = 1_000_000
    """replay buffer capacity in transitions (held as buffer_size // episode length whole episodes)"""
    gamma: float = 0.95
    """discount factor (Table 4)"""
    tau: float = 0.005
    """Polyak rate of the target networks (alpha of Alg. 1 line 16 is 1 - tau; SB3 1.6.2 TD3 default)"""
    batch_size: Optional[int] = None
    """minibatch size (preset: Table 4)"""
    learning_starts: int = 1_000
    """uniform random actions and no updates before this step (Table 4)"""
    train_freq: Literal["step", "episode"] = "episode"
    """train after every env step, or at the end of every episode (SB3 1.6.2 TD3 default; Table 4 sets none)"""
    gradient_steps: int = -1
    """gradient steps per training round; -1 = as many as env steps collected (SB3 1.6.2 TD3 default)"""
    net_arch: tuple[int, ...] = (512, 512, 512)
    """hidden layer sizes of actor and critics, ReLU (Table 4)"""
    noise_std: float = 0.1
    """sigma of the shared covariance sigma^2 I, in the [-1, 1] action scale (Table 4 noise_std)"""
    policy_noise: float = 0.2
    """std of TD3's target policy smoothing noise"""
    noise_clip: float = 0.5
    """clip of TD3's target policy smoothing noise"""
    preactivation_penalty: float = 0.0
    """not the paper's (0 = off): add this times mean_s ||u_i(s)||^2 to each actor loss, u_i the mean before tanh"""
    policy_delay: int = 2
    """actor and target updates every this many gradient steps (TD3)"""
    n_sampled_goal: int = 4
    """HER k: a sampled transition gets a `future` goal with probability k/(k+1) (Table 4)"""
    normalize_obs: bool = False
    """standardize the network input by running mean/std, clipped to +-5, as OpenAI baselines' HER (not in the paper)"""

    n_actors: Optional[int] = None
    """number of Gaussians N (preset: Table 5)"""
    temperature_initial: float = 0.3
    """diversity temperature at the start, the tau of Alg. 1 line 13 (Table 5)"""
    temperature_final: float = 0.1
    """diversity temperature after the decay (Table 5)"""
    temperature_fraction: float = 1.0
    """fraction of total_timesteps over which the temperature decays linearly (Table 5)"""
    epsilon_initial: float = 0.1
    """epsilon of the epsilon-greedy mixture weights at the start (Table 5)"""
    epsilon_final: float = 0.01
    """epsilon after the decay (Table 5)"""
    epsilon_fraction: float = 1.0
    """fraction of total_timesteps over which epsilon decays linearly (Table 5)"""
    temperature: Optional[Literal["auto"]] = None
    """auto: learn the temperature so that the mean D_var holds --temperature-target, starting from
    --temperature-initial (the paper's future work, §5); the temperature schedule is then unused"""
    temperature_target: Optional[float] = None
    """D*, the mean D_var that --temperature auto holds (default: target_d_var of N and the action dimension)"""
    temperature_lr: float = 3e-4
    """Adam learning rate of log(temperature) under --temperature auto"""
    epsilon: Optional[Literal["auto"]] = None
    """auto: epsilon = 1/(10N), constant (paper Figure 5c: a low, non-zero epsilon did best); replaces the schedule"""

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


# Paper Table 4 (TD3 + HER, Fetch) and Table 5 (Gamid, Fetch columns), one entry per column. The cells
# the three tasks share (n_timesteps, learning_rate, learning_starts, gamma, noise_std, 512x512x512 ReLU
# nets, HER `future` with k = 4, every temperature and epsilon) are the defaults in Args. Table 4 lists no
# train_freq, gradient_steps or tau: SB3 1.6.2's TD3 defaults ran, (1, "episode"), -1 and 0.005.
# Goal envs outside the paper (e.g. FetchReach-v4) take FetchPush's column.
PRESETS = {
    "FetchPush": dict(batch_size=2048, n_actors=4),
    "FetchSlide": dict(batch_size=2048, n_actors=8),
    "FetchPickAndPlace": dict(batch_size=1024, n_actors=8),
}
SUPPORTED = ", ".join(f"{task}-v1/-v4" for task in PRESETS)
GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")


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
    """Fill every field left unset from the task's paper preset, then check the values (before any training)."""
    args.env_id = resolve_fetch_env_id(args.env_id)
    make_goal_env(args.env_id, args.seed).close()  # refuses non-goal envs before anything is printed or written
    task = args.env_id.rpartition("-")[0]
    if task not in PRESETS:
        print(f"{args.env_id} is not one of the paper's tasks; unset hyperparameters use the FetchPush preset.")
    for field, value in PRESETS.get(task, PRESETS["FetchPush"]).items():
        if getattr(args, field) is None:
            setattr(args, field, value)

    if args.n_actors < 1:
        raise SystemExit(f"--n-actors must be at least 1, got {args.n_actors}.")
    if args.epsilon == "auto":  # 1/(10N) in place of Table 5's schedule; a resumed run has it saved already
        defaults = Args()
        auto_epsilon = dict(epsilon_initial=1 / (10 * args.n_actors), epsilon_final=1 / (10 * args.n_actors))
        for field, value in (auto_epsilon | dict(epsilon_fraction=1.0)).items():
            if getattr(args, field) not in (getattr(defaults, field), value):
                raise SystemExit("--epsilon auto sets epsilon to 1/(10N); drop the --epsilon-* schedule flags.")
            setattr(args, field, value)
    if args.temperature_target is not None and args.temperature != "auto":
        raise SystemExit("--temperature-target is the target of --temperature auto; give both or neither.")
    if args.temperature == "auto" and args.temperature_initial <= 0:
        raise SystemExit("--temperature auto learns log(temperature), so --temperature-initial must be positive.")
    if args.temperature_lr <= 0:
        raise SystemExit(f"--temperature-lr must be positive, got {args.temperature_lr}.")
    if min(args.temperature_initial, args.temperature_final) < 0:
        raise SystemExit("Temperatures must not be negative.")
    fractions = (args.epsilon_initial, args.epsilon_final, args.epsilon_fraction, args.temperature_fraction)
    if not all(0 <= value <= 1 for value in fractions):
        raise SystemExit("Epsilons and schedule fractions must lie in [0, 1].")
    if args.batch_size > args.buffer_size:
        raise SystemExit(f"--batch-size {args.batch_size} is larger than --buffer-size {args.buffer_size}.")
    if args.total_timesteps <= args.learning_starts:
        raise SystemExit(
            f"--total-timesteps {args.total_timesteps} must exceed --learning-starts {args.learning_starts}, "
            "or nothing is trained."
        )
    if args.gradient_steps == 0 or args.gradient_steps < -1:
        raise SystemExit("--gradient-steps must be positive, or -1 for one per env step.")
    if args.n_sampled_goal < 0:
        raise SystemExit(f"--n-sampled-goal must not be negative, got {args.n_sampled_goal}.")
    if min(args.batch_size, args.policy_delay, args.eval_freq, args.eval_episodes, args.log_freq) < 1:
        raise SystemExit("--batch-size, --policy-delay, --eval-freq, --eval-episodes and --log-freq must be positive.")
    if args.checkpoint_freq < 0:
        raise SystemExit("--checkpoint-freq must not be negative (0 turns checkpoints off).")
    return args


def linear_schedule(initial: float, final: float, fraction: float, total: int, step: int) -> float:
    """Linear decay from `initial` to `final` over the first `fraction` of `total` steps, then constant."""
    progress = min(step / (fraction * total), 1.0) if fraction > 0 else 1.0
    return initial + progress * (final - initial)


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


class GaussianMeans(nn.Module):
    """The N means mu(s; theta[i]) of the mixture in one pass, tanh-bounded to the [-1, 1] action scale."""

    def __init__(self, n_actors: int, obs_dim: int, act_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.net = EnsembleMLP(n_actors, obs_dim, act_dim, hidden)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:  # (B, obs) -> (N, B, act)
        return torch.tanh(self.net(obs.unsqueeze(0)))


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


def d_var(means: torch.Tensor) -> torch.Tensor:
    """D_var(i) = -log sum_{j != i} exp(-||mu_i - sg(mu_j)||^2), Eq. 4 with Sigma = I. means (N, B, act) -> (N, B).

    Eq. 4 takes Sigma = I, not the acting covariance sigma^2 I (whose exact Gaussian KL would scale the squared
    distances by 1 / (2 sigma^2) = 50); Table 5's temperatures were tuned with Sigma = I, and the uniform mixture
    weights are folded into the temperature. The other Gaussians are constants for Gaussian i (Alg. 1 line 13),
    so mu_j is detached. With N = 1 the sum is empty and the term is 0: Gamid reduces to TD3.
    """
    n = means.shape[0]
    if n == 1:
        return means.new_zeros(means.shape[:2])
    sq_dist = (means.unsqueeze(1) - means.detach().unsqueeze(0)).pow(2).sum(-1)  # [i, j, B]
    is_self = torch.eye(n, dtype=torch.bool, device=means.device).unsqueeze(-1)
    return -torch.logsumexp((-sq_dist).masked_fill(is_self, float("-inf")), dim=1)


def epsilon_greedy_weights(q: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Mixture weights of §3.1: 1 - eps + eps/N for argmax_i q_i, eps/N for the others. q (N, B) -> (B, N)."""
    n = q.shape[0]
    return (1 - epsilon) * F.one_hot(q.argmax(0), n).to(q.dtype) + epsilon / n


@torch.no_grad()
def gmm_action(actor: GaussianMeans, qf: TwinQ, obs: torch.Tensor, epsilon: float, noise_std: float):
    """Alg. 1 lines 3-4: n ~ P (epsilon-greedy on Q1), a = clip(mu_n(s) + N(0, sigma^2 I), -1, 1).

    obs (B, obs) -> actions (B, act) in the [-1, 1] scale and the chosen Gaussians n (B,).
    """
    means = actor(obs)  # (N, B, act)
    states = torch.arange(obs.shape[0], device=obs.device)
    if means.shape[0] == 1:
        n = torch.zeros_like(states)  # one Gaussian: nothing to choose and nothing drawn, exactly as TD3 acts
    else:
        weights = epsilon_greedy_weights(qf(obs, means, members=1)[0], epsilon)  # (B, N)
        n = torch.multinomial(weights, 1).squeeze(1)
    mean = means[n, states]
    return (mean + noise_std * torch.randn_like(mean)).clamp(-1, 1), n


@torch.no_grad()
def greedy_action(actor: GaussianMeans, qf: TwinQ, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The evaluation policy: the mean of the greedy Gaussian argmax_i Q1(s, mu_i(s)), without noise.

    obs (B, obs) -> actions (B, act) and the greedy Gaussians (B,). It draws from no random stream (an argmax,
    not a sample with epsilon = 0), so evaluating more or less often cannot change a training run.
    """
    means = actor(obs)
    best = qf(obs, means, members=1)[0].argmax(0)  # (B,)
    return means[best, torch.arange(obs.shape[0], device=obs.device)], best


def diagnostics(actor: GaussianMeans, qf: TwinQ, obs: torch.Tensor, temperature: float | torch.Tensor) -> dict:
    """Where the means sit and what moves them, on a batch of states; draws no random number (README, TensorBoard).

    saturated_fraction: share of mean coordinates with |mu| > 0.99, where tanh's gradient vanishes.
    q_gap: mean Q1 gap between the best and the second-best Gaussian (N > 1).
    diversity_to_q_grad: temperature * mean ||grad_mu_i D_var(i)|| / mean ||grad_a Q1(s, a)|| at a = mu_i(s) (N > 1).
    """
    with torch.no_grad():
        means = actor(obs)  # (N, B, act)
    means.requires_grad_(True)
    q1 = qf(obs, means, members=1)[0]  # (N, B)
    (q_grad,) = torch.autograd.grad(q1.sum(), means)  # the weights' .grad are untouched
    stats = {"diagnostics/saturated_fraction": (means.detach().abs() > 0.99).float().mean()}
    if means.shape[0] > 1:
        (d_var_grad,) = torch.autograd.grad(d_var(means).sum(), means)  # row i: grad of D_var(i) (mu_j detached)
        best_two = q1.detach().topk(2, dim=0).values
        stats["diagnostics/q_gap"] = (best_two[0] - best_two[1]).mean()
        ratio = temperature * d_var_grad.norm(dim=-1).mean() / q_grad.norm(dim=-1).mean()
        stats["diagnostics/diversity_to_q_grad"] = ratio
    return stats


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
def td_target(actor_target: GaussianMeans, qf_target: TwinQ, batch: Batch, args: Args) -> torch.Tensor:
    """Alg. 1 line 10 on TD3: y = r + gamma (1 - d) min_k Q_targ,k(s', a'), where a' smooths the best target mean.

    The best Gaussian is chosen on the noise-free target means, i* = argmax_i min_k Q_targ,k(s', mu'_i(s')), and
    TD3's clipped smoothing noise goes on its action only: a' = clip(mu'_i*(s') + clip(noise, -c, c), -1, 1).
    Line 10 as printed takes max_i Q_targ(s', mu(s'; theta[i])) with one critic and the online means; Gamid is
    built on TD3 (paper §3.2, end), so the target means, the smoothing noise and the min over the twin critics
    are TD3's. The noise goes on the chosen action only, as the authors' implementation does: a max over N noisy
    actions would bias y upward, the more so the larger N. With N = 1 this is TD3's target, draw for draw.
    """
    next_means = actor_target(batch.next_obs)  # (N, B, act)
    if next_means.shape[0] == 1:
        next_mean = next_means[0]  # one Gaussian: nothing to choose, and no extra critic pass (TD3's cost)
    else:
        best = qf_target(batch.next_obs, next_means).min(0).values.argmax(0)  # i* for each state, (B,)
        next_mean = next_means[best, torch.arange(best.shape[0], device=best.device)]  # (B, act)
    noise = (torch.randn_like(next_mean) * args.policy_noise).clamp(-args.noise_clip, args.noise_clip)
    next_q = qf_target(batch.next_obs, (next_mean + noise).clamp(-1, 1)).min(0).values  # (B,)
    return batch.rewards + args.gamma * (1 - batch.terminated) * next_q


def actor_losses(
    actor: GaussianMeans, qf: TwinQ, obs: torch.Tensor, temperature: float | torch.Tensor, penalty: float = 0.0
):
    """Alg. 1 lines 12-14 for all i at once: loss_i = -mean_s Q1(s, mu_i(s)) - temperature mean_s D_var(i).

    Returns the losses (N,) and the diversity terms mean_s D_var(i) (N,). Not the paper's, opt-in: penalty > 0 adds
    penalty * mean_s ||u_i(s)||^2, u_i the mean before tanh, which keeps the means out of tanh's flat corners.
    """
    preactivations = actor.net(obs.unsqueeze(0))  # (N, B, act), before the tanh of GaussianMeans
    means = torch.tanh(preactivations)
    qf.requires_grad_(False)  # Q1 is a fixed function of the action here: skip its weight gradients
    q1 = qf(obs, means, members=1)[0]  # (N, B)
    qf.requires_grad_(True)
    diversity = d_var(means).mean(1)
    losses = -(q1.mean(1) + temperature * diversity)
    if penalty > 0:
        losses = losses + penalty * preactivations.pow(2).sum(-1).mean(1)
    return losses, diversity


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Target networks trail the trained ones: target <- (1 - tau) target + tau source (TD3, SAC)."""
    # A plain loop is cheap: each ensemble keeps a whole layer of all its members in one tensor.
    for target_param, param in zip(target.parameters(), source.parameters()):
        target_param.lerp_(param, tau)


# --temperature auto (the paper's future work, §5): the temperature held by a target, as SAC holds its entropy.
TARGET_SPACING = 1.0  # delta / sqrt(action dim) of target_d_var: the D_var the tuned presets reach (README)


def target_d_var(n_actors: int, act_dim: int) -> float:
    """The default D* of --temperature auto: D_var of N means that lie pairwise delta apart.

    Then each of the N - 1 other means adds exp(-delta^2) to Eq. 4's sum (Sigma = I), so D_var(i) = -log((N - 1)
    exp(-delta^2)) = delta^2 - log(N - 1). The spacing grows like the distances in the [-1, 1]^act_dim action box,
    delta^2 = TARGET_SPACING^2 act_dim, so D* depends on N and the action dimension only, not on the task.
    """
    return TARGET_SPACING**2 * act_dim - math.log(n_actors - 1)


def temperature_loss(log_temperature: torch.Tensor, mean_d_var: torch.Tensor, target: float) -> torch.Tensor:
    """Dual loss of --temperature auto: log(temperature) (mean D_var - D*), with D_var a constant.

    Its gradient is mean D_var - D*: descent raises the temperature while the Gaussians are closer than the target
    (mean D_var < D*) and lowers it while they are farther, as SAC's alpha tracks a target entropy. Learning the
    log keeps the temperature positive.
    """
    return log_temperature * (mean_d_var.detach() - target)


def train_step(
    *,
    actor: GaussianMeans,
    actor_target: GaussianMeans,
    qf: TwinQ,
    qf_target: TwinQ,
    actor_optimizer: torch.optim.Optimizer,
    q_optimizer: torch.optim.Optimizer,
    batch: Batch,
    update_actor: bool,
    temperature: float | torch.Tensor,
    args: Args,
) -> dict:
    """One gradient step of Alg. 1 (lines 9-16) on TD3. Returns detached diagnostics (no host sync).

    benchmarks/sps.py times this function by name, with batches from ReplayBuffer.sample.
    """
    # Line 11: regress both critics on the target y of line 10.
    q = qf(batch.obs, batch.actions)  # (2, B)
    y = td_target(actor_target, qf_target, batch, args)
    qf_loss = (q - y).pow(2).mean(1).sum()
    q_optimizer.zero_grad(set_to_none=True)
    qf_loss.backward()
    q_optimizer.step()
    stats = {
        "losses/qf_loss": qf_loss.detach(),
        "losses/qf1_values": q[0].detach().mean(),
        "losses/qf2_values": q[1].detach().mean(),
    }

    if update_actor:
        # Lines 12-15. Summing the N losses is exact: theta[i] enters only loss_i (mu_j is detached in D_var).
        losses, diversity = actor_losses(actor, qf, batch.obs, temperature, args.preactivation_penalty)
        actor_optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        actor_optimizer.step()

        # Line 16 (alpha = 1 - tau), after each actor update as in TD3.
        polyak_update(actor_target, actor, args.tau)
        polyak_update(qf_target, qf, args.tau)
        stats["losses/actor_loss"] = losses.detach().sum()
        stats["charts/sum_d_var"] = diversity.detach().sum()
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


def main(args: Args) -> str:
    """Train Gamid + HER; returns the run directory."""
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
    learn_temperature = args.temperature == "auto" and args.n_actors > 1
    if args.temperature == "auto" and not learn_temperature:
        print("With N = 1 there is no D_var to hold: --temperature auto learns nothing and this run is TD3.")
    if learn_temperature and args.temperature_target is None:
        args.temperature_target = target_d_var(args.n_actors, env.action_space.shape[0])

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
        table = "\n".join(f"|{name}|{value}|" for name, value in hyperparameters.items())
        writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + table)
        with open(os.path.join(run_dir, "hyperparameters.json"), "w") as f:
            json.dump(hyperparameters, f, indent=2)
    print("hyperparameters: " + ", ".join(f"{name}={value}" for name, value in hyperparameters.items()))

    spaces = env.observation_space
    obs_dim, goal_dim = spaces["observation"].shape[0], spaces["desired_goal"].shape[0]
    in_dim, act_dim = obs_dim + goal_dim, env.action_space.shape[0]
    actor = GaussianMeans(args.n_actors, in_dim, act_dim, args.net_arch).to(device)
    qf = TwinQ(in_dim, act_dim, args.net_arch).to(device)
    actor_target = GaussianMeans(args.n_actors, in_dim, act_dim, args.net_arch).to(device)
    qf_target = TwinQ(in_dim, act_dim, args.net_arch).to(device)
    actor_target.load_state_dict(actor.state_dict())  # Alg. 1 line 1
    qf_target.load_state_dict(qf.state_dict())
    actor_optimizer = torch.optim.Adam(actor.parameters(), lr=args.learning_rate, fused=True)
    q_optimizer = torch.optim.Adam(qf.parameters(), lr=args.learning_rate, fused=True)
    normalizer = Normalizer(in_dim, args.normalize_obs)
    if learn_temperature:  # --temperature auto: log(temperature) has its own optimizer, as SAC's log(alpha)
        log_temperature = torch.full((), math.log(args.temperature_initial), device=device, requires_grad=True)
        temperature_optimizer = torch.optim.Adam([log_temperature], lr=args.temperature_lr)
    rb = HerReplayBuffer(
        n_episodes=args.buffer_size // horizon,
        horizon=horizon,
        obs_dim=obs_dim,
        goal_dim=goal_dim,
        act_dim=act_dim,
        compute_reward=env.unwrapped.compute_reward,
        n_sampled_goal=args.n_sampled_goal,
        normalizer=normalizer,
        device=device,
        rng=rng,
    )

    selected = torch.zeros(args.n_actors, device=device)  # per-Gaussian selection counts of this log interval
    recent_returns, recent_successes = deque(maxlen=20), deque(maxlen=20)
    stats, n_updates, last_checkpoint, start_step = {}, 0, 0, 1
    batch = None  # the last update's minibatch, which the diagnostics read
    # Run control: what a checkpoint holds besides the loop's counters, all with state_dict / load_state_dict.
    learner = {
        "actor": actor,
        "actor_target": actor_target,
        "qf": qf,
        "qf_target": qf_target,
        "actor_optimizer": actor_optimizer,
        "q_optimizer": q_optimizer,
        "normalizer": normalizer,
        "replay_buffer": rb,
    }
    if learn_temperature:
        learner["temperature_optimizer"] = temperature_optimizer
    if checkpoint:  # continue exactly where the interrupted run stopped
        for name, part in learner.items():
            part.load_state_dict(checkpoint[name])
        if learn_temperature:
            with torch.no_grad():
                log_temperature.copy_(checkpoint["log_temperature"])
        selected.copy_(checkpoint["selected"])
        recent_returns.extend(checkpoint["recent_returns"])
        recent_successes.extend(checkpoint["recent_successes"])
        stats = {tag: value.to(device) for tag, value in checkpoint["stats"].items()}
        n_updates, last_checkpoint = checkpoint["n_updates"], checkpoint["step"]
        batch = Batch(*checkpoint["batch"]) if checkpoint.get("batch") else None
        start_step = checkpoint["step"] + 1
        restore_random_states(checkpoint["random"], [env])
        obs, _ = env.reset()  # no seed: draws from the restored generator, as the uninterrupted run did
    else:
        obs, _ = env.reset(seed=args.seed)
    episode = new_episode(obs)
    start_time = last_print = time.time()
    with StopSignal() as stop:
        for global_step in range(start_step, args.total_timesteps + 1):
            if learn_temperature:
                temperature = log_temperature.detach().exp()
            else:
                temperature = linear_schedule(
                    initial=args.temperature_initial,
                    final=args.temperature_final,
                    fraction=args.temperature_fraction,
                    total=args.total_timesteps,
                    step=global_step,
                )
            epsilon = linear_schedule(
                initial=args.epsilon_initial,
                final=args.epsilon_final,
                fraction=args.epsilon_fraction,
                total=args.total_timesteps,
                step=global_step,
            )

            # Alg. 1 lines 3-8. Before learning_starts, uniform random actions.
            if global_step <= args.learning_starts:
                action = from_env_action(env.action_space.sample(), env.action_space)
            else:
                x = torch.as_tensor(policy_input(obs, normalizer), device=device)[None]
                action, n = gmm_action(actor, qf, x, epsilon, args.noise_std)
                action = action[0].cpu().numpy()
                selected[n] += 1
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
                rb.add_episode(**{key: np.array(values) for key, values in episode.items()})  # always bootstrap
                recent_returns.append(float(info["episode"]["r"]))
                recent_successes.append(float(info.get("is_success", np.nan)))
                writer.add_scalar("charts/episodic_return", info["episode"]["r"], global_step)
                writer.add_scalar("charts/episodic_length", info["episode"]["l"], global_step)

            # Lines 9-16, per env step or, as SB3's train_freq=(1, "episode"), at each episode's end.
            train_now = args.train_freq == "step" or episode_over
            if global_step > args.learning_starts and rb.n_episodes > 0 and train_now:
                if args.gradient_steps > 0:
                    n_steps = args.gradient_steps
                else:  # -1: one gradient step per env step collected since the last round
                    n_steps = 1 if args.train_freq == "step" else horizon
                for _ in range(n_steps):
                    n_updates += 1
                    update_actor = n_updates % args.policy_delay == 0
                    batch = rb.sample(args.batch_size)
                    stats |= train_step(
                        actor=actor,
                        actor_target=actor_target,
                        qf=qf,
                        qf_target=qf_target,
                        actor_optimizer=actor_optimizer,
                        q_optimizer=q_optimizer,
                        batch=batch,
                        update_actor=update_actor,
                        temperature=temperature,
                        args=args,
                    )
                    if learn_temperature and update_actor:  # the dual step, with the actor's, on its batch
                        mean_d_var = stats["charts/sum_d_var"] / args.n_actors
                        loss = temperature_loss(log_temperature, mean_d_var, args.temperature_target)
                        temperature_optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        temperature_optimizer.step()
                        temperature = log_temperature.detach().exp()
                        stats["losses/temperature_loss"] = loss.detach()

            if global_step % args.log_freq == 0 and recent_successes:  # last 20 training episodes, with exploration
                writer.add_scalar("charts/success_rate", np.mean(recent_successes), global_step)
            if global_step % args.log_freq == 0 and stats:
                values = {tag: value.item() for tag, value in stats.items()}
                bad = [tag for tag, value in values.items() if not np.isfinite(value)]
                if bad:
                    writer.close()
                    raise SystemExit(
                        f"{bad[0]} is {values[bad[0]]} at step {global_step}; stopping (logs kept in {run_dir})."
                    )
                diagnosed = diagnostics(actor, qf, batch.obs, temperature) if batch else {}  # the last update's batch
                values |= {tag: value.item() for tag, value in diagnosed.items()}
                for tag, value in values.items():
                    writer.add_scalar(tag, value, global_step)
                writer.add_scalar("charts/temperature", float(temperature), global_step)
                if "charts/sum_d_var" in values:
                    writer.add_scalar("charts/mean_d_var", values["charts/sum_d_var"] / args.n_actors, global_step)
                if learn_temperature:
                    writer.add_scalar("charts/temperature_target", args.temperature_target, global_step)
                writer.add_scalar("charts/epsilon", epsilon, global_step)
                fractions = selected / selected.sum().clamp(min=1)
                for i, fraction in enumerate(fractions.tolist()):
                    writer.add_scalar(f"charts/selected_fraction/gaussian_{i}", fraction, global_step)
                selected.zero_()
                steps_per_second = (global_step - start_step + 1) / (time.time() - start_time)
                writer.add_scalar("charts/SPS", steps_per_second, global_step)
            if time.time() - last_print > 5:
                last_print = time.time()
                line = progress_line(global_step, args.total_timesteps, start_step, start_time, recent_returns)
                success = f"{np.mean(recent_successes):.2f}" if recent_successes else "n/a"
                print(f"{line}, success {success}", flush=True)

            if global_step % args.eval_freq == 0 or global_step == args.total_timesteps:
                returns, successes = evaluate_goal_env(
                    policy=lambda obs: greedy_action(actor, qf, obs)[0],
                    env=eval_env,
                    episodes=args.eval_episodes,
                    normalizer=normalizer,
                    device=device,
                    seed=args.seed + 10_000,
                )
                writer.add_scalar("eval/episodic_return", np.mean(returns), global_step)
                writer.add_scalar("eval/success_rate", np.mean(successes), global_step)
                print(
                    f"step {global_step}, eval return {np.mean(returns):.1f} +- {np.std(returns):.1f}, "
                    f"success rate {np.mean(successes):.2f}"
                )

            # Run control: checkpoints at episode boundaries (and at the end), where no episode is half stored.
            finished = global_step == args.total_timesteps
            if episode_over or finished:
                due = global_step - last_checkpoint >= args.checkpoint_freq or finished
                if (args.checkpoint_freq and due) or stop.received:
                    checkpoint_state = {name: part.state_dict() for name, part in learner.items()} | {
                        "step": global_step,
                        "selected": selected,
                        "recent_returns": list(recent_returns),
                        "recent_successes": list(recent_successes),
                        "stats": stats,
                        "n_updates": n_updates,
                        "batch": tuple(batch) if batch else None,
                        "random": random_states([env]),
                        "args": asdict(args),
                    }
                    if learn_temperature:
                        checkpoint_state["log_temperature"] = log_temperature.detach()
                    writer.flush()  # the logs up to this step are on disk before the checkpoint says so
                    save_checkpoint(checkpoint_state, run_dir)
                    last_checkpoint = global_step
                if stop.received and not finished:
                    writer.close()
                    env.close()
                    eval_env.close()
                    print(f"interrupted at step {global_step}; resume with: python {__file__} --resume {run_dir}")
                    raise SystemExit(INTERRUPTED_EXIT_CODE)
                obs, _ = env.reset()  # after the checkpoint: a resumed run's reset draws the same start and goal
                episode = new_episode(obs)

    if args.save_model:
        path = os.path.join(run_dir, f"{args.exp_name}.model")
        model = {"actor": actor.state_dict(), "qf": qf.state_dict(), "normalizer": normalizer.state_dict()}
        torch.save(model | {"args": asdict(args)}, path)
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


def watch(args: Args) -> str:
    """--evaluate PATH: greedy episodes of a saved model (--save-model) or checkpoint; trains nothing.

    Episode i starts from --seed + 10_000 + i: with the run's seed, the goals and start states of its evaluations.
    """
    if not os.path.exists(args.evaluate):
        raise SystemExit(f"There is no saved model or checkpoint at {args.evaluate}.")
    saved = load_checkpoint(args.evaluate)
    run = Args(**{name: tuple(value) if isinstance(value, list) else value for name, value in saved["args"].items()})
    run_dir = args.evaluate if os.path.isdir(args.evaluate) else os.path.dirname(args.evaluate)
    video_dir = os.path.join(run_dir, "videos_evaluate") if args.capture_video else None
    env = make_goal_env(run.env_id, args.seed, video_dir)
    spaces = env.observation_space
    in_dim = spaces["observation"].shape[0] + spaces["desired_goal"].shape[0]
    act_dim = env.action_space.shape[0]
    actor = GaussianMeans(run.n_actors, in_dim, act_dim, run.net_arch)
    qf = TwinQ(in_dim, act_dim, run.net_arch)
    actor.load_state_dict(saved["actor"])
    qf.load_state_dict(saved["qf"])
    normalizer = Normalizer(in_dim, run.normalize_obs)
    normalizer.load_state_dict(saved["normalizer"])
    returns, successes = evaluate_goal_env(
        policy=lambda obs: greedy_action(actor, qf, obs)[0],
        env=env,
        episodes=args.eval_episodes,
        normalizer=normalizer,
        device=torch.device("cpu"),
        seed=args.seed + 10_000,
    )
    env.close()
    print(
        f"eval return {np.mean(returns):.1f} +- {np.std(returns):.1f}, success rate {np.mean(successes):.2f} "
        f"over {args.eval_episodes} episodes"
    )
    return run_dir


# ==============================================================================================================
# End of run control.
# ==============================================================================================================


if __name__ == "__main__":
    main(tyro.cli(Args))
