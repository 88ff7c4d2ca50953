"""PMOE: Probabilistic Mixture-of-Experts on SAC (Ren et al., 2021, arXiv 2104.09122), Table 1's PMOE column.

K tanh-squashed Gaussian experts mixed by a learned routing function psi(s); per state only the best expert
i* = argmax_i min(Q1, Q2)(s, a_i) is trained (SAC's actor loss on its own density) and is psi's regression target
(the paper's "frequency approximate gradient"). Critics, targets and alpha: SAC's (Haarnoja et al., 2018); K = 1 is SAC.
Only the paper's abstract and introduction could be read: the method follows the authors' PMOE-SAC code [C], `pmoe.py`
at commit d599e29 of github.com/quantumiracle/Popular-RL-Algorithms. Assumed: SAC's MuJoCo hyperparameters on every
task, K = 4, 10,000 warm-up steps. Deviations from [C] (a demo's settings): tau, batch size, width and warm-up (see
Args), no reward scaling, the exact tanh correction, PyTorch's init; greedy evaluation by the expert with the highest
Q1. docs/baselines.md, "PMOE", has every reason.
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
from typing import NamedTuple, Optional

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
    capture_video: bool = False  # record evaluation episodes to the run's videos/ (headless: MUJOCO_GL=egl)
    save_model: bool = False  # save the actor, critics and entropy coefficient to the run directory at the end
    runs_dir: str = "runs"  # where run directories are created
    env_id: str = "HalfCheetah-v4"  # environment id; the paper's -v3 ids run as -v4 (same model and reward)
    n_experts: int = 4  # number of Gaussian experts K (assumed); 1 is plain SAC
    total_timesteps: Optional[int] = None  # total environment steps (preset)
    learning_rate: float = 3e-4  # Adam learning rate of actor, routing function, critics and entropy coefficient
    buffer_size: int = 1_000_000  # replay buffer capacity
    gamma: float = 0.99  # discount factor
    tau: float = 0.005  # Polyak rate of the target critics ([C]'s demo: 0.01)
    batch_size: int = 256  # minibatch size ([C]'s demo: 300)
    learning_starts: int = 10_000  # uniform random actions and no updates before this step
    net_arch: tuple[int, ...] = (256, 256)  # hidden sizes of the experts' trunk and the critics ([C]'s demo: 512)
    autotune: bool = True  # learn the entropy coefficient alpha toward the target entropy -|A|
    ent_coef: float = 1.0  # alpha: its initial value with --autotune, else its fixed value
    eval_freq: int = 10_000  # greedy evaluation every this many env steps (and at the end)
    eval_episodes: int = 10  # episodes per evaluation
    log_freq: int = 1_000  # TensorBoard scalars every this many env steps
    checkpoint_freq: int = 50_000  # write checkpoint.pt this often, at an episode's end (0 = only when stopped)
    resume: Optional[str] = None  # continue the run in this directory from its checkpoint.pt and hyperparameters
    evaluate: Optional[str] = None  # watch a saved model or checkpoint for --eval-episodes greedy episodes
    track: bool = False  # log the run to Weights & Biases
    wandb_project_name: str = "gamid-pg"  # the Weights & Biases project
    wandb_entity: Optional[str] = None  # the Weights & Biases team or user


# Gamid paper Table 1's training budget per task; PMOE's other hyperparameters are the same on every task (Args).
PRESETS = {"Swimmer": 1_000_000, "HalfCheetah": 1_000_000, "Hopper": 1_000_000, "Ant": 1_000_000,
           "Walker2d": 1_000_000, "Humanoid": 2_000_000}  # fmt: skip


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


class MixtureOfExperts(nn.Module):
    """pi(.|s) = sum_i psi_i(s) pi_i(.|s): K tanh-squashed Gaussian experts sharing one ReLU trunk and one linear
    head for their K means and K log-stds, and a routing function psi, a linear layer and softmax on s ([C])."""

    def __init__(self, n_experts: int, obs_dim: int, act_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.k, self.act_dim = n_experts, act_dim
        dims = (obs_dim, *hidden)
        self.trunk = nn.Sequential(*[m for i, o in zip(dims, dims[1:]) for m in (nn.Linear(i, o), nn.ReLU(True))])
        self.head = nn.Linear(dims[-1], n_experts * 2 * act_dim)
        self.router = nn.Linear(obs_dim, n_experts)

    def forward(self, obs: torch.Tensor):
        """(B, obs) -> means (K, B, act), log-stds (K, B, act), log routing weights log psi (K, B), before the tanh."""
        out = self.head(self.trunk(obs)).view(obs.shape[0], self.k, 2 * self.act_dim).transpose(0, 1)
        log_std = out[..., self.act_dim :].clamp(-20.0, 2.0)  # [C]'s clamp, also SB3's
        return out[..., : self.act_dim], log_std, self.router(obs).log_softmax(-1).T


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


def pick(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Each state's entry of one expert: x (K, B, ...) at index (B,) -> (B, ...)."""
    index = index.view(1, -1, *[1] * (x.dim() - 2)).expand(1, *x.shape[1:])
    return x.gather(0, index)[0]


def pmoe_actor_loss(actor: MixtureOfExperts, qf: TwinQ, obs: torch.Tensor, alpha: torch.Tensor):
    """PMOE's expert loss plus routing loss ([C]), and detached diagnostics. Each expert i draws one action
    a_i = tanh(mu_i + sigma_i eps_i), valued q_i = min_k Q_k(s, a_i); per state the best expert is i* = argmax_i q_i.
      expert loss:  mean_s[alpha log pi_i*(a_i*|s) - q_i*]; only expert i* gets gradient at s.
      routing loss: mean_{s,i}(psi_i(s) - [i = i*])^2, minimized in expectation by psi_i(s) = P(i is the best at s)
                    (the paper's "frequency approximate gradient").
    """
    mean, log_std, log_weights = actor(obs)
    u = mean + log_std.exp() * torch.randn_like(mean)  # (K, B, act)
    # log pi_i(a_i|s), each expert's own squashed density ([C]'s entropy terms): expert i as a one-component mixture.
    log_prob = mixture_log_prob(u, mean[:, None], log_std[:, None], torch.zeros_like(log_weights)[:, None])  # (K, B)
    qf.requires_grad_(False)  # Q is a fixed function of the action here: skip its weight gradients
    q = qf(obs, torch.tanh(u)).min(0).values  # (K, B)
    qf.requires_grad_(True)
    best = q.argmax(0)  # (B,): i*, not differentiable
    expert_loss = (alpha * pick(log_prob, best) - pick(q, best)).mean()
    weights = log_weights.exp()  # psi (K, B)
    is_best = F.one_hot(best, actor.k).T.to(weights.dtype)  # (K, B)
    routing_loss = (weights - is_best).pow(2).mean()
    with torch.no_grad():  # the best experts' entropy (alpha's), the mixture's -sum_i psi_i mean_s log pi(a_i|s)
        mixture_entropy = -(weights * mixture_log_prob(u, mean, log_std, log_weights)).sum(0).mean()
        stats = {"losses/expert_loss": expert_loss.detach(), "losses/routing_loss": routing_loss.detach()}
        stats |= {"charts/expert_entropy": -pick(log_prob, best).mean(), "charts/entropy": mixture_entropy}
        for i in range(actor.k):  # its mean routing weight, how often it was the best, its mean std
            values = (weights[i].mean(), is_best[i].mean(), log_std[i].exp().mean())
            stats |= {f"charts/expert_{i}/{name}": v for name, v in zip(("weight", "best_fraction", "std"), values)}
    return expert_loss + routing_loss, stats


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
def pmoe_td_target(actor: MixtureOfExperts, qf_target: TwinQ, batch: Batch, alpha: torch.Tensor, gamma: float):
    """SAC's soft target from one expert drawn by the routing function, with that expert's own density ([C]):
    c ~ psi(s'), a' ~ pi_c(.|s'), y = r + gamma (1 - d) (min_k Q_targ,k(s', a') - alpha log pi_c(a'|s'))."""
    mean, log_std, log_weights = actor(batch.next_obs)
    c = (log_weights - torch.empty_like(log_weights).exponential_().log()).argmax(0)  # c ~ psi(s'): Gumbel-max
    mean, log_std = pick(mean, c), pick(log_std, c)  # (B, act)
    u = mean + log_std.exp() * torch.randn_like(mean)
    log_prob = mixture_log_prob(u, mean[None], log_std[None], torch.zeros_like(log_weights[:1]))  # pi_c alone
    next_v = qf_target(batch.next_obs, torch.tanh(u)).min(0).values - alpha * log_prob
    return batch.rewards + gamma * (1 - batch.terminated) * next_v


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Target networks trail the trained ones: target <- (1 - tau) target + tau source (TD3, SAC)."""
    for target_param, param in zip(target.parameters(), source.parameters()):
        target_param.lerp_(param, tau)


def train_step(actor, qf, qf_target, log_alpha, actor_optimizer, q_optimizer, alpha_optimizer, batch, args) -> dict:
    """One PMOE-SAC gradient step: critics, experts and routing function, entropy coefficient, target critics.
    log_alpha is a scalar tensor; alpha_optimizer is None for a fixed alpha. Detached diagnostics (no host sync)."""
    alpha = log_alpha.detach().exp()
    q = qf(batch.obs, batch.actions)  # (2, B)
    qf_loss = (q - pmoe_td_target(actor, qf_target, batch, alpha, args.gamma)).pow(2).mean(1).sum()
    q_optimizer.zero_grad(set_to_none=True)
    qf_loss.backward()
    q_optimizer.step()
    loss, stats = pmoe_actor_loss(actor, qf, batch.obs, alpha)
    actor_optimizer.zero_grad(set_to_none=True)
    loss.backward()
    actor_optimizer.step()
    stats |= {"losses/qf_loss": qf_loss.detach(), "losses/qf1_values": q[0].detach().mean()}
    stats |= {"losses/qf2_values": q[1].detach().mean(), "losses/actor_loss": loss.detach(), "losses/alpha": alpha}
    if alpha_optimizer is not None:
        # SAC's temperature loss on the trained experts' entropy ([C]): alpha falls while H > -|A|.
        alpha_loss = log_alpha * (stats["charts/expert_entropy"] + batch.actions.shape[1])
        alpha_optimizer.zero_grad(set_to_none=True)
        alpha_loss.backward()
        alpha_optimizer.step()
        stats["losses/alpha_loss"] = alpha_loss.detach()
    polyak_update(qf_target, qf, args.tau)  # SAC has no target actor
    return stats


def to_env_action(action: np.ndarray, space: gym.spaces.Box) -> np.ndarray:  # [-1, 1] -> the env's [low, high]
    return space.low + (action + 1) * 0.5 * (space.high - space.low)


def from_env_action(action: np.ndarray, space: gym.spaces.Box) -> np.ndarray:  # the env's [low, high] -> [-1, 1]
    return 2 * (action - space.low) / (space.high - space.low) - 1


@torch.no_grad()
def greedy_expert_action(actor: MixtureOfExperts, qf: TwinQ, obs: torch.Tensor) -> torch.Tensor:
    """tanh of the mean of the expert with the highest Q1 (every mixture here evaluates so): obs (B, obs) -> (B, act).
    An argmax, not a sample: it draws no random number, so evaluating more often cannot change a training run."""
    actions = torch.tanh(actor(obs)[0])  # (K, B, act)
    return pick(actions, qf(obs, actions, members=1)[0].argmax(0))


def evaluate(actor: MixtureOfExperts, qf: TwinQ, env: gym.Env, episodes: int, device: torch.device, seed: int):
    """Returns of greedy episodes (Table 1's performance); episode i starts from seed + i at every evaluation."""
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done, total = False, 0.0
        while not done:
            action = greedy_expert_action(actor, qf, torch.as_tensor(obs, dtype=torch.float32, device=device)[None])
            obs, reward, terminated, truncated, _ = env.step(to_env_action(action[0].cpu().numpy(), env.action_space))
            done, total = terminated or truncated, total + float(reward)
        returns.append(total)
    return returns


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
    """Fill the fields left None from the task's preset (Hopper's for other envs); refuse values that train wrong."""
    args.env_id = resolve_env_id(args.env_id)
    if args.total_timesteps is None:
        args.total_timesteps = PRESETS.get(args.env_id.rpartition("-")[0], PRESETS["Hopper"])
    for failed, sentence in [
        (args.n_experts < 1, f"--n-experts must be at least 1, got {args.n_experts}."),
        (args.batch_size > args.buffer_size, f"--batch-size {args.batch_size} exceeds --buffer-size."),
        (args.total_timesteps <= args.learning_starts, "--total-timesteps must exceed --learning-starts."),
        (min(args.batch_size, args.eval_freq, args.eval_episodes, args.log_freq) < 1,
         "--batch-size, --eval-freq, --eval-episodes and --log-freq must be positive."),
        (not 0 < args.tau <= 1, f"--tau must lie in (0, 1], got {args.tau}."),
        (not 0 <= args.gamma <= 1, f"--gamma must lie in [0, 1], got {args.gamma}."),
        (args.ent_coef <= 0, f"--ent-coef must be positive, got {args.ent_coef}."),
    ]:  # fmt: skip
        if failed:
            raise SystemExit(sentence)
    return args


def main(args: Args) -> str:
    """Train PMOE (SAC for K = 1); returns the run directory."""
    if args.evaluate:  # run control
        return watch(args)
    if args.resume:  # run control: continue with the run's saved hyperparameters; other flags are ignored
        args = type(args)(**load_checkpoint(args.resume)["args"] | {"resume": args.resume})
    args = resolve_args(args)
    run_dir = args.resume or f"{args.runs_dir}/{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    eval_env = make_env(args.env_id, args.seed, os.path.join(run_dir, "videos") if args.capture_video else None)
    env = make_env(args.env_id, args.seed)  # after the eval env, whose renderer is chosen before MuJoCo's import

    # TRY NOT TO MODIFY: seeding, then the networks in this order.
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    actor = MixtureOfExperts(args.n_experts, obs_dim, act_dim, args.net_arch).to(device)
    qf, qf_target = (TwinQ(obs_dim, act_dim, args.net_arch).to(device) for _ in range(2))  # in this order
    qf_target.load_state_dict(qf.state_dict())
    log_alpha = torch.tensor(math.log(args.ent_coef), device=device, requires_grad=args.autotune)
    adam = dict(lr=args.learning_rate, fused=True)
    # The training state, declared once: train_step's networks and optimizers, what the loop carries, the checkpoint.
    nets = dict(actor=actor, qf=qf, qf_target=qf_target, log_alpha=log_alpha,
                actor_optimizer=torch.optim.Adam(actor.parameters(), **adam),
                q_optimizer=torch.optim.Adam(qf.parameters(), **adam),
                alpha_optimizer=torch.optim.Adam([log_alpha], **adam) if args.autotune else None)  # fmt: skip
    rb = ReplayBuffer(args.buffer_size, obs_dim, act_dim, device)
    state = dict(nets, rb=rb, recent_returns=deque(maxlen=10), step=0, args=asdict(args))
    if args.resume and load_checkpoint(args.resume, state, [env])["step"] >= args.total_timesteps:  # run control
        print(f"{args.resume} already finished at step {state['step']}; nothing to do.")
        return args.resume
    if args.track:  # run control: Weights & Biases as in CleanRL, before the SummaryWriter whose scalars it syncs
        import wandb

        name = os.path.basename(run_dir)
        wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, name=name, id=name.replace(".", "-"),
                   resume="allow", config=vars(args), sync_tensorboard=True, save_code=True)  # fmt: skip
    obs, _ = env.reset(seed=None if args.resume else args.seed)  # resumed: the restored generator draws the start
    recent_returns, stats = state["recent_returns"], {}
    writer = SummaryWriter(run_dir, purge_step=state["step"] + 1 if args.resume else None)  # no step logged twice
    if not args.resume:
        table = "\n".join(f"|{k}|{v}|" for k, v in vars(args).items())
        writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + table)
        with open(os.path.join(run_dir, "hyperparameters.json"), "w") as f:
            json.dump(asdict(args), f, indent=2)
    print("hyperparameters: " + ", ".join(f"{name}={value}" for name, value in asdict(args).items()))

    start_step, start_time = state["step"], time.time()
    marks = deque([(start_time, start_step)], maxlen=12)  # run control: the progress line's recent speed
    catch_stop_signals()  # run control
    for global_step in range(start_step + 1, args.total_timesteps + 1):
        # Act: before learning_starts uniformly at random, then expert c ~ psi(s) and a ~ pi_c(.|s).
        if global_step <= args.learning_starts:
            action = from_env_action(env.action_space.sample(), env.action_space)
        else:
            with torch.no_grad():
                u = sample_mixture(*actor(torch.as_tensor(obs, dtype=torch.float32, device=device)[None]))
            action = torch.tanh(u)[0].cpu().numpy()
        next_obs, reward, terminated, truncated, info = env.step(to_env_action(action, env.action_space))
        rb.add(obs, action, reward, next_obs, terminated)  # d = terminated: bootstrap through time limits
        obs, episode_over = next_obs, terminated or truncated
        if episode_over:
            recent_returns.append(float(info["episode"]["r"]))
            writer.add_scalar("charts/episodic_return", info["episode"]["r"], global_step)
            writer.add_scalar("charts/episodic_length", info["episode"]["l"], global_step)

        # ALGO LOGIC: one gradient step per env step (SAC's schedule, [C]'s).
        if global_step > args.learning_starts:
            stats = train_step(**nets, batch=rb.sample(args.batch_size), args=args)

        if global_step % args.log_freq == 0 and stats:
            values = {tag: value.item() for tag, value in stats.items()}
            if bad := [tag for tag, value in values.items() if not np.isfinite(value)]:
                writer.close()
                raise SystemExit(f"{bad[0]} is {values[bad[0]]} at step {global_step}; stopping (logs in {run_dir}).")
            values["charts/SPS"] = (global_step - start_step) / (time.time() - start_time)
            for tag, value in values.items():
                writer.add_scalar(tag, value, global_step)
        if global_step % args.eval_freq == 0 or global_step == args.total_timesteps:
            eval_env.set_wrapper_attr("name_prefix", f"step{global_step}")  # videos/step<N>-episode-<k>.mp4
            returns = evaluate(actor, qf, eval_env, args.eval_episodes, device, seed=args.seed + 10_000)
            writer.add_scalar("eval/episodic_return", np.mean(returns), global_step)
            print(f"step {global_step}, eval return {np.mean(returns):.1f} +- {np.std(returns):.1f}")
        if time.time() - marks[-1][0] > 5:  # run control
            print(progress_line(global_step, args.total_timesteps, marks, recent_returns))
        if episode_over or global_step == args.total_timesteps:  # run control: checkpoint when due, exit 75 if asked
            checkpoint(run_dir, state, [env], global_step, args, writer)
        if episode_over:
            obs, _ = env.reset()  # after the checkpoint: a resumed run draws the same start

    if args.save_model:
        path = os.path.join(run_dir, f"{args.exp_name}.model")
        torch.save(dict(actor=actor.state_dict(), qf=qf.state_dict(), log_alpha=log_alpha.detach().cpu(),
                        args=asdict(args)), path)  # fmt: skip
        print(f"model saved to {path}")
    for closable in (env, eval_env, writer):
        closable.close()
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
    """--evaluate PATH: greedy episodes of a saved model or checkpoint, from its run's evaluation seeds on."""
    saved = load_checkpoint(args.evaluate)
    run = Args(**saved["args"])  # pickled: tuples stay tuples
    run_dir = args.evaluate if os.path.isdir(args.evaluate) else os.path.dirname(args.evaluate)
    env = make_env(run.env_id, run.seed, os.path.join(run_dir, "videos_evaluate") if args.capture_video else None)
    env.set_wrapper_attr("name_prefix", f"step{saved.get('step', run.total_timesteps)}")
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    actor, qf = MixtureOfExperts(run.n_experts, obs_dim, act_dim, run.net_arch), TwinQ(obs_dim, act_dim, run.net_arch)
    actor.load_state_dict(saved["actor"])
    qf.load_state_dict(saved["qf"])
    returns = evaluate(actor, qf, env, args.eval_episodes, torch.device("cpu"), seed=run.seed + 10_000)
    print(f"{np.mean(returns):.1f} +- {np.std(returns):.1f} over {args.eval_episodes} episodes")
    return run_dir


if __name__ == "__main__":
    main(tyro.cli(Args, description=__doc__))  # --help shows where each choice comes from, deviations included
