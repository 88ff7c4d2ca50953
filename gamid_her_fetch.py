"""Gamid on TD3 with Hindsight Experience Replay, for the sparse-reward Fetch tasks (Table 1, Fetch rows).

Dey & Sharon, "Comparing Deterministic and Soft Policy Gradients for Optimizing Gaussian Mixture
Actors" (TMLR). The actor is a mixture of N Gaussians with learned means mu_i(s, g) and one shared,
fixed covariance sigma^2 I; each mean follows the deterministic policy gradient of Q1 plus the
diversity bonus D_var (Algorithm 1, Eq. 4). Actor and critics see `observation` + `desired_goal`.
The replay buffer stores whole episodes and relabels goals when sampling (HER, `future` strategy,
Andrychowicz et al., 2017). Fetch episodes end by their 50-step time limit only: every transition
bootstraps. With N = 1 this file computes exactly TD3 + HER (the paper's TD3 row).

    python gamid_her_fetch.py --env-id FetchPush-v1
    python gamid_her_fetch.py --env-id FetchReach-v4 --total-timesteps 50000 --n-actors 1
"""

import json
import os
import random
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
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment"""
    seed: int = 1
    """seed of the experiment"""
    cuda: bool = True
    """use a GPU when one is present (falls back to the CPU silently)"""
    capture_video: bool = False
    """record evaluation episodes to `videos/` with gymnasium's RecordVideo"""
    save_model: bool = False
    """save the actor, critics and input normalizer to the run directory at the end"""
    runs_dir: str = "runs"
    """where run directories are created"""

    env_id: str = "FetchPush-v4"
    """goal env id; the paper's Fetch*-v1 ids run on -v4 (SPEC §3)"""
    total_timesteps: Optional[int] = None
    """total environment steps (preset: Table 4)"""
    learning_rate: Optional[float] = None
    """Adam learning rate of actor and critics (preset: Table 4)"""
    buffer_size: int = 1_000_000
    """replay buffer capacity in transitions (held as buffer_size // episode length whole episodes)"""
    gamma: Optional[float] = None
    """discount factor (preset: Table 4)"""
    tau: float = 0.005
    """Polyak rate of the target networks (alpha of Alg. 1 line 16 is 1 - tau; SB3 1.6.2 TD3 default)"""
    batch_size: Optional[int] = None
    """minibatch size (preset: Table 4)"""
    learning_starts: int = 1_000
    """uniform random actions and no updates before this step (Table 4)"""
    train_freq: Optional[Literal["step", "episode"]] = None
    """train after every env step, or at the end of every episode (preset: SB3 1.6.2 TD3 default, episode)"""
    gradient_steps: Optional[int] = None
    """gradient steps per training round; -1 = as many as env steps collected (preset: SB3 1.6.2 TD3 default, -1)"""
    net_arch: tuple[int, ...] = (512, 512, 512)
    """hidden layer sizes of actor and critics (Table 4)"""
    noise_std: float = 0.1
    """sigma of the shared covariance sigma^2 I, in the [-1, 1] action scale (Table 4 noise_std)"""
    policy_noise: float = 0.2
    """std of TD3's target policy smoothing noise"""
    noise_clip: float = 0.5
    """clip of TD3's target policy smoothing noise"""
    policy_delay: int = 2
    """actor and target updates every this many gradient steps (TD3)"""
    n_sampled_goal: int = 4
    """HER k: relabelled goals per real one; a sampled transition gets a `future` goal with probability k/(k+1) (Table 4)"""
    normalize_obs: bool = False
    """standardize observation and goal by running mean/std, clipped to +-5, as OpenAI baselines' HER (not in the paper)"""

    n_actors: Optional[int] = None
    """number of Gaussians N (preset: Table 5)"""
    temperature_initial: Optional[float] = None
    """policy divergence temperature tau at the start (preset: Table 5)"""
    temperature_final: Optional[float] = None
    """temperature after the decay (preset: Table 5)"""
    temperature_fraction: Optional[float] = None
    """fraction of total_timesteps over which the temperature decays linearly (preset: Table 5)"""
    epsilon_initial: Optional[float] = None
    """epsilon of the epsilon-greedy mixture weights at the start (preset: Table 5)"""
    epsilon_final: Optional[float] = None
    """epsilon after the decay (preset: Table 5)"""
    epsilon_fraction: Optional[float] = None
    """fraction of total_timesteps over which epsilon decays linearly (preset: Table 5)"""

    eval_freq: int = 10_000
    """greedy evaluation every this many env steps (and at the end)"""
    eval_episodes: int = 10
    """episodes per evaluation"""
    log_freq: int = 1_000
    """TensorBoard scalars every this many env steps"""


# Paper presets: Table 4 (TD3 + HER, shared) and Table 5 (Gamid). learning_starts 1000, 512x512x512
# nets and HER future k = 4 are common to the three tasks and live in Args. Table 4 lists no
# train_freq, gradient_steps or tau: the paper ran SB3 1.6.2, whose TD3 defaults are
# train_freq=(1, "episode"), gradient_steps=-1 (one gradient step per env step, at each episode's
# end) and tau=0.005. Other goal envs (e.g. FetchReach-v4) get the GENERIC row: FetchPush's numbers.
PRESET_FIELDS = ("total_timesteps", "learning_rate", "batch_size", "gamma", "train_freq", "gradient_steps",
                 "n_actors", "temperature_initial", "temperature_final", "temperature_fraction",
                 "epsilon_initial", "epsilon_final", "epsilon_fraction")
PRESETS = {  #         total      lr    batch gamma train_freq grad  N  tau: init final frac  eps: init final frac
    "FetchPush":         (1_000_000, 1e-3, 2048, 0.95, "episode", -1,  4,      0.3, 0.1,  1.0,       0.1, 0.01, 1.0),
    "FetchSlide":        (1_000_000, 1e-3, 2048, 0.95, "episode", -1,  8,      0.3, 0.1,  1.0,       0.1, 0.01, 1.0),
    "FetchPickAndPlace": (1_000_000, 1e-3, 1024, 0.95, "episode", -1,  8,      0.3, 0.1,  1.0,       0.1, 0.01, 1.0),
}
GENERIC = PRESETS["FetchPush"]
SUPPORTED = ", ".join(f"{task}-v1/-v4" for task in PRESETS)
GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")


def register_robotics_envs():
    """Make gymnasium-robotics' ids (FetchPush-v4, ...) known to gym.make; importing the package registers them."""
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)


def resolve_env_id(env_id: str) -> str:
    """Map the paper's Fetch*-v1 ids (mujoco-py, no longer installable) to -v4; reject unknown ids."""
    register_robotics_envs()
    task, _, version = env_id.rpartition("-")
    if task.startswith("Fetch") and version == "v1":
        print(f"{env_id} needs mujoco-py, which no longer installs; running {task}-v4 (same task on the maintained mujoco bindings).")
        return f"{task}-v4"
    if env_id not in gym.registry:
        raise SystemExit(f"Unknown env id '{env_id}'; supported paper tasks are {SUPPORTED} (other registered goal envs such as FetchReach-v4 also run).")
    return env_id


def resolve_args(args: Args) -> Args:
    """Fill every field left unset from the task's paper preset, then check the values (SPEC §5, §10)."""
    args.env_id = resolve_env_id(args.env_id)
    make_env(args.env_id, args.seed).close()  # refuses non-goal envs before anything is printed or written
    task = args.env_id.rpartition("-")[0]
    if task not in PRESETS:
        print(f"{args.env_id} is not one of the paper's tasks; unset hyperparameters use the FetchPush preset.")
    for field, value in zip(PRESET_FIELDS, PRESETS.get(task, GENERIC)):
        if getattr(args, field) is None:
            setattr(args, field, value)
    problems = [
        (args.n_actors < 1, f"--n-actors must be at least 1, got {args.n_actors}."),
        (min(args.temperature_initial, args.temperature_final) < 0, "Temperatures must not be negative."),
        (not all(0 <= v <= 1 for v in (args.epsilon_initial, args.epsilon_final, args.epsilon_fraction,
                                      args.temperature_fraction)), "Epsilons and schedule fractions must lie in [0, 1]."),
        (args.batch_size > args.buffer_size, f"--batch-size {args.batch_size} is larger than --buffer-size {args.buffer_size}."),
        (args.total_timesteps <= args.learning_starts,
         f"--total-timesteps {args.total_timesteps} must exceed --learning-starts {args.learning_starts}, or nothing is trained."),
        (args.gradient_steps == 0 or args.gradient_steps < -1, "--gradient-steps must be positive, or -1 for one per env step."),
        (args.n_sampled_goal < 0, f"--n-sampled-goal must not be negative, got {args.n_sampled_goal}."),
        (min(args.batch_size, args.policy_delay, args.eval_freq, args.eval_episodes, args.log_freq) < 1,
         "--batch-size, --policy-delay, --eval-freq, --eval-episodes and --log-freq must be positive."),
    ]
    for failed, sentence in problems:
        if failed:
            raise SystemExit(sentence)
    return args


def linear_schedule(initial: float, final: float, fraction: float, total: int, step: int) -> float:
    """Linear decay from `initial` to `final` over the first `fraction` of `total` steps, then constant."""
    progress = min(step / (fraction * total), 1.0) if fraction > 0 else 1.0
    return initial + progress * (final - initial)


class EnsembleMLP(nn.Module):
    """`n` independent ReLU MLPs evaluated together: one batched matmul per layer (SPEC §11).

    Input (n, B, in) or (1, B, in) broadcast to every member; output (n, B, out). Each member is
    initialised like nn.Linear. `members=m` evaluates only the first m (e.g. Q1 of the twin critics).
    """

    def __init__(self, n: int, in_dim: int, out_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        dims = (in_dim, *hidden, out_dim)
        bounds = [d**-0.5 for d in dims[:-1]]
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(n, i, o).uniform_(-b, b)) for i, o, b in zip(dims, dims[1:], bounds))
        self.biases = nn.ParameterList(nn.Parameter(torch.empty(n, 1, o).uniform_(-b, b)) for o, b in zip(dims[1:], bounds))

    def forward(self, x: torch.Tensor, members: Optional[int] = None) -> torch.Tensor:
        layers = [(w[:members], b[:members]) for w, b in zip(self.weights, self.biases)]
        x = x.expand(layers[0][0].shape[0], -1, -1)
        for i, (w, b) in enumerate(layers):
            x = torch.baddbmm(b, x, w)
            if i < len(layers) - 1:
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
        x = torch.cat([obs.expand(*actions.shape[:-1], -1), actions], dim=-1)
        return self.net(x.reshape(1, -1, x.shape[-1]), members).view(members, *actions.shape[:-1])


def d_var(means: torch.Tensor) -> torch.Tensor:
    """D_var(i) = -log sum_{j != i} exp(-||mu_i - sg(mu_j)||^2), Eq. 4 (Sigma = I, uniform weights folded into tau).

    means (N, B, act) -> (N, B). The other Gaussians are constants for Gaussian i (Alg. 1 line 13),
    so mu_j is detached. With N = 1 the sum is empty and the term is 0: Gamid reduces to TD3.
    """
    n = means.shape[0]
    if n == 1:
        return means.new_zeros(means.shape[:2])
    sq_dist = (means.unsqueeze(1) - means.detach().unsqueeze(0)).pow(2).sum(-1)  # [i, j, B]
    not_self = ~torch.eye(n, dtype=torch.bool, device=means.device).unsqueeze(-1)
    return -torch.logsumexp((-sq_dist).masked_fill(~not_self, float("-inf")), dim=1)


def epsilon_greedy_weights(q: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Mixture weights of §3.1 from q (N, B) = Q1(s, mu_i(s)): 1 - eps + eps/N for the argmax, eps/N otherwise. -> (B, N)."""
    n = q.shape[0]
    return (1 - epsilon) * F.one_hot(q.argmax(0), n).to(q.dtype) + epsilon / n


@torch.no_grad()
def gmm_action(actor: GaussianMeans, qf: TwinQ, obs: torch.Tensor, epsilon: float, noise_std: float):
    """Alg. 1 lines 3-4: n ~ P (epsilon-greedy on Q1), a = clip(mu_n(s) + N(0, sigma^2 I), -1, 1).

    obs (B, obs) -> actions (B, act) in the [-1, 1] scale and the chosen Gaussians n (B,).
    epsilon = noise_std = 0 is the greedy, noise-free policy used for evaluation.
    """
    means = actor(obs)
    n = torch.multinomial(epsilon_greedy_weights(qf(obs, means, members=1)[0], epsilon), 1).squeeze(1)
    mean = means[n, torch.arange(obs.shape[0], device=obs.device)]
    return (mean + noise_std * torch.randn_like(mean)).clamp(-1, 1), n


class Batch(NamedTuple):
    obs: torch.Tensor  # observation + (relabelled) goal, normalized with --normalize-obs
    actions: torch.Tensor
    rewards: torch.Tensor  # recomputed for the relabelled goal
    next_obs: torch.Tensor
    terminated: torch.Tensor  # always 0: Fetch episodes end by time limit only


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
    """Network input of a goal-env observation dict: observation + desired_goal (SPEC §8)."""
    return normalizer(np.concatenate([obs["observation"], obs["desired_goal"]], -1))


def her_goals(achieved_goals: np.ndarray, desired_goals: np.ndarray, episodes: np.ndarray, t: np.ndarray,
              her_prob: float, rng: np.random.Generator) -> np.ndarray:
    """HER `future` relabelling of the sampled transitions (episodes[b], t[b]) (SPEC §8).

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

    def __init__(self, n_episodes: int, horizon: int, obs_dim: int, goal_dim: int, act_dim: int,
                 compute_reward: Callable, n_sampled_goal: int, normalizer: Normalizer,
                 device: torch.device, rng: np.random.Generator):
        self.capacity, self.horizon, self.pos, self.n_episodes = n_episodes, horizon, 0, 0
        self.compute_reward, self.normalizer, self.device, self.rng = compute_reward, normalizer, device, rng
        self.her_prob = n_sampled_goal / (n_sampled_goal + 1)
        self.obs = np.zeros((n_episodes, horizon + 1, obs_dim), np.float32)
        self.achieved_goals = np.zeros((n_episodes, horizon + 1, goal_dim), np.float32)
        self.desired_goals = np.zeros((n_episodes, horizon, goal_dim), np.float32)
        self.actions = np.zeros((n_episodes, horizon, act_dim), np.float32)

    def add_episode(self, obs, achieved_goals, desired_goals, actions):
        """Store one episode: obs and achieved_goals of its T + 1 states, desired_goals and actions of its T steps."""
        for store, value in ((self.obs, obs), (self.achieved_goals, achieved_goals),
                             (self.desired_goals, desired_goals), (self.actions, actions)):
            store[self.pos] = value
        if self.normalizer.enabled:  # as baselines: statistics of the episode's inputs, with HER-relabelled goals
            t = np.arange(self.horizon)
            goals = her_goals(self.achieved_goals, self.desired_goals, np.full_like(t, self.pos), t, self.her_prob, self.rng)
            self.normalizer.update(np.concatenate([self.obs[self.pos, :-1], goals], -1))
        self.pos = (self.pos + 1) % self.capacity
        self.n_episodes = min(self.n_episodes + 1, self.capacity)

    def sample(self, batch_size: int) -> Batch:
        """Uniform over stored transitions (all episodes have T steps), goals relabelled, rewards recomputed."""
        episodes = self.rng.integers(self.n_episodes, size=batch_size)
        t = self.rng.integers(self.horizon, size=batch_size)
        goals = her_goals(self.achieved_goals, self.desired_goals, episodes, t, self.her_prob, self.rng)
        rewards = self.compute_reward(self.achieved_goals[episodes, t + 1], goals, None)
        obs = self.normalizer(np.concatenate([self.obs[episodes, t], goals], -1))
        next_obs = self.normalizer(np.concatenate([self.obs[episodes, t + 1], goals], -1))
        to_device = lambda x: torch.as_tensor(x, dtype=torch.float32, device=self.device)
        return Batch(to_device(obs), to_device(self.actions[episodes, t]), to_device(rewards), to_device(next_obs),
                     torch.zeros(batch_size, device=self.device))


@torch.no_grad()
def td_target(actor_target: GaussianMeans, qf_target: TwinQ, batch: Batch, args: Args) -> torch.Tensor:
    """Alg. 1 line 10 with TD3's target smoothing and clipped double Q: y = r + gamma (1 - d) max_i min_k Q_targ,k(s', a'_i)."""
    next_means = actor_target(batch.next_obs)  # (N, B, act)
    noise = (torch.randn_like(next_means) * args.policy_noise).clamp(-args.noise_clip, args.noise_clip)
    next_q = qf_target(batch.next_obs, (next_means + noise).clamp(-1, 1)).min(0).values  # (N, B)
    return batch.rewards + args.gamma * (1 - batch.terminated) * next_q.max(0).values


def actor_losses(actor: GaussianMeans, qf: TwinQ, obs: torch.Tensor, temperature: float):
    """Alg. 1 lines 12-14 for all i at once: loss_i = -mean_s Q1(s, mu_i(s)) - tau_t mean_s D_var(i). -> (losses (N,), D_var (N,))."""
    means = actor(obs)
    qf.requires_grad_(False)  # Q1 is a fixed function of the action here: skip its weight gradients
    q1 = qf(obs, means, members=1)[0]  # (N, B)
    qf.requires_grad_(True)
    diversity = d_var(means).mean(1)
    return -(q1.mean(1) + temperature * diversity), diversity


def train_step(actor, actor_target, qf, qf_target, actor_optimizer, q_optimizer, batch: Batch,
               update_actor: bool, temperature: float, args: Args) -> dict:
    """One gradient step of Alg. 1 (lines 9-16) on TD3. Returns detached diagnostics (no host sync).

    Same signature as gamid_continuous_action.train_step: actor/actor_target are GaussianMeans(N,
    obs_dim + goal_dim, act_dim, net_arch), qf/qf_target TwinQ(obs_dim + goal_dim, act_dim, net_arch),
    the optimizers Adam over actor and qf, `batch` a Batch (e.g. HerReplayBuffer.sample), and `args`
    needs gamma, tau, policy_noise and noise_clip.
    """
    # Line 11: regress both critics on the target y of line 10.
    q = qf(batch.obs, batch.actions)  # (2, B)
    qf_loss = (q - td_target(actor_target, qf_target, batch, args)).pow(2).mean(1).sum()
    q_optimizer.zero_grad(set_to_none=True)
    qf_loss.backward()
    q_optimizer.step()
    stats = {"losses/qf_loss": qf_loss.detach(), "losses/qf1_values": q[0].detach().mean(),
             "losses/qf2_values": q[1].detach().mean()}

    if update_actor:
        # Lines 12-15. Summing the N losses is exact: theta[i] enters only loss_i (mu_j is detached in D_var).
        losses, diversity = actor_losses(actor, qf, batch.obs, temperature)
        actor_optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        actor_optimizer.step()

        # Line 16, as Polyak averaging after each actor update (TD3): targ <- (1 - tau) targ + tau main.
        with torch.no_grad():
            for target, main in ((actor_target, actor), (qf_target, qf)):
                torch._foreach_lerp_(list(target.parameters()), list(main.parameters()), args.tau)
        stats |= {"losses/actor_loss": losses.detach().sum(), "charts/sum_d_var": diversity.detach().sum()}
    return stats


def to_env_action(action: np.ndarray, space: gym.spaces.Box) -> np.ndarray:
    return space.low + (action + 1) * 0.5 * (space.high - space.low)


def from_env_action(action: np.ndarray, space: gym.spaces.Box) -> np.ndarray:
    return 2 * (action - space.low) / (space.high - space.low) - 1


def evaluate(actor: GaussianMeans, qf: TwinQ, env: gym.Env, episodes: int, device: torch.device,
             normalizer: Normalizer, seed: int) -> tuple[list[float], list[float]]:
    """Returns and successes (info["is_success"] at the last step; NaN if the env reports none) of `episodes`
    episodes with the greedy Gaussian, argmax_i Q1(s, mu_i(s)), and no noise (SPEC §4.9); episode i starts from seed + i."""
    returns, successes = [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)  # the same goals and start states at every evaluation
        done, total = False, 0.0
        while not done:
            x = torch.as_tensor(policy_input(obs, normalizer), device=device)[None]
            action, _ = gmm_action(actor, qf, x, 0.0, 0.0)
            obs, reward, terminated, truncated, info = env.step(to_env_action(action[0].cpu().numpy(), env.action_space))
            done, total = terminated or truncated, total + float(reward)
        returns.append(total)
        successes.append(float(info.get("is_success", np.nan)))
    return returns, successes


def make_env(env_id: str, seed: int, video_dir: Optional[str] = None) -> gym.Env:
    """A single goal env (no vector env: episode boundaries stay explicit, so episodes enter the buffer whole)."""
    register_robotics_envs()
    env = gym.make(env_id, render_mode="rgb_array" if video_dir else None)
    space = env.observation_space
    if not (isinstance(space, gym.spaces.Dict) and all(isinstance(space.get(k), gym.spaces.Box) for k in GOAL_KEYS)
            and hasattr(env.unwrapped, "compute_reward")):
        env.close()
        raise SystemExit(f"{env_id} is not a goal env (HER needs Dict observations with 'observation', 'achieved_goal' and "
                         f"'desired_goal' and a compute_reward method); supported paper tasks are {SUPPORTED}, and other "
                         f"goal envs such as FetchReach-v4 also run.")
    if not isinstance(env.action_space, gym.spaces.Box):
        raise SystemExit(f"{env_id} has a {type(env.action_space).__name__} action space; Gamid needs a continuous (Box) one.")
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
    args = resolve_args(args)
    run_name = f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    run_dir = os.path.join(args.runs_dir, run_name)
    env = make_env(args.env_id, args.seed)
    eval_env = make_env(args.env_id, args.seed, os.path.join(run_dir, "videos") if args.capture_video else None)
    horizon = env.spec.max_episode_steps
    if args.buffer_size < horizon:
        raise SystemExit(f"--buffer-size {args.buffer_size} cannot hold one {horizon}-step episode.")

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)  # HER sampling
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    writer = SummaryWriter(run_dir)
    hyperparameters = asdict(args)
    writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in hyperparameters.items()))
    with open(os.path.join(run_dir, "hyperparameters.json"), "w") as f:
        json.dump(hyperparameters, f, indent=2)
    print("hyperparameters: " + ", ".join(f"{k}={v}" for k, v in hyperparameters.items()))

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
    rb = HerReplayBuffer(args.buffer_size // horizon, horizon, obs_dim, goal_dim, act_dim, env.unwrapped.compute_reward,
                         args.n_sampled_goal, normalizer, device, rng)

    selected = torch.zeros(args.n_actors, device=device)  # per-Gaussian selection counts of this log interval
    recent_returns, recent_successes = deque(maxlen=20), deque(maxlen=20)
    stats, n_updates = {}, 0
    start_time = last_print = time.time()
    obs, _ = env.reset(seed=args.seed)
    episode = new_episode(obs)
    for global_step in range(1, args.total_timesteps + 1):
        temperature = linear_schedule(args.temperature_initial, args.temperature_final, args.temperature_fraction,
                                      args.total_timesteps, global_step)
        epsilon = linear_schedule(args.epsilon_initial, args.epsilon_final, args.epsilon_fraction, args.total_timesteps, global_step)

        # Alg. 1 lines 3-8. Before learning_starts, uniform random actions.
        if global_step <= args.learning_starts:
            action = from_env_action(env.action_space.sample(), env.action_space)
        else:
            action, n = gmm_action(actor, qf, torch.as_tensor(policy_input(obs, normalizer), device=device)[None],
                                   epsilon, args.noise_std)
            action = action[0].cpu().numpy()
            selected[n] += 1
        next_obs, reward, terminated, truncated, info = env.step(to_env_action(action, env.action_space))
        for key, value in (("obs", next_obs["observation"]), ("achieved_goals", next_obs["achieved_goal"]),
                           ("desired_goals", obs["desired_goal"]), ("actions", action)):
            episode[key].append(value)
        obs = next_obs
        episode_over = terminated or truncated
        if episode_over:
            episode_steps = len(episode["actions"])
            if episode_steps != horizon:
                raise SystemExit(f"{args.env_id} ended an episode after {episode_steps} of {horizon} steps; "
                                 f"this HER buffer needs episodes that end by their time limit only.")
            rb.add_episode(**{key: np.array(value) for key, value in episode.items()})  # always bootstrap: d = 0
            recent_returns.append(float(info["episode"]["r"]))
            recent_successes.append(float(info.get("is_success", np.nan)))
            writer.add_scalar("charts/episodic_return", info["episode"]["r"], global_step)
            writer.add_scalar("charts/episodic_length", info["episode"]["l"], global_step)
            obs, _ = env.reset()
            episode = new_episode(obs)

        # Lines 9-16, per env step or, as SB3's train_freq=(1, "episode"), at each episode's end.
        if global_step > args.learning_starts and rb.n_episodes > 0 and (args.train_freq == "step" or episode_over):
            n_steps = args.gradient_steps if args.gradient_steps > 0 else (1 if args.train_freq == "step" else horizon)
            for _ in range(n_steps):
                n_updates += 1
                stats |= train_step(actor, actor_target, qf, qf_target, actor_optimizer, q_optimizer,
                                    rb.sample(args.batch_size), n_updates % args.policy_delay == 0, temperature, args)

        if global_step % args.log_freq == 0 and recent_successes:  # last 20 training episodes, exploration included
            writer.add_scalar("charts/success_rate", np.mean(recent_successes), global_step)
        if global_step % args.log_freq == 0 and stats:
            values = {tag: value.item() for tag, value in stats.items()}
            bad = [tag for tag, value in values.items() if not np.isfinite(value)]
            if bad:
                writer.close()
                raise SystemExit(f"{bad[0]} is {values[bad[0]]} at step {global_step}; stopping (logs kept in {run_dir}).")
            for tag, value in values.items():
                writer.add_scalar(tag, value, global_step)
            writer.add_scalar("charts/temperature", temperature, global_step)
            writer.add_scalar("charts/epsilon", epsilon, global_step)
            for i, fraction in enumerate((selected / selected.sum().clamp(min=1)).tolist()):
                writer.add_scalar(f"charts/selected_fraction/gaussian_{i}", fraction, global_step)
            selected.zero_()
            writer.add_scalar("charts/SPS", global_step / (time.time() - start_time), global_step)
        if time.time() - last_print > 5:
            last_print = time.time()
            recent = f"{np.mean(recent_returns):.1f}, success {np.mean(recent_successes):.2f}" if recent_returns else "n/a"
            print(f"step {global_step}, SPS {global_step / (last_print - start_time):.0f}, recent return {recent}")

        if global_step % args.eval_freq == 0 or global_step == args.total_timesteps:
            returns, successes = evaluate(actor, qf, eval_env, args.eval_episodes, device, normalizer,
                                          seed=args.seed + 10_000)
            writer.add_scalar("eval/episodic_return", np.mean(returns), global_step)
            writer.add_scalar("eval/success_rate", np.mean(successes), global_step)
            print(f"step {global_step}, eval return {np.mean(returns):.1f} +- {np.std(returns):.1f}, success rate {np.mean(successes):.2f}")

    if args.save_model:
        path = os.path.join(run_dir, f"{args.exp_name}.model")
        torch.save({"actor": actor.state_dict(), "qf": qf.state_dict(), "normalizer": normalizer.state_dict(),
                    "args": asdict(args)}, path)
        print(f"model saved to {path}")
    env.close()
    eval_env.close()
    writer.close()
    return run_dir


if __name__ == "__main__":
    main(tyro.cli(Args))
