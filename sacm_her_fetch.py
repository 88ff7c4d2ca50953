"""SAC and SACM + HER on the sparse-reward Fetch tasks: the Fetch rows of Table 1 of Gamid (Dey & Sharon, TMLR).

SAC whose actor is a tanh-squashed mixture of K Gaussians (SACM, Baram et al., 2021; K = 1 is SAC). Actor and critics
see observation + desired_goal; the buffer relabels goals when sampling (HER `future`, Andrychowicz et al., 2017).
Hyperparameters: Table 8 (PRESETS). Usage: docs/fetch.md."""

import atexit
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
import warnings
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
    """SAC (--n-components 1) or SACM with HER on one Fetch task: a field left None takes the task's PRESETS row."""

    exp_name: str = os.path.basename(__file__)[: -len(".py")]  # the name of this experiment
    seed: int = 1  # seed of the experiment
    cuda: bool = True  # use a GPU when one is present
    capture_video: bool = False  # record evaluation episodes to run_dir/videos (headless: MUJOCO_GL=egl or osmesa)
    save_model: bool = False  # save actor, critics, entropy coefficient and input normalizer to the run directory
    runs_dir: str = "runs"  # where run directories are created
    env_id: str = "FetchPush-v4"  # goal env id; the paper's Fetch*-v1 ids run as -v4 (v1 needs mujoco-py)
    n_components: int = 3  # the number K of Gaussians in the actor (Table 8); 1 is plain SAC
    learn_weights: bool = False  # learn state-dependent mixing weights (otherwise uniform, as Baram et al.)
    total_timesteps: int = 1_000_000  # total environment steps (Table 8)
    learning_rate: float = 1e-3  # Adam learning rate of actor, critics and entropy coefficient (Table 8)
    buffer_size: int = 1_000_000  # replay buffer capacity in transitions, held as whole episodes
    gamma: float = 0.95  # discount factor (Table 8)
    tau: float = 0.05  # Polyak rate of the target critics (Table 8 prints none: the zoo's SAC Fetch 0.05)
    batch_size: Optional[int] = None  # minibatch size (preset)
    learning_starts: int = 1_000  # uniform random actions and no updates before this step (Table 8)
    train_freq: Literal["step", "episode"] = "step"  # train after every env step (SB3 1.6.2 SAC's default) or episode
    gradient_steps: int = 1  # per training round; -1: one per env step collected (SB3 1.6.2 SAC's default: 1)
    net_arch: tuple[int, ...] = (512, 512, 512)  # hidden layer sizes of actor and critics (Table 8)
    autotune: bool = True  # learn the entropy coefficient alpha toward the target entropy -|A| (Table 8: 'auto')
    ent_coef: float = 1.0  # alpha: its initial value with --autotune, else fixed
    n_sampled_goal: int = 4  # HER k: a sampled transition gets a `future` goal with probability k / (k + 1)
    normalize_obs: bool = False  # standardize observation + goal, clipped to +-5, as baselines' HER (not Table 8)
    eval_freq: int = 10_000  # greedy evaluation every this many env steps (and at the end)
    eval_episodes: int = 10  # episodes per evaluation
    log_freq: int = 1_000  # TensorBoard scalars every this many env steps
    checkpoint_freq: int = 50_000  # checkpoint.pt every this many env steps, at an episode end (0: never)
    resume: Optional[str] = None  # continue the run in this directory from its checkpoint.pt, with its hyperparameters
    evaluate: Optional[str] = None  # watch a saved model or checkpoint for --eval-episodes greedy episodes
    track: bool = False  # log the run to Weights & Biases
    wandb_project_name: str = "gamid-pg"  # the Weights & Biases project
    wandb_entity: Optional[str] = None  # the Weights & Biases team or user


# Paper Table 8 (SAC and SACM with HER on Fetch): the batch size of each task's column; the cells the columns share are
# defaults of Args. Table 8 prints no tau, train_freq or gradient_steps: tau is the zoo's SAC Fetch 0.05, training is
# SB3 1.6.2 SAC's default (one gradient step per env step). Other goal envs (e.g. FetchReach-v4) take FetchPush's.
PRESETS = {
    "FetchPush": dict(batch_size=2048),
    "FetchSlide": dict(batch_size=2048),
    "FetchPickAndPlace": dict(batch_size=1024),
}
SUPPORTED = ", ".join(f"{task}-v1/-v4" for task in PRESETS)
GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SB3's SAC clamp (the paper's baselines are SB3)


class EnsembleMLP(nn.Module):
    """`n` ReLU MLPs in one batched matmul per layer: (n or 1, B, in) -> (n, B, out); `members=m`: the first m only."""

    def __init__(self, n: int, in_dim: int, out_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        layers = list(zip((in_dim, *hidden), (*hidden, out_dim)))  # (fan_in, fan_out) of each layer
        # nn.Linear's initialisation U(-1/sqrt(fan_in), 1/sqrt(fan_in)); every layer's weights first, then biases.
        self.weights = nn.ParameterList([torch.empty(n, i, o).uniform_(-(i**-0.5), i**-0.5) for i, o in layers])
        self.biases = nn.ParameterList([torch.empty(n, 1, o).uniform_(-(i**-0.5), i**-0.5) for i, o in layers])

    def forward(self, x: torch.Tensor, members: Optional[int] = None) -> torch.Tensor:
        members = members or len(self.weights[0])
        *hidden_layers, (weight, bias) = zip(self.weights, self.biases)
        x = x.expand(members, -1, -1)
        for w, b in hidden_layers:  # bias + x @ weight, member by member; ReLU in place (baddbmm keeps no output)
            x = F.relu_(torch.baddbmm(b[:members], x, w[:members]))
        return torch.baddbmm(bias[:members], x, weight[:members])


class MixtureActor(nn.Module):
    """pi(.|s): K Gaussians, uniform mixing weights (Baram et al.) unless learned, squashed by tanh into [-1, 1]."""

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
        uniform = mean.new_full(mean.shape[:2], -math.log(self.k))  # Baram et al.'s fixed weights
        return mean, log_std, out[..., -1].log_softmax(0) if self.learn_weights else uniform


class TwinQ(nn.Module):
    """TD3's two critics as one two-member ensemble."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.net = EnsembleMLP(2, obs_dim + act_dim, 1, hidden)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, members: int = 2) -> torch.Tensor:
        """Q_k(s, a) for k < members. actions (..., B, act) may carry a leading Gaussian axis; -> (members, ..., B)."""
        x = torch.cat([obs.expand(*actions.shape[:-1], -1), actions], dim=-1)  # the same state for each Gaussian
        q = self.net(x.reshape(1, -1, x.shape[-1]), members)  # every (Gaussian, state) pair in one batch
        return q.view(members, *actions.shape[:-1])


def mixture_log_prob(u, mean, log_std, log_weights) -> torch.Tensor:
    """Exact log pi(tanh(u)|s) of the squashed mixture: u (..., B, act), mean, log_std (K, B, act), log_weights (K, B).
    logsumexp_j(log w_j + log N(u; mu_j, sigma_j)) - sum_d log(1 - tanh(u_d)^2), overflow-free -> (..., B)."""
    z = (u.unsqueeze(-3) - mean) / log_std.exp()  # (..., K, B, act)
    log_normal = (-0.5 * z.pow(2) - log_std).sum(-1) - 0.5 * math.log(2 * math.pi) * u.shape[-1]
    log_det = (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
    return torch.logsumexp(log_weights + log_normal, dim=-2) - log_det


def sample_mixture(mean: torch.Tensor, log_std: torch.Tensor, log_weights: torch.Tensor) -> torch.Tensor:
    """A pre-squash action u (B, act) per state: c ~ Categorical(w) by Gumbel-max, u = mu_c + sigma_c eps; no sync."""
    gumbel = -torch.empty_like(log_weights).exponential_().log()  # Gumbel(0, 1): minus the log of an Exp(1) draw
    c = (log_weights + gumbel).argmax(0)  # (B,)
    u = mean + log_std.exp() * torch.randn_like(mean)  # (K, B, act): every component samples, c picks one
    return u[c, torch.arange(u.shape[1], device=u.device)]


@torch.no_grad()
def greedy_mixture_action(actor: MixtureActor, qf: TwinQ, obs: torch.Tensor) -> torch.Tensor:
    """tanh of the component mean with the highest Q1 (Gamid's greedy rule), (B, obs) -> (B, act); draws nothing."""
    means = torch.tanh(actor(obs)[0])  # (K, B, act)
    best = qf(obs, means, members=1)[0].argmax(0)  # (B,)
    return means[best, torch.arange(obs.shape[0], device=obs.device)]


@torch.no_grad()
def policy_action(actor: MixtureActor, obs: np.ndarray, device: torch.device) -> np.ndarray:
    """One exploring action in the [-1, 1] scale for one network input: a sample of the squashed mixture."""
    u = sample_mixture(*actor(torch.as_tensor(obs, dtype=torch.float32, device=device)[None]))  # a batch of one
    return torch.tanh(u)[0].cpu().numpy()


def actor_loss(actor: MixtureActor, qf: TwinQ, obs: torch.Tensor, alpha: torch.Tensor):
    """Marginalized reparameterization (Baram et al.): sum_i w_i mean_s[alpha log pi(a_i|s) - min_k Q_k(s, a_i)], one
    a_i = tanh(mu_i + sigma_i eps_i) per component, so each gets gradient. -> loss, entropy, weights (K, B), stds."""
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


Batch = NamedTuple("Batch", [(name, torch.Tensor) for name in ("obs", "actions", "rewards", "next_obs", "terminated")])


class Normalizer:
    """Running mean/std of observation + goal, inputs standardized and clipped to +-clip (baselines' HER); or off."""

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


def her_goals(achieved_goals: np.ndarray, desired_goals: np.ndarray, episodes: np.ndarray, t: np.ndarray,
              her_prob: float, rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """HER `future` (Andrychowicz et al., 2017): with probability her_prob, transition (episodes[b], t[b]) takes the
    goal achieved in a uniform later state t' in [t + 1, T] of its episode, else keeps its own. -> goals (B, g)."""
    future = rng.integers(t + 1, desired_goals.shape[1] + 1)
    relabel = rng.random(len(t)) < her_prob
    return np.where(relabel[:, None], achieved_goals[episodes, future], desired_goals[episodes, t])


class HerReplayBuffer:
    """Whole episodes of a goal env (FIFO over episodes) in host memory; goals relabelled and rewards recomputed by
    the env's compute_reward when sampling (HER). Actions in the [-1, 1] scale."""

    def __init__(self, n_episodes, horizon, obs_dim, goal_dim, act_dim, compute_reward, n_sampled_goal, normalizer,
                 device, rng):  # fmt: skip
        self.capacity, self.horizon, self.pos, self.n_episodes = n_episodes, horizon, 0, 0
        self.compute_reward, self.normalizer, self.device, self.rng = compute_reward, normalizer, device, rng
        self.her_prob = n_sampled_goal / (n_sampled_goal + 1)
        shapes = dict(obs=(horizon + 1, obs_dim), achieved_goals=(horizon + 1, goal_dim),
                      desired_goals=(horizon, goal_dim), actions=(horizon, act_dim))  # fmt: skip
        self.data = {name: np.zeros((n_episodes, *shape), np.float32) for name, shape in shapes.items()}

    def add_episode(self, obs, achieved_goals, desired_goals, actions):
        """Store one episode: obs and achieved_goals of its T + 1 states, desired_goals and actions of its T steps."""
        for array, value in zip(self.data.values(), (obs, achieved_goals, desired_goals, actions)):
            array[self.pos] = value
        if self.normalizer.enabled:  # as baselines: statistics of the episode's inputs, with HER-relabelled goals
            t = np.arange(self.horizon)
            goals = her_goals(self.data["achieved_goals"], self.data["desired_goals"], np.full_like(t, self.pos), t,
                              self.her_prob, self.rng)  # fmt: skip
            self.normalizer.update(np.concatenate([self.data["obs"][self.pos, :-1], goals], -1))
        self.pos, self.n_episodes = (self.pos + 1) % self.capacity, min(self.n_episodes + 1, self.capacity)

    def sample(self, batch_size: int) -> Batch:
        """Uniform over stored transitions; obs + (relabelled) goal; terminated 0 (Fetch ends by time limit only)."""
        episodes = self.rng.integers(self.n_episodes, size=batch_size)
        t = self.rng.integers(self.horizon, size=batch_size)
        states, achieved, desired, actions = self.data.values()
        goals = her_goals(achieved, desired, episodes, t, self.her_prob, self.rng)
        rewards = self.compute_reward(achieved[episodes, t + 1], goals, None)
        obs, next_obs = (self.normalizer(np.concatenate([states[episodes, t + i], goals], -1)) for i in (0, 1))
        batch = (obs, actions[episodes, t], rewards, next_obs, np.zeros(batch_size))  # terminated 0: always bootstrap
        return Batch(*(torch.as_tensor(x, dtype=torch.float32, device=self.device) for x in batch))

    def state_dict(self) -> dict:
        """The filled part of the buffer, its write position and its random stream (for checkpoints)."""
        filled = {name: array[: self.n_episodes].copy() for name, array in self.data.items()}
        return filled | {"pos": self.pos, "n_episodes": self.n_episodes, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict):
        for name, array in self.data.items():
            array[: state["n_episodes"]] = state[name]
        self.pos, self.n_episodes, self.rng.bit_generator.state = state["pos"], state["n_episodes"], state["rng"]


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Target networks trail the trained ones: target <- (1 - tau) target + tau source (TD3, SAC)."""
    for target_param, param in zip(target.parameters(), source.parameters()):
        target_param.lerp_(param, tau)


@torch.no_grad()
def soft_td_target(actor: MixtureActor, qf_target: TwinQ, batch: Batch, alpha: torch.Tensor, gamma: float):
    """Soft target, a' ~ pi(.|s'): y = r + gamma (1 - d) (min_k Q_targ,k(s', a') - alpha log pi(a'|s'))."""
    mean, log_std, log_weights = actor(batch.next_obs)
    u = sample_mixture(mean, log_std, log_weights)
    next_q = qf_target(batch.next_obs, torch.tanh(u)).min(0).values
    next_v = next_q - alpha * mixture_log_prob(u, mean, log_std, log_weights)
    return batch.rewards + gamma * (1 - batch.terminated) * next_v


def train_step(actor, qf, qf_target, log_alpha, actor_optimizer, q_optimizer, alpha_optimizer, batch: Batch, args):
    """One SAC(M) gradient step: critics, actor, entropy coefficient (alpha_optimizer None: fixed), Polyak averaging;
    returns detached diagnostics (no host sync). benchmarks/sps.py times it and the buffer's `sample` by name."""
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
    stats = {"losses/qf_loss": qf_loss.detach(), "losses/qf1_values": q[0].detach().mean(),
             "losses/qf2_values": q[1].detach().mean(), "losses/actor_loss": loss.detach(), "losses/alpha": alpha,
             "charts/entropy": entropy}  # fmt: skip
    stats |= {f"charts/component_{i}/weight": w for i, w in enumerate(weights.mean(1).unbind())}
    stats |= {f"charts/component_{i}/std": s for i, s in enumerate(stds.mean((1, 2)).unbind())}
    if alpha_optimizer is not None:  # SAC's temperature loss on the mixture entropy: alpha falls while H > -|A|
        alpha_loss = log_alpha * (entropy + batch.actions.shape[1])
        alpha_optimizer.zero_grad(set_to_none=True)
        alpha_loss.backward()
        alpha_optimizer.step()
        stats["losses/alpha_loss"] = alpha_loss.detach()
    polyak_update(qf_target, qf, args.tau)  # SAC has no target actor
    return stats


def to_env_action(action: np.ndarray, space: gym.spaces.Box) -> np.ndarray:  # [-1, 1] -> the env's [low, high]
    return space.low + (action + 1) * 0.5 * (space.high - space.low)


def from_env_action(action: np.ndarray, space: gym.spaces.Box) -> np.ndarray:  # the env's [low, high] -> [-1, 1]
    return 2 * (action - space.low) / (space.high - space.low) - 1


def resolve_fetch_env_id(env_id: str) -> str:
    """Map the paper's Fetch*-v1 ids (mujoco-py, no longer installable) to -v4; reject unknown ids."""
    gym.register_envs(__import__("gymnasium_robotics"))  # importing it makes FetchPush-v4, ... known to gym.make
    task, _, version = env_id.rpartition("-")
    if task.startswith("Fetch") and version == "v1":
        print(f"{env_id} needs mujoco-py, which no longer installs; running {task}-v4, the same task.")
        return f"{task}-v4"
    if env_id not in gym.registry:
        raise SystemExit(f"Unknown env id '{env_id}'; supported paper tasks are {SUPPORTED}.")
    return env_id


def resolve_args(args: Args) -> Args:
    """Fill the fields left unset from the task's Table 8 column; refuse values that would train wrong or crash."""
    args.env_id = resolve_fetch_env_id(args.env_id)
    make_goal_env(args.env_id, args.seed).close()  # refuses non-goal envs before anything is printed or written
    task = args.env_id.rpartition("-")[0]
    if task not in PRESETS:
        print(f"{args.env_id} is not one of the paper's tasks; unset hyperparameters use the FetchPush preset.")
    for field, value in PRESETS.get(task, PRESETS["FetchPush"]).items():
        if getattr(args, field) is None:
            setattr(args, field, value)
    for failed, sentence in [
        (args.n_components < 1, f"--n-components must be at least 1, got {args.n_components}."),
        (args.batch_size > args.buffer_size, f"--batch-size {args.batch_size} exceeds the --buffer-size."),
        (args.total_timesteps <= args.learning_starts, "--total-timesteps must exceed --learning-starts."),
        (args.gradient_steps == 0 or args.gradient_steps < -1, "--gradient-steps must be positive, or -1."),
        (min(args.batch_size, args.eval_freq, args.eval_episodes, args.log_freq) < 1,
         "--batch-size, --eval-freq, --eval-episodes and --log-freq must be positive."),
        (not 0 < args.tau <= 1, f"--tau must lie in (0, 1], got {args.tau}."),
        (args.ent_coef <= 0, f"--ent-coef must be positive, got {args.ent_coef}."),
        (args.n_sampled_goal < 0, f"--n-sampled-goal must not be negative, got {args.n_sampled_goal}."),
    ]:  # fmt: skip
        if failed:
            raise SystemExit(sentence)
    return args


def choose_renderer() -> None:
    """--capture-video, before MuJoCo's first import: MUJOCO_GL if set, else EGL, else OSMesa, if it renders here."""
    probe = [sys.executable, "-c", "import mujoco as m; m.Renderer(m.MjModel.from_xml_string('<mujoco/>'), 8, 8)"]
    warnings.filterwarnings("ignore", message=".*Overwriting existing videos")  # they are named by step: none is
    for gl in os.environ.get("MUJOCO_GL", "egl osmesa").split():  # each tried in a subprocess, as it cannot be undone
        if subprocess.run(probe, env=os.environ | {"MUJOCO_GL": gl}, capture_output=True).returncode == 0:
            os.environ["MUJOCO_GL"] = gl  # and a context made now: EGL's exit handler then runs after the envs close
            return __import__(f"mujoco.{gl}", fromlist=["GLContext"]).GLContext(8, 8).free()
    raise SystemExit("--capture-video cannot render: install libosmesa6 and set MUJOCO_GL=osmesa.")


def make_goal_env(env_id: str, seed: int, video_dir: Optional[str] = None) -> gym.Env:
    """A single goal env (no vector env: episode boundaries stay explicit, so episodes enter the buffer whole)."""
    if video_dir:  # first, before any env imports MuJoCo: a machine that cannot record says so before training
        choose_renderer()
    gym.register_envs(__import__("gymnasium_robotics"))
    env = gym.make(env_id, render_mode="rgb_array" if video_dir else None)
    space = env.observation_space
    if not (isinstance(space, gym.spaces.Dict) and all(isinstance(space.get(key), gym.spaces.Box) for key in GOAL_KEYS)
            and hasattr(env.unwrapped, "compute_reward")):  # fmt: skip
        raise SystemExit(f"{env_id} is not a goal env (HER needs Dict observations {GOAL_KEYS} and compute_reward); "
                         f"supported paper tasks are {SUPPORTED}.")  # fmt: skip
    if not isinstance(env.action_space, gym.spaces.Box) or env.spec.max_episode_steps is None:
        raise SystemExit(f"{env_id} needs a continuous (Box) action space and a time limit for this HER buffer.")
    if video_dir:
        env = gym.wrappers.RecordVideo(env, video_dir, episode_trigger=lambda episode: True, disable_logger=True)
        atexit.register(env.close)  # the last video written, the renderer released before interpreter shutdown
    env = gym.wrappers.RecordEpisodeStatistics(env)
    env.action_space.seed(seed)
    return env


def evaluate_goal_env(policy: Callable[[torch.Tensor], torch.Tensor], env: gym.Env, episodes: int,
                      normalizer: Normalizer, device: torch.device, seed: int) -> tuple[list, list]:  # fmt: skip
    """Returns and successes (info["is_success"] at the end, else NaN) of a deterministic policy on network inputs;
    episode i starts from seed + i: the same goals and start states at every evaluation."""
    returns, successes = [], []
    for episode in range(episodes):
        (obs, _), done, total = env.reset(seed=seed + episode), False, 0.0
        while not done:
            action = policy(torch.as_tensor(policy_input(obs, normalizer), device=device)[None])[0].cpu().numpy()
            obs, reward, terminated, truncated, info = env.step(to_env_action(action, env.action_space))
            done, total = terminated or truncated, total + float(reward)
        returns.append(total)
        successes.append(float(info.get("is_success", np.nan)))
    return returns, successes


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
    if args.evaluate:  # run control
        return watch(args)
    if args.resume:  # run control: continue with the run's saved hyperparameters; other flags are ignored
        args = type(args)(**load_checkpoint(args.resume)["args"] | {"resume": args.resume})
    args = resolve_args(args)
    run_dir = args.resume or f"{args.runs_dir}/{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    eval_env = make_goal_env(args.env_id, args.seed, os.path.join(run_dir, "videos") if args.capture_video else None)
    env = make_goal_env(args.env_id, args.seed)  # after the eval env, whose renderer is chosen first
    horizon = env.spec.max_episode_steps

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    actor, qf, qf_target, log_alpha = build_networks(args, env, device)
    obs_dim, goal_dim = (env.observation_space[key].shape[0] for key in ("observation", "desired_goal"))
    normalizer = Normalizer(obs_dim + goal_dim, args.normalize_obs)
    rb = HerReplayBuffer(args.buffer_size // horizon, horizon, obs_dim, goal_dim, env.action_space.shape[0],
                         env.unwrapped.compute_reward, args.n_sampled_goal, normalizer, device,
                         np.random.default_rng(args.seed))  # fmt: skip
    adam = partial(torch.optim.Adam, lr=args.learning_rate, fused=True)
    learner = dict(actor=actor, qf=qf, qf_target=qf_target, log_alpha=log_alpha,
                   actor_optimizer=adam(actor.parameters()), q_optimizer=adam(qf.parameters()),
                   alpha_optimizer=adam([log_alpha]) if args.autotune else None)  # fmt: skip
    # The training state, declared once: train_step's arguments and the rest of what checkpoint() saves.
    state = dict(learner, normalizer=normalizer, rb=rb, stats={}, recent_returns=deque(maxlen=20),
                 recent_successes=deque(maxlen=20), step=0, args=asdict(args))  # fmt: skip
    if args.resume and load_checkpoint(args.resume, state, [env])["step"] >= args.total_timesteps:  # run control
        print(f"{args.resume} already finished at step {state['step']}; nothing to do.")
        return run_dir
    stats, recent_returns, recent_successes = state["stats"], state["recent_returns"], state["recent_successes"]

    if args.track:  # run control: Weights & Biases as in CleanRL, before the SummaryWriter whose scalars it syncs
        import wandb

        name = os.path.basename(run_dir)
        wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, name=name, id=name.replace(".", "-"),
                   resume="allow", config=vars(args), sync_tensorboard=True, save_code=True)  # fmt: skip
    writer = SummaryWriter(run_dir, purge_step=state["step"] + 1 if args.resume else None)  # a resumed run logs anew
    if not args.resume:
        table = "\n".join(f"|{key}|{value}|" for key, value in asdict(args).items())
        writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + table)
        with open(os.path.join(run_dir, "hyperparameters.json"), "w") as f:
            json.dump(asdict(args), f, indent=2)

    obs, _ = env.reset(seed=None if args.resume else args.seed)  # resumed: from the restored env generator
    visited, actions, greedy = [obs], [], partial(greedy_mixture_action, actor, qf)  # the episode so far
    start_step, start_time = state["step"] + 1, time.time()
    marks = deque([(start_time, state["step"])], maxlen=12)  # run control
    catch_stop_signals()  # run control
    for global_step in range(start_step, args.total_timesteps + 1):
        # ALGO LOGIC: act; before learning_starts uniformly at random, then a sample of the squashed mixture.
        if global_step <= args.learning_starts:
            action = from_env_action(env.action_space.sample(), env.action_space)
        else:
            action = policy_action(actor, policy_input(obs, normalizer), device)
        obs, reward, terminated, truncated, info = env.step(to_env_action(action, env.action_space))
        visited.append(obs)
        actions.append(action)
        if episode_over := terminated or truncated:  # HER: the whole episode enters the buffer; always bootstrap
            rb.add_episode(*(np.array([o[key] for o in visited]) for key in ("observation", "achieved_goal")),
                           np.array([o["desired_goal"] for o in visited[:-1]]), np.array(actions))  # fmt: skip
            recent_returns.append(float(info["episode"]["r"]))
            recent_successes.append(float(info.get("is_success", np.nan)))
            writer.add_scalar("charts/episodic_return", info["episode"]["r"], global_step)
            writer.add_scalar("charts/episodic_length", info["episode"]["l"], global_step)

        # ALGO LOGIC: train per env step (SB3's SAC) or, as SB3's train_freq=(1, "episode"), at each episode's end.
        if global_step > args.learning_starts and rb.n_episodes > 0 and (args.train_freq == "step" or episode_over):
            n_steps = args.gradient_steps if args.gradient_steps > 0 else 1 if args.train_freq == "step" else horizon
            for _ in range(n_steps):
                stats |= train_step(**learner, batch=rb.sample(args.batch_size), args=args)

        # TRY NOT TO MODIFY: logging, evaluation, the progress line
        if global_step % args.log_freq == 0:
            if recent_successes:  # the last 20 training episodes, exploring
                writer.add_scalar("charts/success_rate", np.mean(recent_successes), global_step)
            values = {tag: value.item() for tag, value in stats.items()}
            if not all(map(np.isfinite, values.values())):
                writer.close()
                raise SystemExit(f"A loss is not finite at step {global_step}; stopping (logs kept in {run_dir}).")
            values["charts/SPS"] = (global_step - start_step + 1) / (time.time() - start_time)
            for tag, value in values.items():
                writer.add_scalar(tag, value, global_step)
        if global_step % args.eval_freq == 0 or global_step == args.total_timesteps:
            eval_env.set_wrapper_attr("name_prefix", f"step{global_step}")  # videos/step<N>-episode-<k>.mp4
            returns, successes = evaluate_goal_env(greedy, eval_env, args.eval_episodes, normalizer, device,
                                                   args.seed + 10_000)  # fmt: skip
            writer.add_scalar("eval/episodic_return", np.mean(returns), global_step)
            writer.add_scalar("eval/success_rate", np.mean(successes), global_step)
            print(f"step {global_step}, eval return {np.mean(returns):.1f}, success rate {np.mean(successes):.2f}")
        if time.time() - marks[-1][0] > 5:  # run control
            print(progress_line(global_step, args.total_timesteps, marks, recent_returns), flush=True)

        if episode_over or global_step == args.total_timesteps:  # run control: checkpoint when due, exit 75 if asked
            checkpoint(run_dir, state, [env], global_step, args, writer)
        if episode_over:
            obs, _ = env.reset()  # after the checkpoint: a resumed run's reset draws the same start
            visited, actions = [obs], []

    if args.save_model:
        path = os.path.join(run_dir, f"{args.exp_name}.model")
        model = {"actor": actor.state_dict(), "qf": qf.state_dict(), "log_alpha": log_alpha.detach().cpu()}
        torch.save(model | {"normalizer": normalizer.state_dict(), "args": asdict(args)}, path)
        print(f"model saved to {path}")
    env.close()
    eval_env.close()
    writer.close()
    return run_dir


# ==============================================================================================================
# Run control: checkpoints, stop signals, --resume, --evaluate, the progress line. Not the algorithm: a fork may
# delete this section and the lines of main() marked "# run control".
# ==============================================================================================================
INTERRUPTED_EXIT_CODE = 75  # EX_TEMPFAIL ("try again later"): benchmarks/reproduce.py resumes runs that exit so
STOP = []  # stop signals received: the loop checkpoints at the end of the episode and exits


def catch_stop_signals() -> None:
    """SIGTERM, SIGUSR1 (SLURM's warning before a time limit) and SIGINT ask the loop to checkpoint and exit."""

    def handle(signum, frame):
        STOP.append(signal.Signals(signum).name)
        print(f"{STOP[-1]} received: finishing this episode, then saving a checkpoint.", flush=True)

    STOP.clear()
    for signum in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
        signal.signal(signum, handle)


def checkpoint(run_dir: str, state: dict, envs: list, step: int, args, writer) -> None:
    """At an episode's end, every --checkpoint-freq steps, at the last step and when asked to stop: write the training
    state (objects by their state_dict()) and every random stream to run_dir/checkpoint.pt; exit 75 if asked to stop."""
    finished = step == args.total_timesteps
    if STOP or args.checkpoint_freq > 0 and (finished or step - state["step"] >= args.checkpoint_freq):
        state["step"] = step
        saved = {name: value.state_dict() if hasattr(value, "state_dict") else value for name, value in state.items()}
        saved["random"] = [random.getstate(), np.random.get_state(), torch.get_rng_state()] + [
            (env.unwrapped.np_random.bit_generator.state, env.action_space.np_random.bit_generator.state)
            for env in envs
        ]
        writer.flush()  # what was logged up to this step is on disk before the checkpoint
        torch.save(saved, os.path.join(run_dir, "checkpoint.tmp"))
        os.replace(os.path.join(run_dir, "checkpoint.tmp"), os.path.join(run_dir, "checkpoint.pt"))  # atomic rename
    if STOP and not finished:
        print(f"interrupted at step {step}; resume with: python {os.path.relpath(__file__)} --resume {run_dir}")
        raise SystemExit(INTERRUPTED_EXIT_CODE)


def load_checkpoint(path: str, state: Optional[dict] = None, envs: list = ()) -> dict:
    """Read a run directory's checkpoint.pt (or the file); with `state`, put it and every random stream back."""
    path = os.path.join(path, "checkpoint.pt") if os.path.isdir(path) else path
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)  # ours: random states, hyperparameters
    except Exception as error:
        raise SystemExit(f"{path} cannot be read ({type(error).__name__}); runs write one every --checkpoint-freq.")
    for name, value in (state or {}).items():  # objects by load_state_dict, tensors in place (an optimizer holds them)
        if hasattr(value, "load_state_dict"):
            value.load_state_dict(saved[name])
        elif isinstance(value, torch.Tensor):
            value.data.copy_(saved[name])
        else:
            state[name] = saved[name]
    if state is not None:
        python, numpy, cpu, *env_states = saved["random"]
        random.setstate(python)
        np.random.set_state(numpy)
        torch.set_rng_state(cpu)
        for env, (env_state, space_state) in zip(envs, env_states):
            env.unwrapped.np_random.bit_generator.state = env_state
            env.action_space.np_random.bit_generator.state = space_state
    return saved


def progress_line(step: int, total: int, marks: deque, recent_returns) -> str:
    """`step 12000/1000000 (1.2%), 105 SPS, ETA 2h36m05s, recent return 512.3`, at the speed over the last `marks`
    (a deque with a maxlen), not the average since the fast random warm-up."""
    marks.append((time.time(), step))
    speed = (marks[-1][1] - marks[0][1]) / max(marks[-1][0] - marks[0][0], 1e-9)
    left = int((total - step) / max(speed, 1e-9))
    recent = f"{np.mean(recent_returns):.1f}" if recent_returns else "n/a"
    eta = f"{left // 3600}h{left % 3600 // 60:02d}m{left % 60:02d}s"
    return f"step {step}/{total} ({step / total:.1%}), {speed:.0f} SPS, ETA {eta}, recent return {recent}"


def watch(args: Args) -> str:
    """--evaluate PATH: greedy episodes of a model saved with --save-model, or of a checkpoint; trains nothing."""
    saved = load_checkpoint(args.evaluate)
    run = Args(**saved["args"])  # the run's env, K and network sizes
    run_dir = args.evaluate if os.path.isdir(args.evaluate) else os.path.dirname(os.path.abspath(args.evaluate))
    env = make_goal_env(run.env_id, args.seed, os.path.join(run_dir, "videos_evaluate") if args.capture_video else None)
    env.set_wrapper_attr("name_prefix", f"step{saved.get('step', run.total_timesteps)}")
    actor, qf, _, _ = build_networks(run, env, cpu := torch.device("cpu"))
    normalizer = Normalizer(actor.trunk[0].in_features, run.normalize_obs)
    for name, part in (("actor", actor), ("qf", qf), ("normalizer", normalizer)):
        part.load_state_dict(saved[name])
    greedy = partial(greedy_mixture_action, actor, qf)
    returns, successes = evaluate_goal_env(greedy, env, args.eval_episodes, normalizer, cpu, args.seed + 10_000)
    print(f"return {np.mean(returns):.1f} +- {np.std(returns):.1f}, success rate {np.mean(successes):.2f}")
    return run_dir


if __name__ == "__main__":
    main(tyro.cli(Args))
