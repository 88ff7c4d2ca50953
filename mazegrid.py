"""MazeGrid and the G2 experiment of Gamid-PG (paper §4.2, Figure 3; SPEC §9.2).

MazeGrid: the arena [-5, 5]^2 is a 5 x 5 grid of 2 x 2 cells; every wall between two neighbouring
cells has one centred gap of width 0.4. The agent starts at (0, 0) and moves by 0.5 * (dx, dy)
per step, (dx, dy) in [-1, 1]^2; a move that would cross a wall stops just short of it. Entering
the top-right cell gives 1 (optimal goal), entering the cell right of the start gives 0.1
(suboptimal goal); both end the episode. 100 steps truncate it. Importing this file registers
`MazeGrid-v0`.

G2 (deterministic vs stochastic GMM policy gradients on a sparse-reward maze): a compact
off-policy Gamid (TD3-based, SPEC §4) and SACM (SPEC §7), selected by --algo gamid | sacm | both,
each over --num-seeds seeds. Paper's claim: SACM is the more sample-efficient here.
"""

import json
import math
import os
import random
import time
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from matplotlib.figure import Figure
from torch.utils.tensorboard import SummaryWriter

ARENA = 5.0  # half-width of the arena
WALL_LINES = (-5.0, -3.0, -1.0, 1.0, 3.0, 5.0)  # cell borders on either axis; +-5 is the outer wall
GAP = 0.4  # width of the passage centred in each inner wall segment
STEP_SCALE = 0.5  # action (dx, dy) in [-1, 1]^2 moves the agent by STEP_SCALE * (dx, dy)
BACKOFF = 0.01  # a blocked move stops this far (along the move) before the wall
OPTIMAL_CELL, OPTIMAL_REWARD = (4, 4), 1.0  # top-right corner cell
SUBOPTIMAL_CELL, SUBOPTIMAL_REWARD = (3, 2), 0.1  # the cell right of the start
AGENT_RADIUS = 0.25
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
HEATMAP_BINS = 100


def in_gap(coord):
    """Whether a point on a wall line lies in a passage: gaps are centred on the cell centres (even numbers)."""
    return np.abs(coord - 2.0 * np.round(coord / 2.0)) <= GAP / 2


def first_wall_hit(start, delta):
    """Fraction t of the move start -> start + delta at which it first touches a wall, or None if it touches none.

    Walls are the cell borders minus the gaps; the agent may rest on a border only inside a gap."""
    hit = None
    for axis in (0, 1):
        along = 1 - axis
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


def cell_of(pos):
    """(column, row) index of the 2 x 2 cell holding pos; a point on a border belongs to the upper/right cell."""
    return tuple(int(min(4, max(0, (p + ARENA) // 2))) for p in pos)


class MazeGridEnv(gym.Env):
    """SPEC §9.2. Observation: position / 5 in [-1, 1]^2. Action: (dx, dy) in [-1, 1]^2. Time limit inside."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode="rgb_array", max_episode_steps=100, pixels_per_unit=24):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"MazeGrid renders only 'rgb_array', not {render_mode!r}.")
        if not (isinstance(max_episode_steps, int) and max_episode_steps >= 1):
            raise ValueError(f"max_episode_steps must be a positive integer, not {max_episode_steps!r}.")
        if not (isinstance(pixels_per_unit, int) and pixels_per_unit >= 2):
            raise ValueError(f"pixels_per_unit must be an integer >= 2, not {pixels_per_unit!r}.")
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self.pixels_per_unit = pixels_per_unit
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.pos, self.steps = None, 0

    def _obs(self):
        return (self.pos / ARENA).astype(np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.steps = np.zeros(2), 0
        return self._obs(), {}

    def step(self, action):
        if self.pos is None:
            raise RuntimeError("Call reset() before step().")
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (2,) or not np.all(np.isfinite(action)):
            raise ValueError(f"The action must be two finite numbers (dx, dy), not {action!r}.")
        delta = STEP_SCALE * np.clip(action, -1.0, 1.0)
        hit = first_wall_hit(self.pos, delta)
        if hit is not None:  # stop just short of the wall
            hit = max(0.0, hit - BACKOFF / np.linalg.norm(delta))
        self.pos = self.pos + (1.0 if hit is None else hit) * delta
        self.steps += 1
        cell = cell_of(self.pos)
        reward = OPTIMAL_REWARD if cell == OPTIMAL_CELL else SUBOPTIMAL_REWARD if cell == SUBOPTIMAL_CELL else 0.0
        terminated = reward > 0
        truncated = not terminated and self.steps >= self.max_episode_steps
        info = {"is_success": cell == OPTIMAL_CELL, "is_suboptimal": cell == SUBOPTIMAL_CELL}
        return self._obs(), reward, terminated, truncated, info

    def render(self):
        """RGB image (H, W, 3): passages white, walls black, optimal goal green, suboptimal goal orange, agent red."""
        ppu = self.pixels_per_unit
        size = int(2 * ARENA * ppu)
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


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment"""
    algo: str = "both"
    """which learner(s) to train: gamid, sacm or both"""
    seed: int = 1
    """seed of the first run; run k uses seed + k"""
    num_seeds: int = 5
    """runs (seeds) per learner"""
    total_timesteps: int = 20000
    """environment steps per run"""
    learning_starts: int = 1000
    """uniform random actions before learning starts"""
    buffer_size: int = 100000
    """replay buffer size"""
    batch_size: int = 128
    """minibatch size of each gradient step (128 rather than 256 to keep the default run short)"""
    learning_rate: float = 1e-3
    """Adam learning rate of actors, critics and the entropy coefficient"""
    gamma: float = 0.99
    """discount factor"""
    tau: float = 0.005
    """Polyak rate of the target networks"""
    hidden_size: int = 64
    """width of the two hidden layers of every network"""
    eval_freq: int = 1000
    """environment steps between greedy evaluations"""
    eval_episodes: int = 1
    """episodes per evaluation (start and greedy policy are deterministic, so one suffices)"""
    n_actors: int = 4
    """Gamid: number of Gaussians N"""
    noise_std: float = 0.1
    """Gamid: std sigma of the shared Gaussian (exploration noise)"""
    policy_noise: float = 0.2
    """Gamid: std of TD3's target policy smoothing noise"""
    noise_clip: float = 0.5
    """Gamid: clip of the target policy smoothing noise"""
    policy_delay: int = 2
    """Gamid: gradient steps per actor and target update"""
    temperature_initial: float = 0.3
    """Gamid: initial D_var temperature tau"""
    temperature_final: float = 0.1
    """Gamid: final D_var temperature tau"""
    temperature_fraction: float = 1.0
    """Gamid: fraction of total_timesteps over which tau decays linearly"""
    epsilon_initial: float = 0.1
    """Gamid: initial epsilon of the epsilon-greedy mixture weights"""
    epsilon_final: float = 0.01
    """Gamid: final epsilon"""
    epsilon_fraction: float = 1.0
    """Gamid: fraction of total_timesteps over which epsilon decays linearly"""
    n_components: int = 3
    """SACM: number of mixture components K (K = 1 is SAC)"""
    cuda: bool = False
    """use a GPU if one is present (off by default: these networks are tiny and faster on CPU)"""
    runs_dir: str = "runs"
    """parent folder of the run folder"""


def d_var(means):
    """Paper Eq. 4: D_var(i) = -log sum_{j != i} exp(-||mu_i - sg(mu_j)||^2).

    means (N, ..., A) -> (N, ...). The other Gaussians are constants for Gaussian i (stop-gradient).
    For N = 1 the sum is empty and the term is 0: Gamid with one Gaussian is TD3."""
    n = means.shape[0]
    if n == 1:
        return means.new_zeros(means.shape[:-1])
    sq_dist = (means.unsqueeze(1) - means.detach().unsqueeze(0)).pow(2).sum(-1)  # [i, j] = ||mu_i - sg(mu_j)||^2
    self_pair = torch.eye(n, dtype=torch.bool, device=means.device).view(n, n, *[1] * (sq_dist.dim() - 2))
    return -torch.logsumexp((-sq_dist).masked_fill(self_pair, -math.inf), dim=1)


def epsilon_greedy_weights(values, epsilon):
    """Paper §3.1: p = 1 - eps + eps/N for argmax_i values_i, eps/N for the others. values (..., N)."""
    n = values.shape[-1]
    return F.one_hot(values.argmax(-1), n).to(values.dtype) * (1 - epsilon) + epsilon / n


def mixture_log_prob(u, mean, log_std, log_w):
    """Exact log-density of a Gaussian mixture before squashing: logsumexp_k(log w_k + log N(u; mean_k, std_k)).

    u (..., A); mean, log_std (..., K, A); log_w (..., K)."""
    u = u.unsqueeze(-2)
    log_n = (-0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    return torch.logsumexp(log_w + log_n, dim=-1)


def tanh_log_det(u):
    """log |d tanh(u) / du| = sum log(1 - tanh(u)^2), in a numerically stable form."""
    return (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)


def linear_schedule(start, end, fraction, step, total):
    """Linear from start to end over the first fraction of total steps, then constant."""
    progress = 1.0 if fraction == 0 else min(1.0, step / (fraction * total))
    return start + progress * (end - start)


class EnsembleMLP(nn.Module):
    """E independent ReLU MLPs, one batched matmul per layer: x (E, B, in) -> (E, B, out) (SPEC §11)."""

    def __init__(self, ensemble, sizes):
        super().__init__()
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1 / math.sqrt(fan_in)  # nn.Linear's default initialisation
            self.weights.append(nn.Parameter(torch.empty(ensemble, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(ensemble, 1, fan_out).uniform_(-bound, bound)))

    def forward(self, x, members=None):
        """members: evaluate only the first `members` networks (e.g. Q1 of the twin critics)."""
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            if members is not None:
                weight, bias = weight[:members], bias[:members]
            x = torch.baddbmm(bias, x, weight)
            x = F.relu(x) if i < len(self.weights) - 1 else x
        return x


class TwinCritic(nn.Module):
    """Q1 and Q2 as a two-member ensemble: (obs, act) with any leading shape -> (2, *leading), or (1, ...) for Q1 only."""

    def __init__(self, obs_dim, act_dim, hidden):
        super().__init__()
        self.q = EnsembleMLP(2, (obs_dim + act_dim, hidden, hidden, 1))

    def forward(self, obs, act, q1_only=False):
        x = torch.cat([obs.expand(*act.shape[:-1], obs.shape[-1]), act], -1)
        n = 1 if q1_only else 2
        return self.q(x.reshape(1, -1, x.shape[-1]).expand(n, -1, -1), 1 if q1_only else None).view(n, *x.shape[:-1])


class GamidActor(nn.Module):
    """N deterministic mean networks mu_i(s) in [-1, 1], one batched forward: obs (B, O) -> (N, B, A)."""

    def __init__(self, n_actors, obs_dim, act_dim, hidden):
        super().__init__()
        self.net = EnsembleMLP(n_actors, (obs_dim, hidden, hidden, act_dim))
        self.n_actors = n_actors

    def forward(self, obs):
        return torch.tanh(self.net(obs.expand(self.n_actors, *obs.shape)))


class MixtureActor(nn.Module):
    """SACM actor: per state K means and log-stds of tanh-squashed Gaussians, uniform weights (Baram et al., 2021)."""

    def __init__(self, n_components, obs_dim, act_dim, hidden):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(obs_dim, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 2 * n_components * act_dim),
        )
        self.k, self.act_dim = n_components, act_dim
        self.register_buffer("log_w", torch.full((n_components,), -math.log(n_components)))

    def forward(self, obs):
        mean, log_std = self.net(obs).view(*obs.shape[:-1], self.k, 2 * self.act_dim).chunk(2, -1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1)
        return mean, log_std  # (B, K, A) each

    def sample_components(self, obs):
        """One reparameterised sample per component: actions (B, K, A) and their mixture log pi (B, K)."""
        mean, log_std = self(obs)
        u = mean + log_std.exp() * torch.randn_like(mean)
        log_prob = mixture_log_prob(u, mean.unsqueeze(-3), log_std.unsqueeze(-3), self.log_w) - tanh_log_det(u)
        return torch.tanh(u), log_prob

    def sample(self, obs):
        """A mixture sample: pick component k ~ w, then a = tanh(mean_k + std_k * xi); returns a (B, A), log pi (B,)."""
        actions, log_prob = self.sample_components(obs)
        k = torch.multinomial(self.log_w.exp().expand(actions.shape[0], -1), 1)
        return actions.gather(1, k.unsqueeze(-1).expand(-1, -1, self.act_dim)).squeeze(1), log_prob.gather(1, k).squeeze(1)


def polyak(target, source, tau):
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


class Gamid:
    """Algorithm 1 on TD3 (SPEC §4): twin critics with target smoothing and a max over Gaussians in the target."""

    def __init__(self, args, obs_dim, act_dim, device):
        self.args = args
        self.actor = GamidActor(args.n_actors, obs_dim, act_dim, args.hidden_size).to(device)
        self.critic = TwinCritic(obs_dim, act_dim, args.hidden_size).to(device)
        self.actor_target = GamidActor(args.n_actors, obs_dim, act_dim, args.hidden_size).to(device)
        self.critic_target = TwinCritic(obs_dim, act_dim, args.hidden_size).to(device)
        self.actor_target.load_state_dict(self.actor.state_dict())
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=args.learning_rate)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=args.learning_rate)
        self.updates = 0

    def schedules(self, step):
        a = self.args
        temperature = linear_schedule(
            a.temperature_initial, a.temperature_final, a.temperature_fraction, step, a.total_timesteps
        )
        return temperature, linear_schedule(a.epsilon_initial, a.epsilon_final, a.epsilon_fraction, step, a.total_timesteps)

    @torch.no_grad()
    def act(self, obs, step):
        """Alg. 1 lines 3-4: n ~ epsilon-greedy weights over Q1(s, mu_i(s)), a = clip(mu_n(s) + N(0, sigma^2))."""
        means = self.actor(obs.unsqueeze(0))  # (N, 1, A)
        weights = epsilon_greedy_weights(self.critic(obs, means, q1_only=True)[0].T, self.schedules(step)[1])  # (1, N)
        n = torch.multinomial(weights, 1).item()
        return (means[n, 0] + self.args.noise_std * torch.randn_like(means[n, 0])).clamp(-1, 1)

    @torch.no_grad()
    def greedy(self, obs):
        means = self.actor(obs.unsqueeze(0))
        return means[self.critic(obs, means, q1_only=True)[0].argmax(0).item(), 0]

    def update(self, batch, step):
        a = self.args
        obs, actions, next_obs, rewards, terminations = batch
        with torch.no_grad():  # Alg. 1 line 10 with TD3's target smoothing and clipped double Q
            next_means = self.actor_target(next_obs)  # (N, B, A)
            smoothing = (torch.randn_like(next_means) * a.policy_noise).clamp(-a.noise_clip, a.noise_clip)
            q_next = self.critic_target(next_obs, (next_means + smoothing).clamp(-1, 1))  # (2, N, B)
            target = rewards + a.gamma * (1 - terminations) * q_next.min(0).values.max(0).values
        critic_loss = (self.critic(obs, actions) - target).pow(2).mean(1).sum()
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        self.critic_optimizer.step()
        logs = {"losses/critic_loss": critic_loss.detach()}
        self.updates += 1
        if self.updates % a.policy_delay == 0:  # Alg. 1 lines 12-14, delayed as in TD3
            temperature, epsilon = self.schedules(step)
            means = self.actor(obs)
            d = d_var(means).mean(1)  # (N,), each D_var(i) only reaches mu_i
            actor_loss = -(self.critic(obs, means, q1_only=True)[0].mean(1) + temperature * d).sum()
            self.actor_optimizer.zero_grad()
            actor_loss.backward()
            self.actor_optimizer.step()
            polyak(self.actor_target, self.actor, a.tau)
            polyak(self.critic_target, self.critic, a.tau)
            logs.update({"losses/actor_loss": actor_loss.detach(), "charts/sum_d_var": d.detach().sum(),
                         "charts/temperature": temperature, "charts/epsilon": epsilon})
        return logs


class SACM:
    """SAC with a K-Gaussian mixture actor (SPEC §7): exact mixture log pi, marginalised reparameterisation."""

    def __init__(self, args, obs_dim, act_dim, device):
        self.args = args
        self.actor = MixtureActor(args.n_components, obs_dim, act_dim, args.hidden_size).to(device)
        self.critic = TwinCritic(obs_dim, act_dim, args.hidden_size).to(device)
        self.critic_target = TwinCritic(obs_dim, act_dim, args.hidden_size).to(device)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=args.learning_rate)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=args.learning_rate)
        self.target_entropy = -float(act_dim)
        self.log_alpha = torch.zeros(1, device=device, requires_grad=True)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=args.learning_rate)

    @torch.no_grad()
    def act(self, obs, step):
        return self.actor.sample(obs.unsqueeze(0))[0][0]

    @torch.no_grad()
    def greedy(self, obs):
        # the component mean with the highest min-Q: the same rule as Gamid's greedy Gaussian
        means = torch.tanh(self.actor(obs.unsqueeze(0))[0][0])  # (K, A)
        return means[self.critic(obs, means).min(0).values.argmax().item()]

    def update(self, batch, step):
        a = self.args
        obs, actions, next_obs, rewards, terminations = batch
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            next_actions, next_log_prob = self.actor.sample(next_obs)
            q_next = self.critic_target(next_obs, next_actions).min(0).values - alpha * next_log_prob
            target = rewards + a.gamma * (1 - terminations) * q_next
        critic_loss = (self.critic(obs, actions) - target).pow(2).mean(1).sum()
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        self.critic_optimizer.step()

        # one reparameterised sample per component, weighted by the mixture weights
        sampled, log_prob = self.actor.sample_components(obs)  # (B, K, A), (B, K)
        q = self.critic(obs.unsqueeze(1), sampled).min(0).values  # (B, K)
        w = self.actor.log_w.exp()
        actor_loss = ((alpha * log_prob - q).mean(0) * w).sum()
        self.actor_optimizer.zero_grad()
        actor_loss.backward()
        self.actor_optimizer.step()

        entropy_gap = ((log_prob.detach() * w).sum(1) + self.target_entropy).mean()
        alpha_loss = -self.log_alpha.exp() * entropy_gap
        self.alpha_optimizer.zero_grad()
        alpha_loss.backward()
        self.alpha_optimizer.step()
        polyak(self.critic_target, self.critic, a.tau)
        return {"losses/critic_loss": critic_loss.detach(), "losses/actor_loss": actor_loss.detach(),
                "losses/alpha": alpha, "charts/entropy_estimate": -(log_prob.detach() * w).sum(1).mean()}


class ReplayBuffer:
    """Uniform replay of single-env transitions; a transition never spans an episode boundary."""

    def __init__(self, size, obs_dim, act_dim, device):
        self.obs = np.zeros((size, obs_dim), np.float32)
        self.next_obs = np.zeros((size, obs_dim), np.float32)
        self.actions = np.zeros((size, act_dim), np.float32)
        self.rewards = np.zeros(size, np.float32)
        self.terminations = np.zeros(size, np.float32)
        self.size, self.pos, self.full, self.device = size, 0, False, device

    def add(self, obs, next_obs, action, reward, terminated):
        i = self.pos
        self.obs[i], self.next_obs[i], self.actions[i] = obs, next_obs, action
        self.rewards[i], self.terminations[i] = reward, terminated  # truncation bootstraps: not stored as done
        self.pos = (i + 1) % self.size
        self.full = self.full or self.pos == 0

    def sample(self, batch_size, rng):
        idx = rng.integers(0, self.size if self.full else self.pos, batch_size)
        arrays = (self.obs, self.actions, self.next_obs, self.rewards, self.terminations)
        return tuple(torch.as_tensor(x[idx], device=self.device) for x in arrays)


ALGOS = {"gamid": Gamid, "sacm": SACM}


def validate(args):
    """Reject bad input with one plain sentence before anything trains."""
    checks = [
        (args.algo in ("gamid", "sacm", "both"), f"--algo must be gamid, sacm or both, not {args.algo!r}."),
        (args.num_seeds >= 1, "--num-seeds must be at least 1."),
        (args.n_actors >= 1, "--n-actors must be at least 1."),
        (args.n_components >= 1, "--n-components must be at least 1."),
        (args.total_timesteps > args.learning_starts >= 0, "--total-timesteps must exceed --learning-starts."),
        (1 <= args.batch_size <= args.buffer_size, "--batch-size must lie between 1 and --buffer-size."),
        (args.eval_freq >= 1 and args.eval_episodes >= 1, "--eval-freq and --eval-episodes must be at least 1."),
        (args.policy_delay >= 1 and args.hidden_size >= 1, "--policy-delay and --hidden-size must be at least 1."),
        (args.learning_rate > 0 and args.noise_std >= 0, "--learning-rate must be positive and --noise-std not negative."),
        (0 <= args.gamma <= 1 and 0 < args.tau <= 1, "--gamma must lie in [0, 1] and --tau in (0, 1]."),
        (min(args.temperature_initial, args.temperature_final) >= 0, "temperatures must not be negative."),
        (all(0 <= e <= 1 for e in (args.epsilon_initial, args.epsilon_final)), "epsilon must lie in [0, 1]."),
        (all(0 <= f <= 1 for f in (args.temperature_fraction, args.epsilon_fraction)), "fractions must lie in [0, 1]."),
    ]
    for ok, message in checks:
        if not ok:
            raise SystemExit(message)


def evaluate(agent, env, episodes, device):
    """Greedy episodes (Gamid: argmax_i Q1(s, mu_i(s)), no noise): success rate and mean return."""
    successes, returns = 0.0, 0.0
    for _ in range(episodes):
        obs, _ = env.reset()
        done = False
        while not done:
            action = agent.greedy(torch.as_tensor(obs, device=device)).cpu().numpy()
            obs, reward, terminated, truncated, info = env.step(action)
            returns += reward
            done = terminated or truncated
        successes += info["is_success"]
    return successes / episodes, returns / episodes


def train(args, algo, seed, run_dir, device):
    """One run of one learner; returns the evaluation curve and the visit counts of its training states."""
    writer = SummaryWriter(os.path.join(run_dir, f"{algo}__{seed}"))
    writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in vars(args).items()))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    env, eval_env = MazeGridEnv(), MazeGridEnv()
    env.action_space.seed(seed)
    eval_env.reset(seed=seed + 10_000)
    agent = ALGOS[algo](args, 2, 2, device)
    buffer = ReplayBuffer(min(args.buffer_size, args.total_timesteps), 2, 2, device)
    visits = np.zeros((HEATMAP_BINS, HEATMAP_BINS))
    curve, recent, logs, episodes, episode_return = [], [], {}, 0, 0.0
    start = last_print = time.time()
    obs, _ = env.reset(seed=seed)
    try:
        for step in range(args.total_timesteps):
            if step < args.learning_starts:
                action = env.action_space.sample()
            else:
                action = agent.act(torch.as_tensor(obs, device=device), step).cpu().numpy()
            next_obs, reward, terminated, truncated, info = env.step(action)
            cell = np.minimum(((next_obs + 1) / 2 * HEATMAP_BINS).astype(int), HEATMAP_BINS - 1)
            visits[cell[1], cell[0]] += 1
            buffer.add(obs, next_obs, action, reward, terminated)
            obs, episode_return = next_obs, episode_return + reward
            if terminated or truncated:
                episodes += 1
                recent = (recent + [info["is_success"]])[-20:]
                writer.add_scalar("charts/episodic_return", episode_return, step)
                writer.add_scalar("charts/success", float(info["is_success"]), step)
                writer.add_scalar("charts/suboptimal_goal", float(info["is_suboptimal"]), step)
                writer.add_scalar("charts/success_rate_last_20_episodes", float(np.mean(recent)), step)
                obs, episode_return = env.reset()[0], 0.0
            if step >= args.learning_starts:
                for name, value in agent.update(buffer.sample(args.batch_size, rng), step).items():
                    logs[name] = float(value)
                    if not math.isfinite(logs[name]):
                        raise SystemExit(f"{algo} seed {seed}: {name} is {logs[name]} at step {step}; stopping.")
                if step % 250 == 0:
                    for name, value in logs.items():
                        writer.add_scalar(name, value, step)
            if (step + 1) % args.eval_freq == 0 or step + 1 == args.total_timesteps:
                success, ret = evaluate(agent, eval_env, args.eval_episodes, device)
                curve.append((step + 1, success, ret))
                writer.add_scalar("eval/success_rate", success, step + 1)
                writer.add_scalar("eval/episodic_return", ret, step + 1)
                writer.add_scalar("charts/SPS", (step + 1) / (time.time() - start), step + 1)
            if time.time() - last_print > 5:
                print(f"{algo} seed {seed}: step {step + 1}/{args.total_timesteps}, "
                      f"SPS {(step + 1) / (time.time() - start):.0f}, episodes {episodes}, "
                      f"training success (last 20) {np.mean(recent) if recent else 0:.2f}, "
                      f"greedy success {curve[-1][1] if curve else 0:.2f}", flush=True)
                last_print = time.time()
    finally:
        writer.close()
    return np.array(curve), visits


def plot_figure3(curves, visits, path):
    """Mean greedy success rate vs steps with a two-standard-deviation band, and heat maps of visited states."""
    colors = {"gamid": "tab:red", "sacm": "tab:blue"}
    fig = Figure(figsize=(5 + 4 * len(curves), 4), constrained_layout=True)
    axes = fig.subplots(1, 1 + len(curves), squeeze=False)[0]
    for algo, runs in curves.items():
        steps, success = runs[0][:, 0], np.stack([r[:, 1] for r in runs])
        mean, std = success.mean(0), success.std(0)
        axes[0].plot(steps, mean, color=colors[algo], label=f"{algo} ({len(runs)} seeds)")
        axes[0].fill_between(steps, np.clip(mean - 2 * std, 0, 1), np.clip(mean + 2 * std, 0, 1),
                             color=colors[algo], alpha=0.2)
    axes[0].set(xlabel="environment steps", ylabel="greedy success rate (optimal goal)", ylim=(-0.02, 1.02),
                title="MazeGrid: mean and 2 std")
    axes[0].legend()
    maze = MazeGridEnv()
    walls = np.all(maze.render() == 0, axis=-1)  # the agent is absent before reset
    for ax, (algo, counts) in zip(axes[1:], visits.items()):
        ax.imshow(np.log1p(counts), origin="lower", extent=(-ARENA, ARENA, -ARENA, ARENA), cmap="magma")
        ax.imshow(np.ma.masked_where(~walls, walls), extent=(-ARENA, ARENA, -ARENA, ARENA), cmap="Greys_r",
                  vmin=0, vmax=1, interpolation="nearest")
        for cell, color in ((OPTIMAL_CELL, "lime"), (SUBOPTIMAL_CELL, "orange")):
            x0, y0 = 2 * cell[0] - ARENA, 2 * cell[1] - ARENA
            ax.plot([x0, x0 + 2, x0 + 2, x0, x0], [y0, y0, y0 + 2, y0 + 2, y0], color=color, lw=1.5)
        ax.set(title=f"{algo}: states visited in training (log count)", xticks=[], yticks=[])
    fig.savefig(path, dpi=110)


def main(args):
    validate(args)
    torch.set_num_threads(1)  # small networks: one thread is fastest and leaves cores to others
    device = torch.device("cuda" if args.cuda and torch.cuda.is_available() else "cpu")
    run_dir = os.path.join(args.runs_dir, f"MazeGrid-v0__{args.exp_name}__{args.seed}__{int(time.time())}")
    algos = ["gamid", "sacm"] if args.algo == "both" else [args.algo]
    start = time.time()
    curves, visits = {a: [] for a in algos}, {a: 0 for a in algos}
    for algo in algos:
        for k in range(args.num_seeds):
            curve, counts = train(args, algo, args.seed + k, run_dir, device)
            curves[algo].append(curve)
            visits[algo] = visits[algo] + counts
            print(f"{algo} seed {args.seed + k}: final greedy success {curve[-1, 1]:.2f}, "
                  f"return {curve[-1, 2]:.2f} ({time.time() - start:.0f}s so far)", flush=True)

    print(f"\nMazeGrid, {args.num_seeds} seeds x {args.total_timesteps} steps, wall time {time.time() - start:.0f}s")
    for algo, runs in curves.items():
        final = np.array([r[-1, 1] for r in runs])
        area = np.mean([r[:, 1].mean() for r in runs])
        print(f"{algo:>6}: final greedy success rate {final.mean():.2f} +- {final.std():.2f} "
              f"(per seed {final.tolist()}), mean over the curve {area:.2f}")
    with open(os.path.join(run_dir, "curves.json"), "w") as f:
        json.dump({a: [r.tolist() for r in runs] for a, runs in curves.items()}, f)
    figure_path = os.path.join(run_dir, "mazegrid.png")
    plot_figure3(curves, visits, figure_path)
    print(f"figure: {figure_path}\ntensorboard: {run_dir}")
    return curves


if __name__ == "__main__":
    main(tyro.cli(Args))
