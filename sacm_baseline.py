"""SACM: Soft Actor-Critic with a Gaussian-mixture actor (Baram et al., 2021), the SAC and SACM columns of Table 1 of
Gamid (Dey & Sharon, TMLR); K = 1 is plain SAC (Haarnoja et al., 2018, as in Stable-Baselines3, which ran them).

    python sacm_baseline.py --env-id Walker2d-v3                    # SACM, K = 3 (Table 7)
    python sacm_baseline.py --env-id Walker2d-v3 --n-components 1   # SAC (Table 6)
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
    """SAC (--n-components 1) or SACM on one MuJoCo task: the fields left None take the task's row of PRESETS."""

    exp_name: str = os.path.basename(__file__)[: -len(".py")]  # the name of this experiment
    seed: int = 1  # seed of the experiment
    cuda: bool = True  # use a GPU when one is present
    capture_video: bool = False  # record evaluation episodes to run_dir/videos (headless: MUJOCO_GL=egl or osmesa)
    save_model: bool = False  # save the actor, critics and entropy coefficient to the run directory at the end
    runs_dir: str = "runs"  # where run directories are created
    env_id: str = "HalfCheetah-v4"  # environment id; the paper's -v3 ids run as -v4 (same model and reward)
    n_components: int = 3  # the number K of Gaussians in the actor (Table 7); 1 is plain SAC (Table 6)
    learn_weights: bool = False  # learn state-dependent mixing weights (otherwise uniform, as Baram et al.)
    total_timesteps: Optional[int] = None  # total environment steps (preset)
    learning_rate: Optional[float] = None  # Adam learning rate of actor, critics and entropy coefficient (preset)
    buffer_size: int = 1_000_000  # replay buffer capacity (SB3's default; the tables print none)
    gamma: Optional[float] = None  # discount factor (preset)
    tau: Optional[float] = None  # Polyak rate of the target critics (preset)
    batch_size: int = 256  # minibatch size (SB3 SAC's default; the tables print none)
    learning_starts: int = 10_000  # uniform random actions and no updates before this step (Tables 6 and 7)
    train_freq: Literal["step", "episode"] = "step"  # train after every env step (SB3 SAC's default) or episode
    gradient_steps: Optional[int] = None  # per training round; -1: one per env step collected (preset)
    net_arch: tuple[int, ...] = (256, 256)  # hidden layer sizes of actor and critics (Tables 6 and 7)
    autotune: bool = True  # learn the entropy coefficient alpha toward the target entropy -|A| (SB3's "auto")
    ent_coef: float = 1.0  # alpha: its initial value with --autotune, else fixed
    eval_freq: int = 10_000  # greedy evaluation every this many env steps (and at the end)
    eval_episodes: int = 10  # episodes per evaluation
    log_freq: int = 1_000  # TensorBoard scalars every this many env steps
    checkpoint_freq: int = 50_000  # checkpoint.pt every this many env steps, at an episode end (0: never)
    resume: Optional[str] = None  # continue the run in this directory from its checkpoint.pt, with its hyperparameters
    evaluate: Optional[str] = None  # watch a saved model or checkpoint for --eval-episodes greedy episodes
    track: bool = False  # log the run to Weights & Biases
    wandb_project_name: str = "gamid-pg"  # the Weights & Biases project
    wandb_entity: Optional[str] = None  # the Weights & Biases team or user


# Paper Table 6 (SAC, --n-components 1) and Table 7 (SACM). Table 7 prints neither total_timesteps nor gamma: Table 6's.
# Shared cells (learning_starts, net_arch, ReLU, K = 3) are Args' defaults, as are SB3 SAC's batch_size and train_freq
# (no table prints them). tau: 0.05 for SACM (Table 7) but 0.005 for SAC: Table 6 prints 0.05, yet the authors' SAC
# config (rl-baselines3-zoo 1.6.2 sac.yml, Appendix B) sets none, so SB3's default made the paper's numbers (--tau 0.05
# runs the printed value). gradient_steps -1: one per env step collected. Other envs take HalfCheetah's row.
PRESETS = {  # total_timesteps, gamma, SAC: learning_rate, gradient_steps, SACM: learning_rate, gradient_steps
    "Swimmer":     (1_000_000, 0.9999, 3e-4, 1, 6e-4, 1),
    "HalfCheetah": (1_000_000, 0.99,   3e-4, 1, 3e-4, -1),
    "Hopper":      (1_000_000, 0.99,   3e-4, 1, 3e-4, 1),
    "Ant":         (1_000_000, 0.99,   3e-4, 1, 3e-4, -1),
    "Walker2d":    (1_000_000, 0.99,   3e-4, 1, 3e-4, -1),
    "Humanoid":    (2_000_000, 0.99,   3e-4, 1, 3e-4, 1),
}  # fmt: skip
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SB3's SAC clamp (the paper's baselines are SB3)


def resolve_args(args: Args) -> Args:
    """Fill the fields left None from the task's row of PRESETS, then refuse values that would train wrong."""
    args.env_id = resolve_env_id(args.env_id)
    task, sac = args.env_id.rpartition("-")[0], args.n_components == 1
    if task not in PRESETS:
        print(f"{args.env_id} is not one of the paper's tasks; unset hyperparameters take HalfCheetah's row.")
    row = PRESETS.get(task, PRESETS["HalfCheetah"])
    preset = (*row[:2], *row[2:4], 0.005) if sac else (*row[:2], *row[4:], 0.05)
    for field, value in zip(("total_timesteps", "gamma", "learning_rate", "gradient_steps", "tau"), preset):
        if getattr(args, field) is None:
            setattr(args, field, value)
    for failed, sentence in [
        (args.n_components < 1, f"--n-components must be at least 1, got {args.n_components}."),
        (args.batch_size > args.buffer_size, f"--batch-size {args.batch_size} exceeds --buffer-size."),
        (args.total_timesteps <= args.learning_starts, "--total-timesteps must exceed --learning-starts."),
        (args.gradient_steps == 0 or args.gradient_steps < -1, "--gradient-steps must be positive, or -1."),
        (min(args.batch_size, args.eval_freq, args.eval_episodes, args.log_freq) < 1,
         "--batch-size, --eval-freq, --eval-episodes and --log-freq must be positive."),
        (not 0 < args.tau <= 1, f"--tau must lie in (0, 1], got {args.tau}."),
        (args.ent_coef <= 0, f"--ent-coef must be positive, got {args.ent_coef}."),
    ]:  # fmt: skip
        if failed:
            raise SystemExit(sentence)
    return args


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


def mixture_log_prob(u, mean, log_std, log_weights) -> torch.Tensor:
    """Exact log pi(tanh(u)|s) of the squashed mixture: u (..., B, act), mean, log_std (K, B, act), log_weights (K, B).
    logsumexp_j(log w_j + log N(u; mu_j, sigma_j)) - sum_d log(1 - tanh(u_d)^2), overflow-free -> (..., B)."""
    z = (u.unsqueeze(-3) - mean) / log_std.exp()  # (..., K, B, act)
    log_normal = (-0.5 * z.pow(2) - log_std).sum(-1) - 0.5 * math.log(2 * math.pi) * u.shape[-1]
    log_det = (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
    return torch.logsumexp(log_weights + log_normal, dim=-2) - log_det


def sample_mixture(mean: torch.Tensor, log_std: torch.Tensor, log_weights: torch.Tensor) -> torch.Tensor:
    """A pre-squash action u (B, act) per state: c ~ Categorical(w) by Gumbel-max, u = mu_c + sigma_c eps; no sync."""
    gumbel = -torch.empty_like(log_weights).exponential_().log()  # Gumbel(0, 1): minus the log of an Exp(1) draw
    c = (log_weights + gumbel).argmax(0)  # (B,)
    u = mean + log_std.exp() * torch.randn_like(mean)  # (K, B, act): every component samples, c picks one
    return u[c, torch.arange(u.shape[1], device=u.device)]


@torch.no_grad()
def greedy_mixture_action(actor: MixtureActor, qf: TwinQ, obs: torch.Tensor) -> torch.Tensor:
    """tanh of the component mean with the highest Q1 (Gamid's greedy rule), (B, obs) -> (B, act); draws nothing."""
    means = torch.tanh(actor(obs)[0])  # (K, B, act)
    best = qf(obs, means, members=1)[0].argmax(0)  # (B,)
    return means[best, torch.arange(obs.shape[0], device=obs.device)]


@torch.no_grad()
def policy_action(actor: MixtureActor, obs: np.ndarray, device: torch.device) -> np.ndarray:
    """One exploring action in the [-1, 1] scale for one network input: a sample of the squashed mixture."""
    u = sample_mixture(*actor(torch.as_tensor(obs, dtype=torch.float32, device=device)[None]))  # a batch of one
    return torch.tanh(u)[0].cpu().numpy()


def actor_loss(actor: MixtureActor, qf: TwinQ, obs: torch.Tensor, alpha: torch.Tensor):
    """Marginalized reparameterization (Baram et al.): sum_i w_i mean_s[alpha log pi(a_i|s) - min_k Q_k(s, a_i)], one
    a_i = tanh(mu_i + sigma_i eps_i) per component, so each gets gradient. -> loss, entropy, weights (K, B), stds."""
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
def soft_td_target(actor: MixtureActor, qf_target: TwinQ, batch: Batch, alpha: torch.Tensor, gamma: float):
    """Soft target, a' ~ pi(.|s'): y = r + gamma (1 - d) (min_k Q_targ,k(s', a') - alpha log pi(a'|s'))."""
    mean, log_std, log_weights = actor(batch.next_obs)
    u = sample_mixture(mean, log_std, log_weights)
    next_q = qf_target(batch.next_obs, torch.tanh(u)).min(0).values
    next_v = next_q - alpha * mixture_log_prob(u, mean, log_std, log_weights)
    return batch.rewards + gamma * (1 - batch.terminated) * next_v


def train_step(actor, qf, qf_target, log_alpha, actor_optimizer, q_optimizer, alpha_optimizer, batch: Batch, args):
    """One SAC(M) gradient step: critics, actor, entropy coefficient (alpha_optimizer None: fixed), Polyak averaging;
    returns detached diagnostics (no host sync). benchmarks/sps.py times it and the buffer's `sample` by name."""
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
    stats = {"losses/qf_loss": qf_loss.detach(), "losses/qf1_values": q[0].detach().mean(),
             "losses/qf2_values": q[1].detach().mean(), "losses/actor_loss": loss.detach(), "losses/alpha": alpha,
             "charts/entropy": entropy}  # fmt: skip
    stats |= {f"charts/component_{i}/weight": w for i, w in enumerate(weights.mean(1).unbind())}
    stats |= {f"charts/component_{i}/std": s for i, s in enumerate(stds.mean((1, 2)).unbind())}
    if alpha_optimizer is not None:  # SAC's temperature loss on the mixture entropy: alpha falls while H > -|A|
        alpha_loss = log_alpha * (entropy + batch.actions.shape[1])
        alpha_optimizer.zero_grad(set_to_none=True)
        alpha_loss.backward()
        alpha_optimizer.step()
        stats["losses/alpha_loss"] = alpha_loss.detach()
    polyak_update(qf_target, qf, args.tau)  # SAC has no target actor
    return stats


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Target networks trail the trained ones: target <- (1 - tau) target + tau source (TD3, SAC)."""
    for target_param, param in zip(target.parameters(), source.parameters()):
        target_param.lerp_(param, tau)


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


def to_env_action(action: np.ndarray, space: gym.spaces.Box) -> np.ndarray:  # [-1, 1] -> the env's [low, high]
    return space.low + (action + 1) * 0.5 * (space.high - space.low)


def from_env_action(action: np.ndarray, space: gym.spaces.Box) -> np.ndarray:  # the env's [low, high] -> [-1, 1]
    return 2 * (action - space.low) / (space.high - space.low) - 1


def evaluate(actor: MixtureActor, qf: TwinQ, env: gym.Env, episodes: int, device: torch.device, seed: int):
    """Returns of the greedy action, episode i from seed + i: the post-training performance of Table 1."""
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)  # the same start states at every evaluation
        done, total = False, 0.0
        while not done:
            action = greedy_mixture_action(actor, qf, torch.as_tensor(obs, dtype=torch.float32, device=device)[None])
            obs, reward, terminated, truncated, _ = env.step(to_env_action(action[0].cpu().numpy(), env.action_space))
            done, total = terminated or truncated, total + float(reward)
        returns.append(total)
    return returns


def main(args: Args) -> str:
    """Train SACM (SAC for K = 1); returns the run directory."""
    if args.evaluate:  # run control
        return watch(args)
    if args.resume:  # run control: continue with the run's saved hyperparameters; other flags are ignored
        args = type(args)(**load_checkpoint(args.resume)["args"] | {"resume": args.resume})
    args = resolve_args(args)
    run_dir = args.resume or f"{args.runs_dir}/{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    eval_env = make_env(args.env_id, args.seed, os.path.join(run_dir, "videos") if args.capture_video else None)
    env = make_env(args.env_id, args.seed)  # after the eval env, whose renderer is chosen before MuJoCo's import

    # TRY NOT TO MODIFY: seeding
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    actor = MixtureActor(args.n_components, obs_dim, act_dim, args.net_arch, args.learn_weights).to(device)
    qf, qf_target = (TwinQ(obs_dim, act_dim, args.net_arch).to(device) for _ in range(2))  # in this order
    qf_target.load_state_dict(qf.state_dict())
    log_alpha = nn.Parameter(torch.tensor(math.log(args.ent_coef), device=device), requires_grad=args.autotune)
    alpha_optimizer = torch.optim.Adam([log_alpha], lr=args.learning_rate, fused=True) if args.autotune else None
    learner = dict(actor=actor, qf=qf, qf_target=qf_target, log_alpha=log_alpha, alpha_optimizer=alpha_optimizer,
                   actor_optimizer=torch.optim.Adam(actor.parameters(), lr=args.learning_rate, fused=True),
                   q_optimizer=torch.optim.Adam(qf.parameters(), lr=args.learning_rate, fused=True))  # fmt: skip
    rb = ReplayBuffer(args.buffer_size, obs_dim, act_dim, device)
    # The training state, saved and restored whole by the run control; a fork adds its networks to `learner` or here.
    state = dict(learner, rb=rb, stats={}, recent_returns=deque(maxlen=10), step=0, args=asdict(args))

    if args.resume and load_checkpoint(args.resume, state, [env])["step"] >= args.total_timesteps:  # run control
        print(f"{args.resume} already finished at step {state['step']}; nothing to do.")
        return args.resume
    if args.track:  # run control: Weights & Biases as in CleanRL, before the SummaryWriter whose scalars it syncs
        import wandb

        name = os.path.basename(run_dir)
        wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, name=name, id=name.replace(".", "-"),
                   resume="allow", config=vars(args), sync_tensorboard=True, save_code=True)  # fmt: skip
    writer = SummaryWriter(run_dir, purge_step=state["step"] + 1 if args.resume else None)
    if not args.resume:
        table = "\n".join(f"|{key}|{value}|" for key, value in asdict(args).items())
        writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + table)
        with open(os.path.join(run_dir, "hyperparameters.json"), "w") as f:
            json.dump(asdict(args), f, indent=2)  # benchmarks/ read it

    stats, recent_returns, start, start_time = state["stats"], state["recent_returns"], state["step"], time.time()
    catch_stop_signals()  # run control
    marks = deque([(start_time, start)], maxlen=12)  # run control: the progress line's recent speed
    obs, _ = env.reset(seed=None if args.resume else args.seed)  # resumed: from the restored env generator
    for global_step in range(start + 1, args.total_timesteps + 1):
        if global_step <= args.learning_starts:  # uniformly at random, then a sample of the squashed mixture
            action = from_env_action(env.action_space.sample(), env.action_space)
        else:
            action = policy_action(actor, obs, device)
        next_obs, reward, terminated, truncated, info = env.step(to_env_action(action, env.action_space))
        rb.add(obs, action, reward, next_obs, terminated)  # d = terminated: bootstrap through time limits
        obs, episode_over = next_obs, terminated or truncated
        if episode_over:
            recent_returns.append(float(info["episode"]["r"]))
            writer.add_scalar("charts/episodic_return", info["episode"]["r"], global_step)
            writer.add_scalar("charts/episodic_length", info["episode"]["l"], global_step)

        # ALGO LOGIC: train after every env step or, as SB3's train_freq=(1, "episode"), at each episode's end;
        # gradient_steps -1 is one gradient step per env step collected since the last round.
        if global_step > args.learning_starts and (args.train_freq == "step" or episode_over):
            collected = 1 if args.train_freq == "step" else info["episode"]["l"]
            for _ in range(args.gradient_steps if args.gradient_steps > 0 else collected):
                stats |= train_step(**learner, batch=rb.sample(args.batch_size), args=args)

        if global_step % args.log_freq == 0 and stats:
            values = {tag: value.item() for tag, value in stats.items()}
            if bad := [tag for tag, value in values.items() if not np.isfinite(value)]:  # diverged: stop, naming it
                writer.close()
                raise SystemExit(f"{bad[0]} is {values[bad[0]]} at step {global_step}; stopping (logs in {run_dir}).")
            for tag, value in values.items():
                writer.add_scalar(tag, value, global_step)
            writer.add_scalar("charts/SPS", (global_step - start) / (time.time() - start_time), global_step)
        if time.time() - marks[-1][0] > 5:  # run control
            print(progress_line(global_step, args.total_timesteps, marks, recent_returns))

        if global_step % args.eval_freq == 0 or global_step == args.total_timesteps:
            eval_env.set_wrapper_attr("name_prefix", f"step{global_step}")  # videos/step<N>-episode-<k>.mp4
            returns = evaluate(actor, qf, eval_env, args.eval_episodes, device, seed=args.seed + 10_000)
            writer.add_scalar("eval/episodic_return", np.mean(returns), global_step)
            print(f"step {global_step}, eval return {np.mean(returns):.1f} +- {np.std(returns):.1f}")

        if episode_over or global_step == args.total_timesteps:  # run control: checkpoint when due, exit 75 if asked
            checkpoint(run_dir, state, [env], global_step, args, writer)
        if episode_over:
            obs, _ = env.reset()  # after the checkpoint: a resumed run's reset draws the same start

    if args.save_model:
        model = {"actor": actor.state_dict(), "qf": qf.state_dict(), "log_alpha": log_alpha.detach().cpu()}
        torch.save(model | {"args": asdict(args)}, path := os.path.join(run_dir, f"{args.exp_name}.model"))
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
    """--evaluate PATH: greedy episodes of a model saved with --save-model, or of a checkpoint; trains nothing."""
    saved = load_checkpoint(args.evaluate)
    run = Args(**saved["args"])  # the run's env, K, network sizes and seed
    run_dir = args.evaluate if os.path.isdir(args.evaluate) else os.path.dirname(os.path.abspath(args.evaluate))
    env = make_env(run.env_id, run.seed, os.path.join(run_dir, "videos_evaluate") if args.capture_video else None)
    env.set_wrapper_attr("name_prefix", f"step{saved.get('step', run.total_timesteps)}")
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    actor = MixtureActor(run.n_components, obs_dim, act_dim, run.net_arch, run.learn_weights)
    qf = TwinQ(obs_dim, act_dim, run.net_arch)
    actor.load_state_dict(saved["actor"])
    qf.load_state_dict(saved["qf"])
    returns = evaluate(actor, qf, env, args.eval_episodes, torch.device("cpu"), seed=run.seed + 10_000)
    print(f"{np.mean(returns):.1f} +- {np.std(returns):.1f} over {args.eval_episodes} episodes")
    return run_dir


if __name__ == "__main__":
    main(tyro.cli(Args))
