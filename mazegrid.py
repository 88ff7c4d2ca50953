"""MazeGrid (`MazeGrid-v0`, registered on import) and the G2 experiment of Gamid-PG (paper §4.2, Figure 3).

Deterministic vs stochastic GMM policy gradients on a sparse-reward maze (Appendix A, Figure 7): a compact Gamid
(Algorithm 1 on TD3, as gamid_continuous_action.py) against SACM (as sacm_baseline.py), --algo gamid | sacm | both,
each over --num-seeds seeds. The paper (§4.2): SACM is more sample-efficient here; ours: docs/toy-experiments.md."""

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import NamedTuple, Optional

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from matplotlib.figure import Figure
from torch.utils.tensorboard import SummaryWriter

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SB3's SAC clamp, as in sacm_baseline.py
HEATMAP_BINS = 100


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]  # the name of this experiment
    algo: str = "both"  # which learner(s) to train: gamid, sacm or both
    seed: int = 1  # seed of the first run; run k uses seed + k
    num_seeds: int = 5  # runs (seeds) per learner (Figure 3 averages five)
    total_timesteps: int = 20000  # environment steps per run (the paper gives no budget for MazeGrid)
    learning_starts: int = 1000  # uniform random actions and no updates before this step
    buffer_size: int = 100000  # replay buffer capacity
    batch_size: int = 128  # minibatch size of each gradient step (128 rather than 256 to keep the default run short)
    learning_rate: float = 1e-3  # Adam learning rate of actors, critics and the entropy coefficient
    gamma: float = 0.99  # discount factor
    tau: float = 0.005  # Polyak rate of the target networks
    net_arch: tuple[int, ...] = (64, 64)  # hidden layer sizes of every network
    eval_freq: int = 1000  # steps between greedy evaluations (one episode: start and policy are deterministic)
    # Gamid's N, temperature and epsilon schedules: Table 5's FetchPush column, the paper's sparse-reward setting.
    n_actors: int = 4  # Gamid: number of Gaussians N
    noise_std: float = 0.1  # Gamid: std sigma of the shared Gaussian (exploration noise)
    policy_noise: float = 0.2  # Gamid: std of TD3's target policy smoothing noise
    noise_clip: float = 0.5  # Gamid: clip of the target policy smoothing noise
    policy_delay: int = 2  # Gamid: actor and target updates every this many gradient steps (TD3)
    temperature_initial: float = 0.3  # Gamid: policy divergence temperature at the start
    temperature_final: float = 0.1  # Gamid: temperature after the decay
    temperature_fraction: float = 1.0  # Gamid: fraction of total_timesteps over which the temperature decays linearly
    epsilon_initial: float = 0.1  # Gamid: epsilon of the epsilon-greedy mixture weights at the start
    epsilon_final: float = 0.01  # Gamid: epsilon after the decay
    epsilon_fraction: float = 1.0  # Gamid: fraction of total_timesteps over which epsilon decays linearly
    n_components: int = 3  # SACM: number of mixture components K (K = 1 is SAC)
    cuda: bool = False  # use a GPU if one is present (off by default: these networks are tiny and faster on CPU)
    runs_dir: str = "runs"  # parent folder of the run folder


def linear_schedule(initial: float, final: float, fraction: float, total: int, step: int) -> float:
    """Linear decay from `initial` to `final` over the first `fraction` of `total` steps, then constant."""
    progress = min(step / (fraction * total), 1.0) if fraction > 0 else 1.0
    return initial + progress * (final - initial)


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Target networks trail the trained ones: target <- (1 - tau) target + tau source (TD3, SAC)."""
    for target_param, param in zip(target.parameters(), source.parameters()):
        target_param.lerp_(param, tau)


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


def mixture_log_prob(u, mean, log_std, log_weights) -> torch.Tensor:
    """Exact log pi(tanh(u)|s) of the squashed mixture: u (..., B, act), mean, log_std (K, B, act), log_weights (K, B).
    logsumexp_j(log w_j + log N(u; mu_j, sigma_j)) - sum_d log(1 - tanh(u_d)^2), overflow-free -> (..., B)."""
    z = (u.unsqueeze(-3) - mean) / log_std.exp()  # (..., K, B, act)
    log_normal = (-0.5 * z.pow(2) - log_std).sum(-1) - 0.5 * math.log(2 * math.pi) * u.shape[-1]
    log_det = (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
    return torch.logsumexp(log_weights + log_normal, dim=-2) - log_det


Batch = NamedTuple("Batch", [(name, torch.Tensor) for name in ("obs", "actions", "rewards", "next_obs", "terminated")])


class ReplayBuffer:
    """FIFO of transitions as tensors on the training device. Actions are stored in the [-1, 1] scale."""

    def __init__(self, size: int, obs_dim: int, act_dim: int, device: torch.device):
        self.size, self.pos, self.full, self.device = size, 0, False, device  # pos: where the next transition goes
        for name, shape in zip(Batch._fields, ((obs_dim,), (act_dim,), (), (obs_dim,), ())):
            setattr(self, name, torch.zeros(size, *shape, device=device))

    def add(self, obs, action, reward, next_obs, terminated):
        for name, value in zip(Batch._fields, (obs, action, reward, next_obs, terminated)):
            getattr(self, name)[self.pos] = torch.as_tensor(value, dtype=torch.float32)
        self.pos, self.full = (self.pos + 1) % self.size, self.full or self.pos + 1 == self.size

    def sample(self, batch_size: int) -> Batch:
        idx = torch.randint(0, self.size if self.full else self.pos, (batch_size,), device=self.device)
        return Batch(*(getattr(self, name)[idx] for name in Batch._fields))

    def state_dict(self) -> dict:  # pos and the filled part, copied out (torch.save writes a slice's whole storage)
        stored = {name: getattr(self, name) for name in Batch._fields}
        filled = stored if self.full else {name: data[: self.pos].clone() for name, data in stored.items()}
        return {"pos": self.pos, "full": self.full, **filled}

    def load_state_dict(self, state: dict) -> None:
        self.pos, self.full = state["pos"], state["full"]
        for name in Batch._fields:
            getattr(self, name)[: len(state[name])] = state[name]


# MazeGrid (Appendix A, Figure 7). The paper shows the maze but gives no sizes: these numbers are this file's choice.
ARENA = 5.0  # half-width of the arena [-5, 5]^2
WALL_LINES = (-5.0, -3.0, -1.0, 1.0, 3.0, 5.0)  # borders of the 5 x 5 grid of 2 x 2 cells; +-5 is the outer wall
GAP = 0.4  # width of the passage centred in each inner wall segment
STEP_SCALE = 0.5  # action (dx, dy) in [-1, 1]^2 moves the agent by STEP_SCALE * (dx, dy)
BACKOFF = 0.01  # a blocked move stops this far (along the move) before the wall
AGENT_RADIUS = 0.25  # in render()
OPTIMAL_CELL, OPTIMAL_REWARD = (4, 4), 1.0  # top-right corner cell
SUBOPTIMAL_CELL, SUBOPTIMAL_REWARD = (3, 2), 0.1  # the cell right of the start


def in_gap(coord):
    """Whether a point on a wall line lies in a passage: gaps are centred on the cell centres (even numbers)."""
    return np.abs(coord - 2.0 * np.round(coord / 2.0)) <= GAP / 2


def first_wall_hit(start, delta):
    """Fraction t of the move start -> start + delta at which it first touches a wall (the cell borders minus the
    gaps; the agent may rest on a border only inside a gap), or None if it touches none."""
    hit = None
    for axis, along in ((0, 1), (1, 0)):
        for line in WALL_LINES:
            s, e = start[axis] - line, start[axis] + delta[axis] - line
            if s != 0 and s * e <= 0:  # the move reaches or crosses this border
                t = s / (s - e)
                if abs(line) < ARENA and in_gap(start[along] + t * delta[along]):
                    continue
            elif s == 0 and e == 0 and not in_gap(start[along] + delta[along]):  # slides along it out of a gap
                edge = 2.0 * np.round(start[along] / 2.0) + math.copysign(GAP / 2, delta[along])
                t = (edge - start[along]) / delta[along]
            else:
                continue
            hit = t if hit is None else min(hit, t)
    return hit


class MazeGridEnv(gym.Env):
    """Start at (0, 0); a move into a wall stops just short of it. The optimal cell gives 1, the suboptimal 0.1, both
    ending the episode; the time limit truncates it. Observation: position / 5, action: (dx, dy); each in [-1, 1]^2."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode="rgb_array", max_episode_steps=100, pixels_per_unit=24):
        self.render_mode, self.max_episode_steps, self.pixels_per_unit = render_mode, max_episode_steps, pixels_per_unit
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.pos, self.steps = None, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.steps = np.zeros(2), 0
        return (self.pos / ARENA).astype(np.float32), {}

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (2,) or not np.all(np.isfinite(action)):
            raise ValueError(f"The action must be two finite numbers (dx, dy), not {action!r}.")
        delta = STEP_SCALE * np.clip(action, -1.0, 1.0)
        hit = first_wall_hit(self.pos, delta)
        if hit is not None:  # stop just short of the wall
            hit = max(0.0, hit - BACKOFF / np.linalg.norm(delta))
        self.pos = self.pos + (1.0 if hit is None else hit) * delta
        self.steps += 1
        cell = tuple(int(min(4, max(0, (p + ARENA) // 2))) for p in self.pos)  # (column, row); borders go up/right
        reward = OPTIMAL_REWARD if cell == OPTIMAL_CELL else SUBOPTIMAL_REWARD if cell == SUBOPTIMAL_CELL else 0.0
        terminated = reward > 0
        truncated = not terminated and self.steps >= self.max_episode_steps
        info = {"is_success": cell == OPTIMAL_CELL, "is_suboptimal": cell == SUBOPTIMAL_CELL}
        return (self.pos / ARENA).astype(np.float32), reward, terminated, truncated, info

    def render(self):
        """RGB image (H, W, 3): passages white, walls black, optimal goal green, suboptimal goal orange, agent red."""
        ppu, size = self.pixels_per_unit, int(2 * ARENA * self.pixels_per_unit)
        coords = (np.arange(size) + 0.5) / ppu - ARENA
        x, y = coords[None, :], -coords[:, None]  # image row 0 is the top (y = 5)
        image = np.full((size, size, 3), 255, dtype=np.uint8)
        for cell, color in ((OPTIMAL_CELL, (60, 180, 75)), (SUBOPTIMAL_CELL, (245, 160, 50))):
            x0, y0 = 2 * cell[0] - ARENA, 2 * cell[1] - ARENA
            image[(x >= x0) & (x < x0 + 2) & (y >= y0) & (y < y0 + 2)] = color
        half_width = 1.5 / ppu  # walls about 3 pixels thick
        for line in WALL_LINES:
            outer = abs(line) == ARENA
            image[(np.abs(x - line) <= half_width) & (outer | ~in_gap(y))] = 0
            image[(np.abs(y - line) <= half_width) & (outer | ~in_gap(x))] = 0
        if self.pos is not None:
            image[(x - self.pos[0]) ** 2 + (y - self.pos[1]) ** 2 <= AGENT_RADIUS**2] = (220, 30, 30)
        return image


gym.register(id="MazeGrid-v0", entry_point=MazeGridEnv)


def gradient_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


class Gamid:
    """Algorithm 1 on TD3, as in gamid_continuous_action.py: N Gaussian means, twin critics, one shared sigma."""

    def __init__(self, args: Args, obs_dim: int, act_dim: int, device: torch.device):
        self.args, self.n_updates = args, 0
        self.actor = GaussianMeans(args.n_actors, obs_dim, act_dim, args.net_arch).to(device)
        self.qf = TwinQ(obs_dim, act_dim, args.net_arch).to(device)
        self.actor_target = GaussianMeans(args.n_actors, obs_dim, act_dim, args.net_arch).to(device)
        self.qf_target = TwinQ(obs_dim, act_dim, args.net_arch).to(device)
        self.actor_target.load_state_dict(self.actor.state_dict())  # Alg. 1 line 1
        self.qf_target.load_state_dict(self.qf.state_dict())
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=args.learning_rate)
        self.q_optimizer = torch.optim.Adam(self.qf.parameters(), lr=args.learning_rate)

    def schedules(self, t: int) -> tuple[float, float]:
        """The temperature and epsilon at step t, each decaying linearly (Table 5's FetchPush values by default)."""
        a, n = self.args, self.args.total_timesteps
        temperature = linear_schedule(a.temperature_initial, a.temperature_final, a.temperature_fraction, n, t)
        return temperature, linear_schedule(a.epsilon_initial, a.epsilon_final, a.epsilon_fraction, n, t)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, step: int) -> torch.Tensor:
        """Alg. 1 lines 3-4: n ~ epsilon-greedy weights on Q1(s, mu_i(s)), a = clip(mu_n(s) + N(0, sigma^2 I))."""
        means = self.actor(obs[None])[:, 0]  # (N, act)
        q1 = self.qf(obs, means, members=1)[0]  # (N,)
        n = torch.multinomial(epsilon_greedy_weights(q1, self.schedules(step)[1]), 1).item()
        return (means[n] + self.args.noise_std * torch.randn_like(means[n])).clamp(-1, 1)

    @torch.no_grad()
    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        """The evaluation policy: the mean with the highest Q1, argmax_i Q1(s, mu_i(s)), no noise and no draw."""
        means = self.actor(obs[None])[:, 0]  # (N, act)
        return means[self.qf(obs, means, members=1)[0].argmax()]

    @torch.no_grad()
    def td_target(self, batch: Batch) -> torch.Tensor:
        """Alg. 1 line 10 on TD3: y = r + gamma (1 - d) min_k Q_targ,k(s', a'). The max of line 10 picks the Gaussian
        on the noise-free target means, i* = argmax_i min_k Q_targ,k(s', mu'_i(s')), and TD3's clipped smoothing
        noise goes on that action only (a max over N noisy actions would bias the target up more as N grows)."""
        a = self.args
        next_means = self.actor_target(batch.next_obs)  # (N, B, act)
        best = self.qf_target(batch.next_obs, next_means).min(0).values.argmax(0)  # i* per state, (B,)
        next_action = next_means[best, torch.arange(next_means.shape[1], device=best.device)]  # (B, act)
        noise = (torch.randn_like(next_action) * a.policy_noise).clamp(-a.noise_clip, a.noise_clip)
        next_q = self.qf_target(batch.next_obs, (next_action + noise).clamp(-1, 1)).min(0).values  # (B,)
        return batch.rewards + a.gamma * (1 - batch.terminated) * next_q

    def actor_losses(self, obs: torch.Tensor, temperature: float):
        """Alg. 1 lines 12-14: loss_i = -mean_s Q1(s, mu_i(s)) - temperature mean_s D_var(i); and D_var's means (N,)."""
        means = self.actor(obs)
        self.qf.requires_grad_(False)  # Q1 is a fixed function of the action here: skip its weight gradients
        q1 = self.qf(obs, means, members=1)[0]  # (N, B)
        self.qf.requires_grad_(True)
        diversity = d_var(means).mean(1)
        return -(q1.mean(1) + temperature * diversity), diversity

    def update(self, batch: Batch, step: int) -> dict:
        """One gradient step of Alg. 1 (lines 9-16): critics every step, actor and targets every policy_delay steps."""
        # Line 11: regress both critics on the target y of line 10.
        qf_loss = (self.qf(batch.obs, batch.actions) - self.td_target(batch)).pow(2).mean(1).sum()
        gradient_step(self.q_optimizer, qf_loss)
        stats = {"losses/qf_loss": qf_loss.detach()}
        self.n_updates += 1
        if self.n_updates % self.args.policy_delay == 0:
            # Lines 12-15. Summing the N losses is exact: theta[i] enters only loss_i (mu_j is detached in D_var).
            temperature, epsilon = self.schedules(step)
            losses, diversity = self.actor_losses(batch.obs, temperature)
            gradient_step(self.actor_optimizer, losses.sum())
            # Line 16, as Polyak averaging after each actor update (TD3).
            polyak_update(self.actor_target, self.actor, self.args.tau)
            polyak_update(self.qf_target, self.qf, self.args.tau)
            stats |= {"losses/actor_loss": losses.detach().sum(), "charts/sum_d_var": diversity.detach().sum()}
            stats |= {"charts/temperature": temperature, "charts/epsilon": epsilon}
        return stats


class SACM:
    """SAC with a mixture actor, as in sacm_baseline.py: exact mixture log pi, marginalised reparameterisation."""

    def __init__(self, args: Args, obs_dim: int, act_dim: int, device: torch.device):
        self.args, self.target_entropy = args, -float(act_dim)
        self.actor = MixtureActor(args.n_components, obs_dim, act_dim, args.net_arch).to(device)
        self.qf = TwinQ(obs_dim, act_dim, args.net_arch).to(device)
        self.qf_target = TwinQ(obs_dim, act_dim, args.net_arch).to(device)
        self.qf_target.load_state_dict(self.qf.state_dict())
        self.log_alpha = torch.zeros((), device=device, requires_grad=True)  # alpha starts at 1, as SB3's "auto"
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=args.learning_rate)
        self.q_optimizer = torch.optim.Adam(self.qf.parameters(), lr=args.learning_rate)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=args.learning_rate)

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A pre-squash action u (B, act) per state, c ~ w then u = mu_c + sigma_c xi, and log pi(tanh(u)|s) (B,)."""
        mean, log_std, log_weights = self.actor(obs)
        c = torch.multinomial(log_weights.T.exp(), 1).squeeze(1)  # (B,)
        rows = torch.arange(obs.shape[0], device=obs.device)
        u = mean[c, rows] + log_std[c, rows].exp() * torch.randn_like(mean[0])
        return u, mixture_log_prob(u, mean, log_std, log_weights)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, step: int) -> torch.Tensor:
        return torch.tanh(self.sample(obs[None])[0][0])  # a sample of the squashed mixture

    @torch.no_grad()
    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        """The evaluation policy, as Gamid's: tanh of the component mean with the highest Q1, no draw."""
        means = torch.tanh(self.actor(obs[None])[0][:, 0])  # (K, act)
        return means[self.qf(obs, means, members=1)[0].argmax()]

    @torch.no_grad()
    def td_target(self, batch: Batch, alpha: torch.Tensor) -> torch.Tensor:
        """Soft target, a' ~ pi(.|s'): y = r + gamma (1 - d) (min_k Q_targ,k(s', a') - alpha log pi(a'|s'))."""
        u, log_prob = self.sample(batch.next_obs)
        next_v = self.qf_target(batch.next_obs, torch.tanh(u)).min(0).values - alpha * log_prob
        return batch.rewards + self.args.gamma * (1 - batch.terminated) * next_v

    def actor_loss(self, obs: torch.Tensor, alpha: torch.Tensor):
        """Marginalised reparameterisation (Baram et al.): sum_i w_i mean_s[alpha log pi(a_i|s) - min_k Q_k(s, a_i)],
        a_i = tanh(mu_i + sigma_i xi_i): each component gets gradient. Also: entropy -sum_i w_i mean_s log pi(a_i|s)."""
        mean, log_std, log_weights = self.actor(obs)
        u = mean + log_std.exp() * torch.randn_like(mean)  # (K, B, act)
        log_prob = mixture_log_prob(u, mean, log_std, log_weights)  # (K, B)
        self.qf.requires_grad_(False)  # Q is a fixed function of the action here: skip its weight gradients
        q = self.qf(obs, torch.tanh(u)).min(0).values  # (K, B)
        self.qf.requires_grad_(True)
        weights = log_weights.exp()
        return (weights * (alpha * log_prob - q)).sum(0).mean(), -(weights * log_prob).sum(0).mean().detach()

    def update(self, batch: Batch, step: int) -> dict:
        """One SAC gradient step: critics, actor, entropy coefficient, then Polyak averaging of the critics."""
        alpha = self.log_alpha.detach().exp()
        qf_loss = (self.qf(batch.obs, batch.actions) - self.td_target(batch, alpha)).pow(2).mean(1).sum()
        gradient_step(self.q_optimizer, qf_loss)
        actor_loss, entropy = self.actor_loss(batch.obs, alpha)
        gradient_step(self.actor_optimizer, actor_loss)
        # SAC's temperature loss with the mixture entropy estimate: alpha falls while the entropy exceeds -|A|.
        gradient_step(self.alpha_optimizer, self.log_alpha * (entropy - self.target_entropy))
        polyak_update(self.qf_target, self.qf, self.args.tau)  # SAC has no target actor
        stats = {"losses/qf_loss": qf_loss.detach(), "losses/actor_loss": actor_loss.detach()}
        return stats | {"losses/alpha": alpha, "charts/entropy": entropy}


def resolve_args(a: Args) -> Args:
    """Refuse, in one plain sentence and before anything is written, values that would crash late or train wrong."""
    checks = {
        f"--algo must be gamid, sacm or both, not {a.algo!r}.": a.algo in ("gamid", "sacm", "both"),
        "--num-seeds must be at least 1.": a.num_seeds >= 1,
        "--n-actors must be at least 1.": a.n_actors >= 1,
        "--n-components must be at least 1.": a.n_components >= 1,
        "--total-timesteps must exceed --learning-starts.": a.total_timesteps > a.learning_starts >= 0,
        "--batch-size must lie between 1 and --buffer-size.": 1 <= a.batch_size <= a.buffer_size,
        "--policy-delay must be at least 1.": a.policy_delay >= 1,
        "--learning-rate must be positive.": a.learning_rate > 0,
        "--gamma must lie in [0, 1] and --tau in (0, 1].": 0 <= a.gamma <= 1 and 0 < a.tau <= 1,
        "Temperatures must not be negative.": min(a.temperature_initial, a.temperature_final) >= 0,
        "Epsilons must lie in [0, 1].": all(0 <= e <= 1 for e in (a.epsilon_initial, a.epsilon_final)),
        "Fractions must lie in [0, 1].": all(0 <= f <= 1 for f in (a.temperature_fraction, a.epsilon_fraction)),
    }
    if refused := [sentence for sentence, ok in checks.items() if not ok]:
        raise SystemExit(refused[0])
    return a


def evaluate_greedy(agent, env: MazeGridEnv, device: torch.device) -> tuple[float, float]:
    """One greedy episode (no noise, no random draw): 1.0 if it reaches the optimal goal, else 0.0, and its return."""
    (obs, _), done, episode_return = env.reset(), False, 0.0
    while not done:
        action = agent.greedy(torch.as_tensor(obs, device=device)).cpu().numpy()
        obs, reward, terminated, truncated, info = env.step(action)
        episode_return, done = episode_return + reward, terminated or truncated
    return float(info["is_success"]), episode_return


def run_one_seed(args: Args, algo: str, seed: int, run_dir: str, device: torch.device):
    """One run of one learner: its evaluation curve, rows (step, success, return), and its visited-state counts."""
    writer = SummaryWriter(os.path.join(run_dir, f"{algo}__{seed}"))
    table = "\n".join(f"|{key}|{value}|" for key, value in vars(args).items())
    writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + table)
    torch.manual_seed(seed)  # the only global stream drawn from; the action space has its own
    env, eval_env = MazeGridEnv(), MazeGridEnv()
    env.action_space.seed(seed)
    agent = {"gamid": Gamid, "sacm": SACM}[algo](args, 2, 2, device)
    rb = ReplayBuffer(min(args.buffer_size, args.total_timesteps), 2, 2, device)
    visits = np.zeros((HEATMAP_BINS, HEATMAP_BINS))
    curve, recent, stats, episode_return, start = [], [], {}, 0.0, time.time()
    obs, _ = env.reset(seed=seed)
    for global_step in range(1, args.total_timesteps + 1):
        # Act: before learning_starts uniformly at random, then the learner's exploring policy.
        if global_step <= args.learning_starts:
            action = env.action_space.sample()
        else:
            action = agent.act(torch.as_tensor(obs, device=device), global_step).cpu().numpy()
        next_obs, reward, terminated, truncated, info = env.step(action)
        column, row = np.minimum(((next_obs + 1) / 2 * HEATMAP_BINS).astype(int), HEATMAP_BINS - 1)
        visits[row, column] += 1  # heat map of the states visited in training, x along columns
        rb.add(obs, action, reward, next_obs, terminated)  # d = terminated: bootstrap through time limits
        obs, episode_return = next_obs, episode_return + reward
        if terminated or truncated:
            recent = (recent + [info["is_success"]])[-20:]
            writer.add_scalar("charts/episodic_return", episode_return, global_step)
            writer.add_scalar("charts/success", float(info["is_success"]), global_step)
            writer.add_scalar("charts/suboptimal_goal", float(info["is_suboptimal"]), global_step)
            writer.add_scalar("charts/success_rate_last_20_episodes", float(np.mean(recent)), global_step)
            obs, episode_return = env.reset()[0], 0.0
        # Learn: one gradient step per environment step; log every 250 steps, stop on a non-finite value.
        if global_step > args.learning_starts:
            stats |= agent.update(rb.sample(args.batch_size), global_step)
            for tag, value in stats.items() if global_step % 250 == 0 else ():
                if not math.isfinite(float(value)):
                    writer.close()
                    raise SystemExit(f"{algo} seed {seed}: {tag} is {float(value)} at step {global_step}; stopping.")
                writer.add_scalar(tag, float(value), global_step)
        if global_step % args.eval_freq == 0 or global_step == args.total_timesteps:
            success, mean_return = evaluate_greedy(agent, eval_env, device)
            curve.append((global_step, success, mean_return))
            writer.add_scalar("eval/success_rate", success, global_step)
            writer.add_scalar("eval/episodic_return", mean_return, global_step)
            writer.add_scalar("charts/SPS", global_step / (time.time() - start), global_step)
    writer.close()
    return np.array(curve), visits


def plot_figure3(curves: dict, visits: dict, path: str) -> None:
    """Figure 3: mean greedy success vs steps with a two-standard-deviation band; heat maps of the visited states."""
    colors = {"gamid": "tab:red", "sacm": "tab:blue"}
    fig = Figure(figsize=(5 + 4 * len(curves), 4), constrained_layout=True)
    axes = fig.subplots(1, 1 + len(curves), squeeze=False)[0]
    for algo, runs in curves.items():
        success = np.stack([run[:, 1] for run in runs])
        mean, std = success.mean(0), success.std(0)
        axes[0].plot(runs[0][:, 0], mean, color=colors[algo], label=f"{algo} ({len(runs)} seeds)")
        band = np.clip(mean - 2 * std, 0, 1), np.clip(mean + 2 * std, 0, 1)
        axes[0].fill_between(runs[0][:, 0], *band, color=colors[algo], alpha=0.2)
    axes[0].set(xlabel="environment steps", ylabel="greedy success rate (optimal goal)", ylim=(-0.02, 1.02))
    axes[0].set_title("MazeGrid: mean and 2 std")
    axes[0].legend()
    walls = np.all(MazeGridEnv().render() == 0, axis=-1)  # the agent is absent before reset
    for ax, (algo, counts) in zip(axes[1:], visits.items()):
        ax.imshow(np.log1p(counts), origin="lower", extent=[-ARENA, ARENA] * 2, cmap="magma")
        walls_only = np.ma.masked_where(~walls, walls)
        ax.imshow(walls_only, extent=[-ARENA, ARENA] * 2, cmap="Greys_r", vmin=0, vmax=1, interpolation="nearest")
        for cell, color in ((OPTIMAL_CELL, "lime"), (SUBOPTIMAL_CELL, "orange")):
            x0, y0 = 2 * cell[0] - ARENA, 2 * cell[1] - ARENA
            ax.plot([x0, x0 + 2, x0 + 2, x0, x0], [y0, y0, y0 + 2, y0 + 2, y0], color=color, lw=1.5)
        ax.set(title=f"{algo}: states visited in training (log count)", xticks=[], yticks=[])
    fig.savefig(path, dpi=110)


def main(args: Args) -> dict:
    """Train each learner on --num-seeds seeds; print the summary, save curves, visit counts and the figure."""
    args = resolve_args(args)
    torch.set_num_threads(1)  # small networks: one thread is fastest and leaves cores to others
    device = torch.device("cuda" if args.cuda and torch.cuda.is_available() else "cpu")
    run_dir = os.path.join(args.runs_dir, f"MazeGrid-v0__{args.exp_name}__{args.seed}__{int(time.time())}")
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "hyperparameters.json"), "w") as f:
        json.dump(asdict(args), f, indent=2)
    algos = ["gamid", "sacm"] if args.algo == "both" else [args.algo]
    start, curves = time.time(), {algo: [] for algo in algos}
    visits = {algo: np.zeros((HEATMAP_BINS, HEATMAP_BINS)) for algo in algos}
    for algo in algos:
        for seed in range(args.seed, args.seed + args.num_seeds):
            curve, counts = run_one_seed(args, algo, seed, run_dir, device)
            curves[algo].append(curve)
            visits[algo] += counts
            print(f"{algo} seed {seed}: final greedy success {curve[-1, 1]:.2f}", flush=True)

    print(f"\nMazeGrid, {args.num_seeds} seeds x {args.total_timesteps} steps, wall time {time.time() - start:.0f}s")
    for algo, runs in curves.items():
        final, area = np.array([run[-1, 1] for run in runs]), np.mean([run[:, 1].mean() for run in runs])
        rate = f"final greedy success rate {final.mean():.2f} +- {final.std():.2f} (per seed {final.tolist()})"
        print(f"{algo:>6}: {rate}, mean over the curve {area:.2f}")
    with open(os.path.join(run_dir, "curves.json"), "w") as f:
        json.dump({algo: [run.tolist() for run in runs] for algo, runs in curves.items()}, f)
    np.savez(os.path.join(run_dir, "visits.npz"), **visits)
    figure = os.path.join(run_dir, "mazegrid.png")
    plot_figure3(curves, visits, figure)
    print(f"figure: {figure}\ntensorboard: {run_dir}")
    return curves


if __name__ == "__main__":
    main(tyro.cli(Args))
