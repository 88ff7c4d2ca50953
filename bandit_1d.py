"""1-D continuous bandit, the G1 experiment of Gamid-PG (paper §4.1, Figure 1; Appendix B).

The reward (Huang et al., 2023) has a narrow global peak at a = -0.6 (R = 1.1) and a wide local one rising to
R = 0.5 as a -> 0.875, where it drops to 0. Four learners without critic or replay buffer (Appendix B) start with
their means near 0. The deterministic ones differentiate the reward path-wise, the stochastic ones use the
score-function (REINFORCE) estimator with Huang et al.'s settings, the argument §4.1 gives for their failure:

  TD3    one deterministic mean, ascends E[R(mu + eps)], eps ~ N(0, sigma^2), path-wise  (= Gamid, N = 1)
  SAC    tanh-Gaussian, learned std, maximises E[0.1 R(a)] + alpha H, score function  (= SACM, K = 1)
  SACM   uniform mixture of K tanh-Gaussians, exact mixture log-density, score function
  Gamid  N deterministic means, each ascends E[R(mu_i + eps)] + temperature D_var(i) (Eq. 4), path-wise

All seeds of one method train at once as a batch of independent parameters (each seed's loss touches only its own
parameters, Adam is elementwise), each learner and seed on its own random stream: one learner's flags (or the
number of seeds) leave the other runs unchanged.
"""

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from matplotlib.figure import Figure
from torch.utils.tensorboard import SummaryWriter

GLOBAL_OPTIMUM = -0.6
CLIFF = 0.875  # the local peak's reward drops from 0.5 to 0 here
LOG_STD_BOUNDS = (-5.0, 2.0)  # clamp of the SAC/SACM log-stds
SNAPSHOT_FRACTIONS = (0.0, 0.1, 0.5, 1.0)  # the four columns of Figure 1
STREAMS = {"TD3": 0, "SAC": 1, "SACM": 2, "Gamid": 3}  # each learner's own random stream


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]  # the name of this experiment
    seed: int = 1  # seed of the first run; run k uses seed + k
    num_seeds: int = 20  # independent runs per method
    total_steps: int = 5000  # gradient steps per run
    batch_size: int = 256  # sampled actions per gradient step (per mean or component)
    learning_rate: float = 1e-3  # Adam learning rate of every learner
    init_spread: float = 0.1  # initial means are drawn from U(-init_spread, init_spread)
    noise_std: float = 0.1  # sigma of the fixed Gaussian(s) of TD3 and Gamid
    n_actors: int = 5  # Gamid: number of Gaussians N
    temperature_initial: float = 5.0  # Gamid: divergence temperature at the start (our choice for this reward's scale)
    temperature_final: float = 0.0  # Gamid: temperature after the decay
    temperature_fraction: float = 0.8  # Gamid: fraction of total_steps over which the temperature decays linearly
    epsilon_initial: float = 0.3  # Gamid: initial epsilon of the epsilon-greedy mixture weights (plots, samples)
    epsilon_final: float = 0.03  # Gamid: final epsilon
    epsilon_fraction: float = 0.5  # Gamid: fraction of total_steps over which epsilon decays linearly
    n_components: int = 5  # SACM: number of mixture components K
    sac_estimator: Literal["score", "pathwise"] = "score"  # SAC/SACM reward gradient: REINFORCE (score) or path-wise
    init_log_std: float = 0.0  # SAC/SACM: initial log std before tanh (std 1 covers the whole action range)
    alpha: float = 0.2  # SAC/SACM: initial entropy coefficient
    alpha_decay: float = 0.9995  # SAC/SACM: entropy coefficient multiplier per step
    reward_scale: float = 0.1  # SAC/SACM: reward scale in E[scale * R(a)] + alpha * H
    log_every: int = 100  # steps between TensorBoard logs (scalars and action histograms)
    runs_dir: str = "runs"  # parent folder of the run folder


def reward(a: torch.Tensor) -> torch.Tensor:
    """Huang et al. (2023) bandit reward, elementwise on a in [-1, 1]."""
    global_peak = torch.clamp(-18 * (2 * a + 1.2) ** 2 + 1.1, min=0)
    local_peak = torch.clamp(-0.125 * (2 * a - 1.75) ** 2 + 0.5, min=0) * (a < CLIFF)
    return global_peak + local_peak


def linear_schedule(initial: float, final: float, fraction: float, total: int, step: int) -> float:
    """Linear decay from `initial` to `final` over the first `fraction` of `total` steps, then constant."""
    progress = min(step / (fraction * total), 1.0) if fraction > 0 else 1.0
    return initial + progress * (final - initial)


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


def mixture_log_prob(u, mean, log_std, log_weights) -> torch.Tensor:
    """Exact log pi(tanh(u)|s) of the squashed mixture: u (..., B, act), mean, log_std (K, B, act), log_weights (K, B).
    logsumexp_j(log w_j + log N(u; mu_j, sigma_j)) - sum_d log(1 - tanh(u_d)^2), overflow-free -> (..., B)."""
    z = (u.unsqueeze(-3) - mean) / log_std.exp()  # (..., K, B, act)
    log_normal = (-0.5 * z.pow(2) - log_std).sum(-1) - 0.5 * math.log(2 * math.pi) * u.shape[-1]
    log_det = (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
    return torch.logsumexp(log_weights + log_normal, dim=-2) - log_det


def seed_streams(learner: str, seeds: range) -> list[torch.Generator]:
    """One random stream per seed for one learner, independent of every other learner's and seed's."""
    streams = []
    for seed in seeds:
        state = np.random.SeedSequence([seed, STREAMS[learner]]).generate_state(1)[0]
        streams.append(torch.Generator().manual_seed(int(state)))
    return streams


def randn_per_seed(streams: list[torch.Generator], shape: tuple[int, ...], dim: int) -> torch.Tensor:
    """Standard normal draws of `shape` from each seed's stream, stacked along `dim`, the seed axis."""
    return torch.stack([torch.randn(shape, generator=stream) for stream in streams], dim=dim)


def uniform_per_seed(streams: list[torch.Generator], shape: tuple[int, ...], dim: int, spread: float) -> torch.Tensor:
    """U(-spread, spread) draws of `shape` from each seed's stream, stacked along `dim`, the seed axis."""
    draws = [torch.empty(shape).uniform_(-spread, spread, generator=stream) for stream in streams]
    return torch.stack(draws, dim=dim)


class DeterministicMixture(nn.Module):
    """TD3/DDPG (N = 1) and Gamid (N > 1): N deterministic means mu_i = tanh(theta_i), shared fixed std sigma.
    No critic: the bandit's Q(mu_i) is R(mu_i) itself, and the reward is differentiated path-wise."""

    def __init__(self, args: Args, name: str, n: int):
        super().__init__()
        self.args, self.name = args, name
        self.streams = seed_streams(name, range(args.seed, args.seed + args.num_seeds))
        self.theta = nn.Parameter(uniform_per_seed(self.streams, (n,), dim=0, spread=args.init_spread))  # (seeds, N)

    def means(self) -> torch.Tensor:
        return torch.tanh(self.theta)  # (seeds, N), tanh-bounded as the actor networks' outputs

    def weights(self, step: int) -> torch.Tensor:
        """Epsilon-greedy mixture weights (paper §3.1) on R(mu_i): (seeds, N)."""
        a = self.args
        epsilon = linear_schedule(a.epsilon_initial, a.epsilon_final, a.epsilon_fraction, a.total_steps, step)
        return epsilon_greedy_weights(reward(self.means()).T, epsilon)

    def loss(self, step: int) -> torch.Tensor:
        """Minus the per-mean objective E[R(mu_i + eps)] + temperature D_var(i), summed over means and seeds."""
        a = self.args
        mu = self.means()  # (seeds, N)
        noise = randn_per_seed(self.streams, (mu.shape[1], a.batch_size), dim=0)  # (seeds, N, batch)
        actions = torch.clamp(mu.unsqueeze(-1) + a.noise_std * noise, -1, 1)
        temperature = linear_schedule(
            a.temperature_initial, a.temperature_final, a.temperature_fraction, a.total_steps, step
        )
        diversity = d_var(mu.T.unsqueeze(-1)).T  # (seeds, N); D_var(i) only reaches theta_i
        objective = reward(actions).mean(-1) + temperature * diversity
        return -objective.sum()

    def greedy(self) -> torch.Tensor:
        """The mean with the highest value R(mu_i) per seed, argmax_i Q(mu_i) as Gamid evaluates: (seeds,)."""
        mu = self.means()
        return mu.gather(1, reward(mu).argmax(1, keepdim=True)).squeeze(1)

    def sample(self, n: int, step: int, generator: torch.Generator) -> torch.Tensor:
        """n actions per seed from the mixture policy (for plots and logs, from a stream of their own): (seeds, n)."""
        idx = torch.multinomial(self.weights(step), n, replacement=True, generator=generator)
        noise = torch.randn(idx.shape, generator=generator)
        return torch.clamp(self.means().gather(1, idx) + self.args.noise_std * noise, -1, 1)

    def component_densities(self, x: torch.Tensor, step: int) -> torch.Tensor:
        """p_i N(x; mu_i, sigma^2) on grid x: (seeds, N, len(x))."""
        sigma = self.args.noise_std
        z = (x - self.means().unsqueeze(-1)) / sigma
        return self.weights(step).unsqueeze(-1) * torch.exp(-0.5 * z**2) / (sigma * math.sqrt(2 * math.pi))


class SoftMixture(nn.Module):
    """SAC (K = 1) and SACM (K > 1): uniform mixture of K tanh-Gaussians with learned means and stds.
    No critic: the objective E[scale R(a)] + alpha H is estimated from a batch of actions per component."""

    def __init__(self, args: Args, name: str, k: int):
        super().__init__()
        self.args, self.name = args, name
        self.streams = seed_streams(name, range(args.seed, args.seed + args.num_seeds))
        # parameters (K, seeds, 1): components first, seeds as the batch axis of mixture_log_prob
        self.mean = nn.Parameter(uniform_per_seed(self.streams, (k, 1), dim=1, spread=args.init_spread))
        self.log_std = nn.Parameter(torch.full((k, args.num_seeds, 1), args.init_log_std))
        self.register_buffer("log_w", torch.full((k, args.num_seeds), -math.log(k)))  # uniform (Baram et al., 2021)

    def clamped_log_std(self) -> torch.Tensor:
        return self.log_std.clamp(*LOG_STD_BOUNDS)

    def loss(self, step: int) -> torch.Tensor:
        """Minus E[scale R(a)] + alpha H by marginalised sampling: a batch from each component, weighted by w_k.
        The entropy term is reparameterised. The reward term is the score-function estimator E[scale (R(a) - b)
        grad log pi(a)] with b the batch mean of scale R (Huang et al.'s REINFORCE), or with --sac-estimator
        pathwise the gradient of scale R(a) through a = tanh(mean + std xi)."""
        a = self.args
        alpha = a.alpha * a.alpha_decay**step
        xi = randn_per_seed(self.streams, (a.batch_size, *self.mean.shape[:1], 1), dim=2)  # (batch, K, seeds, 1)
        u = self.mean + self.clamped_log_std().exp() * xi
        log_prob = mixture_log_prob(u, self.mean, self.clamped_log_std(), self.log_w)  # (batch, K, seeds)
        scaled_reward = a.reward_scale * reward(torch.tanh(u)).squeeze(-1)  # (batch, K, seeds)
        if a.sac_estimator == "score":
            log_prob_of_sample = mixture_log_prob(u.detach(), self.mean, self.clamped_log_std(), self.log_w)
            advantage = (scaled_reward - scaled_reward.mean((0, 1))).detach()  # batch-mean baseline per seed
            reward_term = advantage * log_prob_of_sample
        else:
            reward_term = scaled_reward
        per_sample = alpha * log_prob - reward_term
        return (per_sample.mean(0) * self.log_w.exp()).sum()

    def greedy(self) -> torch.Tensor:
        """tanh of the component mean with the highest value R, as Gamid evaluates: (seeds,)."""
        means = torch.tanh(self.mean.squeeze(-1)).T  # (seeds, K)
        return means.gather(1, reward(means).argmax(1, keepdim=True)).squeeze(1)

    def sample(self, n: int, step: int, generator: torch.Generator) -> torch.Tensor:
        """n actions per seed from the mixture (for plots and logs, from a stream of their own): (seeds, n)."""
        idx = torch.multinomial(self.log_w.T.exp(), n, replacement=True, generator=generator)
        mean = self.mean.squeeze(-1).T.gather(1, idx)
        std = self.clamped_log_std().exp().squeeze(-1).T.gather(1, idx)
        return torch.tanh(mean + std * torch.randn(idx.shape, generator=generator))

    def component_densities(self, x: torch.Tensor, step: int) -> torch.Tensor:
        """w_k pi_k(x) of each squashed component on grid x in (-1, 1): (seeds, K, len(x))."""
        u = torch.atanh(x).view(-1, 1, 1)  # (len(x), seeds = 1 broadcast, act)
        log_std = self.clamped_log_std()
        densities = []
        for k in range(self.mean.shape[0]):
            one = slice(k, k + 1)  # component k alone, weight 1: log pi_k(tanh(u))
            log_pi_k = mixture_log_prob(u, self.mean[one], log_std[one], torch.zeros_like(self.log_w[one]))
            densities.append(self.log_w[k] + log_pi_k)  # (len(x), seeds)
        return torch.stack(densities).exp().permute(2, 0, 1)


def make_learners(args: Args) -> dict[str, nn.Module]:
    return {
        "TD3": DeterministicMixture(args, "TD3", 1),
        "SAC": SoftMixture(args, "SAC", 1),
        f"SACM (K={args.n_components})": SoftMixture(args, "SACM", args.n_components),
        f"Gamid (N={args.n_actors})": DeterministicMixture(args, "Gamid", args.n_actors),
    }


def expected_reward(learner: nn.Module, step: int) -> torch.Tensor:
    """E_pi[R] per seed by quadrature on a fine grid: exact up to the grid, and draws nothing."""
    x = torch.linspace(-0.999, 0.999, 4001)
    density = learner.component_densities(x, step).sum(1)  # (seeds, len(x))
    return (density * reward(x)).sum(-1) * (x[1] - x[0])


def train_learner(learner: nn.Module, args: Args, writer=None, snapshot_steps=(), grid=None) -> list:
    """Adam on the learner's loss for total_steps; returns the policy densities of the first seed at snapshot_steps."""
    optimizer = torch.optim.Adam(learner.parameters(), lr=args.learning_rate)
    log_stream = torch.Generator().manual_seed(args.seed)  # log samples never touch the training streams
    snapshots, last_print = [], time.time()
    for step in range(args.total_steps + 1):
        with torch.no_grad():
            if step in snapshot_steps:
                snapshots.append(learner.component_densities(grid, step)[0].numpy())
            if writer is not None and step % args.log_every == 0:
                greedy = learner.greedy()
                at_global = ((greedy - GLOBAL_OPTIMUM).abs() <= 0.1).float().mean()
                actions = learner.sample(args.batch_size, step, log_stream)
                writer.add_histogram(f"{learner.name}/sampled_actions_first_seed", actions[0], step)
                writer.add_scalar(f"{learner.name}/expected_reward", expected_reward(learner, step).mean(), step)
                writer.add_scalar(f"{learner.name}/greedy_reward", reward(greedy).mean(), step)
                writer.add_scalar(f"{learner.name}/at_global_optimum", at_global, step)
                if time.time() - last_print > 3:
                    print(f"{learner.name}: step {step}/{args.total_steps}, greedy reward {reward(greedy).mean():.3f}")
                    last_print = time.time()
        if step == args.total_steps:
            break
        loss = learner.loss(step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return snapshots


def summary_line(name: str, greedy: torch.Tensor, mean_reward: torch.Tensor) -> str:
    """One row of the final table: where the greedy actions ended and what they earn."""
    seeds = len(greedy)
    at_global = int(((greedy - GLOBAL_OPTIMUM).abs() <= 0.1).sum())
    local = int(((greedy > 0) & (greedy < CLIFF)).sum())
    past_cliff = int((greedy >= CLIFF).sum())
    low, median, high = greedy.min().item(), greedy.median().item(), greedy.max().item()
    return (
        f"{name:<12} {f'{at_global}/{seeds}':>10} {f'{local}/{seeds}':>10} {f'{past_cliff}/{seeds}':>10}"
        f"   {median:+.3f} [{low:+.3f}, {high:+.3f}] {reward(greedy).mean():>8.3f} {mean_reward.mean():>8.3f}"
    )


def resolve_args(a: Args) -> Args:
    """Refuse, in one plain sentence and before anything is written, values that would crash late or train wrong."""
    checks = {
        "--num-seeds must be at least 1.": a.num_seeds >= 1,
        "--total-steps must be at least 1.": a.total_steps >= 1,
        "--batch-size must be at least 1.": a.batch_size >= 1,
        "--n-actors must be at least 1.": a.n_actors >= 1,
        "--n-components must be at least 1.": a.n_components >= 1,
        "--learning-rate must be positive.": a.learning_rate > 0,
        "--noise-std must be positive.": a.noise_std > 0,
        "--log-every must be at least 1.": a.log_every >= 1,
        "Temperatures must not be negative.": min(a.temperature_initial, a.temperature_final) >= 0,
        "Epsilons must lie in [0, 1].": all(0 <= e <= 1 for e in (a.epsilon_initial, a.epsilon_final)),
        "Fractions must lie in [0, 1].": all(0 <= f <= 1 for f in (a.temperature_fraction, a.epsilon_fraction)),
        "--alpha must be >= 0 and --alpha-decay in (0, 1].": a.alpha >= 0 and 0 < a.alpha_decay <= 1,
    }
    for sentence, ok in checks.items():
        if not ok:
            raise SystemExit(sentence)
    return a


def plot_figure1(snapshots: dict, snapshot_steps: list, path: str) -> None:
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
                peaks = x[components.argmax(1)]
                ax.plot(peaks, np.zeros(len(components)), "^", color=color, ms=6, clip_on=False)
            ax.set_ylim(0, 1.25)
            ax.set_xlim(-1, 1)
            ax.set_title(f"{name}, step {step}", fontsize=9)
            if col == 0:
                ax.set_ylabel("reward / scaled pdf")
            if row == len(names) - 1:
                ax.set_xlabel("action")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.savefig(path, dpi=110)


def main(args: Args) -> dict:
    """Train the four learners on --num-seeds seeds each; print where they end, write the figure and logs."""
    args = resolve_args(args)
    run_dir = os.path.join(args.runs_dir, f"bandit_1d__{args.exp_name}__{args.seed}__{int(time.time())}")
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "hyperparameters.json"), "w") as f:
        json.dump(asdict(args), f, indent=2)
    print("hyperparameters: " + ", ".join(f"{key}={value}" for key, value in asdict(args).items()))
    writer = SummaryWriter(run_dir)
    table = "\n".join(f"|{key}|{value}|" for key, value in vars(args).items())
    writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + table)
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead
    grid = torch.linspace(-0.999, 0.999, 800)
    snapshot_steps = sorted({round(f * args.total_steps) for f in SNAPSHOT_FRACTIONS})
    start = time.time()
    snapshots, results = {}, {}
    for name, learner in make_learners(args).items():
        snapshots[name] = train_learner(learner, args, writer, snapshot_steps, grid)
        with torch.no_grad():
            greedy = learner.greedy()
            results[name] = {
                "greedy": greedy,
                "at_global": ((greedy - GLOBAL_OPTIMUM).abs() <= 0.1).float(),
                "greedy_reward": reward(greedy),
                "expected_reward": expected_reward(learner, args.total_steps),
            }

    header = (
        f"{'method':<12} {'at -0.6':>10} {'0<a<0.875':>10} {'a>=0.875':>10}"
        f"   {'greedy a: median [min, max]':<27} {'R(greedy)':>8} {'E_pi[R]':>8}"
    )
    rows = [summary_line(name, res["greedy"], res["expected_reward"]) for name, res in results.items()]
    table = "\n".join([header, "-" * len(header), *rows])
    runs = f"{args.num_seeds} seeds, {args.total_steps} steps ({time.time() - start:.1f}s)"
    print(f"\nWhere each method's greedy action ended: {runs}")
    print(f"SAC and SACM reward gradient: {args.sac_estimator}; 'at -0.6' means within 0.1 of the global optimum")
    print(table)
    writer.add_text("summary", "```\n" + table + "\n```")
    writer.close()
    figure_path = os.path.join(run_dir, "bandit_1d.png")
    plot_figure1(snapshots, snapshot_steps, figure_path)
    print(f"figure: {figure_path}\ntensorboard: {run_dir}")
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
