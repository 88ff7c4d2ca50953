"""1-D continuous bandit, the G1 experiment of Gamid-PG (paper §4.1, Figure 1; SPEC §9.1).

The reward (Huang et al., 2023) has a narrow global peak at a = -0.6 (R = 1.1) and a wide local
one rising to a -> 0.875 (R = 0.5). Four lightweight learners (no critic, no replay buffer: the
reward is differentiable and used path-wise, paper Appendix B) start with their means near 0:

  TD3    one deterministic mean, ascends E[R(mu + eps)], eps ~ N(0, sigma^2)     (= Gamid, N = 1)
  SAC    tanh-Gaussian, learned std, maximises E[0.1 R(a)] + alpha H             (= SACM, K = 1)
  SACM   uniform mixture of K tanh-Gaussians, exact mixture log-density
  Gamid  N deterministic means, each ascends E[R(mu_i + eps)] + tau_t D_var(i)  (paper Eq. 4)

All seeds of one method train at once as a batch of independent parameters: each seed's loss
only touches its own parameters and Adam is elementwise, so this equals separate runs.
"""

import math
import os
import random
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from matplotlib.figure import Figure
from torch.utils.tensorboard import SummaryWriter

GLOBAL_OPTIMUM = -0.6
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
SNAPSHOT_FRACTIONS = (0.0, 0.1, 0.5, 1.0)  # the four columns of Figure 1


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment"""
    seed: int = 1
    """seed of the experiment (random, numpy, torch)"""
    num_seeds: int = 20
    """independent runs per method"""
    total_steps: int = 5000
    """gradient steps per run"""
    batch_size: int = 256
    """sampled actions per gradient step (per mean or component)"""
    learning_rate: float = 1e-3
    """Adam learning rate of every learner"""
    init_spread: float = 0.1
    """initial means are drawn from U(-init_spread, init_spread)"""
    noise_std: float = 0.1
    """sigma of the fixed Gaussian(s) of TD3 and Gamid"""
    n_actors: int = 5
    """Gamid: number of Gaussians N"""
    temperature_initial: float = 5.0
    """Gamid: initial D_var temperature tau"""
    temperature_final: float = 0.0
    """Gamid: final D_var temperature tau"""
    temperature_fraction: float = 0.8
    """Gamid: fraction of total_steps over which tau decays linearly to its final value"""
    epsilon_initial: float = 0.3
    """Gamid: initial epsilon of the epsilon-greedy mixture weights (plotted and sampled policy)"""
    epsilon_final: float = 0.03
    """Gamid: final epsilon"""
    epsilon_fraction: float = 0.5
    """Gamid: fraction of total_steps over which epsilon decays linearly"""
    n_components: int = 5
    """SACM: number of mixture components K"""
    init_log_std: float = 0.0
    """SAC/SACM: initial log std before tanh (std 1 covers the whole action range)"""
    alpha: float = 0.2
    """SAC/SACM: initial entropy coefficient"""
    alpha_decay: float = 0.9995
    """SAC/SACM: entropy coefficient multiplier per step"""
    reward_scale: float = 0.1
    """SAC/SACM: reward scale in E[scale * R(a)] + alpha * H"""
    log_every: int = 100
    """steps between TensorBoard logs (scalars and action histograms)"""
    runs_dir: str = "runs"
    """parent folder of the run folder"""


def reward(a):
    """Huang et al. (2023) bandit reward (SPEC §9.1), elementwise on a in [-1, 1]."""
    global_peak = torch.clamp(-18 * (2 * a + 1.2) ** 2 + 1.1, min=0)
    local_peak = torch.clamp(-0.125 * (2 * a - 1.75) ** 2 + 0.5, min=0) * (a < 0.875)
    return global_peak + local_peak


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


def gaussian_log_prob(x, mean, log_std):
    """log N(x; mean, diag(exp(log_std))^2), summed over the last (action) dimension."""
    z = (x - mean) * torch.exp(-log_std)
    return (-0.5 * z * z - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def mixture_log_prob(u, mean, log_std, log_w):
    """Exact log-density of a Gaussian mixture before squashing: logsumexp_k(log w_k + log N(u; mean_k, std_k)).

    u (..., A); mean, log_std (..., K, A); log_w (..., K)."""
    return torch.logsumexp(log_w + gaussian_log_prob(u.unsqueeze(-2), mean, log_std), dim=-1)


def tanh_log_det(u):
    """log |d tanh(u) / du| = sum log(1 - tanh(u)^2), in a numerically stable form."""
    return (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)


def best_by_reward(means):
    """The mean with the highest reward per seed, (seeds, N) -> (seeds,): the bandit's argmax_i Q(mu_i)."""
    return means.gather(1, reward(means).argmax(1, keepdim=True)).squeeze(1)


def linear_schedule(start, end, fraction, step, total):
    """Linear from start to end over the first fraction of total steps, then constant."""
    progress = 1.0 if fraction == 0 else min(1.0, step / (fraction * total))
    return start + progress * (end - start)


class DeterministicMixture(nn.Module):
    """TD3/DDPG (N = 1) and Gamid (N > 1): N deterministic means mu_i = tanh(theta_i), shared fixed std sigma."""

    def __init__(self, args, n):
        super().__init__()
        self.args = args
        self.theta = nn.Parameter(torch.empty(args.num_seeds, n).uniform_(-args.init_spread, args.init_spread))

    def means(self):
        return torch.tanh(self.theta)  # (seeds, N), tanh output as in the actor networks (SPEC §4)

    def weights(self, step):
        # the bandit's Q(mu_i) is R(mu_i) itself
        a = self.args
        epsilon = linear_schedule(a.epsilon_initial, a.epsilon_final, a.epsilon_fraction, step, a.total_steps)
        return epsilon_greedy_weights(reward(self.means()), epsilon)

    def loss(self, step):
        a = self.args
        mu = self.means()
        actions = torch.clamp(mu.unsqueeze(-1) + a.noise_std * torch.randn(*mu.shape, a.batch_size), -1, 1)
        temperature = linear_schedule(
            a.temperature_initial, a.temperature_final, a.temperature_fraction, step, a.total_steps
        )
        # per-mean objective E[R(mu_i + eps)] + tau_t D_var(i); D_var(i) only reaches theta_i
        objective = reward(actions).mean(-1) + temperature * d_var(mu.T.unsqueeze(-1)).T
        return -objective.sum()

    def greedy(self):
        return best_by_reward(self.means())

    def sample(self, n, step):
        idx = torch.multinomial(self.weights(step), n, replacement=True)
        return torch.clamp(self.means().gather(1, idx) + self.args.noise_std * torch.randn(idx.shape), -1, 1)

    def component_densities(self, x, step):
        """p_i N(x; mu_i, sigma^2) on grid x: (seeds, N, len(x))."""
        mu, log_sigma = self.means()[..., None, None], torch.tensor(math.log(self.args.noise_std))
        return self.weights(step).unsqueeze(-1) * torch.exp(gaussian_log_prob(x.view(1, 1, -1, 1), mu, log_sigma))


class SoftMixture(nn.Module):
    """SAC (K = 1) and SACM (K > 1): uniform mixture of K tanh-Gaussians with learned means and stds (SPEC §7)."""

    def __init__(self, args, k):
        super().__init__()
        self.args = args
        self.mean = nn.Parameter(torch.empty(args.num_seeds, k, 1).uniform_(-args.init_spread, args.init_spread))
        self.log_std = nn.Parameter(torch.full((args.num_seeds, k, 1), args.init_log_std))
        self.register_buffer("log_w", torch.full((k,), -math.log(k)))  # uniform weights (Baram et al., 2021)

    def clamped_log_std(self):
        return self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def log_prob(self, u):
        """log pi(tanh(u)) for u (seeds, ..., 1): exact mixture density minus the tanh correction."""
        extra = (1,) * (u.dim() - 2)  # broadcast the parameters over u's sample dimensions
        mean = self.mean.view(self.mean.shape[0], *extra, *self.mean.shape[1:])
        log_std = self.clamped_log_std().view(mean.shape)
        return mixture_log_prob(u, mean, log_std, self.log_w) - tanh_log_det(u)

    def loss(self, step):
        # marginalised reparameterisation: one reparameterised sample per component, weighted by w_k
        a = self.args
        alpha = a.alpha * a.alpha_decay**step
        noise = torch.randn(a.num_seeds, a.batch_size, *self.mean.shape[1:])
        u = self.mean.unsqueeze(1) + self.clamped_log_std().exp().unsqueeze(1) * noise  # (seeds, B, K, 1)
        per_sample = alpha * self.log_prob(u) - a.reward_scale * reward(torch.tanh(u)).squeeze(-1)
        return (per_sample.mean(1) * self.log_w.exp()).sum()

    def greedy(self):
        # the component mean with the highest reward: the same rule as Gamid's greedy Gaussian
        return best_by_reward(torch.tanh(self.mean.squeeze(-1)))

    def sample(self, n, step):
        idx = torch.multinomial(self.log_w.exp().expand(self.args.num_seeds, -1), n, replacement=True)
        mean, std = self.mean.squeeze(-1).gather(1, idx), self.clamped_log_std().exp().squeeze(-1).gather(1, idx)
        return torch.tanh(mean + std * torch.randn(idx.shape))

    def component_densities(self, x, step):
        """w_k pi_k(x) of each squashed component on grid x in (-1, 1): (seeds, K, len(x))."""
        u = torch.atanh(x).view(1, 1, -1, 1)
        log_n = gaussian_log_prob(u, self.mean.unsqueeze(2), self.clamped_log_std().unsqueeze(2))
        return torch.exp(self.log_w.view(1, -1, 1) + log_n - tanh_log_det(u))


def make_learners(args):
    return {
        "TD3": DeterministicMixture(args, 1),
        "SAC": SoftMixture(args, 1),
        f"SACM (K={args.n_components})": SoftMixture(args, args.n_components),
        f"Gamid (N={args.n_actors})": DeterministicMixture(args, args.n_actors),
    }


def validate(args):
    """Reject bad input with one plain sentence before anything trains."""
    checks = [
        (args.num_seeds >= 1, "--num-seeds must be at least 1."),
        (args.total_steps >= 1, "--total-steps must be at least 1."),
        (args.batch_size >= 1, "--batch-size must be at least 1."),
        (args.n_actors >= 1, "--n-actors must be at least 1."),
        (args.n_components >= 1, "--n-components must be at least 1."),
        (args.learning_rate > 0, "--learning-rate must be positive."),
        (args.noise_std > 0, "--noise-std must be positive."),
        (args.log_every >= 1, "--log-every must be at least 1."),
        (min(args.temperature_initial, args.temperature_final) >= 0, "temperatures must not be negative."),
        (all(0 <= e <= 1 for e in (args.epsilon_initial, args.epsilon_final)), "epsilon must lie in [0, 1]."),
        (all(0 <= f <= 1 for f in (args.temperature_fraction, args.epsilon_fraction)), "fractions must lie in [0, 1]."),
        (args.alpha >= 0 and 0 < args.alpha_decay <= 1, "--alpha must be >= 0 and --alpha-decay in (0, 1]."),
    ]
    for ok, message in checks:
        if not ok:
            raise SystemExit(message)


def plot_figure1(snapshots, snapshot_steps, path):
    """Rows = methods, columns = snapshots: the first seed's policy density over the reward curve."""
    x = torch.linspace(-0.999, 0.999, 800)
    r = reward(x).numpy()
    names = list(snapshots)
    fig = Figure(figsize=(3.2 * len(snapshot_steps), 2.2 * len(names)), constrained_layout=True)
    axes = fig.subplots(len(names), len(snapshot_steps), squeeze=False)
    for row, name in enumerate(names):
        color = "tab:red" if name.startswith("Gamid") else "tab:blue"
        for col, (step, components) in enumerate(zip(snapshot_steps, snapshots[name])):
            ax = axes[row, col]
            total = components.sum(0)
            scale = 1.0 / max(total.max(), 1e-8)  # scaled PDF, as in the paper's Figure 1
            ax.plot(x, r, color="tab:green", lw=1.5, label="reward")
            ax.fill_between(x, total * scale, color=color, alpha=0.35, label="policy density (scaled)")
            if components.shape[0] > 1:  # draw each component and mark where it peaks
                for c in components:
                    ax.plot(x, c * scale, color=color, lw=0.8, alpha=0.9)
                ax.plot(x[components.argmax(1)], np.zeros(len(components)), "^", color=color, ms=6, clip_on=False)
            ax.set_ylim(0, 1.25)
            ax.set_xlim(-1, 1)
            ax.set_title(f"{name}, step {step}", fontsize=9)
            if col == 0:
                ax.set_ylabel("reward / scaled pdf")
            if row == len(names) - 1:
                ax.set_xlabel("action")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.savefig(path, dpi=110)


def main(args):
    validate(args)
    run_dir = os.path.join(args.runs_dir, f"bandit_1d__{args.exp_name}__{args.seed}__{int(time.time())}")
    writer = SummaryWriter(run_dir)
    writer.add_text(
        "hyperparameters",
        "|param|value|\n|-|-|\n%s" % "\n".join(f"|{k}|{v}|" for k, v in vars(args).items()),
    )
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead

    grid = torch.linspace(-0.999, 0.999, 800)
    snapshot_steps = sorted({round(f * args.total_steps) for f in SNAPSHOT_FRACTIONS})
    start = time.time()
    learners = make_learners(args)
    snapshots, results = {}, {}
    for name, learner in learners.items():
        optimizer = torch.optim.Adam(learner.parameters(), lr=args.learning_rate)
        snapshots[name], last_print = [], time.time()
        tag = name.split(" ")[0]
        for step in range(args.total_steps + 1):
            if step in snapshot_steps or step % args.log_every == 0:
                with torch.no_grad():
                    if step in snapshot_steps:
                        snapshots[name].append(learner.component_densities(grid, step)[0].numpy())
                    if step % args.log_every == 0:
                        actions = learner.sample(args.batch_size, step)
                        greedy = learner.greedy()
                        writer.add_histogram(f"{tag}/sampled_actions_first_seed", actions[0], step)
                        writer.add_scalar(f"{tag}/expected_reward", reward(actions).mean().item(), step)
                        writer.add_scalar(f"{tag}/greedy_reward", reward(greedy).mean().item(), step)
                        writer.add_scalar(
                            f"{tag}/at_global_optimum",
                            ((greedy - GLOBAL_OPTIMUM).abs() <= 0.1).float().mean().item(), step,
                        )
                        if time.time() - last_print > 3:
                            print(f"{name}: step {step}/{args.total_steps}, greedy reward {reward(greedy).mean():.3f}")
                            last_print = time.time()
            if step == args.total_steps:
                break
            loss = learner.loss(step)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            greedy = learner.greedy()
            results[name] = {
                "greedy": greedy,
                "at_global": ((greedy - GLOBAL_OPTIMUM).abs() <= 0.1).float(),
                "greedy_reward": reward(greedy),
                "expected_reward": reward(learner.sample(4096, args.total_steps)).mean(1),
            }

    header = f"{'method':<12} {'greedy within 0.1 of -0.6':>26} {'mean R(greedy)':>15} {'mean E_pi[R]':>13}"
    lines = [header, "-" * len(header)]
    for name, res in results.items():
        hits = int(res["at_global"].sum())
        lines.append(
            f"{name:<12} {f'{hits}/{args.num_seeds} = {hits / args.num_seeds:.2f}':>26}"
            f" {res['greedy_reward'].mean():>15.3f} {res['expected_reward'].mean():>13.3f}"
        )
    table = "\n".join(lines)
    print(f"\nFinal policies over {args.num_seeds} seeds after {args.total_steps} steps ({time.time() - start:.1f}s):")
    print(table)
    writer.add_text("summary", "```\n" + table + "\n```")
    writer.close()
    figure_path = os.path.join(run_dir, "bandit_1d.png")
    plot_figure1(snapshots, snapshot_steps, figure_path)
    print(f"figure: {figure_path}\ntensorboard: {run_dir}")
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
