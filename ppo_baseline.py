"""PPO (Schulman et al., 2017): the paper's on-policy baseline for MuJoCo (Table 1's PPO column, Table 9).

The paper ran Stable-Baselines3 1.6.2's PPO with RL Baselines3 Zoo's tuned settings (Appendix B). This file
computes the same algorithm: rollouts of `n_steps` per env from a Gaussian policy with a state-independent
log-std; GAE(lambda) advantages, bootstrapped through time limits but never through terminations; then
`n_epochs` passes over the rollout in shuffled minibatches, each a gradient step on the clipped surrogate
objective plus the value loss (not clipped: SB3 clips it only when asked) minus the entropy bonus, with the
advantages normalized per minibatch and the global gradient norm clipped. Observations and rewards are
normalized as SB3's VecNormalize; greedy evaluation acts with the mean action on frozen statistics.

    python ppo_baseline.py --env-id Hopper-v3

The task's preset fills every field left unset (see PRESETS); the resolved values are printed at the start
and saved to `hyperparameters.json` in the run directory.
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
import mujoco
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from torch.utils.tensorboard import SummaryWriter


@dataclass
class Args:
    """PPO on MuJoCo. The task's preset (PRESETS: Table 9, corrected to RL Zoo v1.6.2) fills every field left
    unset; the resolved values are printed at the start and saved to hyperparameters.json in the run directory."""

    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment"""
    seed: int = 1
    """seed of the experiment"""
    cuda: bool = True
    """use a GPU when one is present (falls back to the CPU silently)"""
    capture_video: bool = False
    """record evaluation episodes to the run's `videos/` (headless: set MUJOCO_GL=egl or osmesa)"""
    save_model: bool = False
    """save the policy, value network and normalization statistics to the run directory at the end"""
    runs_dir: str = "runs"
    """where run directories are created"""

    env_id: str = "HalfCheetah-v4"
    """environment id; the paper's -v3 ids run on -v4 (mujoco-py, which v3 needs, no longer installs)"""
    total_timesteps: Optional[int] = None
    """total env steps, rounded up to whole rollouts as SB3 does (preset: 1e6, Humanoid 2e6, paper §4)"""
    n_envs: int = 1
    """environments stepped together; each rollout holds n_steps x n_envs steps (the zoo: 1 for every task)"""
    normalize: bool = True
    """normalize observations and rewards as SB3's VecNormalize (Table 9: True for every task)"""
    n_steps: Optional[int] = None
    """env steps per environment in each rollout (preset: Table 9 / zoo)"""
    batch_size: Optional[int] = None
    """minibatch size (preset: Table 9 / zoo)"""
    n_epochs: Optional[int] = None
    """passes over each rollout (preset: Table 9 / zoo)"""
    learning_rate: Optional[float] = None
    """Adam learning rate, constant (preset: Table 9 / zoo)"""
    gamma: Optional[float] = None
    """discount factor, also of the reward normalization (preset: Table 9 / zoo)"""
    gae_lambda: Optional[float] = None
    """lambda of GAE (preset: Table 9 / zoo)"""
    clip_range: Optional[float] = None
    """epsilon of the clipped surrogate objective (preset: Table 9 / zoo)"""
    ent_coef: Optional[float] = None
    """weight of the entropy bonus (preset: Table 9 / zoo)"""
    vf_coef: Optional[float] = None
    """weight of the value loss (preset: Table 9 / zoo)"""
    max_grad_norm: Optional[float] = None
    """clip of the global gradient norm (preset: Table 9 / zoo)"""
    net_arch: Optional[tuple[int, ...]] = None
    """hidden layer sizes of the policy and, separately, of the value network (preset: Table 9 / zoo)"""
    activation: Optional[Literal["tanh", "relu"]] = None
    """activation of the hidden layers (preset: Table 9 / zoo)"""
    log_std_init: Optional[float] = None
    """initial log-std of the Gaussian policy (preset: Table 9 / zoo)"""
    ortho_init: Optional[bool] = None
    """orthogonal initialization as SB3, else PyTorch's default (preset: Table 9 / zoo)"""
    normalize_advantage: bool = True
    """normalize the advantages within each minibatch (SB3's default)"""

    eval_freq: int = 10_000
    """greedy evaluation every this many env steps, at the end of the rollout that reaches them (and at the end)"""
    eval_episodes: int = 10
    """episodes per evaluation"""

    checkpoint_freq: int = 50_000
    """write checkpoint.pt every this many env steps, at the end of a rollout (0 = never)"""
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


# Paper Table 9 (PPO hyperparameters), one entry per column, corrected to RL Baselines3 Zoo v1.6.2's ppo.yml
# wherever the two disagree: the paper says it used the zoo's tuned values (Appendix B), and Table 9 holds
# transcription errors. A field the zoo leaves unset is SB3 1.6.2's default (n_steps 2048, batch 64, lr 3e-4,
# 10 epochs, gamma 0.99, lambda 0.95, clip 0.2, ent 0, vf 0.5, grad norm 0.5, 64x64 tanh nets, log-std 0,
# orthogonal init); the zoo runs one env for every task. Every cell where Table 9 differs (Table 9 -> used):
#   Swimmer      n_steps 1024 -> 2048, batch_size 256 -> 64, learning_rate 6e-4 -> 3e-4, ent_coef "4.02e4" -> 0,
#                clip_range 0.9999 -> 0.2, n_epochs 20 -> 10, gae_lambda 0.98 -> 0.95, max_grad_norm 0.8 -> 0.5,
#                vf_coef "4.02e4" -> 0.5, net_arch [256, 256] -> [64, 64], activation ReLU -> tanh
#   HalfCheetah  learning_rate 9.8e-5 -> 2.0633e-5 (9.8e-5 is Hopper's)
#   Hopper       learning_rate 3e-4 -> 9.80828e-5
#   Ant          learning_rate 1e-4 -> 3e-4, net_arch [256, 256] -> [64, 64], activation ReLU -> tanh
#   Walker2d     clip_range 0.2 -> 0.1, net_arch [256, 256] -> [64, 64], activation ReLU -> tanh
# and, rounded in Table 9: HalfCheetah ent_coef 4e-4 -> 4.01762e-4, vf_coef 0.58 -> 0.58096; Hopper ent_coef
#   0.0022 -> 0.00229519, vf_coef 0.83 -> 0.835671; Walker2d learning_rate 5.05e-5 -> 5.05041e-5, ent_coef
#   5.8e-4 -> 5.85045e-4, vf_coef 0.87 -> 0.871923; Humanoid learning_rate 3.56e-5 -> 3.56987e-5, ent_coef
#   0.0024 -> 0.00238306, vf_coef 0.43 -> 0.431892.
# The authors' repository (github.com/Pi-Star-Lab/gamid-pg, hyperparams/ppo.yml) tunes Swimmer as the zoo's
# v1.7.0 does, which four of Table 9's Swimmer cells match; to run that: --n-envs 4 --n-steps 1024
# --batch-size 256 --learning-rate 6e-4 --gae-lambda 0.98.
# Table 9 has no n_timesteps row: 1e6 steps, 2e6 for Humanoid, the budget of Table 1 (paper §4; the zoo: 1e7).
# fmt: off
PRESETS = {
    "Swimmer": dict(
        total_timesteps=1_000_000, n_steps=2048, batch_size=64, n_epochs=10, learning_rate=3e-4,
        gamma=0.9999, gae_lambda=0.95, clip_range=0.2, ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5,
        net_arch=(64, 64), activation="tanh", log_std_init=0.0, ortho_init=True,
    ),
    "HalfCheetah": dict(
        total_timesteps=1_000_000, n_steps=512, batch_size=64, n_epochs=20, learning_rate=2.0633e-5,
        gamma=0.98, gae_lambda=0.92, clip_range=0.1, ent_coef=0.000401762, vf_coef=0.58096, max_grad_norm=0.8,
        net_arch=(256, 256), activation="relu", log_std_init=-2.0, ortho_init=False,
    ),
    "Hopper": dict(
        total_timesteps=1_000_000, n_steps=512, batch_size=32, n_epochs=5, learning_rate=9.80828e-5,
        gamma=0.999, gae_lambda=0.99, clip_range=0.2, ent_coef=0.00229519, vf_coef=0.835671, max_grad_norm=0.7,
        net_arch=(256, 256), activation="relu", log_std_init=-2.0, ortho_init=False,
    ),
    "Ant": dict(  # the zoo sets nothing but normalize: SB3's defaults, also used for envs not in the paper
        total_timesteps=1_000_000, n_steps=2048, batch_size=64, n_epochs=10, learning_rate=3e-4,
        gamma=0.99, gae_lambda=0.95, clip_range=0.2, ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5,
        net_arch=(64, 64), activation="tanh", log_std_init=0.0, ortho_init=True,
    ),
    "Walker2d": dict(
        total_timesteps=1_000_000, n_steps=512, batch_size=32, n_epochs=20, learning_rate=5.05041e-5,
        gamma=0.99, gae_lambda=0.95, clip_range=0.1, ent_coef=0.000585045, vf_coef=0.871923, max_grad_norm=1.0,
        net_arch=(64, 64), activation="tanh", log_std_init=0.0, ortho_init=True,
    ),
    "Humanoid": dict(
        total_timesteps=2_000_000, n_steps=512, batch_size=256, n_epochs=5, learning_rate=3.56987e-5,
        gamma=0.95, gae_lambda=0.9, clip_range=0.3, ent_coef=0.00238306, vf_coef=0.431892, max_grad_norm=2.0,
        net_arch=(256, 256), activation="relu", log_std_init=-2.0, ortho_init=False,
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
        print(f"{args.env_id} is not one of the paper's tasks; unset hyperparameters use SB3's PPO defaults.")
    for field, value in PRESETS.get(task, PRESETS["Ant"]).items():
        if getattr(args, field) is None:
            setattr(args, field, value)
    rollout_size = args.n_steps * args.n_envs
    problems = [
        (
            min(args.total_timesteps, args.n_envs, args.n_steps, args.n_epochs, args.eval_freq, args.eval_episodes) < 1,
            "--total-timesteps, --n-envs, --n-steps, --n-epochs, --eval-freq and --eval-episodes must be positive.",
        ),
        (
            not 1 < args.batch_size <= rollout_size,
            f"--batch-size must lie between 2 and the rollout size n_steps x n_envs = {rollout_size}, "
            f"got {args.batch_size}.",
        ),
        (
            min(args.learning_rate, args.clip_range, args.max_grad_norm) <= 0,
            "--learning-rate, --clip-range and --max-grad-norm must be positive.",
        ),
        (min(args.ent_coef, args.vf_coef) < 0, "--ent-coef and --vf-coef must not be negative."),
        (not (0 <= args.gamma <= 1 and 0 <= args.gae_lambda <= 1), "--gamma and --gae-lambda must lie in [0, 1]."),
        (not args.net_arch or min(args.net_arch) < 1, "--net-arch needs at least one layer, each of positive size."),
        (not math.isfinite(args.log_std_init), "--log-std-init must be a finite number."),
    ]
    for failed, sentence in problems:
        if failed:
            raise SystemExit(sentence)
    return args


class RunningMeanStd:
    """Running mean and variance of a stream of batches (Chan et al.'s parallel update), as SB3's, in float64."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4):
        self.mean = np.zeros(shape)
        self.var = np.ones(shape)
        self.count = epsilon  # a tiny prior count: the first batch sets the statistics almost alone

    def update(self, batch: np.ndarray) -> None:
        batch_mean, batch_var, batch_count = batch.mean(axis=0), batch.var(axis=0), batch.shape[0]
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        sum_of_squares = self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total
        self.var = sum_of_squares / total
        self.count = total


class ObsRewardNormalizer:
    """SB3's VecNormalize, applied to what a vector env returns.

    Observations: running mean and variance of every observation seen in training, (obs - mean) / std,
    clipped to +-10. Rewards: divided by the running std of the discounted return of each env (not
    re-centred), clipped to +-10. `enabled=False` passes both through unchanged.
    """

    def __init__(self, obs_dim: int, n_envs: int, gamma: float, enabled: bool = True):
        self.enabled, self.gamma, self.clip, self.epsilon = enabled, gamma, 10.0, 1e-8
        self.obs_rms = RunningMeanStd((obs_dim,))
        self.return_rms = RunningMeanStd()
        self.returns = np.zeros(n_envs)  # discounted return of each env's current episode

    def observation(self, obs: np.ndarray, update: bool) -> np.ndarray:
        """obs (n, obs_dim) -> normalized; `update` adds them to the statistics first (training steps only)."""
        if not self.enabled:
            return obs
        if update:
            self.obs_rms.update(obs)
        normalized = (obs - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + self.epsilon)
        return np.clip(normalized, -self.clip, self.clip)

    def reward(self, reward: np.ndarray, episode_over: np.ndarray) -> np.ndarray:
        """reward (n_envs,) of one step -> scaled; the returns of finished episodes restart at 0."""
        if not self.enabled:
            return reward
        self.returns = self.returns * self.gamma + reward
        self.return_rms.update(self.returns)
        scaled = np.clip(reward / np.sqrt(self.return_rms.var + self.epsilon), -self.clip, self.clip)
        self.returns[episode_over] = 0.0
        return scaled

    def state_dict(self) -> dict:
        """float64 tensors: a saved model loads with torch.load's default weights_only=True."""
        arrays = {"returns": self.returns}
        for name, rms in (("obs", self.obs_rms), ("return", self.return_rms)):
            arrays |= {f"{name}_mean": rms.mean, f"{name}_var": rms.var, f"{name}_count": rms.count}
        return {key: torch.as_tensor(np.asarray(value)) for key, value in arrays.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, rms in (("obs", self.obs_rms), ("return", self.return_rms)):
            rms.mean, rms.var = state[f"{name}_mean"].numpy(), state[f"{name}_var"].numpy()
            rms.count = float(state[f"{name}_count"])
        self.returns = state["returns"].numpy().copy()


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, activation: str) -> nn.Sequential:
    layers = []
    for size in hidden:
        layers += [nn.Linear(in_dim, size), nn.ReLU(inplace=True) if activation == "relu" else nn.Tanh()]
        in_dim = size
    return nn.Sequential(*layers, nn.Linear(in_dim, out_dim))


class Agent(nn.Module):
    """SB3's MlpPolicy for a Box action space: separate policy and value MLPs, a state-independent log-std.

    With `ortho_init`, as SB3: orthogonal weights with gain sqrt(2) in the hidden layers, 0.01 in the policy's
    output layer (initial means near 0), 1 in the value's; zero biases. Otherwise PyTorch's default init.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        net_arch: tuple[int, ...],
        activation: str,
        log_std_init: float,
        ortho_init: bool,
    ):
        super().__init__()
        self.policy_net = mlp(obs_dim, net_arch, act_dim, activation)  # outputs the mean action
        self.value_net = mlp(obs_dim, net_arch, 1, activation)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std_init)))
        if ortho_init:
            for net, output_gain in ((self.policy_net, 0.01), (self.value_net, 1.0)):
                linears = [layer for layer in net if isinstance(layer, nn.Linear)]
                for layer in linears:
                    nn.init.orthogonal_(layer.weight, gain=output_gain if layer is linears[-1] else math.sqrt(2))
                    nn.init.zeros_(layer.bias)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value_net(obs).squeeze(-1)

    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample a ~ N(mean(s), std^2); -> (action, log pi(a|s), V(s)). The action is not clipped here."""
        mean = self.policy_net(obs)
        action = mean + self.log_std.exp() * torch.randn_like(mean)
        return action, gaussian_log_prob(action, mean, self.log_std), self.value(obs)

    def evaluate_actions(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (log pi(a|s), entropy of pi(.|s), V(s)) under the current parameters."""
        log_prob = gaussian_log_prob(actions, self.policy_net(obs), self.log_std)
        entropy = (0.5 + 0.5 * math.log(2 * math.pi) + self.log_std).sum().expand_as(log_prob)
        return log_prob, entropy, self.value(obs)


def gaussian_log_prob(x, mean, log_std):
    """log N(x; mean, diag(exp(log_std))^2), summed over the last (action) dimension."""
    z = (x - mean) * torch.exp(-log_std)
    return (-0.5 * z * z - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminations: torch.Tensor,
    episode_ends: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> torch.Tensor:
    """GAE(lambda) advantages of a rollout (Schulman et al., 2017, Eqs. 11-12); every input is (n_steps, n_envs).

    delta_t = r_t + gamma (1 - terminated_t) V(s_t+1) - V(s_t) and A_t = delta_t + gamma lambda (1 - end_t) A_t+1.
    next_values[t] is V of the state that step t reached: after a time limit that is the episode's final
    observation (the episode did not end, only our view of it: bootstrap), after a termination it is unused.
    An episode's end (either kind) stops the sum, as the next step belongs to a new episode.
    """
    advantages = torch.zeros_like(rewards)
    advantage = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        delta = rewards[t] + gamma * (1 - terminations[t]) * next_values[t] - values[t]
        advantage = delta + gamma * gae_lambda * (1 - episode_ends[t]) * advantage
        advantages[t] = advantage
    return advantages


def clipped_surrogate_loss(
    log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor, clip_range: float
) -> torch.Tensor:
    """-mean min(r A, clip(r, 1 - eps, 1 + eps) A) with r = pi(a|s) / pi_old(a|s) (Schulman et al., 2017, Eq. 7)."""
    ratio = (log_prob - old_log_prob).exp()
    clipped_ratio = ratio.clamp(1 - clip_range, 1 + clip_range)
    return -torch.min(ratio * advantages, clipped_ratio * advantages).mean()


class Minibatch(NamedTuple):
    obs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


class RolloutBuffer:
    """One rollout of n_steps x n_envs steps as tensors on the training device, with its advantages and returns."""

    def __init__(self, n_steps: int, n_envs: int, obs_dim: int, act_dim: int, device: torch.device):
        def zeros(*shape):
            return torch.zeros(n_steps, n_envs, *shape, device=device)

        self.obs, self.actions = zeros(obs_dim), zeros(act_dim)
        self.log_probs, self.rewards, self.values = zeros(), zeros(), zeros()
        self.terminations, self.episode_ends = zeros(), zeros()
        self.truncations, self.final_values = zeros(), zeros()  # time limits, and V(final obs) there
        self.advantages, self.returns = zeros(), zeros()

    def add(self, step: int, **transition: torch.Tensor) -> None:
        for name, value in transition.items():
            getattr(self, name)[step] = value

    def compute_returns(self, last_value: torch.Tensor, gamma: float, gae_lambda: float) -> None:
        """Advantages by GAE; returns = advantages + values, the value targets (SB3's TD(lambda) targets)."""
        next_values = torch.cat([self.values[1:], last_value[None]])  # V(s_t+1) where the episode went on
        next_values = torch.where(self.truncations.bool(), self.final_values, next_values)
        self.advantages = compute_gae(
            self.rewards, self.values, next_values, self.terminations, self.episode_ends, gamma, gae_lambda
        )
        self.returns = self.advantages + self.values

    def minibatch(self, indices: torch.Tensor) -> Minibatch:
        """The steps at `indices` of the flattened rollout."""

        def flat(x):
            return x.flatten(0, 1)[indices]

        return Minibatch(
            flat(self.obs), flat(self.actions), flat(self.log_probs), flat(self.advantages), flat(self.returns)
        )


def train_step(agent: Agent, optimizer: torch.optim.Optimizer, minibatch: Minibatch, args: Args) -> dict:
    """One gradient step of PPO on one minibatch (SB3's PPO.train, inner loop). Returns detached diagnostics.

    Minimizes -L^CLIP + vf_coef L^VF - ent_coef S (Schulman et al., 2017, Eq. 9), with the advantages
    normalized within the minibatch. benchmarks/sps.py times this function by name (one call, one minibatch).
    """
    log_prob, entropy, value = agent.evaluate_actions(minibatch.obs, minibatch.actions)
    advantages = minibatch.advantages
    if args.normalize_advantage and len(advantages) > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    policy_loss = clipped_surrogate_loss(log_prob, minibatch.log_probs, advantages, args.clip_range)
    value_loss = F.mse_loss(value, minibatch.returns)  # not clipped: SB3's default (clip_range_vf None)
    entropy_loss = -entropy.mean()
    loss = policy_loss + args.ent_coef * entropy_loss + args.vf_coef * value_loss

    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
    optimizer.step()

    with torch.no_grad():
        log_ratio = log_prob - minibatch.log_probs
        approx_kl = (log_ratio.exp() - 1 - log_ratio).mean()  # Schulman's low-variance KL estimator, as SB3
        clip_fraction = ((log_ratio.exp() - 1).abs() > args.clip_range).float().mean()
    return {
        "losses/policy_loss": policy_loss.detach(),
        "losses/value_loss": value_loss.detach(),
        "losses/entropy": -entropy_loss.detach(),
        "losses/approx_kl": approx_kl,
        "losses/clipfrac": clip_fraction,
    }


def evaluate(
    agent: Agent, normalizer: ObsRewardNormalizer, env: gym.Env, episodes: int, device: torch.device, seed: int
) -> list[float]:
    """Returns of the greedy policy: the mean action, clipped to the bounds as SB3's predict, on observations
    normalized with frozen statistics; raw rewards. Episode i starts from seed + i."""
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)  # the same start states at every evaluation
        done, total = False, 0.0
        while not done:
            normalized = normalizer.observation(obs[None], update=False)
            with torch.no_grad():
                mean = agent.policy_net(torch.as_tensor(normalized, dtype=torch.float32, device=device))
            action = np.clip(mean[0].cpu().numpy(), env.action_space.low, env.action_space.high)
            obs, reward, terminated, truncated, _ = env.step(action)
            done, total = terminated or truncated, total + float(reward)
        returns.append(total)
    return returns


def make_eval_env(env_id: str, video_dir: Optional[str] = None) -> gym.Env:
    """One env (evaluation, and the check of the spaces)."""
    env = gym.make(env_id, render_mode="rgb_array" if video_dir else None)
    if not isinstance(env.action_space, gym.spaces.Box):
        kind = type(env.action_space).__name__
        raise SystemExit(f"{env_id} has a {kind} action space; this PPO needs a continuous (Box) one.")
    if not isinstance(env.observation_space, gym.spaces.Box) or len(env.observation_space.shape) != 1:
        raise SystemExit(f"{env_id} does not have a flat Box observation space, which this script needs.")
    if video_dir:
        env = gym.wrappers.RecordVideo(env, video_dir, episode_trigger=lambda episode: True, disable_logger=True)
    return env


def make_vector_env(env_id: str, n_envs: int) -> gym.vector.SyncVectorEnv:
    """n_envs copies stepped in turn (SB3's DummyVecEnv). A finished episode is reset within the same step, as
    in SB3: that step returns the next episode's first observation, and the finished episode's last one
    in info["final_obs"] (gymnasium's default would instead spend the next step on the reset)."""
    return gym.vector.SyncVectorEnv(
        [lambda: gym.make(env_id) for _ in range(n_envs)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )


def main(args: Args) -> str:
    """Train PPO; returns the run directory."""
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
    eval_env = make_eval_env(args.env_id, video_dir)
    envs = make_vector_env(args.env_id, args.n_envs)
    action_low, action_high = envs.single_action_space.low, envs.single_action_space.high

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    if args.track:
        start_tracking(args, run_name=os.path.basename(run_dir))
    writer = SummaryWriter(run_dir, purge_step=checkpoint["step"] + 1 if checkpoint else None)
    hyperparameters = asdict(args)
    if not checkpoint:
        table_rows = "\n".join(f"|{key}|{value}|" for key, value in hyperparameters.items())
        writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + table_rows)
        with open(os.path.join(run_dir, "hyperparameters.json"), "w") as f:
            json.dump(hyperparameters, f, indent=2)
    print("hyperparameters: " + ", ".join(f"{key}={value}" for key, value in hyperparameters.items()))

    obs_dim, act_dim = eval_env.observation_space.shape[0], eval_env.action_space.shape[0]
    agent = Agent(obs_dim, act_dim, args.net_arch, args.activation, args.log_std_init, args.ortho_init).to(device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5, fused=True)  # eps as SB3's PPO
    normalizer = ObsRewardNormalizer(obs_dim, args.n_envs, args.gamma, enabled=args.normalize)
    buffer = RolloutBuffer(args.n_steps, args.n_envs, obs_dim, act_dim, device)
    rollout_size = args.n_steps * args.n_envs
    n_iterations = math.ceil(args.total_timesteps / rollout_size)  # whole rollouts, as SB3

    def to_tensor(array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array, dtype=torch.float32, device=device)

    episode_returns, episode_lengths = np.zeros(args.n_envs), np.zeros(args.n_envs, dtype=int)
    recent_returns = deque(maxlen=10)
    global_step = last_checkpoint = 0
    raw_obs, _ = envs.reset(seed=args.seed)  # env i starts from seed + i
    obs = to_tensor(normalizer.observation(raw_obs, update=True))
    if checkpoint:
        agent.load_state_dict(checkpoint["agent"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        normalizer.load_state_dict(checkpoint["normalizer"])
        obs = checkpoint["obs"].to(device)
        episode_returns, episode_lengths = checkpoint["episode_returns"], checkpoint["episode_lengths"]
        recent_returns.extend(checkpoint["recent_returns"])
        global_step = last_checkpoint = checkpoint["step"]
        restore_simulator_states(checkpoint["simulators"], envs.envs)
        restore_random_states(checkpoint["random"], envs.envs)
    start_step, start_time, last_print = global_step + 1, time.time(), 0.0

    with StopSignal() as stop:
        for iteration in range(global_step // rollout_size + 1, n_iterations + 1):
            # Collect a rollout of n_steps per env with the current policy.
            for step in range(args.n_steps):
                with torch.no_grad():
                    action, log_prob, value = agent.act(obs)
                env_action = np.clip(action.cpu().numpy(), action_low, action_high)
                raw_obs, raw_reward, terminated, truncated, info = envs.step(env_action)
                global_step += args.n_envs
                episode_over = terminated | truncated

                episode_returns += raw_reward
                episode_lengths += 1
                for i in np.flatnonzero(episode_over):
                    recent_returns.append(episode_returns[i])
                    writer.add_scalar("charts/episodic_return", episode_returns[i], global_step)
                    writer.add_scalar("charts/episodic_length", episode_lengths[i], global_step)
                episode_returns[episode_over], episode_lengths[episode_over] = 0.0, 0

                next_obs = to_tensor(normalizer.observation(raw_obs, update=True))
                reward = normalizer.reward(raw_reward, episode_over)
                # A time limit cut the episode short: its final observation's value stands in for the future.
                final_values = torch.zeros(args.n_envs, device=device)
                bootstrap = truncated & ~terminated
                if bootstrap.any():
                    final_obs = to_tensor(normalizer.observation(np.stack(info["final_obs"][bootstrap]), update=False))
                    with torch.no_grad():
                        final_values[bootstrap] = agent.value(final_obs)
                buffer.add(
                    step,
                    obs=obs,
                    actions=action,
                    log_probs=log_prob,
                    rewards=to_tensor(reward),
                    values=value,
                    terminations=to_tensor(terminated),
                    episode_ends=to_tensor(episode_over),
                    truncations=to_tensor(bootstrap),
                    final_values=final_values,
                )
                obs = next_obs

            with torch.no_grad():
                buffer.compute_returns(agent.value(obs), args.gamma, args.gae_lambda)

            # n_epochs passes over the rollout, in minibatches of a fresh random permutation each pass.
            totals, n_minibatches = {}, 0
            for epoch in range(args.n_epochs):
                for indices in torch.randperm(rollout_size, device=device).split(args.batch_size):
                    stats = train_step(agent=agent, optimizer=optimizer, minibatch=buffer.minibatch(indices), args=args)
                    totals = {tag: totals.get(tag, 0) + value for tag, value in stats.items()}
                    n_minibatches += 1

            # Logs: means over the update's minibatches.
            means = {tag: (total / n_minibatches).item() for tag, total in totals.items()}
            bad = [tag for tag, mean in means.items() if not math.isfinite(mean)]
            if bad:
                writer.close()
                raise SystemExit(
                    f"{bad[0]} is {means[bad[0]]} at step {global_step}; stopping (logs kept in {run_dir})."
                )
            for tag, mean in means.items():
                writer.add_scalar(tag, mean, global_step)
            residual_variance = (buffer.returns - buffer.values).var()
            explained_variance = 1 - residual_variance / buffer.returns.var()
            writer.add_scalar("losses/explained_variance", explained_variance.item(), global_step)
            writer.add_scalar("charts/action_std", agent.log_std.exp().mean().item(), global_step)
            writer.add_scalar("charts/SPS", (global_step - start_step + 1) / (time.time() - start_time), global_step)
            if time.time() - last_print > 5 or iteration == n_iterations:
                last_print = time.time()
                print(progress_line(global_step, n_iterations * rollout_size, start_step, start_time, recent_returns))

            passed_eval_step = global_step // args.eval_freq > (global_step - rollout_size) // args.eval_freq
            if passed_eval_step or iteration == n_iterations:
                returns = evaluate(agent, normalizer, eval_env, args.eval_episodes, device, seed=args.seed + 10_000)
                writer.add_scalar("eval/episodic_return", np.mean(returns), global_step)
                print(f"step {global_step}, eval return {np.mean(returns):.1f} +- {np.std(returns):.1f}")

            # Checkpoints at a rollout's end, mid-episode: the simulators' states go in too.
            due = args.checkpoint_freq and global_step - last_checkpoint >= args.checkpoint_freq
            if due or stop.received or (args.checkpoint_freq and iteration == n_iterations):
                checkpoint = {
                    "agent": agent.state_dict(),
                    "normalizer": normalizer.state_dict(),
                    "args": asdict(args),
                    "optimizer": optimizer.state_dict(),
                    "step": global_step,
                    "obs": obs.cpu(),
                    "episode_returns": episode_returns,
                    "episode_lengths": episode_lengths,
                    "recent_returns": list(recent_returns),
                    "simulators": simulator_states(envs.envs),
                    "random": random_states(envs.envs),
                }
                save_checkpoint(checkpoint, run_dir)
                last_checkpoint = global_step
            if stop.received and iteration < n_iterations:
                writer.close()
                envs.close()
                eval_env.close()
                script = os.path.basename(__file__)
                print(f"interrupted at step {global_step}; resume with: python {script} --resume {run_dir}")
                raise SystemExit(INTERRUPTED_EXIT_CODE)

    if args.save_model:
        path = os.path.join(run_dir, f"{args.exp_name}.model")
        torch.save({"agent": agent.state_dict(), "normalizer": normalizer.state_dict(), "args": asdict(args)}, path)
        print(f"model saved to {path}")
    envs.close()
    eval_env.close()
    writer.close()
    if args.track:
        finish_tracking(video_dir)
    return run_dir


def watch(args: Args) -> str:
    """--evaluate PATH: greedy episodes of a saved model or checkpoint (videos with --capture-video); no training."""
    saved = load_checkpoint(args.evaluate)
    run_args = Args(**saved["args"])
    run_dir = args.evaluate if os.path.isdir(args.evaluate) else os.path.dirname(args.evaluate)
    video_dir = os.path.join(run_dir, "videos_evaluate") if args.capture_video else None
    env = make_eval_env(run_args.env_id, video_dir)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    agent = Agent(obs_dim, act_dim, run_args.net_arch, run_args.activation, run_args.log_std_init, run_args.ortho_init)
    agent.load_state_dict(saved["agent"])
    normalizer = ObsRewardNormalizer(obs_dim, run_args.n_envs, run_args.gamma, enabled=run_args.normalize)
    normalizer.load_state_dict(saved["normalizer"])
    returns = evaluate(agent, normalizer, env, args.eval_episodes, torch.device("cpu"), seed=args.seed + 10_000)
    env.close()
    print(f"{np.mean(returns):.1f} +- {np.std(returns):.1f} over {len(returns)} episodes")
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


def simulator_states(envs: list) -> list:
    """Where each env stands mid-episode (PPO checkpoints at a rollout's end, not an episode's): a MuJoCo env's
    whole integration state (positions, velocities, warm start, ...) and its time-limit step count."""
    states = []
    for env in envs:
        if not hasattr(env.unwrapped, "data"):  # not MuJoCo: no generic way to save a simulator
            states.append(None)
            continue
        model, data, kind = env.unwrapped.model, env.unwrapped.data, mujoco.mjtState.mjSTATE_INTEGRATION
        physics = np.empty(mujoco.mj_stateSize(model, kind))
        mujoco.mj_getState(model, data, physics, kind)
        states.append({"physics": physics, "elapsed_steps": env.get_wrapper_attr("_elapsed_steps")})
    return states


def restore_simulator_states(states: list, envs: list) -> None:
    """Put each env back mid-episode; an env without a saved state (not MuJoCo) starts its episode again."""
    for env, state in zip(envs, states):
        if state is None:
            print("This env's simulator cannot be saved: its episode restarts, and the run is not bit for bit.")
            continue
        model, data = env.unwrapped.model, env.unwrapped.data
        mujoco.mj_setState(model, data, state["physics"], mujoco.mjtState.mjSTATE_INTEGRATION)
        env.set_wrapper_attr("_elapsed_steps", state["elapsed_steps"])


# ==============================================================================================================
# End of run control.
# ==============================================================================================================


if __name__ == "__main__":
    main(tyro.cli(Args))
