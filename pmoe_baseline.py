"""PMOE: Probabilistic Mixture-of-Experts on SAC (Ren et al., 2021, arXiv 2104.09122), Table 1's PMOE column.

The actor is a mixture of K tanh-squashed Gaussian experts (the PMOE paper's "primitives"),
pi(a|s) = sum_i psi_i(s) pi_i(a|s), weighted by a learned, state-dependent routing function psi.
Choosing an expert is discrete, so it has no reparameterized gradient; PMOE trains it this way:
every expert proposes an action, the twin critics value the proposals, and per state the best
expert i* = argmax_i min(Q1, Q2)(s, a_i)
  - is the only expert trained, by SAC's actor loss on its own density: alpha log pi_i*(a_i*|s) - Q(s, a_i*);
  - is the routing function's target: psi(s) regresses onto the one-hot vector of i*, so psi_i(s)
    learns how often expert i is the best at s (the paper's "frequency approximate gradient").

Critics, targets and the entropy coefficient are SAC's (Haarnoja et al., 2018). K = 1 is plain SAC.
Every MuJoCo task shares one set of hyperparameters (in Args); the task's preset fills every field
left unset (only the training budget differs: 2M steps for Humanoid, as in the Gamid paper's
Table 1). The resolved values are printed at start and saved to `hyperparameters.json` in the run
directory.

    python pmoe_baseline.py --env-id Walker2d-v3
    python pmoe_baseline.py --env-id Hopper-v4 --save-model      # then watch it:
    python pmoe_baseline.py --evaluate runs/<run>/pmoe_baseline.model --capture-video

Where each choice comes from. Only the abstract and introduction of the PMOE paper could be read
while writing this file, so the method's details follow the authors' public PMOE-SAC code [C]:
`pmoe.py`, committed by J. Ren (the paper's first author) on 2021-06-28 (commit d599e29) to
github.com/quantumiracle/Popular-RL-Algorithms (Z. Ding's repository, also an author), now
`pmoe_sac.py` there.

From [C]:
  - experts: one ReLU trunk with a linear head for the K means and K log-stds (clamped to [-20, 2]);
    routing function: a separate linear layer on the observation with a softmax;
  - acting: an expert drawn from psi(s), then an action from that expert;
  - actor loss: one reparameterized action per expert, i* by min(Q1, Q2), only i* trained, its
    own tanh-Gaussian log-density in the entropy term; routing loss: mean squared error between
    psi(s) and one-hot(i*), averaged over states and experts, added to the actor loss (one optimizer);
  - critic target: an expert c drawn from psi(s'), a' from expert c, y = r + gamma (1 - d)
    (min_k Q_targ,k(s', a') - alpha log pi_c(a'|s'));
  - entropy coefficient: SAC's automatic tuning toward -|A| on log pi_i*(a_i*|s), starting at 1.

Assumed (the PMOE paper's hyperparameter table could not be read here):
  - SAC's MuJoCo hyperparameters (Haarnoja et al., 2018) for every task: Adam 3e-4, batch 256,
    256x256 ReLU networks, tau 0.005, gamma 0.99 on every task (Swimmer included: the Gamid paper's
    PMOE Swimmer score, 50, is about what SAC scores there with gamma 0.99), one update per env step, buffer 1e6;
  - K = 4 experts (the default of an rlkit PMOE-SAC trainer in public, non-author code; [C]'s demo uses 2);
  - 10,000 uniformly random steps before learning, as every other MuJoCo preset of this repository
    (the Gamid paper's Tables 3, 6 and 7), so all Table 1 columns share the warm-up.

Deviations from [C] (a demo file; these are its settings, not the method's):
  - no per-minibatch reward standardization times 10 (a trick of that repository's other SAC demos
    too, e.g. its sac_v2.py; not offered here);
  - tau 0.005, batch 256, 256-unit layers and 10,000 random warm-up steps instead of [C]'s 0.01, 300,
    512-unit layers (4 in the actor, 3 in the critics) and none (--tau, --batch-size, --net-arch and
    --learning-starts reach these, with one depth for actor and critics);
  - the exact tanh correction log(1 - tanh(u)^2), not [C]'s log(1 - tanh(u)^2 + 1e-6); PyTorch's
    default initialization, not [C]'s uniform(+-3e-3) output layers;
  - greedy evaluation takes tanh of the mean of the expert with the highest Q1, the rule of every
    mixture in this repository; [C]'s "deterministic" mode still draws the expert from psi at random.
    psi is trained toward the best expert (by min(Q1, Q2)), so the two agree where psi has converged.
"""

import json
import math
import os
import random
import signal
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import NamedTuple, Optional

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
    """save the actor, critics and entropy coefficient to the run directory at the end"""
    runs_dir: str = "runs"
    """where run directories are created"""

    env_id: str = "HalfCheetah-v4"
    """environment id; the paper's -v3 ids run on -v4 (same model, reward and observations)"""
    n_experts: int = 4
    """number of Gaussian experts K (assumed: the PMOE paper's table could not be read); 1 is plain SAC"""
    total_timesteps: Optional[int] = None
    """total environment steps (preset: Gamid paper Table 1's budget)"""
    learning_rate: float = 3e-4
    """Adam learning rate of actor, routing function, critics and entropy coefficient (SAC's; [C])"""
    buffer_size: int = 1_000_000
    """replay buffer capacity"""
    gamma: float = 0.99
    """discount factor (SAC's and [C]'s, every task)"""
    tau: float = 0.005
    """Polyak rate of the target critics (SAC's; [C]'s demo uses 0.01)"""
    batch_size: int = 256
    """minibatch size (SAC's; [C]'s demo uses 300)"""
    learning_starts: int = 10_000
    """uniform random actions and no updates before this step (as every MuJoCo preset here)"""
    net_arch: tuple[int, ...] = (256, 256)
    """hidden layer sizes of the experts' trunk and the critics (SAC's; [C]'s demo uses 512 units)"""
    autotune: bool = True
    """learn the entropy coefficient alpha toward the target entropy -|A| (SAC's and [C]'s)"""
    ent_coef: float = 1.0
    """alpha: its initial value with --autotune (as [C] and SB3's 'auto'), else fixed"""

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


# Gamid paper Table 1 (training budget per task). PMOE uses one set of hyperparameters for every
# MuJoCo task (module docstring), so they live in Args; only the budget differs.
PRESETS = {
    "Swimmer": dict(total_timesteps=1_000_000),
    "HalfCheetah": dict(total_timesteps=1_000_000),
    "Hopper": dict(total_timesteps=1_000_000),
    "Ant": dict(total_timesteps=1_000_000),
    "Walker2d": dict(total_timesteps=1_000_000),
    "Humanoid": dict(total_timesteps=2_000_000),
}
GENERIC = dict(total_timesteps=1_000_000)  # any other Box-action env
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # [C]'s clamp, also SB3's


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
    """Fill every field left unset from the task's preset, then check the values (bad input: one sentence)."""
    args.env_id = resolve_env_id(args.env_id)
    if args.n_experts < 1:
        raise SystemExit(f"--n-experts must be at least 1, got {args.n_experts}.")
    task = args.env_id.rpartition("-")[0]
    if task in PRESETS:
        print(f"{args.env_id}: unset hyperparameters from its preset (Gamid paper Table 1's budget).")
    else:
        print(f"{args.env_id} is not one of the paper's tasks; unset hyperparameters use the generic preset.")
    for field, value in PRESETS.get(task, GENERIC).items():
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
        (not 0 < args.tau <= 1, f"--tau must lie in (0, 1], got {args.tau}."),
        (not 0 <= args.gamma <= 1, f"--gamma must lie in [0, 1], got {args.gamma}."),
        (args.ent_coef <= 0, f"--ent-coef must be positive, got {args.ent_coef}."),
        (args.learning_rate <= 0, f"--learning-rate must be positive, got {args.learning_rate}."),
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


class MixtureOfExperts(nn.Module):
    """pi(.|s) = sum_i psi_i(s) pi_i(.|s): K Gaussian experts squashed by tanh into [-1, 1], and a routing function psi.

    The experts share one ReLU trunk and one linear head for their K means and K log-stds; psi is a
    separate linear layer on the observation followed by a softmax over the K experts ([C]).
    """

    def __init__(self, n_experts: int, obs_dim: int, act_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.k, self.act_dim = n_experts, act_dim
        dims = (obs_dim, *hidden)
        layers = [layer for i, o in zip(dims, dims[1:]) for layer in (nn.Linear(i, o), nn.ReLU(inplace=True))]
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(dims[-1], n_experts * 2 * act_dim)
        self.router = nn.Linear(obs_dim, n_experts)

    def forward(self, obs: torch.Tensor):
        """(B, obs) -> means (K, B, act), log-stds (K, B, act), log routing weights log psi (K, B), before the tanh."""
        out = self.head(self.trunk(obs)).view(obs.shape[0], self.k, 2 * self.act_dim).transpose(0, 1)
        mean = out[..., : self.act_dim]
        log_std = out[..., self.act_dim :].clamp(LOG_STD_MIN, LOG_STD_MAX)
        log_weights = self.router(obs).log_softmax(-1).T
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


def expert_log_prob(u: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log pi_i(tanh(u_i)|s) of each expert's own tanh-squashed Gaussian: u, mean, log_std (K, B, act) -> (K, B).

    log N(u_i; mu_i, sigma_i) - sum_d log(1 - tanh(u_id)^2), the last term in the overflow-free form
    2 (log 2 - u - softplus(-2u)). PMOE's entropy terms use this density of one expert, not the mixture's ([C]).
    """
    z = (u - mean) / log_std.exp()
    log_normal = (-0.5 * z.pow(2) - log_std).sum(-1) - 0.5 * math.log(2 * math.pi) * u.shape[-1]
    log_det = (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
    return log_normal - log_det


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


def pick(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Each state's entry of one expert: x (K, B, ...) at index (B,) -> (B, ...)."""
    index = index.view(1, -1, *[1] * (x.dim() - 2)).expand(1, *x.shape[1:])
    return x.gather(0, index)[0]


def pmoe_actor_loss(actor: MixtureOfExperts, qf: TwinQ, obs: torch.Tensor, alpha: torch.Tensor):
    """The experts' loss and the routing loss of PMOE ([C]); returns (expert_loss + routing_loss, diagnostics).

    Each expert i draws one reparameterized action a_i = tanh(mu_i + sigma_i eps_i), valued by
    q_i = min_k Q_k(s, a_i); per state the best expert is i* = argmax_i q_i.
      expert loss:  mean_s[alpha log pi_i*(a_i*|s) - q_i*]; only expert i* gets gradient at s.
      routing loss: mean_{s,i}(psi_i(s) - [i = i*])^2; its expectation is minimized by psi_i(s) = the
                    probability that expert i is the best at s ("frequency approximate gradient").
    The diagnostics are detached: the entropy estimate of the best experts (what alpha is tuned on),
    the mixture's entropy estimate -sum_i psi_i mean_s log pi(a_i|s), and per expert its mean routing
    weight, how often it was the best, and its mean std.
    """
    mean, log_std, log_weights = actor(obs)
    u = mean + log_std.exp() * torch.randn_like(mean)  # (K, B, act)
    log_prob = expert_log_prob(u, mean, log_std)  # (K, B)
    qf.requires_grad_(False)  # Q is a fixed function of the action here: skip its weight gradients
    q = qf(obs, torch.tanh(u)).min(0).values  # (K, B)
    qf.requires_grad_(True)
    best = q.argmax(0)  # (B,): i*, not differentiable
    expert_loss = (alpha * pick(log_prob, best) - pick(q, best)).mean()

    weights = log_weights.exp()  # psi (K, B)
    is_best = F.one_hot(best, actor.k).T.to(weights.dtype)  # (K, B)
    routing_loss = (weights - is_best).pow(2).mean()

    with torch.no_grad():
        mixture_entropy = -(weights * mixture_log_prob(u, mean, log_std, log_weights)).sum(0).mean()
        stats = {
            "losses/expert_loss": expert_loss.detach(),
            "losses/routing_loss": routing_loss.detach(),
            "charts/expert_entropy": -pick(log_prob, best).mean(),
            "charts/entropy": mixture_entropy,
        }
        for i in range(actor.k):
            stats[f"charts/expert_{i}/weight"] = weights[i].mean()
            stats[f"charts/expert_{i}/best_fraction"] = is_best[i].mean()
            stats[f"charts/expert_{i}/std"] = log_std[i].exp().mean()
    return expert_loss + routing_loss, stats


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
def pmoe_td_target(
    actor: MixtureOfExperts, qf_target: TwinQ, batch: Batch, alpha: torch.Tensor, gamma: float
) -> torch.Tensor:
    """SAC's soft target from one expert drawn by the routing function, with that expert's own density ([C]).

    c ~ psi(s'), a' ~ pi_c(.|s'), y = r + gamma (1 - d) (min_k Q_targ,k(s', a') - alpha log pi_c(a'|s')).
    """
    mean, log_std, log_weights = actor(batch.next_obs)
    c = (log_weights - torch.empty_like(log_weights).exponential_().log()).argmax(0)  # c ~ psi(s'): Gumbel-max
    mean, log_std = pick(mean, c), pick(log_std, c)  # (B, act)
    u = mean + log_std.exp() * torch.randn_like(mean)
    log_prob = expert_log_prob(u[None], mean[None], log_std[None])[0]
    next_v = qf_target(batch.next_obs, torch.tanh(u)).min(0).values - alpha * log_prob
    return batch.rewards + gamma * (1 - batch.terminated) * next_v


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Target networks trail the trained ones: target <- (1 - tau) target + tau source (TD3, SAC)."""
    # A plain loop is cheap: each ensemble keeps a whole layer of all its members in one tensor.
    for target_param, param in zip(target.parameters(), source.parameters()):
        target_param.lerp_(param, tau)


def train_step(
    actor, qf, qf_target, log_alpha, actor_optimizer, q_optimizer, alpha_optimizer, batch: Batch, args: Args
) -> dict:
    """One PMOE-SAC gradient step: critics, experts and routing function, entropy coefficient, target critics.

    log_alpha is a scalar tensor (requires_grad with --autotune); alpha_optimizer is None for a fixed
    alpha. Uses args.gamma and args.tau; the target entropy is -|A| = -batch.actions.shape[1].
    Returns detached diagnostics (no host sync).
    """
    alpha = log_alpha.detach().exp()
    q = qf(batch.obs, batch.actions)  # (2, B)
    y = pmoe_td_target(actor, qf_target, batch, alpha, args.gamma)
    qf_loss = (q - y).pow(2).mean(1).sum()
    q_optimizer.zero_grad(set_to_none=True)
    qf_loss.backward()
    q_optimizer.step()

    loss, stats = pmoe_actor_loss(actor, qf, batch.obs, alpha)
    actor_optimizer.zero_grad(set_to_none=True)
    loss.backward()
    actor_optimizer.step()
    stats |= {
        "losses/qf_loss": qf_loss.detach(),
        "losses/qf1_values": q[0].detach().mean(),
        "losses/qf2_values": q[1].detach().mean(),
        "losses/actor_loss": loss.detach(),
        "losses/alpha": alpha,
    }

    if alpha_optimizer is not None:
        # SAC's temperature loss on the trained experts' entropy ([C]): alpha falls while H > -|A|.
        alpha_loss = log_alpha * (stats["charts/expert_entropy"] + batch.actions.shape[1])
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


@torch.no_grad()
def greedy_expert_action(actor: MixtureOfExperts, qf: TwinQ, obs: torch.Tensor) -> torch.Tensor:
    """The greedy action: tanh of the mean of the expert with the highest Q1 (every mixture here evaluates so).

    obs (B, obs) -> actions (B, act) in the [-1, 1] scale. An argmax, not a sample: it draws from no random
    stream, so evaluating more or less often cannot change a training run.
    """
    actions = torch.tanh(actor(obs)[0])  # (K, B, act)
    return pick(actions, qf(obs, actions, members=1)[0].argmax(0))


def evaluate(actor: MixtureOfExperts, qf: TwinQ, env: gym.Env, episodes: int, device: torch.device, seed: int):
    """Returns of the greedy action (see greedy_expert_action), no sampling; episode i starts from seed + i.

    The post-training performance of the paper's Table 1.
    """
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)  # the same start states at every evaluation
        done, total = False, 0.0
        while not done:
            obs = torch.as_tensor(obs, dtype=torch.float32, device=device)
            action = greedy_expert_action(actor, qf, obs[None])[0].cpu().numpy()
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
    """Train PMOE (SAC for K = 1); returns the run directory."""
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
    actor = MixtureOfExperts(args.n_experts, obs_dim, act_dim, args.net_arch).to(device)
    qf = TwinQ(obs_dim, act_dim, args.net_arch).to(device)
    qf_target = TwinQ(obs_dim, act_dim, args.net_arch).to(device)
    qf_target.load_state_dict(qf.state_dict())
    log_alpha = torch.tensor(math.log(args.ent_coef), device=device, requires_grad=args.autotune)
    actor_optimizer = torch.optim.Adam(actor.parameters(), lr=args.learning_rate, fused=True)
    q_optimizer = torch.optim.Adam(qf.parameters(), lr=args.learning_rate, fused=True)
    alpha_optimizer = torch.optim.Adam([log_alpha], lr=args.learning_rate, fused=True) if args.autotune else None
    rb = ReplayBuffer(args.buffer_size, obs_dim, act_dim, device)
    trained = {"actor": actor, "qf": qf, "qf_target": qf_target, "actor_optimizer": actor_optimizer}
    trained |= {"q_optimizer": q_optimizer, "rb": rb}
    if alpha_optimizer is not None:
        trained["alpha_optimizer"] = alpha_optimizer

    recent_returns = deque(maxlen=10)
    stats, last_checkpoint = {}, 0
    if checkpoint:
        for name, part in trained.items():
            part.load_state_dict(checkpoint[name])
        with torch.no_grad():
            log_alpha.copy_(checkpoint["log_alpha"])
        stats = {tag: value.to(device) for tag, value in checkpoint["stats"].items()}
        recent_returns.extend(checkpoint["recent_returns"])
        last_checkpoint = checkpoint["last_checkpoint"]
        restore_random_states(checkpoint["random"], [env])
        obs, _ = env.reset()  # no seed: it draws from the restored env generator
        start_step = checkpoint["step"] + 1
    else:
        obs, _ = env.reset(seed=args.seed)
        start_step = 1

    def everything(step: int) -> dict:
        """What the loop carries from one step to the next, for checkpoint.pt."""
        state = {name: part.state_dict() for name, part in trained.items()}
        state |= {"log_alpha": log_alpha.detach().cpu(), "stats": {tag: value.cpu() for tag, value in stats.items()}}
        state |= {"recent_returns": list(recent_returns), "last_checkpoint": step, "step": step}
        return state | {"random": random_states([env]), "args": asdict(args)}

    start_time = last_print = time.time()
    with StopSignal() as stop:
        for global_step in range(start_step, args.total_timesteps + 1):
            # Act: before learning_starts uniformly at random, then expert c ~ psi(s) and a ~ pi_c(.|s).
            if global_step <= args.learning_starts:
                action = from_env_action(env.action_space.sample(), env.action_space)
            else:
                with torch.no_grad():
                    u = sample_mixture(*actor(torch.as_tensor(obs, dtype=torch.float32, device=device)[None]))
                action = torch.tanh(u)[0].cpu().numpy()
            next_obs, reward, terminated, truncated, info = env.step(to_env_action(action, env.action_space))
            rb.add(obs, action, reward, next_obs, terminated)  # d = terminated: bootstrap through time limits
            obs = next_obs
            episode_over = terminated or truncated
            if episode_over:
                recent_returns.append(float(info["episode"]["r"]))
                writer.add_scalar("charts/episodic_return", info["episode"]["r"], global_step)
                writer.add_scalar("charts/episodic_length", info["episode"]["l"], global_step)

            if global_step > args.learning_starts:  # one gradient step per env step (SAC's schedule, [C]'s)
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
    actor = MixtureOfExperts(run.n_experts, obs_dim, act_dim, run.net_arch).to(device)
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
    main(tyro.cli(Args, description=__doc__))  # --help shows where each choice comes from, deviations included
