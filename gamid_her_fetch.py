"""Gamid (Algorithm 1 of Dey & Sharon, TMLR) on TD3 with Hindsight Experience Replay for the Fetch rows of Table 1.

Goal envs: actor and critics see observation + desired_goal; the buffer relabels goals when sampling (HER `future`,
Andrychowicz et al., 2017). N = 1 is TD3 + HER. Run: python gamid_her_fetch.py --env-id FetchPush-v4 (docs/fetch.md)."""

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
    """Gamid + HER on one goal env; the task's PRESETS row fills the fields left None (a flag given wins)."""

    exp_name: str = os.path.basename(__file__)[: -len(".py")]  # the name of this experiment
    seed: int = 1  # seed of the experiment
    cuda: bool = True  # use a GPU when one is present (falls back to the CPU silently)
    capture_video: bool = False  # record evaluation episodes to the run's videos/ (headless: MUJOCO_GL=egl)
    save_model: bool = False  # save the actor, critics and input normalizer to the run directory at the end
    runs_dir: str = "runs"  # where run directories are created
    # Paper Table 4 (TD3 + HER); it sets no train_freq, gradient_steps or tau: SB3 1.6.2's TD3 defaults ran.
    env_id: str = "FetchPush-v4"  # goal env id; the paper's Fetch*-v1 ids need mujoco-py and run as -v4
    total_timesteps: int = 1_000_000  # total environment steps (Table 4 n_timesteps)
    learning_rate: float = 1e-3  # Adam learning rate of actor and critics
    buffer_size: int = 1_000_000  # replay capacity in transitions (held as buffer_size // horizon whole episodes)
    gamma: float = 0.95  # discount factor
    tau: float = 0.005  # Polyak rate of the target networks (alpha of Alg. 1 line 16 is 1 - tau)
    batch_size: Optional[int] = None  # minibatch size (preset)
    learning_starts: int = 1_000  # uniform random actions and no updates before this step
    train_freq: Literal["step", "episode"] = "episode"  # train after every env step, or at each episode's end
    gradient_steps: int = -1  # gradient steps per training round; -1 = as many as env steps collected
    net_arch: tuple[int, ...] = (512, 512, 512)  # hidden layer sizes of actor and critics, ReLU
    noise_std: float = 0.1  # sigma of the shared covariance sigma^2 I, in the [-1, 1] action scale
    policy_noise: float = 0.2  # std of TD3's target policy smoothing noise
    noise_clip: float = 0.5  # clip of TD3's target policy smoothing noise
    preactivation_penalty: float = 0.0  # not the paper's (0 = off): this times mean ||u_i(s)||^2, u_i before tanh
    policy_delay: int = 2  # actor and target updates every this many gradient steps (TD3)
    n_sampled_goal: int = 4  # HER k: a sampled transition gets a `future` goal with probability k/(k+1)
    normalize_obs: bool = False  # standardize inputs by running mean/std, clipped to +-5 (baselines' HER, not paper)
    # Paper Table 5 (Gamid); --temperature auto and --epsilon auto are the paper's future work (§5, Figure 5c).
    n_actors: Optional[int] = None  # number of Gaussians N (preset)
    temperature_initial: float = 0.3  # diversity temperature at the start, the tau of Alg. 1 line 13
    temperature_final: float = 0.1  # diversity temperature after the decay
    temperature_fraction: float = 1.0  # fraction of total_timesteps over which the temperature decays linearly
    epsilon_initial: float = 0.1  # epsilon of the epsilon-greedy mixture weights at the start
    epsilon_final: float = 0.01  # epsilon after the decay
    epsilon_fraction: float = 1.0  # fraction of total_timesteps over which epsilon decays linearly
    temperature: Optional[Literal["auto"]] = None  # auto: learn it to hold mean D_var at --temperature-target
    temperature_target: Optional[float] = None  # D* of --temperature auto (default: target_d_var(N, act dim))
    temperature_lr: float = 3e-4  # Adam learning rate of log(temperature) under --temperature auto
    epsilon: Optional[Literal["auto"]] = None  # auto: epsilon = 1/(10N), constant, in place of the schedule
    eval_freq: int = 10_000  # greedy evaluation every this many env steps (and at the end)
    eval_episodes: int = 10  # episodes per evaluation
    log_freq: int = 1_000  # TensorBoard scalars every this many env steps
    checkpoint_freq: int = 50_000  # write checkpoint.pt every this many env steps, at an episode's end (0 = never)
    resume: Optional[str] = None  # continue the run in this directory from its checkpoint.pt
    evaluate: Optional[str] = None  # watch a saved model or checkpoint for --eval-episodes episodes; train nothing
    track: bool = False  # log the run to Weights & Biases (TensorBoard synced, hyperparameters as config)
    wandb_project_name: str = "gamid-pg"  # the Weights & Biases project
    wandb_entity: Optional[str] = None  # the Weights & Biases team or user


# Paper Table 4 (batch_size) and Table 5 (n_actors), the cells that differ between the Fetch columns; the shared
# cells are the defaults above. Goal envs outside the paper (e.g. FetchReach-v4) take FetchPush's column.
PRESETS = {"FetchPush": dict(batch_size=2048, n_actors=4), "FetchSlide": dict(batch_size=2048, n_actors=8),
           "FetchPickAndPlace": dict(batch_size=1024, n_actors=8)}  # fmt: skip
SUPPORTED = ", ".join(f"{task}-v1/-v4" for task in PRESETS)
GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")


def resolve_args(args: Args) -> Args:
    """Fill the fields left None from the task's preset; refuse values that would crash late or train silently wrong."""
    args.env_id = resolve_fetch_env_id(args.env_id)
    (env := make_goal_env(args.env_id, args.seed)).close()  # refuses non-goal envs before anything is written
    task = args.env_id.rpartition("-")[0]
    if task not in PRESETS:
        print(f"{args.env_id} is not one of the paper's tasks; unset hyperparameters use the FetchPush preset.")
    for field, value in PRESETS.get(task, PRESETS["FetchPush"]).items():
        if getattr(args, field) is None:
            setattr(args, field, value)
    fractions = (args.epsilon_initial, args.epsilon_final, args.epsilon_fraction, args.temperature_fraction)
    for wrong, sentence in [
        (args.n_actors < 1, f"--n-actors must be at least 1, got {args.n_actors}."),
        (min(args.temperature_initial, args.temperature_final) < 0, "Temperatures must not be negative."),
        (args.temperature == "auto" and args.temperature_initial <= 0, "--temperature auto needs a positive start."),
        (not all(0 <= value <= 1 for value in fractions), "Epsilons and schedule fractions must lie in [0, 1]."),
        (args.total_timesteps <= args.learning_starts, "--total-timesteps must exceed --learning-starts."),
        (args.batch_size > args.buffer_size, "--batch-size must not exceed --buffer-size."),
        (args.gradient_steps == 0 or args.gradient_steps < -1, "--gradient-steps must be positive, or -1."),
        (min(args.batch_size, args.policy_delay, args.eval_freq, args.eval_episodes, args.log_freq) < 1,
         "--batch-size, --policy-delay, --eval-freq, --eval-episodes and --log-freq must be positive."),
        (args.n_sampled_goal < 0, "--n-sampled-goal must not be negative."),
        (args.temperature_target is not None and args.temperature != "auto",
         "--temperature-target is the target of --temperature auto; give both or neither."),
    ]:  # fmt: skip
        if wrong:
            raise SystemExit(sentence)
    schedule, auto = (args.epsilon_initial, args.epsilon_final, args.epsilon_fraction), (1 / (10 * args.n_actors),) * 2
    if args.epsilon == "auto":  # 1/(10N) in place of Table 5's schedule (Figure 5c); a resumed run has it saved
        if schedule not in ((Args.epsilon_initial, Args.epsilon_final, Args.epsilon_fraction), (*auto, 1.0)):
            raise SystemExit("--epsilon auto sets epsilon to 1/(10N); drop the --epsilon-* schedule flags.")
        args.epsilon_initial, args.epsilon_final, args.epsilon_fraction = *auto, 1.0
    if args.temperature == "auto" and args.n_actors > 1 and args.temperature_target is None:
        args.temperature_target = target_d_var(args.n_actors, env.action_space.shape[0])
    return args


def linear_schedule(initial: float, final: float, fraction: float, total: int, step: int) -> float:
    """Linear decay from `initial` to `final` over the first `fraction` of `total` steps, then constant."""
    progress = min(step / (fraction * total), 1.0) if fraction > 0 else 1.0
    return initial + progress * (final - initial)


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
        x = torch.cat([obs.expand(*actions.shape[:-1], -1), actions], dim=-1)  # the same state for each Gaussian
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
    return (1 - epsilon) * F.one_hot(q.argmax(0), len(q)).to(q.dtype) + epsilon / len(q)


@torch.no_grad()
def gmm_action(actor: GaussianMeans, qf: TwinQ, obs: torch.Tensor, epsilon: float, noise_std: float):
    """Alg. 1 lines 3-4: n ~ P (epsilon-greedy on Q1), a = clip(mu_n(s) + N(0, sigma^2 I), -1, 1); -> (a, n)."""
    means, states = actor(obs), torch.arange(obs.shape[0], device=obs.device)  # (N, B, act), (B,)
    n = torch.zeros_like(states)  # one Gaussian: nothing to choose and nothing drawn, exactly as TD3 acts
    if len(means) > 1:
        n = torch.multinomial(epsilon_greedy_weights(qf(obs, means, members=1)[0], epsilon), 1).squeeze(1)
    mean = means[n, states]
    return (mean + noise_std * torch.randn_like(mean)).clamp(-1, 1), n


@torch.no_grad()
def greedy_action(actor: GaussianMeans, qf: TwinQ, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The evaluation policy, the greedy mean argmax_i Q1(s, mu_i(s)); draws nothing, so eval can't change a run."""
    means = actor(obs)
    best = qf(obs, means, members=1)[0].argmax(0)  # (B,)
    return means[best, torch.arange(obs.shape[0], device=obs.device)], best


def diagnostics(actor: GaussianMeans, qf: TwinQ, obs: torch.Tensor, temperature: float | torch.Tensor) -> dict:
    """Saturated share |mu| > 0.99, Q1 gap of the best two means, tau |grad D_var| / |grad Q1| (docs/long-runs.md)."""
    means = actor(obs).detach().requires_grad_(True)  # (N, B, act)
    q1 = qf(obs, means, members=1)[0]  # (N, B)
    (q_grad,) = torch.autograd.grad(q1.sum(), means)  # the weights' .grad are untouched
    stats = {"diagnostics/saturated_fraction": (means.detach().abs() > 0.99).float().mean()}
    if means.shape[0] > 1:
        (d_var_grad,) = torch.autograd.grad(d_var(means).sum(), means)  # row i: grad of D_var(i) (mu_j detached)
        best_two = q1.detach().topk(2, dim=0).values
        ratio = temperature * d_var_grad.norm(dim=-1).mean() / q_grad.norm(dim=-1).mean()
        stats |= {"diagnostics/q_gap": (best_two[0] - best_two[1]).mean(), "diagnostics/diversity_to_q_grad": ratio}
    return stats


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
def td_target(actor_target: GaussianMeans, qf_target: TwinQ, batch: Batch, args: Args) -> torch.Tensor:
    """Alg. 1 line 10 on TD3 (paper §3.2, end): y = r + gamma (1 - d) min_k Q_targ,k(s', a'), target means, twin min.

    a' = clip(mu'_i*(s') + clip(noise, -c, c), -1, 1) with i* = argmax_i min_k Q_targ,k(s', mu'_i(s')) on the noise-free
    means: the noise goes on the chosen action only, as in the authors' code (a max over N noisy actions would bias y
    upward). With N = 1 this is TD3's target, draw for draw."""
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
    """Alg. 1 lines 12-14 for all i: loss_i = -mean_s Q1(s, mu_i(s)) - temperature mean_s D_var(i) (+ the opt-in
    penalty * mean_s ||u_i(s)||^2, u_i before tanh, not the paper's). -> losses (N,), mean_s D_var(i) (N,)."""
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
    for target_param, param in zip(target.parameters(), source.parameters()):
        target_param.lerp_(param, tau)


# --temperature auto (the paper's future work, §5): the temperature held by a target, as SAC holds its entropy.
TARGET_SPACING = 1.0  # delta / sqrt(act dim) of target_d_var: the D_var tuned presets reach (docs/temperature.md)


def target_d_var(n_actors: int, act_dim: int) -> float:
    """Default D*: D_var of N means pairwise delta apart, delta^2 - log(N - 1), with delta^2 = SPACING^2 act_dim."""
    return TARGET_SPACING**2 * act_dim - math.log(n_actors - 1)


def temperature_loss(log_temperature: torch.Tensor, mean_d_var: torch.Tensor, target: float) -> torch.Tensor:
    """Dual loss log(temperature) (mean D_var - D*): the temperature rises while the means are closer than D*."""
    return log_temperature * (mean_d_var.detach() - target)


def train_step(*, actor: GaussianMeans, actor_target: GaussianMeans, qf: TwinQ, qf_target: TwinQ,
               actor_optimizer: torch.optim.Optimizer, q_optimizer: torch.optim.Optimizer, batch: Batch,
               update_actor: bool, temperature: float | torch.Tensor, args: Args) -> dict:  # fmt: skip
    """One gradient step of Alg. 1 (lines 9-16) on TD3; detached stats (no host sync). benchmarks/sps.py times it."""
    # Line 11: regress both critics on the target y of line 10.
    q = qf(batch.obs, batch.actions)  # (2, B)
    y = td_target(actor_target, qf_target, batch, args)
    qf_loss = (q - y).pow(2).mean(1).sum()
    q_optimizer.zero_grad(set_to_none=True)
    qf_loss.backward()
    q_optimizer.step()
    stats = {"losses/qf_loss": qf_loss.detach(), "losses/qf1_values": q[0].detach().mean(),
             "losses/qf2_values": q[1].detach().mean()}  # fmt: skip
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


def to_env_action(action: np.ndarray, space: gym.spaces.Box) -> np.ndarray:  # [-1, 1] -> the env's [low, high]
    return space.low + (action + 1) * 0.5 * (space.high - space.low)


def from_env_action(action: np.ndarray, space: gym.spaces.Box) -> np.ndarray:  # the env's [low, high] -> [-1, 1]
    return 2 * (action - space.low) / (space.high - space.low) - 1


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


def main(args: Args) -> str:
    """Train Gamid + HER (Algorithm 1); returns the run directory."""
    if args.evaluate:  # run control
        return watch(args)
    if args.resume:  # run control: continue with the run's saved hyperparameters; other flags are ignored
        args = type(args)(**load_checkpoint(args.resume)["args"] | {"resume": args.resume})
    args = resolve_args(args)
    run_dir = args.resume or f"{args.runs_dir}/{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    eval_env = make_goal_env(args.env_id, args.seed, os.path.join(run_dir, "videos") if args.capture_video else None)
    env = make_goal_env(args.env_id, args.seed)  # after the eval env, whose renderer is chosen first
    horizon, learn_temperature = env.spec.max_episode_steps, args.temperature == "auto" and args.n_actors > 1
    # TRY NOT TO MODIFY: seeding
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    obs_dim, goal_dim = env.observation_space["observation"].shape[0], env.observation_space["desired_goal"].shape[0]
    in_dim, act_dim, hidden = obs_dim + goal_dim, env.action_space.shape[0], args.net_arch
    actor = GaussianMeans(args.n_actors, in_dim, act_dim, hidden).to(device)
    qf = TwinQ(in_dim, act_dim, hidden).to(device)
    actor_target = GaussianMeans(args.n_actors, in_dim, act_dim, hidden).to(device)
    qf_target = TwinQ(in_dim, act_dim, hidden).to(device)
    actor_target.load_state_dict(actor.state_dict())  # Alg. 1 line 1
    qf_target.load_state_dict(qf.state_dict())
    normalizer = Normalizer(in_dim, args.normalize_obs)
    rb = HerReplayBuffer(args.buffer_size // horizon, horizon, obs_dim, goal_dim, act_dim, env.unwrapped.compute_reward,
                         args.n_sampled_goal, normalizer, device, np.random.default_rng(args.seed))  # fmt: skip
    learner = dict(actor=actor, actor_target=actor_target, qf=qf, qf_target=qf_target,
                   actor_optimizer=torch.optim.Adam(actor.parameters(), lr=args.learning_rate, fused=True),
                   q_optimizer=torch.optim.Adam(qf.parameters(), lr=args.learning_rate, fused=True))  # fmt: skip
    # The training state, declared once: what checkpoint() saves and load_checkpoint (--resume) restores.
    state = dict(learner, normalizer=normalizer, rb=rb, step=0, n_updates=0, stats={}, batch_obs=None,
                 selected=torch.zeros(args.n_actors), recent_returns=deque(maxlen=20), recent_success=deque(maxlen=20),
                 args=asdict(args))  # fmt: skip
    if learn_temperature:  # --temperature auto: log(temperature) has its own optimizer, as SAC's log(alpha)
        log_temperature = torch.full((), math.log(args.temperature_initial), device=device, requires_grad=True)
        temperature_optimizer = torch.optim.Adam([log_temperature], lr=args.temperature_lr)
        state |= dict(log_temperature=log_temperature, temperature_optimizer=temperature_optimizer)
    if args.resume and load_checkpoint(args.resume, state, [env])["step"] >= args.total_timesteps:  # run control
        print(f"{args.resume} already finished at step {state['step']}; nothing to do.")
        return args.resume
    stats, selected, recent_returns, recent_success = (state[key] for key in ("stats", "selected", "recent_returns",
                                                                              "recent_success"))  # fmt: skip

    if args.track:  # run control: Weights & Biases as in CleanRL, before the SummaryWriter whose scalars it syncs
        import wandb

        name = os.path.basename(run_dir)
        wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, name=name, id=name.replace(".", "-"),
                   resume="allow", config=vars(args), sync_tensorboard=True, save_code=True)  # fmt: skip
    writer = SummaryWriter(run_dir, purge_step=state["step"] + 1 if args.resume else None)
    if not args.resume:
        table = "\n".join(f"|{name}|{value}|" for name, value in vars(args).items())
        writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + table)
        with open(os.path.join(run_dir, "hyperparameters.json"), "w") as f:
            json.dump(vars(args), f, indent=2)

    obs, _ = env.reset(seed=None if args.resume else args.seed)  # resumed: the restored generator draws, as it did
    visited, actions = [obs], []  # the episode so far: its observation dicts and its actions
    catch_stop_signals()  # run control
    start_step, start_time = state["step"] + 1, time.time()
    marks = deque([(start_time, state["step"])], maxlen=12)  # run control
    for global_step in range(start_step, args.total_timesteps + 1):
        now = (args.total_timesteps, global_step)  # where Table 5's linear schedules stand
        temperature = linear_schedule(args.temperature_initial, args.temperature_final, args.temperature_fraction, *now)
        temperature = log_temperature.detach().exp() if learn_temperature else temperature
        epsilon = linear_schedule(args.epsilon_initial, args.epsilon_final, args.epsilon_fraction, *now)

        # ALGO LOGIC: Alg. 1 lines 3-8; before learning_starts, uniform random actions.
        if global_step <= args.learning_starts:
            action = from_env_action(env.action_space.sample(), env.action_space)
        else:
            x = torch.as_tensor(policy_input(obs, normalizer), device=device)[None]
            action, n = gmm_action(actor, qf, x, epsilon, args.noise_std)
            action = action[0].cpu().numpy()
            selected[n.cpu()] += 1
        obs, reward, terminated, truncated, info = env.step(to_env_action(action, env.action_space))
        visited.append(obs)
        actions.append(action)
        if episode_over := terminated or truncated:  # HER: the whole episode enters the buffer; always bootstrap
            rb.add_episode(*(np.array([o[key] for o in visited]) for key in ("observation", "achieved_goal")),
                           np.array([o["desired_goal"] for o in visited[:-1]]), np.array(actions))  # fmt: skip
            recent_returns.append(float(info["episode"]["r"]))
            recent_success.append(float(info.get("is_success", np.nan)))
            writer.add_scalar("charts/episodic_return", info["episode"]["r"], global_step)
            writer.add_scalar("charts/episodic_length", info["episode"]["l"], global_step)

        # Lines 9-16 after every env step or, as SB3's train_freq=(1, "episode"), at each episode's end; with
        # --gradient-steps -1, one gradient step per env step collected since the last round.
        if global_step > args.learning_starts and rb.n_episodes > 0 and (args.train_freq == "step" or episode_over):
            n_steps = args.gradient_steps if args.gradient_steps > 0 else 1 if args.train_freq == "step" else horizon
            for _ in range(n_steps):
                state["n_updates"] += 1
                update = state["n_updates"] % args.policy_delay == 0  # TD3's delayed actor and target updates
                batch = rb.sample(args.batch_size)
                stats |= train_step(**learner, batch=batch, update_actor=update, temperature=temperature, args=args)
                state["batch_obs"] = batch.obs  # the last update's states, which the diagnostics read
                if learn_temperature and update:  # the dual step, with the actor's, on its batch
                    mean_d_var = stats["charts/sum_d_var"] / args.n_actors
                    loss = temperature_loss(log_temperature, mean_d_var, args.temperature_target)
                    temperature_optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    temperature_optimizer.step()
                    temperature, stats["losses/temperature_loss"] = log_temperature.detach().exp(), loss.detach()

        # TRY NOT TO MODIFY: logging and evaluation
        if global_step % args.log_freq == 0 and recent_success:  # the last 20 training episodes, with exploration
            writer.add_scalar("charts/success_rate", np.mean(recent_success), global_step)
        if global_step % args.log_freq == 0 and stats:
            values = {tag: value.item() for tag, value in stats.items()}
            if not all(map(np.isfinite, values.values())):
                writer.close()
                raise SystemExit(f"A loss is not finite at step {global_step}; stopping (logs kept in {run_dir}).")
            diagnosed = diagnostics(actor, qf, state["batch_obs"].to(device), temperature)  # the last update's batch
            values |= {tag: value.item() for tag, value in diagnosed.items()}
            values |= {"charts/temperature": float(temperature), "charts/epsilon": epsilon}
            if "charts/sum_d_var" in values:
                values["charts/mean_d_var"] = values["charts/sum_d_var"] / args.n_actors
            values |= {"charts/temperature_target": args.temperature_target} if learn_temperature else {}
            fractions = (selected / selected.sum().clamp(min=1)).tolist()
            values |= {f"charts/selected_fraction/gaussian_{i}": fraction for i, fraction in enumerate(fractions)}
            values["charts/SPS"] = (global_step - start_step + 1) / (time.time() - start_time)
            for tag, value in values.items():
                writer.add_scalar(tag, value, global_step)
            selected.zero_()
        if time.time() - marks[-1][0] > 5:  # run control
            print(progress_line(global_step, args.total_timesteps, marks, recent_returns), flush=True)
        if global_step % args.eval_freq == 0 or global_step == args.total_timesteps:
            eval_env.set_wrapper_attr("name_prefix", f"step{global_step}")  # videos/step<N>-episode-<k>.mp4
            returns, solved = evaluate_goal_env(lambda x: greedy_action(actor, qf, x)[0], eval_env, args.eval_episodes,
                                                normalizer, device, args.seed + 10_000)  # fmt: skip
            writer.add_scalar("eval/episodic_return", np.mean(returns), global_step)
            writer.add_scalar("eval/success_rate", np.mean(solved), global_step)
            print(f"step {global_step}, eval return {np.mean(returns):.1f}, success rate {np.mean(solved):.2f}")

        if episode_over or global_step == args.total_timesteps:  # between episodes: none is half stored
            checkpoint(run_dir, state, [env], global_step, args, writer)  # run control: when due; exit 75 if asked
            obs, _ = env.reset()  # after the checkpoint: a resumed run's reset draws the same start and goal
            visited, actions = [obs], []

    if args.save_model:
        model = {"actor": actor.state_dict(), "qf": qf.state_dict(), "normalizer": normalizer.state_dict()}
        torch.save(model | {"args": vars(args)}, path := os.path.join(run_dir, f"{args.exp_name}.model"))
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
    """--evaluate PATH: greedy episodes of a saved model or checkpoint from --seed + 10_000 on; trains nothing."""
    saved = load_checkpoint(args.evaluate)
    run, run_dir = saved["args"], args.evaluate if os.path.isdir(args.evaluate) else os.path.dirname(args.evaluate)
    env = make_goal_env(
        run["env_id"], args.seed, os.path.join(run_dir, "videos_evaluate") if args.capture_video else None
    )
    env.set_wrapper_attr("name_prefix", f"step{saved.get('step', run['total_timesteps'])}")
    in_dim = env.observation_space["observation"].shape[0] + env.observation_space["desired_goal"].shape[0]
    actor = GaussianMeans(run["n_actors"], in_dim, env.action_space.shape[0], run["net_arch"])
    qf, normalizer = TwinQ(in_dim, env.action_space.shape[0], run["net_arch"]), Normalizer(in_dim, run["normalize_obs"])
    for name, part in (("actor", actor), ("qf", qf), ("normalizer", normalizer)):
        part.load_state_dict(saved[name])
    returns, successes = evaluate_goal_env(lambda obs: greedy_action(actor, qf, obs)[0], env, args.eval_episodes,
                                           normalizer, torch.device("cpu"), args.seed + 10_000)  # fmt: skip
    print(f"eval return {np.mean(returns):.1f} +- {np.std(returns):.1f}, success rate {np.mean(successes):.2f}")
    return args.evaluate


if __name__ == "__main__":
    main(tyro.cli(Args))
