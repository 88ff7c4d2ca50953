"""SACM: Soft Actor-Critic with a Gaussian-mixture actor (Baram et al., 2021); K = 1 is plain SAC.

The stochastic-gradient counterpart of Gamid (Dey & Sharon, TMLR): the actor is a tanh-squashed
mixture of K Gaussians with per-state means and log-stds, trained by marginalized
reparameterization on the exact mixture log-density, with twin critics and automatic entropy
tuning (SPEC §7). Same logging, evaluation and CLI as gamid_continuous_action.py; presets are the
paper's Table 6 (SAC, --n-components 1) and Table 7 (SACM).

    python sacm_baseline.py --env-id Walker2d-v3                    # SACM, K = 3
    python sacm_baseline.py --env-id Walker2d-v3 --n-components 1   # SAC
"""

import json
import math
import os
import random
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
    """environment id; the paper's -v3 ids run on -v4 (SPEC §3)"""
    n_components: int = 3
    """number of Gaussians K (Table 7); 1 is plain SAC and selects the Table 6 preset"""
    learn_weights: bool = False
    """learn state-dependent mixing weights (otherwise uniform, as Baram et al.)"""
    total_timesteps: Optional[int] = None
    """total environment steps (preset: Table 6)"""
    learning_rate: Optional[float] = None
    """Adam learning rate of actor, critics and entropy coefficient (preset: Table 6/7)"""
    buffer_size: int = 1_000_000
    """replay buffer capacity"""
    gamma: Optional[float] = None
    """discount factor (preset: Table 6)"""
    tau: float = 0.05
    """Polyak rate of the target critics (Tables 6 and 7 print 0.05, 10x SB3's default 0.005)"""
    batch_size: Optional[int] = None
    """minibatch size (preset: 256, SB3's SAC default; Tables 6 and 7 print none)"""
    learning_starts: int = 10_000
    """uniform random actions and no updates before this step (Tables 6 and 7)"""
    train_freq: Optional[Literal["step", "episode"]] = None
    """train after every env step, or at the end of every episode (preset: Table 6/7)"""
    gradient_steps: Optional[int] = None
    """gradient steps per training round; -1 = as many as env steps collected (preset: Table 6/7)"""
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


# Paper presets: Table 6 (SAC, K = 1) and Table 7 (SACM, K > 1). learning_starts 1e4, tau 0.05 and
# 256x256 nets are common to all six tasks and live in Args. Neither table prints batch_size or
# train_freq, Table 7 not n_timesteps or gamma either: batch 256 and per-step training are SB3's SAC
# defaults, total and gamma are Table 6's (= Table 3's). Table 7's gradient_steps -1 is read with
# train_freq (1, "episode") as in Table 3 (SPEC §5). Other Box envs get the GENERIC row.
PRESET_FIELDS = ("total_timesteps", "learning_rate", "batch_size", "gamma", "train_freq", "gradient_steps")
SAC_PRESETS = {  # total      lr    batch  gamma   train_freq grad
    "Swimmer":     (1_000_000, 3e-4, 256, 0.9999, "step",      1),
    "HalfCheetah": (1_000_000, 3e-4, 256, 0.99,   "step",      1),
    "Hopper":      (1_000_000, 3e-4, 256, 0.99,   "step",      1),
    "Ant":         (1_000_000, 3e-4, 256, 0.99,   "step",      1),
    "Walker2d":    (1_000_000, 3e-4, 256, 0.99,   "step",      1),
    "Humanoid":    (2_000_000, 3e-4, 256, 0.99,   "step",      1),
}
SACM_PRESETS = {
    "Swimmer":     (1_000_000, 6e-4, 256, 0.9999, "step",      1),
    "HalfCheetah": (1_000_000, 3e-4, 256, 0.99,   "episode",  -1),
    "Hopper":      (1_000_000, 3e-4, 256, 0.99,   "step",      1),
    "Ant":         (1_000_000, 3e-4, 256, 0.99,   "episode",  -1),
    "Walker2d":    (1_000_000, 3e-4, 256, 0.99,   "episode",  -1),
    "Humanoid":    (2_000_000, 3e-4, 256, 0.99,   "step",      1),
}
GENERIC = (1_000_000, 3e-4, 256, 0.99, "step", 1)
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SB3's SAC clamp (the paper's baselines are SB3)


def resolve_env_id(env_id: str) -> str:
    """Map the paper's -v3 ids (mujoco-py, no longer installable) to -v4; reject unknown ids."""
    task, _, version = env_id.rpartition("-")
    if task in SAC_PRESETS and version == "v3":
        print(f"{env_id} needs mujoco-py, which no longer installs; running {task}-v4 (same model, reward and observations).")
        return f"{task}-v4"
    if env_id not in gym.registry:
        supported = ", ".join(f"{t}-v3/-v4/-v5" for t in SAC_PRESETS)
        raise SystemExit(f"Unknown env id '{env_id}'; supported paper tasks are {supported} (other registered Box-action envs also run).")
    return env_id


def resolve_args(args: Args) -> Args:
    """Fill every field left unset from the paper preset of the task and K, then check the values (SPEC §5, §10)."""
    args.env_id = resolve_env_id(args.env_id)
    if args.n_components < 1:
        raise SystemExit(f"--n-components must be at least 1, got {args.n_components}.")
    task = args.env_id.rpartition("-")[0]
    table, presets = ("Table 6 (SAC)", SAC_PRESETS) if args.n_components == 1 else ("Table 7 (SACM)", SACM_PRESETS)
    if task in presets:
        print(f"{args.env_id} with K = {args.n_components}: unset hyperparameters from the paper's {table}.")
    else:
        print(f"{args.env_id} is not one of the paper's tasks; unset hyperparameters use the generic preset.")
    for field, value in zip(PRESET_FIELDS, presets.get(task, GENERIC)):
        if getattr(args, field) is None:
            setattr(args, field, value)
    problems = [
        (args.batch_size > args.buffer_size, f"--batch-size {args.batch_size} is larger than --buffer-size {args.buffer_size}."),
        (args.total_timesteps <= args.learning_starts,
         f"--total-timesteps {args.total_timesteps} must exceed --learning-starts {args.learning_starts}, or nothing is trained."),
        (args.gradient_steps == 0 or args.gradient_steps < -1, "--gradient-steps must be positive, or -1 for one per env step."),
        (not 0 < args.tau <= 1, f"--tau must lie in (0, 1], got {args.tau}."),
        (args.ent_coef <= 0, f"--ent-coef must be positive, got {args.ent_coef}."),
        (min(args.batch_size, args.eval_freq, args.eval_episodes, args.log_freq) < 1,
         "--batch-size, --eval-freq, --eval-episodes and --log-freq must be positive."),
    ]
    for failed, sentence in problems:
        if failed:
            raise SystemExit(sentence)
    return args


class EnsembleMLP(nn.Module):
    """`n` independent ReLU MLPs evaluated together: one batched matmul per layer (SPEC §11).

    Input (n, B, in) or (1, B, in) broadcast to every member; output (n, B, out). Each member is
    initialised like nn.Linear. `members=m` evaluates only the first m.
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


class MixtureActor(nn.Module):
    """pi(.|s): a mixture of K Gaussians squashed by tanh into the [-1, 1] action scale.

    One ReLU trunk and one linear head for all K means, K log-stds and, with `learn_weights`, K
    mixing logits. Without them the weights are uniform, 1/K (Baram et al.).
    """

    def __init__(self, n_components: int, obs_dim: int, act_dim: int, hidden: tuple[int, ...], learn_weights: bool = False):
        super().__init__()
        self.k, self.act_dim, self.learn_weights = n_components, act_dim, learn_weights
        dims = (obs_dim, *hidden)
        self.trunk = nn.Sequential(*[layer for i, o in zip(dims, dims[1:]) for layer in (nn.Linear(i, o), nn.ReLU(inplace=True))])
        self.head = nn.Linear(dims[-1], n_components * (2 * act_dim + int(learn_weights)))

    def forward(self, obs: torch.Tensor):
        """(B, obs) -> means (K, B, act), log-stds (K, B, act), log mixing weights (K, B), before the tanh."""
        out = self.head(self.trunk(obs)).view(obs.shape[0], self.k, -1).transpose(0, 1)
        mean, log_std = out[..., : self.act_dim], out[..., self.act_dim : 2 * self.act_dim].clamp(LOG_STD_MIN, LOG_STD_MAX)
        log_weights = out[..., -1].log_softmax(0) if self.learn_weights else mean.new_full(mean.shape[:2], -math.log(self.k))
        return mean, log_std, log_weights


class TwinQ(nn.Module):
    """SAC's two critics as one two-member ensemble."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.net = EnsembleMLP(2, obs_dim + act_dim, 1, hidden)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, members: int = 2) -> torch.Tensor:
        """Q_k(s, a) for k < members. actions (..., B, act) may carry a leading component axis; -> (members, ..., B)."""
        x = torch.cat([obs.expand(*actions.shape[:-1], -1), actions], dim=-1)
        return self.net(x.reshape(1, -1, x.shape[-1]), members).view(members, *actions.shape[:-1])


def mixture_log_prob(u: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor, log_weights: torch.Tensor) -> torch.Tensor:
    """Exact log pi(tanh(u)|s) of the squashed mixture, from the pre-squash sample u = atanh(a) (SPEC §7).

    u (..., B, act) with any leading axes; mean, log_std (K, B, act); log_weights (K, B) -> (..., B).
    logsumexp_j(log w_j + log N(u; mu_j, sigma_j)) - sum_d log(1 - tanh(u_d)^2), the last term in the
    overflow-free form 2 (log 2 - u - softplus(-2u)).
    """
    z = (u.unsqueeze(-3) - mean) / log_std.exp()  # (..., K, B, act)
    log_normal = (-0.5 * z.pow(2) - log_std).sum(-1) - 0.5 * math.log(2 * math.pi) * u.shape[-1]
    log_det = (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
    return torch.logsumexp(log_weights + log_normal, dim=-2) - log_det


def sample_mixture(mean: torch.Tensor, log_std: torch.Tensor, log_weights: torch.Tensor, greedy: bool = False) -> torch.Tensor:
    """A pre-squash action u (B, act) per state: component c ~ Categorical(w), u = mu_c + sigma_c eps.

    The component is drawn by the Gumbel-max trick (no host sync). greedy: the mean of the most
    probable component (ties, as with uniform weights, go to the lowest index), no sampling.
    """
    if greedy:
        scores, u = log_weights, mean
    else:
        scores = log_weights - torch.empty_like(log_weights).exponential_().log()
        u = mean + log_std.exp() * torch.randn_like(mean)
    c = scores.argmax(0)  # (B,)
    return u.gather(0, c[None, :, None].expand(1, -1, u.shape[-1]))[0]


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
    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor


class ReplayBuffer:
    """FIFO of transitions as tensors on the training device. Actions are stored in the [-1, 1] scale."""

    def __init__(self, size: int, obs_dim: int, act_dim: int, device: torch.device):
        self.size, self.pos, self.full, self.device = size, 0, False, device
        self.obs = torch.zeros(size, obs_dim, device=device)
        self.next_obs = torch.zeros(size, obs_dim, device=device)
        self.actions = torch.zeros(size, act_dim, device=device)
        self.rewards = torch.zeros(size, device=device)
        self.terminated = torch.zeros(size, device=device)

    def add(self, obs, action, reward, next_obs, terminated):
        for store, value in ((self.obs, obs), (self.actions, action), (self.rewards, reward),
                             (self.next_obs, next_obs), (self.terminated, terminated)):
            store[self.pos] = torch.as_tensor(value, dtype=torch.float32)
        self.pos = (self.pos + 1) % self.size
        self.full = self.full or self.pos == 0

    def sample(self, batch_size: int) -> Batch:
        idx = torch.randint(0, self.size if self.full else self.pos, (batch_size,), device=self.device)
        return Batch(self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx], self.terminated[idx])


@torch.no_grad()
def td_target(actor: MixtureActor, qf_target: TwinQ, batch: Batch, alpha: torch.Tensor, gamma: float) -> torch.Tensor:
    """Soft target with a' sampled from the mixture: y = r + gamma (1 - d) (min_k Q_targ,k(s', a') - alpha log pi(a'|s'))."""
    mean, log_std, log_weights = actor(batch.next_obs)
    u = sample_mixture(mean, log_std, log_weights)
    next_v = qf_target(batch.next_obs, torch.tanh(u)).min(0).values - alpha * mixture_log_prob(u, mean, log_std, log_weights)
    return batch.rewards + gamma * (1 - batch.terminated) * next_v


def train_step(actor, qf, qf_target, log_alpha, actor_optimizer, q_optimizer, alpha_optimizer, batch: Batch, args: Args) -> dict:
    """One SAC(M) gradient step: critics, actor, entropy coefficient, then Polyak averaging of the critics.

    log_alpha is a scalar tensor (requires_grad with --autotune); alpha_optimizer is None for a fixed
    alpha. Uses args.gamma and args.tau; the target entropy is -|A| = -batch.actions.shape[1].
    Returns detached diagnostics (no host sync).
    """
    alpha = log_alpha.detach().exp()
    q = qf(batch.obs, batch.actions)  # (2, B)
    qf_loss = (q - td_target(actor, qf_target, batch, alpha, args.gamma)).pow(2).mean(1).sum()
    q_optimizer.zero_grad(set_to_none=True)
    qf_loss.backward()
    q_optimizer.step()

    loss, entropy, weights, stds = actor_loss(actor, qf, batch.obs, alpha)
    actor_optimizer.zero_grad(set_to_none=True)
    loss.backward()
    actor_optimizer.step()
    stats = {"losses/qf_loss": qf_loss.detach(), "losses/qf1_values": q[0].detach().mean(),
             "losses/qf2_values": q[1].detach().mean(), "losses/actor_loss": loss.detach(),
             "losses/alpha": alpha, "charts/entropy": entropy}
    stats |= {f"charts/component_{i}/weight": w for i, w in enumerate(weights.mean(1).unbind())}
    stats |= {f"charts/component_{i}/std": s for i, s in enumerate(stds.mean((1, 2)).unbind())}

    if alpha_optimizer is not None:
        # SAC's temperature loss with the mixture entropy estimate: alpha falls while H > -|A|.
        alpha_loss = log_alpha * (entropy + batch.actions.shape[1])
        alpha_optimizer.zero_grad(set_to_none=True)
        alpha_loss.backward()
        alpha_optimizer.step()
        stats["losses/alpha_loss"] = alpha_loss.detach()

    with torch.no_grad():  # targ <- (1 - tau) targ + tau main; SAC has no target actor
        torch._foreach_lerp_(list(qf_target.parameters()), list(qf.parameters()), args.tau)
    return stats


def to_env_action(action: np.ndarray, space: gym.spaces.Box) -> np.ndarray:
    return space.low + (action + 1) * 0.5 * (space.high - space.low)


def from_env_action(action: np.ndarray, space: gym.spaces.Box) -> np.ndarray:
    return 2 * (action - space.low) / (space.high - space.low) - 1


@torch.no_grad()
def policy_action(actor: MixtureActor, obs: np.ndarray, device: torch.device, greedy: bool = False) -> np.ndarray:
    """One action in the [-1, 1] scale for one observation: a mixture sample, or greedy (see sample_mixture)."""
    u = sample_mixture(*actor(torch.as_tensor(obs, dtype=torch.float32, device=device)[None]), greedy=greedy)
    return torch.tanh(u)[0].cpu().numpy()


def evaluate(actor: MixtureActor, env: gym.Env, episodes: int, device: torch.device, seed: int) -> list[float]:
    """Returns of the greedy action, tanh of the mean of the most probable component; episode i starts from seed + i."""
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)  # the same start states at every evaluation
        done, total = False, 0.0
        while not done:
            action = policy_action(actor, obs, device, greedy=True)
            obs, reward, terminated, truncated, _ = env.step(to_env_action(action, env.action_space))
            done, total = terminated or truncated, total + float(reward)
        returns.append(total)
    return returns


def make_env(env_id: str, seed: int, video_dir: Optional[str] = None) -> gym.Env:
    """A single env (no vector env: episode boundaries stay explicit, so none can leak into the buffer)."""
    env = gym.make(env_id, render_mode="rgb_array" if video_dir else None)
    if not isinstance(env.action_space, gym.spaces.Box):
        raise SystemExit(f"{env_id} has a {type(env.action_space).__name__} action space; SAC(M) needs a continuous (Box) one.")
    if not isinstance(env.observation_space, gym.spaces.Box):
        raise SystemExit(f"{env_id} has a {type(env.observation_space).__name__} observation space; this script needs a flat Box.")
    if video_dir:
        env = gym.wrappers.RecordVideo(env, video_dir, episode_trigger=lambda episode: True, disable_logger=True)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    env.action_space.seed(seed)
    return env


def main(args: Args) -> str:
    """Train SACM (SAC for K = 1); returns the run directory."""
    args = resolve_args(args)
    run_name = f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    run_dir = os.path.join(args.runs_dir, run_name)
    env = make_env(args.env_id, args.seed)
    eval_env = make_env(args.env_id, args.seed, os.path.join(run_dir, "videos") if args.capture_video else None)

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    writer = SummaryWriter(run_dir)
    hyperparameters = asdict(args)
    writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in hyperparameters.items()))
    with open(os.path.join(run_dir, "hyperparameters.json"), "w") as f:
        json.dump(hyperparameters, f, indent=2)
    print("hyperparameters: " + ", ".join(f"{k}={v}" for k, v in hyperparameters.items()))

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

    recent_returns = deque(maxlen=10)
    stats, episode_steps = {}, 0
    start_time = last_print = time.time()
    obs, _ = env.reset(seed=args.seed)
    for global_step in range(1, args.total_timesteps + 1):
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
            obs, _ = env.reset()

        # Train per env step or, as SB3's train_freq=(1, "episode"), at each episode's end.
        if global_step > args.learning_starts and (args.train_freq == "step" or episode_over):
            n_steps = args.gradient_steps if args.gradient_steps > 0 else (1 if args.train_freq == "step" else episode_steps)
            for _ in range(n_steps):
                stats |= train_step(actor, qf, qf_target, log_alpha, actor_optimizer, q_optimizer, alpha_optimizer,
                                    rb.sample(args.batch_size), args)
        if episode_over:
            episode_steps = 0

        if global_step % args.log_freq == 0 and stats:
            values = {tag: value.item() for tag, value in stats.items()}
            bad = [tag for tag, value in values.items() if not np.isfinite(value)]
            if bad:
                writer.close()
                raise SystemExit(f"{bad[0]} is {values[bad[0]]} at step {global_step}; stopping (logs kept in {run_dir}).")
            for tag, value in values.items():
                writer.add_scalar(tag, value, global_step)
            writer.add_scalar("charts/SPS", global_step / (time.time() - start_time), global_step)
        if time.time() - last_print > 5:
            last_print = time.time()
            recent = f"{np.mean(recent_returns):.1f}" if recent_returns else "n/a"
            print(f"step {global_step}, SPS {global_step / (last_print - start_time):.0f}, recent return {recent}")

        if global_step % args.eval_freq == 0 or global_step == args.total_timesteps:
            returns = evaluate(actor, eval_env, args.eval_episodes, device, seed=args.seed + 10_000)
            writer.add_scalar("eval/episodic_return", np.mean(returns), global_step)
            print(f"step {global_step}, eval return {np.mean(returns):.1f} +- {np.std(returns):.1f}")

    if args.save_model:
        path = os.path.join(run_dir, f"{args.exp_name}.model")
        torch.save({"actor": actor.state_dict(), "qf": qf.state_dict(), "log_alpha": log_alpha.detach().cpu(),
                    "args": asdict(args)}, path)
        print(f"model saved to {path}")
    env.close()
    eval_env.close()
    writer.close()
    return run_dir


if __name__ == "__main__":
    main(tyro.cli(Args))
