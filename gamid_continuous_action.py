"""Gamid: Gaussian Mixture Deterministic Policy Gradient on TD3, for MuJoCo locomotion.

Dey & Sharon, "Comparing Deterministic and Soft Policy Gradients for Optimizing Gaussian Mixture Actors"
(TMLR). The actor is a mixture of N Gaussians with learned means mu_i(s) and one shared, fixed covariance
sigma^2 I. Each mean follows the deterministic policy gradient of Q1 plus a diversity bonus D_var that pushes it
away from the other means (Algorithm 1, Eq. 4). With N = 1 this file computes what td3_baseline.py computes,
seed for seed: the same initial weights, the same random draws, the same final parameters.

    python gamid_continuous_action.py --env-id Walker2d-v3
"""

import json
import math
import os
import random
import signal
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Literal, NamedTuple, Optional

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from torch.utils.tensorboard import SummaryWriter


@dataclass
class Args:
    """Gamid on one MuJoCo task. The task's preset (paper Tables 3 and 5) fills every field left unset; the
    resolved values are printed at the start and saved to hyperparameters.json in the run directory."""

    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment"""
    seed: int = 1
    """seed of the experiment"""
    cuda: bool = True
    """use a GPU when one is present (falls back to the CPU silently)"""
    capture_video: bool = False
    """record evaluation episodes to the run's videos/ (on a headless machine set MUJOCO_GL=egl or osmesa)"""
    save_model: bool = False
    """save the actor and critics to the run directory at the end"""
    runs_dir: str = "runs"
    """where run directories are created"""

    env_id: str = "HalfCheetah-v4"
    """environment id; the paper's -v3 ids run as -v4 (same model, reward and observations)"""
    total_timesteps: Optional[int] = None
    """total environment steps (preset: Table 3)"""
    learning_rate: Optional[float] = None
    """Adam learning rate of actor and critics (preset: Table 3)"""
    buffer_size: int = 1_000_000
    """replay buffer capacity"""
    gamma: Optional[float] = None
    """discount factor (preset: Table 3)"""
    tau: float = 0.005
    """Polyak rate of the target networks (Alg. 1 line 16 writes alpha = 1 - tau)"""
    batch_size: Optional[int] = None
    """minibatch size (preset: Table 3)"""
    learning_starts: int = 10_000
    """uniform random actions and no updates before this step (Table 3, every task)"""
    train_freq: Optional[Literal["step", "episode"]] = None
    """train after every env step, or at the end of every episode (preset: Table 3)"""
    gradient_steps: Optional[int] = None
    """gradient steps per training round; -1 = as many as env steps collected (preset: Table 3)"""
    net_arch: tuple[int, ...] = (256, 256)
    """hidden layer sizes of actor and critics (Table 3, every task)"""
    noise_std: float = 0.1
    """sigma of the shared covariance sigma^2 I, in the [-1, 1] action scale (Table 3 noise_std, every task)"""
    policy_noise: float = 0.2
    """std of TD3's target policy smoothing noise"""
    noise_clip: float = 0.5
    """clip of TD3's target policy smoothing noise"""
    preactivation_penalty: float = 0.0
    """not the paper's (0 = off): add this times mean_s ||u_i(s)||^2 to each actor loss, u_i the mean before tanh"""
    policy_delay: int = 2
    """actor and target updates every this many gradient steps (TD3)"""

    n_actors: Optional[int] = None
    """number of Gaussians N (preset: Table 5)"""
    temperature_initial: Optional[float] = None
    """policy divergence temperature of Alg. 1 line 13 at the start (preset: Table 5)"""
    temperature_final: Optional[float] = None
    """temperature after the decay (preset: Table 5)"""
    temperature_fraction: Optional[float] = None
    """fraction of total_timesteps over which the temperature decays linearly (preset: Table 5)"""
    epsilon_initial: Optional[float] = None
    """epsilon of the epsilon-greedy mixture weights (paper §3.1) at the start (preset: Table 5)"""
    epsilon_final: Optional[float] = None
    """epsilon after the decay (preset: Table 5)"""
    epsilon_fraction: Optional[float] = None
    """fraction of total_timesteps over which epsilon decays linearly (preset: Table 5)"""
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
    record_means: bool = False
    """at every evaluation, save the N means on fixed probe states to means.npz in the run directory (the PCA
    plots of Figures 8-9: benchmarks/reproduce.py --experiment fig8)"""
    probe_states: int = 100
    """how many probe states --record-means uses: the first ones in the replay buffer (uniform random actions)"""

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


# Paper Table 3 (shared TD3 hyperparameters, MuJoCo) and Table 5 (Gamid-specific), one entry per column.
# The cells every column shares (learning_starts 1e4, noise_std 0.1, net_arch [256, 256], ReLU) are defaults
# of Args. Table 3's train_freq (1, "episode") with gradient_steps -1 is train_freq="episode" here.
# Box envs outside the paper take Hopper's column.
# fmt: off
PRESETS = {
    "Swimmer": dict(
        total_timesteps=1_000_000, learning_rate=1e-3, batch_size=100, gamma=0.9999,
        train_freq="step", gradient_steps=1,
        n_actors=3, temperature_initial=0.1, temperature_final=0.1, temperature_fraction=1.0,
        epsilon_initial=0.3, epsilon_final=0.03, epsilon_fraction=0.5,
    ),
    "HalfCheetah": dict(
        total_timesteps=1_000_000, learning_rate=1e-3, batch_size=100, gamma=0.99,
        train_freq="episode", gradient_steps=-1,
        n_actors=5, temperature_initial=0.1, temperature_final=0.1, temperature_fraction=1.0,
        epsilon_initial=0.2, epsilon_final=0.02, epsilon_fraction=0.5,
    ),
    "Hopper": dict(
        total_timesteps=1_000_000, learning_rate=3e-4, batch_size=256, gamma=0.99,
        train_freq="step", gradient_steps=1,
        n_actors=2, temperature_initial=0.1, temperature_final=0.01, temperature_fraction=1.0,
        epsilon_initial=0.1, epsilon_final=0.1, epsilon_fraction=1.0,
    ),
    "Ant": dict(
        total_timesteps=1_000_000, learning_rate=1e-3, batch_size=100, gamma=0.99,
        train_freq="episode", gradient_steps=-1,
        n_actors=2, temperature_initial=0.1, temperature_final=0.1, temperature_fraction=1.0,
        epsilon_initial=0.1, epsilon_final=0.1, epsilon_fraction=1.0,
    ),
    "Walker2d": dict(
        total_timesteps=1_000_000, learning_rate=1e-3, batch_size=100, gamma=0.99,
        train_freq="episode", gradient_steps=-1,
        n_actors=3, temperature_initial=0.1, temperature_final=0.1, temperature_fraction=1.0,
        epsilon_initial=0.3, epsilon_final=0.03, epsilon_fraction=1.0,
    ),
    "Humanoid": dict(
        total_timesteps=2_000_000, learning_rate=3e-4, batch_size=256, gamma=0.99,
        train_freq="step", gradient_steps=1,
        n_actors=4, temperature_initial=0.3, temperature_final=0.1, temperature_fraction=0.3,
        epsilon_initial=0.3, epsilon_final=0.1, epsilon_fraction=0.3,
    ),
}
# fmt: on


def resolve_env_id(env_id: str) -> str:
    """Map the paper's -v3 ids (mujoco-py, no longer installable) to -v4; reject unknown ids."""
    task, _, version = env_id.rpartition("-")
    if task in PRESETS and version == "v3":
        print(f"{env_id} needs mujoco-py, which no longer installs; running {task}-v4 (same model and reward).")
        return f"{task}-v4"
    if env_id not in gym.registry:
        supported = ", ".join(f"{task}-v3/-v4/-v5" for task in PRESETS)
        raise SystemExit(
            f"Unknown env id '{env_id}'; supported paper tasks are {supported} "
            "(other registered Box-action envs also run)."
        )
    return env_id


def resolve_args(args: Args) -> Args:
    """Fill every field left unset from the task's preset, then check the values (one sentence per problem)."""
    args.env_id = resolve_env_id(args.env_id)
    task = args.env_id.rpartition("-")[0]
    if task not in PRESETS:
        print(f"{args.env_id} is not one of the paper's tasks; unset hyperparameters take Hopper's column.")
    preset = PRESETS.get(task, PRESETS["Hopper"])
    if args.n_actors is None:
        args.n_actors = preset["n_actors"]
    if args.n_actors < 1:
        raise SystemExit(f"--n-actors must be at least 1, got {args.n_actors}.")
    if args.epsilon == "auto":  # 1/(10N) in place of the preset's schedule; a resumed run has it saved already
        auto_epsilon = dict(epsilon_initial=1 / (10 * args.n_actors), epsilon_final=1 / (10 * args.n_actors))
        for field, value in (auto_epsilon | dict(epsilon_fraction=1.0)).items():
            if getattr(args, field) not in (None, value):
                raise SystemExit("--epsilon auto sets epsilon to 1/(10N); drop the --epsilon-* schedule flags.")
            setattr(args, field, value)
    if args.temperature == "auto" and not args.resume:
        if args.temperature_final is not None or args.temperature_fraction is not None:
            raise SystemExit("--temperature auto learns the temperature; drop --temperature-final and -fraction.")
    for field, value in preset.items():
        if getattr(args, field) is None:
            setattr(args, field, value)

    if args.temperature_target is not None and args.temperature != "auto":
        raise SystemExit("--temperature-target is the target of --temperature auto; give both or neither.")
    if args.temperature == "auto" and args.temperature_initial <= 0:
        raise SystemExit("--temperature auto learns log(temperature), so --temperature-initial must be positive.")
    if args.temperature_lr <= 0 or args.probe_states < 1:
        raise SystemExit("--temperature-lr and --probe-states must be positive.")
    if args.record_means and args.probe_states > min(args.eval_freq, args.learning_starts):
        raise SystemExit(
            "--probe-states must not exceed --eval-freq or --learning-starts: the probe states are the "
            "first states in the buffer, collected by random actions before the first evaluation."
        )
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
    if min(args.batch_size, args.policy_delay, args.eval_freq, args.eval_episodes, args.log_freq) < 1:
        raise SystemExit("--batch-size, --policy-delay, --eval-freq, --eval-episodes and --log-freq must be positive.")
    return args


def linear_schedule(initial: float, final: float, fraction: float, total: int, step: int) -> float:
    """Linear decay from `initial` to `final` over the first `fraction` of `total` steps, then constant."""
    progress = min(step / (fraction * total), 1.0) if fraction > 0 else 1.0
    return initial + progress * (final - initial)


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Target networks trail the trained ones: target <- (1 - tau) target + tau source (TD3, SAC)."""
    # A plain loop is cheap: each ensemble keeps a whole layer of all its members in one tensor.
    for target_param, param in zip(target.parameters(), source.parameters()):
        target_param.lerp_(param, tau)


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


class ReplayBuffer:
    """FIFO of transitions as tensors on the training device. Actions are stored in the [-1, 1] scale."""

    def __init__(self, size: int, obs_dim: int, act_dim: int, device: torch.device):
        self.size = size
        self.pos = 0  # where the next transition goes
        self.full = False
        self.device = device
        self.obs = torch.zeros(size, obs_dim, device=device)
        self.actions = torch.zeros(size, act_dim, device=device)
        self.rewards = torch.zeros(size, device=device)
        self.next_obs = torch.zeros(size, obs_dim, device=device)
        self.terminated = torch.zeros(size, device=device)

    def add(self, obs, action, reward, next_obs, terminated):
        self.obs[self.pos] = torch.as_tensor(obs, dtype=torch.float32)
        self.actions[self.pos] = torch.as_tensor(action, dtype=torch.float32)
        self.rewards[self.pos] = torch.as_tensor(reward, dtype=torch.float32)
        self.next_obs[self.pos] = torch.as_tensor(next_obs, dtype=torch.float32)
        self.terminated[self.pos] = torch.as_tensor(terminated, dtype=torch.float32)
        self.pos = (self.pos + 1) % self.size
        self.full = self.full or self.pos == 0

    def sample(self, batch_size: int) -> Batch:
        stored = self.size if self.full else self.pos
        idx = torch.randint(0, stored, (batch_size,), device=self.device)
        return Batch(self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx], self.terminated[idx])

    def state_dict(self) -> dict:
        """The filled part of the buffer and the write position, for checkpoints."""
        state = {"pos": self.pos, "full": self.full}
        for name in ("obs", "actions", "rewards", "next_obs", "terminated"):
            data = getattr(self, name)
            # torch.save writes a slice's whole storage: copy out the filled part unless it is all of it.
            state[name] = data if self.full else data[: self.pos].clone()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.pos = state["pos"]
        self.full = state["full"]
        for name in ("obs", "actions", "rewards", "next_obs", "terminated"):
            getattr(self, name)[: len(state[name])] = state[name]


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


@torch.no_grad()
def record_means(path: str, step: int, actor: GaussianMeans, first_states: torch.Tensor) -> None:
    """--record-means: add the N means on the probe states at `step` to the .npz at `path` (Figures 8-9).

    Arrays: steps (E,), means (E, N, P, act) in the [-1, 1] scale, probe_obs (P, obs). The first call fixes the
    probe states to `first_states`; later calls read them back, so they stay fixed. Records from `step` on, left
    by an interrupted run after its last checkpoint, are replaced.
    """
    probe_obs, steps, means = first_states, np.zeros(0, dtype=np.int64), []
    if os.path.exists(path):
        with np.load(path) as saved:
            probe_obs = torch.as_tensor(saved["probe_obs"], device=first_states.device)
            kept = saved["steps"] < step
            steps, means = saved["steps"][kept], list(saved["means"][kept])
    means.append(actor(probe_obs).cpu().numpy())
    arrays = dict(steps=np.append(steps, step), means=np.stack(means), probe_obs=probe_obs.cpu().numpy())
    np.savez(path + ".tmp.npz", **arrays)
    os.replace(path + ".tmp.npz", path)  # atomic: an interruption leaves the old file whole


def to_env_action(action: np.ndarray, space: gym.spaces.Box) -> np.ndarray:
    """[-1, 1] -> the env's [low, high]."""
    return space.low + (action + 1) * 0.5 * (space.high - space.low)


def from_env_action(action: np.ndarray, space: gym.spaces.Box) -> np.ndarray:
    """The env's [low, high] -> [-1, 1]."""
    return 2 * (action - space.low) / (space.high - space.low) - 1


def evaluate(actor: GaussianMeans, qf: TwinQ, env: gym.Env, episodes: int, device: torch.device, seed: int):
    """Returns of the greedy Gaussian, argmax_i Q1(s, mu_i(s)), without noise; episode i starts from seed + i.

    The post-training performance of the paper's Table 1. Also returns the switch rate: the share of steps (after
    each episode's first) on which the greedy Gaussian differs from the previous step's.
    """
    returns, switches, steps = [], 0, 0
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)  # the same start states at every evaluation
        done, total, previous = False, 0.0, None
        while not done:
            obs = torch.as_tensor(obs, dtype=torch.float32, device=device)
            action, best = greedy_action(actor, qf, obs[None])
            best = int(best[0])
            switches, steps = switches + (previous is not None and best != previous), steps + (previous is not None)
            previous = best
            obs, reward, terminated, truncated, _ = env.step(to_env_action(action[0].cpu().numpy(), env.action_space))
            done = terminated or truncated
            total += float(reward)
        returns.append(total)
    return returns, switches / max(steps, 1)


def make_env(env_id: str, seed: int, video_dir: Optional[str] = None) -> gym.Env:
    """A single env (no vector env: episode boundaries stay explicit, so none can leak into the buffer)."""
    env = gym.make(env_id, render_mode="rgb_array" if video_dir else None)
    if not isinstance(env.action_space, gym.spaces.Box):
        kind = type(env.action_space).__name__
        raise SystemExit(f"{env_id} has a {kind} action space; this script needs a continuous (Box) one.")
    if not isinstance(env.observation_space, gym.spaces.Box):
        kind = type(env.observation_space).__name__
        raise SystemExit(f"{env_id} has a {kind} observation space; this script needs a flat Box one.")
    if video_dir:
        env = gym.wrappers.RecordVideo(env, video_dir, episode_trigger=lambda episode: True, disable_logger=True)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    env.action_space.seed(seed)
    return env


def main(args: Args) -> str:
    """Train Gamid; returns the run directory."""
    if args.evaluate:
        return watch(args)  # run control: watch a saved model, train nothing
    checkpoint = None
    if args.resume:
        args = resume_args(args)  # run control: the run's saved hyperparameters
        checkpoint = load_checkpoint(args.resume)
        if checkpoint["step"] >= args.total_timesteps:
            print(f"{args.resume} already finished at step {checkpoint['step']}; nothing to do.")
            return args.resume
    args = resolve_args(args)
    run_name = f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    run_dir = args.resume or os.path.join(args.runs_dir, run_name)
    env = make_env(args.env_id, args.seed)
    video_dir = os.path.join(run_dir, "videos") if args.capture_video else None
    eval_env = make_env(args.env_id, args.seed, video_dir)
    learn_temperature = args.temperature == "auto" and args.n_actors > 1
    if args.temperature == "auto" and not learn_temperature:
        print("With N = 1 there is no D_var to hold: --temperature auto learns nothing and this run is TD3.")
    if learn_temperature and args.temperature_target is None:
        args.temperature_target = target_d_var(args.n_actors, env.action_space.shape[0])

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    if args.track:
        start_tracking(args, run_name=os.path.basename(run_dir))  # before the SummaryWriter, which it syncs
    # A resumed run drops whatever the interrupted one logged after its checkpoint: no step is logged twice.
    writer = SummaryWriter(run_dir, purge_step=checkpoint["step"] + 1 if checkpoint else None)
    hyperparameters = asdict(args)
    if not checkpoint:
        rows = "\n".join(f"|{name}|{value}|" for name, value in hyperparameters.items())
        writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + rows)
        with open(os.path.join(run_dir, "hyperparameters.json"), "w") as f:
            json.dump(hyperparameters, f, indent=2)
    print("hyperparameters: " + ", ".join(f"{name}={value}" for name, value in hyperparameters.items()))

    obs_dim = env.observation_space.shape[0]
    act_dim = env.action_space.shape[0]
    actor = GaussianMeans(args.n_actors, obs_dim, act_dim, args.net_arch).to(device)
    qf = TwinQ(obs_dim, act_dim, args.net_arch).to(device)
    actor_target = GaussianMeans(args.n_actors, obs_dim, act_dim, args.net_arch).to(device)
    qf_target = TwinQ(obs_dim, act_dim, args.net_arch).to(device)
    actor_target.load_state_dict(actor.state_dict())  # Alg. 1 line 1
    qf_target.load_state_dict(qf.state_dict())
    actor_optimizer = torch.optim.Adam(actor.parameters(), lr=args.learning_rate, fused=True)
    q_optimizer = torch.optim.Adam(qf.parameters(), lr=args.learning_rate, fused=True)
    rb = ReplayBuffer(args.buffer_size, obs_dim, act_dim, device)
    if learn_temperature:  # --temperature auto: log(temperature) has its own optimizer, as SAC's log(alpha)
        log_temperature = torch.full((), math.log(args.temperature_initial), device=device, requires_grad=True)
        temperature_optimizer = torch.optim.Adam([log_temperature], lr=args.temperature_lr)

    selected = torch.zeros(args.n_actors, device=device)  # how often each Gaussian acted in this log interval
    recent_returns = deque(maxlen=10)
    stats = {}
    n_updates = 0
    batch = None  # the last update's minibatch, which the diagnostics read
    episode_steps = 0
    last_checkpoint = 0
    start_step = 1
    if checkpoint:  # run control: continue where the checkpoint left off, every random stream included
        actor.load_state_dict(checkpoint["actor"])
        actor_target.load_state_dict(checkpoint["actor_target"])
        qf.load_state_dict(checkpoint["qf"])
        qf_target.load_state_dict(checkpoint["qf_target"])
        actor_optimizer.load_state_dict(checkpoint["actor_optimizer"])
        q_optimizer.load_state_dict(checkpoint["q_optimizer"])
        rb.load_state_dict(checkpoint["buffer"])
        if learn_temperature:
            with torch.no_grad():
                log_temperature.copy_(checkpoint["log_temperature"])
            temperature_optimizer.load_state_dict(checkpoint["temperature_optimizer"])
        selected.copy_(checkpoint["selected"])
        recent_returns.extend(checkpoint["recent_returns"])
        stats = {tag: value.to(device) for tag, value in checkpoint["stats"].items()}
        n_updates = checkpoint["n_updates"]
        batch = Batch(*checkpoint["batch"]) if checkpoint.get("batch") else None
        last_checkpoint = checkpoint["step"]
        start_step = checkpoint["step"] + 1
        restore_random_states(checkpoint["random"], [env])
        obs, _ = env.reset()  # no seed: the restored generator draws the start the interrupted run would have
    else:
        obs, _ = env.reset(seed=args.seed)
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

            # Alg. 1 lines 3-7. Before learning_starts, uniform random actions.
            if global_step <= args.learning_starts:
                action = from_env_action(env.action_space.sample(), env.action_space)
            else:
                obs_tensor = torch.as_tensor(obs, dtype=torch.float32, device=device)
                action, n = gmm_action(actor, qf, obs_tensor[None], epsilon, args.noise_std)
                action = action[0].cpu().numpy()
                selected[n] += 1
            next_obs, reward, terminated, truncated, info = env.step(to_env_action(action, env.action_space))
            rb.add(obs, action, reward, next_obs, terminated)  # d = terminated: bootstrap through time limits
            obs = next_obs
            episode_steps += 1
            episode_over = terminated or truncated
            if episode_over:
                recent_returns.append(float(info["episode"]["r"]))
                writer.add_scalar("charts/episodic_return", info["episode"]["r"], global_step)
                writer.add_scalar("charts/episodic_length", info["episode"]["l"], global_step)

            # Lines 9-16, after every env step or, as SB3's train_freq=(1, "episode"), at each episode's end.
            if global_step > args.learning_starts and (args.train_freq == "step" or episode_over):
                if args.gradient_steps > 0:
                    n_gradient_steps = args.gradient_steps
                elif args.train_freq == "step":
                    n_gradient_steps = 1
                else:
                    n_gradient_steps = episode_steps  # -1: one gradient step per env step of the episode
                for _ in range(n_gradient_steps):
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
                print(progress_line(global_step, args.total_timesteps, start_step, start_time, recent_returns))

            if global_step % args.eval_freq == 0 or global_step == args.total_timesteps:
                returns, switch_rate = evaluate(
                    actor, qf, eval_env, args.eval_episodes, device, seed=args.seed + 10_000
                )
                writer.add_scalar("eval/episodic_return", np.mean(returns), global_step)
                writer.add_scalar("eval/switch_rate", switch_rate, global_step)
                if args.record_means:
                    record_means(os.path.join(run_dir, "means.npz"), global_step, actor, rb.obs[: args.probe_states])
                print(f"step {global_step}, eval return {np.mean(returns):.1f} +- {np.std(returns):.1f}")

            # Run control: at an episode's end (and at the last step), checkpoint when due or asked to stop.
            finished = global_step == args.total_timesteps
            if episode_over or finished:
                due = global_step - last_checkpoint >= args.checkpoint_freq or finished
                if (args.checkpoint_freq > 0 and due) or stop.received:
                    state = {
                        "step": global_step,
                        "args": asdict(args),
                        "actor": actor.state_dict(),
                        "actor_target": actor_target.state_dict(),
                        "qf": qf.state_dict(),
                        "qf_target": qf_target.state_dict(),
                        "actor_optimizer": actor_optimizer.state_dict(),
                        "q_optimizer": q_optimizer.state_dict(),
                        "buffer": rb.state_dict(),
                        "selected": selected,
                        "recent_returns": list(recent_returns),
                        "stats": stats,
                        "n_updates": n_updates,
                        "batch": tuple(batch) if batch else None,
                        "random": random_states([env]),
                    }
                    if learn_temperature:
                        state["log_temperature"] = log_temperature.detach()
                        state["temperature_optimizer"] = temperature_optimizer.state_dict()
                    writer.flush()  # what was logged up to this step is on disk before the checkpoint
                    save_checkpoint(state, run_dir)
                    last_checkpoint = global_step
                if stop.received and not finished:
                    writer.close()
                    if args.track:
                        finish_tracking(None)
                    script = os.path.relpath(__file__)
                    print(f"interrupted at step {global_step}; resume with: python {script} --resume {run_dir}")
                    raise SystemExit(INTERRUPTED_EXIT_CODE)
            if episode_over:
                obs, _ = env.reset()  # Alg. 1 line 8, after the checkpoint: a resumed run draws the same start
                episode_steps = 0

    if args.save_model:
        path = os.path.join(run_dir, f"{args.exp_name}.model")
        torch.save({"actor": actor.state_dict(), "qf": qf.state_dict(), "args": asdict(args)}, path)
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

    Episode i starts from --seed + 10_000 + i: with the run's seed, the start states of its evaluations.
    """
    if not os.path.exists(args.evaluate):
        raise SystemExit(f"There is no saved model or checkpoint at {args.evaluate}.")
    saved = load_checkpoint(args.evaluate)
    run = Args(**{**saved["args"], "net_arch": tuple(saved["args"]["net_arch"])})
    run_dir = args.evaluate if os.path.isdir(args.evaluate) else os.path.dirname(args.evaluate)
    video_dir = os.path.join(run_dir, "videos_evaluate") if args.capture_video else None
    env = make_env(run.env_id, args.seed, video_dir)
    obs_dim = env.observation_space.shape[0]
    act_dim = env.action_space.shape[0]
    actor = GaussianMeans(run.n_actors, obs_dim, act_dim, run.net_arch)
    qf = TwinQ(obs_dim, act_dim, run.net_arch)
    actor.load_state_dict(saved["actor"])
    qf.load_state_dict(saved["qf"])
    returns, _ = evaluate(actor, qf, env, args.eval_episodes, torch.device("cpu"), seed=args.seed + 10_000)
    env.close()
    print(f"eval return {np.mean(returns):.1f} +- {np.std(returns):.1f} over {args.eval_episodes} episodes")
    return run_dir


# ==============================================================================================================
# End of run control.
# ==============================================================================================================


if __name__ == "__main__":
    main(tyro.cli(Args))
