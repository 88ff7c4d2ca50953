"""TD3 (Fujimoto et al., 2018) for MuJoCo, the Gamid paper's single-Gaussian baseline with its presets (Table 3):
`python td3_baseline.py --env-id Walker2d-v3`. gamid_continuous_action.py --n-actors 1 is this run, seed for seed."""

import atexit
import json
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
    tau: float = 0.005  # Polyak rate of the target networks
    batch_size: Optional[int] = None  # minibatch size (preset)
    learning_starts: int = 10_000  # uniform random actions and no updates before this step (Table 3)
    train_freq: Optional[Literal["step", "episode"]] = None  # train after every env step or episode (preset)
    gradient_steps: Optional[int] = None  # gradient steps per round; -1: one per env step collected (preset)
    net_arch: tuple[int, ...] = (256, 256)  # hidden layer sizes of actor and critics (Table 3)
    noise_std: float = 0.1  # std of the Gaussian exploration noise, in the [-1, 1] action scale (Table 3)
    policy_noise: float = 0.2  # std of the target policy smoothing noise
    noise_clip: float = 0.5  # clip of the target policy smoothing noise
    policy_delay: int = 2  # actor and target updates every this many gradient steps
    eval_freq: int = 10_000  # greedy evaluation every this many env steps (and at the end)
    eval_episodes: int = 10  # episodes per evaluation
    log_freq: int = 1_000  # TensorBoard scalars every this many env steps
    checkpoint_freq: int = 50_000  # checkpoint.pt every this many env steps, at an episode end (0: only on a stop)
    resume: Optional[str] = None  # continue the run in this directory from its checkpoint.pt, with its hyperparameters
    evaluate: Optional[str] = None  # watch a saved model or checkpoint for --eval-episodes greedy episodes
    track: bool = False  # log the run to Weights & Biases
    wandb_project_name: str = "gamid-pg"  # the Weights & Biases project
    wandb_entity: Optional[str] = None  # the Weights & Biases team or user


# Paper Table 3 (TD3 hyperparameters, MuJoCo): the fields of Args left None take their task's row (other Box envs
# Hopper's); the cells all tasks share are Args defaults. Table 3's train_freq (1, "episode") is "episode" here.
PRESETS = {  # total_timesteps, learning_rate, batch_size, gamma, train_freq, gradient_steps
    "Swimmer":     (1_000_000, 1e-3, 100, 0.9999, "step",    1),
    "HalfCheetah": (1_000_000, 1e-3, 100, 0.99,   "episode", -1),
    "Hopper":      (1_000_000, 3e-4, 256, 0.99,   "step",    1),
    "Ant":         (1_000_000, 1e-3, 100, 0.99,   "episode", -1),
    "Walker2d":    (1_000_000, 1e-3, 100, 0.99,   "episode", -1),
    "Humanoid":    (2_000_000, 3e-4, 256, 0.99,   "step",    1),
}  # fmt: skip


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
    """Fill the fields left None from the task's row of PRESETS, then refuse values that would train wrong."""
    args.env_id = resolve_env_id(args.env_id)
    task = args.env_id.rpartition("-")[0]
    if task not in PRESETS:
        print(f"{args.env_id} is not one of the paper's tasks; unset hyperparameters take Hopper's column.")
    fields = ("total_timesteps", "learning_rate", "batch_size", "gamma", "train_freq", "gradient_steps")
    for field, value in zip(fields, PRESETS.get(task, PRESETS["Hopper"])):
        if getattr(args, field) is None:
            setattr(args, field, value)
    if args.batch_size > args.buffer_size:
        raise SystemExit(f"--batch-size {args.batch_size} is larger than --buffer-size {args.buffer_size}.")
    if args.total_timesteps <= args.learning_starts:
        raise SystemExit(f"--total-timesteps must exceed --learning-starts {args.learning_starts}, or nothing trains.")
    if min(args.batch_size, args.policy_delay, args.eval_freq, args.eval_episodes, args.log_freq) < 1:
        raise SystemExit("--batch-size, --policy-delay, --eval-freq, --eval-episodes and --log-freq must be positive.")
    if args.gradient_steps == 0 or args.gradient_steps < -1:
        raise SystemExit("--gradient-steps must be positive, or -1 for one per env step.")
    return args


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


class Actor(nn.Module):
    """mu(s) in [-1, 1]: a one-member EnsembleMLP, so Gamid with N = 1 draws the same weights, computes the same."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.net = EnsembleMLP(1, obs_dim, act_dim, hidden)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:  # (B, obs) -> (B, act)
        return torch.tanh(self.net(obs.unsqueeze(0))[0])


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


# ALGO LOGIC: the TD3 update.
@torch.no_grad()
def td_target(actor_target: Actor, qf_target: TwinQ, batch: Batch, args: Args) -> torch.Tensor:
    """Smoothing, clipped double Q: y = r + gamma (1 - d) min_k Q'_k(s', clip(mu'(s') + clip(eps, -c, c), -1, 1))."""
    next_mean = actor_target(batch.next_obs)  # (B, act)
    noise = (torch.randn_like(next_mean) * args.policy_noise).clamp(-args.noise_clip, args.noise_clip)
    next_q = qf_target(batch.next_obs, (next_mean + noise).clamp(-1, 1)).min(0).values  # (B,)
    return batch.rewards + args.gamma * (1 - batch.terminated) * next_q


def train_step(*, actor, actor_target, qf, qf_target, actor_optimizer, q_optimizer, batch, update_actor, args) -> dict:
    """One TD3 gradient step (benchmarks/sps.py times it by name); returns detached diagnostics (no host sync)."""
    q = qf(batch.obs, batch.actions)  # (2, B): regress both critics on the target y
    qf_loss = (q - td_target(actor_target, qf_target, batch, args)).pow(2).mean(1).sum()
    q_optimizer.zero_grad(set_to_none=True)
    qf_loss.backward()
    q_optimizer.step()
    stats = {"losses/qf_loss": qf_loss.detach(), "losses/qf1_values": q[0].detach().mean()}
    stats["losses/qf2_values"] = q[1].detach().mean()
    if update_actor:  # delayed: the deterministic policy gradient through Q1, then Polyak averaging
        qf.requires_grad_(False)  # Q1 is a fixed function of the action here: skip its weight gradients
        actor_loss = -qf(batch.obs, actor(batch.obs), members=1)[0].mean()
        qf.requires_grad_(True)
        actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        actor_optimizer.step()
        polyak_update(actor_target, actor, args.tau)
        polyak_update(qf_target, qf, args.tau)
        stats["losses/actor_loss"] = actor_loss.detach()
    return stats


def to_env_action(action: np.ndarray, space: gym.spaces.Box) -> np.ndarray:  # [-1, 1] -> the env's [low, high]
    return space.low + (action + 1) * 0.5 * (space.high - space.low)


def from_env_action(action: np.ndarray, space: gym.spaces.Box) -> np.ndarray:  # the env's [low, high] -> [-1, 1]
    return 2 * (action - space.low) / (space.high - space.low) - 1


@torch.no_grad()
def evaluate(actor: Actor, env: gym.Env, episodes: int, device: torch.device, seed: int) -> list[float]:
    """Returns of the noise-free policy mu(s) (the paper's Table 1); episode i starts from seed + i."""
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)  # the same start states at every evaluation
        done, total = False, 0.0
        while not done:
            action = actor(torch.as_tensor(obs, dtype=torch.float32, device=device)[None])[0].cpu().numpy()
            obs, reward, terminated, truncated, _ = env.step(to_env_action(action, env.action_space))
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


def main(args: Args) -> str:
    """Train TD3; returns the run directory."""
    if args.evaluate:  # run control
        return watch(args)
    if args.resume:  # run control: continue with the run's saved hyperparameters; other flags are ignored
        args = type(args)(**load_checkpoint(args.resume)["args"] | {"resume": args.resume})
    args = resolve_args(args)
    run_dir = args.resume or f"{args.runs_dir}/{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    eval_env = make_env(args.env_id, args.seed, os.path.join(run_dir, "videos") if args.capture_video else None)
    env = make_env(args.env_id, args.seed)  # after the eval env, whose renderer is chosen before MuJoCo's import

    # TRY NOT TO MODIFY: seeding, then the networks in this order (Gamid with N = 1 draws the same weights).
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    actor, qf, actor_target, qf_target = (net(obs_dim, act_dim, args.net_arch).to(device) for net in (Actor, TwinQ) * 2)
    actor_target.load_state_dict(actor.state_dict())
    qf_target.load_state_dict(qf.state_dict())
    # The training state, declared once: train_step's networks and optimizers, what the loop carries, the checkpoint.
    nets = dict(actor=actor, actor_target=actor_target, qf=qf, qf_target=qf_target,
                actor_optimizer=torch.optim.Adam(actor.parameters(), lr=args.learning_rate, fused=True),
                q_optimizer=torch.optim.Adam(qf.parameters(), lr=args.learning_rate, fused=True))  # fmt: skip
    rb = ReplayBuffer(args.buffer_size, obs_dim, act_dim, device)
    state = dict(nets, rb=rb, recent_returns=deque(maxlen=10), stats={}, n_updates=0, step=0, args=asdict(args))
    if args.resume and load_checkpoint(args.resume, state, [env])["step"] >= args.total_timesteps:  # run control
        print(f"{args.resume} already finished at step {state['step']}; nothing to do.")
        return args.resume
    obs, _ = env.reset(seed=None if args.resume else args.seed)  # resumed: the restored generator draws the start
    recent_returns, stats = state["recent_returns"], state["stats"]
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

    start_step, start_time = state["step"], time.time()
    marks = deque([(start_time, start_step)], maxlen=12)  # run control: the progress line's recent speed
    catch_stop_signals()  # run control
    for global_step in range(start_step + 1, args.total_timesteps + 1):
        # Act: before learning_starts uniformly at random, then a = clip(mu(s) + N(0, sigma^2 I), -1, 1).
        if global_step <= args.learning_starts:
            action = from_env_action(env.action_space.sample(), env.action_space)
        else:
            with torch.no_grad():
                mean = actor(torch.as_tensor(obs, dtype=torch.float32, device=device)[None])
                action = (mean + args.noise_std * torch.randn_like(mean)).clamp(-1, 1)[0].cpu().numpy()
        next_obs, reward, terminated, truncated, info = env.step(to_env_action(action, env.action_space))
        rb.add(obs, action, reward, next_obs, terminated)  # d = terminated: bootstrap through time limits
        obs, episode_over = next_obs, terminated or truncated
        if episode_over:
            recent_returns.append(float(info["episode"]["r"]))
            writer.add_scalar("charts/episodic_return", info["episode"]["r"], global_step)
            writer.add_scalar("charts/episodic_length", info["episode"]["l"], global_step)

        # ALGO LOGIC: train after every env step or, as SB3's train_freq=(1, "episode"), at each episode's end;
        # gradient_steps -1 is one gradient step per env step collected (the episode's length).
        if global_step > args.learning_starts and (args.train_freq == "step" or episode_over):
            collected = 1 if args.train_freq == "step" else info["episode"]["l"]  # env steps since the last round
            for _ in range(args.gradient_steps if args.gradient_steps > 0 else collected):
                state["n_updates"] += 1
                update_actor = state["n_updates"] % args.policy_delay == 0
                stats |= train_step(**nets, batch=rb.sample(args.batch_size), update_actor=update_actor, args=args)

        if global_step % args.log_freq == 0 and stats:
            values = {tag: value.item() for tag, value in stats.items()}
            if bad := [tag for tag, value in values.items() if not np.isfinite(value)]:
                writer.close()
                raise SystemExit(f"{bad[0]} is {values[bad[0]]} at step {global_step}; stopping (logs in {run_dir}).")
            for tag, value in values.items():
                writer.add_scalar(tag, value, global_step)
            writer.add_scalar("charts/SPS", (global_step - start_step) / (time.time() - start_time), global_step)
        if global_step % args.eval_freq == 0 or global_step == args.total_timesteps:
            eval_env.set_wrapper_attr("name_prefix", f"step{global_step}")  # videos/step<N>-episode-<k>.mp4
            returns = evaluate(actor, eval_env, args.eval_episodes, device, seed=args.seed + 10_000)
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
    """--evaluate PATH: greedy episodes of a saved model or checkpoint from --seed + 10_000 on (a run's eval starts)."""
    saved = load_checkpoint(args.evaluate)
    run, run_dir = saved["args"], args.evaluate if os.path.isdir(args.evaluate) else os.path.dirname(args.evaluate)
    env = make_env(run["env_id"], args.seed, os.path.join(run_dir, "videos_evaluate") if args.capture_video else None)
    env.set_wrapper_attr("name_prefix", f"step{saved.get('step', run['total_timesteps'])}")
    actor = Actor(env.observation_space.shape[0], env.action_space.shape[0], run["net_arch"])
    actor.load_state_dict(saved["actor"])
    returns = evaluate(actor, env, args.eval_episodes, torch.device("cpu"), seed=args.seed + 10_000)
    print(f"eval return {np.mean(returns):.1f} +- {np.std(returns):.1f} over {args.eval_episodes} episodes")
    return run_dir


if __name__ == "__main__":
    main(tyro.cli(Args))
