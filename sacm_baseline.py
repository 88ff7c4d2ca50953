"""SACM: Soft Actor-Critic with a Gaussian-mixture actor (Baram et al., 2021); K = 1 is plain SAC.

The stochastic-gradient counterpart of Gamid (Dey & Sharon, TMLR), Table 1's SAC and SACM columns. The actor
is a tanh-squashed mixture of K Gaussians with per-state means and log-stds, trained by marginalized
reparameterization on the exact mixture log-density; the twin critics and the automatic entropy tuning are
SAC's (Haarnoja et al., 2018, as in Stable-Baselines3, which ran the paper's baselines). Same logging,
evaluation and command line as gamid_continuous_action.py. Hyperparameters: the paper's Table 6 for SAC
(`--n-components 1`) and Table 7 for SACM; the comments above the presets say where a table is silent and
which Polyak rate is which.

    python sacm_baseline.py --env-id Walker2d-v3                    # SACM, K = 3
    python sacm_baseline.py --env-id Walker2d-v3 --n-components 1   # SAC
    python sacm_baseline.py --env-id Hopper-v4 --save-model         # then watch it:
    python sacm_baseline.py --evaluate runs/<run>/sacm_baseline.model --capture-video
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
    """SAC (--n-components 1) and SACM on MuJoCo. The task's preset (paper Table 6 for SAC, Table 7 for SACM)
    fills every field left unset; the resolved values are printed at the start and saved to hyperparameters.json
    in the run directory."""

    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment"""
    seed: int = 1
    """seed of the experiment"""
    cuda: bool = True
    """use a GPU when one is present (falls back to the CPU silently)"""
    capture_video: bool = False
    """record evaluation episodes to `videos/` with gymnasium's RecordVideo"""
    save_model: bool = False
    """save the actor, critics and entropy coefficient to the run directory at the end"""
    runs_dir: str = "runs"
    """where run directories are created"""

    env_id: str = "HalfCheetah-v4"
    """environment id; the paper's -v3 ids run on -v4 (same model, reward and observations)"""
    n_components: int = 3
    """number of Gaussians K (Table 7: 3); 1 is plain SAC and selects the Table 6 preset"""
    learn_weights: bool = False
    """learn state-dependent mixing weights (otherwise uniform, as Baram et al.)"""
    total_timesteps: Optional[int] = None
    """total environment steps (preset: Table 6, also for SACM: Table 7 prints none)"""
    learning_rate: Optional[float] = None
    """Adam learning rate of actor, critics and entropy coefficient (preset: Table 6 or 7)"""
    buffer_size: int = 1_000_000
    """replay buffer capacity (SB3's default; the tables print none)"""
    gamma: Optional[float] = None
    """discount factor (preset: Table 6, also for SACM: Table 7 prints none)"""
    tau: Optional[float] = None
    """Polyak rate of the target critics (preset: SAC 0.005, what the authors ran; SACM 0.05, Table 7)"""
    batch_size: int = 256
    """minibatch size (SB3's SAC default; Tables 6 and 7 print none)"""
    learning_starts: int = 10_000
    """uniform random actions and no updates before this step (Tables 6 and 7)"""
    train_freq: Literal["step", "episode"] = "step"
    """train after every env step (SB3 SAC's default, which the paper's runs used), or at each episode's end"""
    gradient_steps: Optional[int] = None
    """gradient steps per training round; -1 = one per env step collected in the round (preset: Table 6 or 7)"""
    net_arch: tuple[int, ...] = (256, 256)
    """hidden layer sizes of actor and critics (Tables 6 and 7)"""
    autotune: bool = True
    """learn the entropy coefficient alpha toward the target entropy -|A| (SB3's ent_coef 'auto')"""
    ent_coef: float = 1.0
    """alpha: its initial value with --autotune (as SB3's 'auto'), else fixed"""

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


# Paper Table 6 (SAC hyperparameters, MuJoCo), one entry per column; --n-components 1 selects it.
# Every column also prints learning_starts 1e4 and net_arch [256, 256] (defaults of Args). It prints no
# batch_size or train_freq: SB3's SAC defaults ran (256, and one env step per training round; defaults of Args).
# tau departs from the table on purpose: Table 6 prints 0.05, but the authors' configuration for SAC on MuJoCo
# (rl-baselines3-zoo 1.6.2, sac.yml, which the paper's Appendix B names) sets no tau, so SB3's default 0.005
# is what produced the paper's SAC numbers. Run --tau 0.05 for the printed value.
PRESETS = {
    "Swimmer": dict(total_timesteps=1_000_000, learning_rate=3e-4, gradient_steps=1, gamma=0.9999, tau=0.005),
    "HalfCheetah": dict(total_timesteps=1_000_000, learning_rate=3e-4, gradient_steps=1, gamma=0.99, tau=0.005),
    "Hopper": dict(total_timesteps=1_000_000, learning_rate=3e-4, gradient_steps=1, gamma=0.99, tau=0.005),
    "Ant": dict(total_timesteps=1_000_000, learning_rate=3e-4, gradient_steps=1, gamma=0.99, tau=0.005),
    "Walker2d": dict(total_timesteps=1_000_000, learning_rate=3e-4, gradient_steps=1, gamma=0.99, tau=0.005),
    "Humanoid": dict(total_timesteps=2_000_000, learning_rate=3e-4, gradient_steps=1, gamma=0.99, tau=0.005),
}

# Paper Table 7 (SACM hyperparameters, MuJoCo), one entry per column; --n-components 2 or more selects it.
# Every column also prints n_components 3, learning_starts 1e4 and net_arch [256, 256] (defaults of Args).
# It prints no n_timesteps or gamma: Table 6's, for the same tasks. tau is 0.05 as printed (the authors'
# SACM code is not public, so the table is all there is). gradient_steps -1 is SB3's "as many gradient steps
# as env steps collected"; under SB3 SAC's default train_freq of one env step, that is one update per env
# step, like the columns that print 1.
SACM_PRESETS = {
    "Swimmer": dict(total_timesteps=1_000_000, learning_rate=6e-4, gradient_steps=1, gamma=0.9999, tau=0.05),
    "HalfCheetah": dict(total_timesteps=1_000_000, learning_rate=3e-4, gradient_steps=-1, gamma=0.99, tau=0.05),
    "Hopper": dict(total_timesteps=1_000_000, learning_rate=3e-4, gradient_steps=1, gamma=0.99, tau=0.05),
    "Ant": dict(total_timesteps=1_000_000, learning_rate=3e-4, gradient_steps=-1, gamma=0.99, tau=0.05),
    "Walker2d": dict(total_timesteps=1_000_000, learning_rate=3e-4, gradient_steps=-1, gamma=0.99, tau=0.05),
    "Humanoid": dict(total_timesteps=2_000_000, learning_rate=3e-4, gradient_steps=1, gamma=0.99, tau=0.05),
}
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SB3's SAC clamp (the paper's baselines are SB3)


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
    """Fill every field left unset from the task's column of Table 6 (K = 1) or 7, then check the values."""
    args.env_id = resolve_env_id(args.env_id)
    if args.n_components < 1:
        raise SystemExit(f"--n-components must be at least 1, got {args.n_components}.")
    task = args.env_id.rpartition("-")[0]
    if args.n_components == 1:
        table, presets = "Table 6 (SAC)", PRESETS
    else:
        table, presets = "Table 7 (SACM)", SACM_PRESETS
    if task in presets:
        print(f"{args.env_id} with K = {args.n_components}: unset hyperparameters from the paper's {table}.")
    else:
        print(f"{args.env_id} is not one of the paper's tasks; unset hyperparameters from HalfCheetah's {table}.")
    for field, value in presets.get(task, presets["HalfCheetah"]).items():
        if getattr(args, field) is None:
            setattr(args, field, value)
    problems = [
        (
            args.batch_size > args.buffer_size,
            f"--batch-size {args.batch_size} is larger than --buffer-size {args.buffer_size}.",
        ),
        (
            args.total_timesteps <= args.learning_starts,
            f"--total-timesteps {args.total_timesteps} must exceed --learning-starts {args.learning_starts}, "
            "or nothing is trained.",
        ),
        (
            args.gradient_steps == 0 or args.gradient_steps < -1,
            "--gradient-steps must be positive, or -1 for one per env step.",
        ),
        (not 0 < args.tau <= 1, f"--tau must lie in (0, 1], got {args.tau}."),
        (args.ent_coef <= 0, f"--ent-coef must be positive, got {args.ent_coef}."),
        (args.checkpoint_freq < 0, f"--checkpoint-freq must be 0 (never) or positive, got {args.checkpoint_freq}."),
        (
            min(args.batch_size, args.eval_freq, args.eval_episodes, args.log_freq) < 1,
            "--batch-size, --eval-freq, --eval-episodes and --log-freq must be positive.",
        ),
    ]
    for failed, sentence in problems:
        if failed:
            raise SystemExit(sentence)
    return args


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


def evaluate(actor: MixtureActor, qf: TwinQ, env: gym.Env, episodes: int, device: torch.device, seed: int):
    """Returns of the greedy action (see greedy_mixture_action), no sampling; episode i starts from seed + i.

    The post-training performance of the paper's Table 1.
    """
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)  # the same start states at every evaluation
        done, total = False, 0.0
        while not done:
            obs = torch.as_tensor(obs, dtype=torch.float32, device=device)
            action = greedy_mixture_action(actor, qf, obs[None])[0].cpu().numpy()
            obs, reward, terminated, truncated, _ = env.step(to_env_action(action, env.action_space))
            done = terminated or truncated
            total += float(reward)
        returns.append(total)
    return returns


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
    """Train SACM (SAC for K = 1); returns the run directory."""
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
    env = make_env(args.env_id, args.seed)
    eval_env = make_env(args.env_id, args.seed, video_dir)

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
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

    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    actor = MixtureActor(args.n_components, obs_dim, act_dim, args.net_arch, args.learn_weights).to(device)
    qf = TwinQ(obs_dim, act_dim, args.net_arch).to(device)
    qf_target = TwinQ(obs_dim, act_dim, args.net_arch).to(device)
    qf_target.load_state_dict(qf.state_dict())
    log_alpha = torch.tensor(math.log(args.ent_coef), device=device, requires_grad=args.autotune)
    actor_optimizer = torch.optim.Adam(actor.parameters(), lr=args.learning_rate, fused=True)
    q_optimizer = torch.optim.Adam(qf.parameters(), lr=args.learning_rate, fused=True)
    alpha_optimizer = torch.optim.Adam([log_alpha], lr=args.learning_rate, fused=True) if args.autotune else None
    rb = ReplayBuffer(args.buffer_size, obs_dim, act_dim, device)

    parts = {"actor": actor, "qf": qf, "qf_target": qf_target, "rb": rb}  # saved in checkpoints by state_dict()
    parts |= {"actor_optimizer": actor_optimizer, "q_optimizer": q_optimizer}
    if alpha_optimizer is not None:
        parts["alpha_optimizer"] = alpha_optimizer

    recent_returns = deque(maxlen=10)
    stats, episode_steps, last_checkpoint = {}, 0, 0
    if checkpoint:  # continue from the checkpoint: every state the loop carries, the random streams too
        for name, part in parts.items():
            part.load_state_dict(checkpoint[name])
        with torch.no_grad():
            log_alpha.copy_(checkpoint["log_alpha"])
        stats = {tag: value.to(device) for tag, value in checkpoint["stats"].items()}
        recent_returns.extend(checkpoint["recent_returns"])
        last_checkpoint = checkpoint["step"]
        restore_random_states(checkpoint["random"], [env])
        obs, _ = env.reset()  # no seed: it draws from the restored env generator, as the uninterrupted run did
        start_step = checkpoint["step"] + 1
    else:
        obs, _ = env.reset(seed=args.seed)
        start_step = 1

    def everything(step: int) -> dict:
        """What the loop carries from one step to the next, for checkpoint.pt (taken at an episode's end)."""
        state = {name: part.state_dict() for name, part in parts.items()}
        state["log_alpha"] = log_alpha.detach().cpu()
        state["stats"] = {tag: value.cpu() for tag, value in stats.items()}
        state["recent_returns"] = list(recent_returns)
        state["step"] = step
        state["random"] = random_states([env])  # python, numpy, torch, the env's and its action space's
        state["args"] = asdict(args)
        return state

    start_time = last_print = time.time()
    with StopSignal() as stop:
        for global_step in range(start_step, args.total_timesteps + 1):
            # Act: before learning_starts uniformly at random, then a sample of the squashed mixture.
            if global_step <= args.learning_starts:
                action = from_env_action(env.action_space.sample(), env.action_space)
            else:
                action = policy_action(actor, obs, device)
            next_obs, reward, terminated, truncated, info = env.step(to_env_action(action, env.action_space))
            rb.add(obs, action, reward, next_obs, terminated)  # d = terminated: bootstrap through time limits
            obs = next_obs
            episode_steps += 1
            episode_over = terminated or truncated
            if episode_over:
                recent_returns.append(float(info["episode"]["r"]))
                writer.add_scalar("charts/episodic_return", info["episode"]["r"], global_step)
                writer.add_scalar("charts/episodic_length", info["episode"]["l"], global_step)

            # Train after every env step or, as SB3's train_freq=(1, "episode"), at each episode's end.
            if global_step > args.learning_starts and (args.train_freq == "step" or episode_over):
                if args.gradient_steps > 0:
                    n_gradient_steps = args.gradient_steps
                elif args.train_freq == "step":
                    n_gradient_steps = 1  # -1: one gradient step per env step collected, here one
                else:
                    n_gradient_steps = episode_steps  # -1: one gradient step per env step of the episode
                for _ in range(n_gradient_steps):
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
                sps = (global_step - start_step + 1) / (time.time() - start_time)
                writer.add_scalar("charts/SPS", sps, global_step)
            if time.time() - last_print > 5:
                last_print = time.time()
                print(progress_line(global_step, args.total_timesteps, start_step, start_time, recent_returns))

            if global_step % args.eval_freq == 0 or global_step == args.total_timesteps:
                returns = evaluate(actor, qf, eval_env, args.eval_episodes, device, seed=args.seed + 10_000)
                writer.add_scalar("eval/episodic_return", np.mean(returns), global_step)
                print(f"step {global_step}, eval return {np.mean(returns):.1f} +- {np.std(returns):.1f}")

            if episode_over:
                episode_steps = 0
                due = args.checkpoint_freq and global_step - last_checkpoint >= args.checkpoint_freq
                if due or stop.received:
                    writer.flush()  # the logs up to this step are on disk before the checkpoint says so
                    save_checkpoint(everything(global_step), run_dir)
                    last_checkpoint = global_step
                if stop.received:
                    writer.close()
                    env.close()
                    eval_env.close()
                    if args.track:
                        finish_tracking(None)
                    script = os.path.relpath(__file__)
                    print(f"interrupted at step {global_step}; resume with: python {script} --resume {run_dir}")
                    raise SystemExit(INTERRUPTED_EXIT_CODE)
                obs, _ = env.reset()  # after the checkpoint: a resumed run's reset draws the same start

    if args.checkpoint_freq and last_checkpoint < args.total_timesteps:
        writer.flush()
        save_checkpoint(everything(args.total_timesteps), run_dir)  # so that --resume says "finished"
    if args.save_model:
        path = os.path.join(run_dir, f"{args.exp_name}.model")
        model = {"actor": actor.state_dict(), "qf": qf.state_dict(), "log_alpha": log_alpha.detach().cpu()}
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
    """--evaluate PATH: greedy episodes of a model saved with --save-model, or of a checkpoint; trains nothing."""
    path = args.evaluate
    if os.path.isdir(path) or path.endswith(".pt"):
        saved = load_checkpoint(path)
    elif not os.path.exists(path):
        raise SystemExit(f"There is no saved model at {path}; train with --save-model to write one.")
    else:
        try:
            saved = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as error:
            raise SystemExit(f"{path} cannot be read ({type(error).__name__}): it is truncated or corrupt.")
    fields = {name: tuple(value) if isinstance(value, list) else value for name, value in saved["args"].items()}
    run = Args(**fields)  # the run's hyperparameters: env, K, network sizes, seed
    run_dir = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    video_dir = os.path.join(run_dir, "videos_evaluate") if args.capture_video else None
    env = make_env(run.env_id, run.seed, video_dir)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    actor = MixtureActor(run.n_components, obs_dim, act_dim, run.net_arch, run.learn_weights).to(device)
    qf = TwinQ(obs_dim, act_dim, run.net_arch).to(device)
    actor.load_state_dict(saved["actor"])
    qf.load_state_dict(saved["qf"])
    returns = evaluate(actor, qf, env, args.eval_episodes, device, seed=run.seed + 10_000)
    env.close()
    print(f"{np.mean(returns):.1f} +- {np.std(returns):.1f} over {args.eval_episodes} episodes")
    return run_dir


# ==============================================================================================================
# End of run control.
# ==============================================================================================================


if __name__ == "__main__":
    main(tyro.cli(Args))
