"""Gamid, Gaussian Mixture Deterministic Policy Gradient on TD3 (Dey & Sharon, "Comparing Deterministic and Soft
Policy Gradients for Optimizing Gaussian Mixture Actors", TMLR), Algorithm 1 on MuJoCo; README: "How the code maps".
With N = 1 it computes td3_baseline.py's run, seed for seed. Run: python gamid_continuous_action.py --env-id Walker2d-v3
"""

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
from typing import Literal, NamedTuple, Optional

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from torch.utils.tensorboard import SummaryWriter

# The paper's -v3 tasks run as -v4 on purpose (their model and reward on the maintained bindings): no nagging.
warnings.filterwarnings("ignore", message=".*is out of date. You should consider upgrading to version `v5`")


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]  # the name of this experiment
    seed: int = 1  # seed of the experiment
    cuda: bool = True  # use a GPU when one is present
    capture_video: bool = False  # record evaluation episodes to run_dir/videos (headless: MUJOCO_GL=egl or osmesa)
    save_model: bool = False  # save the actor and critics to the run directory at the end
    runs_dir: str = "runs"  # where run directories are created
    env_id: str = "HalfCheetah-v4"  # environment id; the paper's -v3 ids run as -v4 (same model and reward)
    total_timesteps: Optional[int] = None  # total environment steps (preset)
    learning_rate: Optional[float] = None  # Adam learning rate of actor and critics (preset)
    buffer_size: int = 1_000_000  # replay buffer capacity
    gamma: Optional[float] = None  # discount factor (preset)
    tau: float = 0.005  # Polyak rate of the target networks (Alg. 1 line 16 writes alpha = 1 - tau)
    batch_size: Optional[int] = None  # minibatch size (preset)
    learning_starts: int = 10_000  # uniform random actions and no updates up to this step (Table 3)
    train_freq: Optional[Literal["step", "episode"]] = None  # train after every env step or episode (preset)
    gradient_steps: Optional[int] = None  # gradient steps per round; -1: one per env step collected (preset)
    net_arch: tuple[int, ...] = (256, 256)  # hidden layer sizes of actor and critics (Table 3)
    noise_std: float = 0.1  # sigma of the mixture's covariance sigma^2 I, in the [-1, 1] action scale (Table 3)
    policy_noise: float = 0.2  # std of TD3's target policy smoothing noise
    noise_clip: float = 0.5  # clip of TD3's target policy smoothing noise
    preactivation_penalty: float = 0.0  # not the paper's (0: off): + this * mean_s ||mu_i(s) before tanh||^2 per actor
    policy_delay: int = 2  # actor and target updates every this many gradient steps (TD3)
    n_actors: Optional[int] = None  # number of Gaussians N (preset)
    temperature_initial: Optional[float] = None  # policy divergence temperature of Alg. 1 line 13 at first (preset)
    temperature_final: Optional[float] = None  # the temperature after its linear decay (preset)
    temperature_fraction: Optional[float] = None  # share of total_timesteps the temperature decays over (preset)
    epsilon_initial: Optional[float] = None  # epsilon of the epsilon-greedy mixture weights (§3.1) at first (preset)
    epsilon_final: Optional[float] = None  # epsilon after its linear decay (preset)
    epsilon_fraction: Optional[float] = None  # share of total_timesteps epsilon decays over (preset)
    temperature: Optional[Literal["auto"]] = None  # auto: learn it from --temperature-initial on, to hold the target
    temperature_target: Optional[float] = None  # D*, the mean D_var auto holds (default: target_d_var(N, act dim))
    temperature_lr: float = 3e-4  # Adam learning rate of log(temperature) under --temperature auto
    epsilon: Optional[Literal["auto"]] = None  # auto: 1/(10N), constant (Figure 5c: a low, non-zero epsilon did best)
    eval_freq: int = 10_000  # greedy evaluation every this many env steps (and at the end)
    eval_episodes: int = 10  # episodes per evaluation
    log_freq: int = 1_000  # TensorBoard scalars every this many env steps
    record_means: bool = False  # at each evaluation, add the N means on the probe states to means.npz (Figure 8)
    probe_states: int = 100  # --record-means: how many of the replay buffer's first states are the probe states
    checkpoint_freq: int = 50_000  # checkpoint.pt every this many env steps, at an episode end (0: only on a stop)
    resume: Optional[str] = None  # continue the run in this directory from its checkpoint.pt, with its hyperparameters
    evaluate: Optional[str] = None  # watch a saved model or checkpoint for --eval-episodes greedy episodes
    track: bool = False  # log the run to Weights & Biases
    wandb_project_name: str = "gamid-pg"  # the Weights & Biases project
    wandb_entity: Optional[str] = None  # the Weights & Biases team or user


# The paper's Table 3 (TD3 on MuJoCo) and Table 5 (Gamid), one row per task, fill the fields of Args left None (other
# Box envs take Hopper's row); the cells all tasks share are Args defaults. Table 3's train_freq 1 is "step" here.
PRESET_FIELDS = ("total_timesteps", "learning_rate", "batch_size", "gamma", "train_freq", "gradient_steps",  # Table 3
                 "n_actors", "temperature_initial", "temperature_final", "temperature_fraction",  # Table 5
                 "epsilon_initial", "epsilon_final", "epsilon_fraction")  # fmt: skip
PRESETS = {  # steps,     lr,   batch, gamma, train_freq,  grad.| N, temperature: i, f, frac.| epsilon: i, f, frac.
    "Swimmer":     (1_000_000, 1e-3, 100, 0.9999, "step",    1,    3, 0.1, 0.1,  1.0,          0.3, 0.03, 0.5),
    "HalfCheetah": (1_000_000, 1e-3, 100, 0.99,   "episode", -1,   5, 0.1, 0.1,  1.0,          0.2, 0.02, 0.5),
    "Hopper":      (1_000_000, 3e-4, 256, 0.99,   "step",    1,    2, 0.1, 0.01, 1.0,          0.1, 0.1,  1.0),
    "Ant":         (1_000_000, 1e-3, 100, 0.99,   "episode", -1,   2, 0.1, 0.1,  1.0,          0.1, 0.1,  1.0),
    "Walker2d":    (1_000_000, 1e-3, 100, 0.99,   "episode", -1,   3, 0.1, 0.1,  1.0,          0.3, 0.03, 1.0),
    "Humanoid":    (2_000_000, 3e-4, 256, 0.99,   "step",    1,    4, 0.3, 0.1,  0.3,          0.3, 0.1,  0.3),
}  # fmt: skip


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


# --temperature auto (the paper's future work, §5): the temperature held by a target, as SAC holds its entropy.
TARGET_SPACING = 1.0  # delta / sqrt(act dim) of target_d_var: the D_var tuned presets reach (docs/temperature.md)


def target_d_var(n_actors: int, act_dim: int) -> float:
    """Default D*: D_var of N means pairwise delta apart, delta^2 - log(N - 1), with delta^2 = SPACING^2 act_dim."""
    return TARGET_SPACING**2 * act_dim - math.log(n_actors - 1)


def temperature_loss(log_temperature: torch.Tensor, mean_d_var: torch.Tensor, target: float) -> torch.Tensor:
    """Dual loss log(temperature) (mean D_var - D*): the temperature rises while the means are closer than D*."""
    return log_temperature * (mean_d_var.detach() - target)


def linear_schedule(initial: float, final: float, fraction: float, total: int, step: int) -> float:
    """Linear decay from `initial` to `final` over the first `fraction` of `total` steps, then constant."""
    progress = min(step / (fraction * total), 1.0) if fraction > 0 else 1.0
    return initial + progress * (final - initial)


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Target networks trail the trained ones: target <- (1 - tau) target + tau source (TD3, SAC)."""
    for target_param, param in zip(target.parameters(), source.parameters()):
        target_param.lerp_(param, tau)


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


@torch.no_grad()
def record_means(path: str, step: int, actor: GaussianMeans, first: torch.Tensor) -> None:
    """--record-means: add the N means on the probe states (the first call's `first`) to the .npz at `path`: steps
    (E,), means (E, N, P, act), probe_obs (P, obs). A resumed run's records replace those from `step` on."""
    old = dict(np.load(path)) if os.path.exists(path) else dict(steps=np.array([], int), probe_obs=first.cpu().numpy())
    kept, means = old["steps"] < step, actor(torch.as_tensor(old["probe_obs"], device=first.device)).cpu().numpy()[None]
    old["means"] = np.concatenate([old.get("means", means[:0])[kept], means])
    old["steps"] = np.append(old["steps"][kept], step)
    np.savez(path + ".tmp.npz", **old)
    os.replace(path + ".tmp.npz", path)  # atomic: an interruption leaves the old file whole


def to_env_action(action: np.ndarray, space: gym.spaces.Box) -> np.ndarray:  # [-1, 1] -> the env's [low, high]
    return space.low + (action + 1) * 0.5 * (space.high - space.low)


def from_env_action(action: np.ndarray, space: gym.spaces.Box) -> np.ndarray:  # the env's [low, high] -> [-1, 1]
    return 2 * (action - space.low) / (space.high - space.low) - 1


def evaluate(actor: GaussianMeans, qf: TwinQ, env: gym.Env, episodes: int, device: torch.device, seed: int):
    """Returns of greedy_action (Table 1's performance), episode i from seed + i, and the switch rate: the share of
    steps (after each episode's first) whose greedy Gaussian differs from the previous step's."""
    returns, switches = [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)  # the same start states at every evaluation
        done, total, chosen = False, 0.0, []
        while not done:
            action, best = greedy_action(actor, qf, torch.as_tensor(obs, dtype=torch.float32, device=device)[None])
            chosen.append(int(best[0]))
            obs, reward, terminated, truncated, _ = env.step(to_env_action(action[0].cpu().numpy(), env.action_space))
            done, total = terminated or truncated, total + float(reward)
        returns.append(total)
        switches += [now != before for before, now in zip(chosen, chosen[1:])]
    return returns, sum(switches) / max(len(switches), 1)


def choose_renderer() -> None:
    """--capture-video, before MuJoCo's first import: MUJOCO_GL if set, else EGL, else OSMesa, if it renders here."""
    probe = [sys.executable, "-c", "import mujoco as m; m.Renderer(m.MjModel.from_xml_string('<mujoco/>'), 8, 8)"]
    warnings.filterwarnings("ignore", message=".*Overwriting existing videos")  # they are named by step: none is
    for gl in os.environ.get("MUJOCO_GL", "egl osmesa").split():  # each tried in a subprocess, as it cannot be undone
        if subprocess.run(probe, env=os.environ | {"MUJOCO_GL": gl}, capture_output=True).returncode == 0:
            os.environ["MUJOCO_GL"] = gl  # and a context made now: EGL's exit handler then runs after the envs close
            return __import__(f"mujoco.{gl}", fromlist=["GLContext"]).GLContext(8, 8).free()
    raise SystemExit("--capture-video cannot render: install libosmesa6 and set MUJOCO_GL=osmesa.")


def make_env(env_id: str, seed: int, video_dir: Optional[str] = None) -> gym.Env:
    """A single env (no vector env: episode boundaries stay explicit, so none can leak into the buffer)."""
    if video_dir:  # first, before any env imports MuJoCo: a machine that cannot record says so before training
        choose_renderer()
    env = gym.make(env_id, render_mode="rgb_array" if video_dir else None)
    for name, kind in (("action", type(env.action_space)), ("observation", type(env.observation_space))):
        if not issubclass(kind, gym.spaces.Box):
            raise SystemExit(f"{env_id} has a {kind.__name__} {name} space; this script needs a continuous (Box) one.")
    env.action_space.seed(seed)
    if video_dir:
        env = gym.wrappers.RecordVideo(env, video_dir, episode_trigger=lambda episode: True, disable_logger=True)
        atexit.register(env.close)  # the last video written, the renderer released before interpreter shutdown
    return gym.wrappers.RecordEpisodeStatistics(env)


def resolve_env_id(env_id: str) -> str:
    """Map the paper's -v3 ids (mujoco-py, no longer installable) to -v4; reject unknown ids."""
    task, _, version = env_id.rpartition("-")
    if task in PRESETS and version == "v3":
        print(f"{env_id} needs mujoco-py, which no longer installs; running {task}-v4 (same model and reward).")
        return f"{task}-v4"
    if env_id not in gym.registry:
        tasks = ", ".join(f"{task}-v3/-v4/-v5" for task in PRESETS) + " (other registered Box-action envs also run)"
        raise SystemExit(f"Unknown env id '{env_id}'; supported paper tasks are {tasks}.")
    return env_id


def resolve_args(args: Args) -> Args:
    """Fill the fields left None from the task's row of PRESETS; refuse values that would train wrong or crash late."""
    args.env_id = resolve_env_id(args.env_id)
    task = args.env_id.rpartition("-")[0]
    if task not in PRESETS:
        print(f"{args.env_id} is not one of the paper's tasks; unset hyperparameters take Hopper's column.")
    given = set() if args.resume else {name for name in PRESET_FIELDS if getattr(args, name) is not None}  # resolved
    row = PRESETS.get(task, PRESETS["Hopper"])
    vars(args).update({field: value for field, value in zip(PRESET_FIELDS, row) if getattr(args, field) is None})
    auto_temperature, auto_epsilon = args.temperature == "auto", args.epsilon == "auto"
    if auto_temperature and given & {"temperature_final", "temperature_fraction"}:
        raise SystemExit("--temperature auto learns the temperature; drop --temperature-final and -fraction.")
    if auto_epsilon and given & {"epsilon_initial", "epsilon_final", "epsilon_fraction"}:
        raise SystemExit("--epsilon auto sets epsilon to 1/(10N); drop the --epsilon-* schedule flags.")
    if args.temperature_target is not None and not auto_temperature:
        raise SystemExit("--temperature-target is the target of --temperature auto; give both or neither.")
    if auto_temperature and args.temperature_initial <= 0:
        raise SystemExit("--temperature auto learns log(temperature), so --temperature-initial must be positive.")
    if args.n_actors < 1 or min(args.temperature_initial, args.temperature_final) < 0:
        raise SystemExit(f"--n-actors must be at least 1 (is {args.n_actors}) and temperatures must not be negative.")
    fractions = (args.epsilon_initial, args.epsilon_final, args.epsilon_fraction, args.temperature_fraction)
    if not all(0 <= value <= 1 for value in fractions):
        raise SystemExit("Epsilons and schedule fractions must lie in [0, 1].")
    if args.batch_size > args.buffer_size:
        raise SystemExit(f"--batch-size {args.batch_size} is larger than --buffer-size {args.buffer_size}.")
    if args.total_timesteps <= args.learning_starts:
        raise SystemExit("--total-timesteps must exceed --learning-starts, or nothing is trained.")
    if args.gradient_steps < -1 or min(abs(args.gradient_steps), args.batch_size, args.eval_episodes) < 1:
        raise SystemExit("--gradient-steps must be positive or -1, and --batch-size and --eval-episodes positive.")
    if min(args.policy_delay, args.eval_freq, args.log_freq) < 1:
        raise SystemExit("--policy-delay, --eval-freq and --log-freq must be positive.")
    if args.record_means and not 1 <= args.probe_states <= min(args.eval_freq, args.learning_starts):
        raise SystemExit("--probe-states must be at least 1 and at most --eval-freq and --learning-starts.")
    if auto_epsilon:  # 1/(10N), constant, in place of the schedule
        args.epsilon_initial = args.epsilon_final = 1 / (10 * args.n_actors)
        args.epsilon_fraction = 1.0
    return args


def main(args: Args) -> str:
    """Train Gamid; returns the run directory."""
    if args.evaluate:  # run control
        return watch(args)
    if args.resume:  # run control: continue with the run's saved hyperparameters; other flags are ignored
        args = type(args)(**load_checkpoint(args.resume)["args"] | {"resume": args.resume})
    args = resolve_args(args)
    run_dir = args.resume or f"{args.runs_dir}/{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    eval_env = make_env(args.env_id, args.seed, os.path.join(run_dir, "videos") if args.capture_video else None)
    env = make_env(args.env_id, args.seed)  # after the eval env, whose renderer is chosen before MuJoCo's import
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    learn_temperature = args.temperature == "auto" and args.n_actors > 1  # N = 1: no D_var to hold, the run is TD3
    if learn_temperature and args.temperature_target is None:
        args.temperature_target = target_d_var(args.n_actors, act_dim)

    # TRY NOT TO MODIFY: seeding, then the networks in this order (N = 1 draws td3_baseline.py's weights)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    actor = GaussianMeans(args.n_actors, obs_dim, act_dim, args.net_arch).to(device)
    qf = TwinQ(obs_dim, act_dim, args.net_arch).to(device)
    actor_target = GaussianMeans(args.n_actors, obs_dim, act_dim, args.net_arch).to(device)
    qf_target = TwinQ(obs_dim, act_dim, args.net_arch).to(device)
    actor_target.load_state_dict(actor.state_dict())  # Alg. 1 line 1
    qf_target.load_state_dict(qf.state_dict())
    # The training state, declared once: train_step's networks and optimizers, what the loop carries, the checkpoint.
    nets = dict(actor=actor, actor_target=actor_target, qf=qf, qf_target=qf_target,
                actor_optimizer=torch.optim.Adam(actor.parameters(), lr=args.learning_rate, fused=True),
                q_optimizer=torch.optim.Adam(qf.parameters(), lr=args.learning_rate, fused=True))  # fmt: skip
    state = dict(nets, rb=ReplayBuffer(args.buffer_size, obs_dim, act_dim, device), recent_returns=deque(maxlen=10),
                 stats={}, n_updates=0, step=0, args=asdict(args), selected=torch.zeros(args.n_actors, device=device),
                 batch_obs=torch.zeros(args.batch_size, obs_dim, device=device))  # fmt: skip
    if learn_temperature:  # --temperature auto: log(temperature) has its own optimizer, as SAC's log(alpha)
        log_temperature = nn.Parameter(torch.full((), math.log(args.temperature_initial), device=device))
        temperature_optimizer = torch.optim.Adam([log_temperature], lr=args.temperature_lr)
        state |= dict(log_temperature=log_temperature, temperature_optimizer=temperature_optimizer)
    if args.resume and load_checkpoint(args.resume, state, [env])["step"] >= args.total_timesteps:  # run control
        print(f"{args.resume} already finished at step {state['step']}; nothing to do.")
        return args.resume
    rb, recent_returns, stats, selected = state["rb"], state["recent_returns"], state["stats"], state["selected"]
    if args.track:  # run control: Weights & Biases as in CleanRL, before the SummaryWriter whose scalars it syncs
        import wandb

        name = os.path.basename(run_dir)
        wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, name=name, id=name.replace(".", "-"),
                   resume="allow", config=vars(args), sync_tensorboard=True, save_code=True)  # fmt: skip
    writer = SummaryWriter(run_dir, purge_step=state["step"] + 1 if args.resume else None)  # no step logged twice
    if not args.resume:
        rows = "\n".join(f"|{name}|{value}|" for name, value in asdict(args).items())
        writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + rows)
        with open(os.path.join(run_dir, "hyperparameters.json"), "w") as f:
            json.dump(asdict(args), f, indent=2)

    obs, _ = env.reset(seed=None if args.resume else args.seed)  # resumed: the restored generator draws the start
    start_step, episode_steps, start_time = state["step"], 0, time.time()
    marks = deque([(start_time, start_step)], maxlen=12)  # run control: the progress line's recent speed
    catch_stop_signals()  # run control
    for global_step in range(start_step + 1, args.total_timesteps + 1):
        now = (args.total_timesteps, global_step)  # where Table 5's linear schedules stand
        temperature = linear_schedule(args.temperature_initial, args.temperature_final, args.temperature_fraction, *now)
        temperature = log_temperature.detach().exp() if learn_temperature else temperature
        epsilon = linear_schedule(args.epsilon_initial, args.epsilon_final, args.epsilon_fraction, *now)

        # ALGO LOGIC: Alg. 1 lines 3-7; before learning_starts, uniform random actions.
        if global_step <= args.learning_starts:
            action = from_env_action(env.action_space.sample(), env.action_space)
        else:
            obs_tensor = torch.as_tensor(obs, dtype=torch.float32, device=device)[None]
            action, n = gmm_action(actor, qf, obs_tensor, epsilon, args.noise_std)
            action = action[0].cpu().numpy()
            selected[n] += 1  # how often each Gaussian acted since the last log
        next_obs, reward, terminated, truncated, info = env.step(to_env_action(action, env.action_space))
        rb.add(obs, action, reward, next_obs, terminated)  # d = terminated: bootstrap through time limits
        obs, episode_steps, episode_over = next_obs, episode_steps + 1, terminated or truncated
        if episode_over:
            recent_returns.append(float(info["episode"]["r"]))
            writer.add_scalar("charts/episodic_return", info["episode"]["r"], global_step)
            writer.add_scalar("charts/episodic_length", info["episode"]["l"], global_step)

        # Lines 9-16 after every env step or, as SB3's train_freq=(1, "episode"), at each episode's end.
        if global_step > args.learning_starts and (args.train_freq == "step" or episode_over):
            n_steps = 1 if args.train_freq == "step" else episode_steps  # -1: one per env step collected
            for _ in range(args.gradient_steps if args.gradient_steps > 0 else n_steps):
                state["n_updates"] += 1
                update_actor = state["n_updates"] % args.policy_delay == 0
                batch = rb.sample(args.batch_size)
                stats |= train_step(**nets, batch=batch, update_actor=update_actor, temperature=temperature, args=args)
                state["batch_obs"] = batch.obs  # the last update's states, which the diagnostics read
                if learn_temperature and update_actor:  # the dual step, with the actor's, on its batch
                    mean_d_var = stats["charts/sum_d_var"] / args.n_actors
                    loss = temperature_loss(log_temperature, mean_d_var, args.temperature_target)
                    temperature_optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    temperature_optimizer.step()
                    temperature, stats["losses/temperature_loss"] = log_temperature.detach().exp(), loss.detach()

        if global_step % args.log_freq == 0 and stats:
            values = {tag: value.item() for tag, value in stats.items()}
            if bad := [tag for tag, value in values.items() if not np.isfinite(value)]:
                writer.close()
                raise SystemExit(f"{bad[0]} is {values[bad[0]]} at step {global_step}; stopping (logs in {run_dir}).")
            diagnosed = diagnostics(actor, qf, state["batch_obs"], temperature)  # on the last update's batch
            values |= {tag: value.item() for tag, value in diagnosed.items()}
            values |= {"charts/temperature": float(temperature), "charts/epsilon": epsilon}
            if "charts/sum_d_var" in values:
                values["charts/mean_d_var"] = values["charts/sum_d_var"] / args.n_actors
            values |= {"charts/temperature_target": args.temperature_target} if learn_temperature else {}
            fractions = (selected / selected.sum().clamp(min=1)).tolist()
            values |= {f"charts/selected_fraction/gaussian_{i}": fraction for i, fraction in enumerate(fractions)}
            values["charts/SPS"] = (global_step - start_step) / (time.time() - start_time)
            for tag, value in values.items():
                writer.add_scalar(tag, value, global_step)
            selected.zero_()
        if global_step % args.eval_freq == 0 or global_step == args.total_timesteps:
            eval_env.set_wrapper_attr("name_prefix", f"step{global_step}")  # videos/step<N>-episode-<k>.mp4
            returns, switch_rate = evaluate(actor, qf, eval_env, args.eval_episodes, device, seed=args.seed + 10_000)
            writer.add_scalar("eval/episodic_return", np.mean(returns), global_step)
            writer.add_scalar("eval/switch_rate", switch_rate, global_step)
            if args.record_means:  # Figures 8-9 (benchmarks/reproduce.py fig8): the means on the buffer's first states
                record_means(os.path.join(run_dir, "means.npz"), global_step, actor, rb.obs[: args.probe_states])
            print(f"step {global_step}, eval return {np.mean(returns):.1f} +- {np.std(returns):.1f}")
        if time.time() - marks[-1][0] > 5:  # run control
            print(progress_line(global_step, args.total_timesteps, marks, recent_returns))
        if episode_over or global_step == args.total_timesteps:  # run control: checkpoint when due, exit 75 if asked
            checkpoint(run_dir, state, [env], global_step, args, writer)
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
    """--evaluate PATH: greedy episodes of a saved model or checkpoint from --seed + 10_000 + i (with the run's seed,
    its evaluations' start states); trains nothing. Returns the run directory."""
    saved = load_checkpoint(args.evaluate)
    run, run_dir = saved["args"], args.evaluate if os.path.isdir(args.evaluate) else os.path.dirname(args.evaluate)
    env = make_env(run["env_id"], args.seed, os.path.join(run_dir, "videos_evaluate") if args.capture_video else None)
    env.set_wrapper_attr("name_prefix", f"step{saved.get('step', run['total_timesteps'])}")
    dims = env.observation_space.shape[0], env.action_space.shape[0]
    actor, qf = GaussianMeans(run["n_actors"], *dims, run["net_arch"]), TwinQ(*dims, run["net_arch"])
    actor.load_state_dict(saved["actor"])
    qf.load_state_dict(saved["qf"])
    returns, _ = evaluate(actor, qf, env, args.eval_episodes, torch.device("cpu"), seed=args.seed + 10_000)
    print(f"eval return {np.mean(returns):.1f} +- {np.std(returns):.1f} over {args.eval_episodes} episodes")
    return run_dir


if __name__ == "__main__":
    main(tyro.cli(Args))
