"""PPO (Schulman et al., 2017), the paper's on-policy baseline (Table 1) as the paper ran it (Appendix B): SB3 1.6.2's
PPO with RL Baselines3 Zoo's tuned MuJoCo settings; docs/baselines.md, "PPO: ppo_baseline.py". E.g. --env-id Hopper-v3
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
from collections import deque, namedtuple
from dataclasses import asdict, dataclass
from functools import partial
from typing import Literal, Optional

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import tyro
from torch.utils.tensorboard import SummaryWriter

# The paper's -v3 tasks run as -v4 on purpose (their model and reward on the maintained bindings): no nagging.
warnings.filterwarnings("ignore", message=".*is out of date. You should consider upgrading to version `v5`")


@dataclass
class Args:
    """PPO on one MuJoCo task: the fields left None take the task's column of PRESET_TABLE (paper Table 9)."""

    exp_name: str = os.path.basename(__file__)[: -len(".py")]  # the name of this experiment
    seed: int = 1  # seed of the experiment
    cuda: bool = True  # use a GPU when one is present (falls back to the CPU silently)
    capture_video: bool = False  # record evaluation episodes to run_dir/videos (headless: MUJOCO_GL=egl or osmesa)
    save_model: bool = False  # save the policy, value network and normalization statistics to the run directory
    runs_dir: str = "runs"  # where run directories are created
    env_id: str = "HalfCheetah-v4"  # environment id; the paper's -v3 ids run as -v4 (same model and reward)
    total_timesteps: Optional[int] = None  # total env steps, rounded up to whole rollouts as SB3 does (preset)
    n_envs: int = 1  # environments stepped together; a rollout holds n_steps x n_envs steps (the zoo: 1)
    normalize: bool = True  # normalize observations and rewards as SB3's VecNormalize (Table 9: every task)
    n_steps: Optional[int] = None  # env steps per environment in each rollout (preset)
    batch_size: Optional[int] = None  # minibatch size (preset)
    n_epochs: Optional[int] = None  # passes over each rollout (preset)
    learning_rate: Optional[float] = None  # Adam learning rate, constant (preset)
    gamma: Optional[float] = None  # discount factor, also of the reward normalization (preset)
    gae_lambda: Optional[float] = None  # lambda of GAE (preset)
    clip_range: Optional[float] = None  # epsilon of the clipped surrogate objective (preset)
    ent_coef: Optional[float] = None  # weight of the entropy bonus (preset)
    vf_coef: Optional[float] = None  # weight of the value loss (preset)
    max_grad_norm: Optional[float] = None  # clip of the global gradient norm (preset)
    net_arch: Optional[tuple[int, ...]] = None  # hidden layer sizes of the policy and of the value MLP (preset)
    activation: Optional[Literal["tanh", "relu"]] = None  # activation of the hidden layers (preset)
    log_std_init: Optional[float] = None  # initial log-std of the Gaussian policy (preset)
    ortho_init: Optional[bool] = None  # orthogonal initialization as SB3, else PyTorch's default (preset)
    normalize_advantage: bool = True  # normalize the advantages within each minibatch (SB3's default)
    eval_freq: int = 10_000  # greedy evaluation every this many env steps, at a rollout's end (and at the end)
    eval_episodes: int = 10  # episodes per evaluation
    checkpoint_freq: int = 50_000  # checkpoint.pt every this many env steps, at a rollout's end (0: only on a stop)
    resume: Optional[str] = None  # continue the run in this directory from its checkpoint.pt, with its hyperparameters
    evaluate: Optional[str] = None  # watch a saved model or checkpoint for --eval-episodes greedy episodes
    track: bool = False  # log the run to Weights & Biases
    wandb_project_name: str = "gamid-pg"  # the Weights & Biases project
    wandb_entity: Optional[str] = None  # the Weights & Biases team or user


# Paper Table 9 (PPO) as printed, a row per field, corrected to RL Baselines3 Zoo v1.6.2's ppo.yml where they differ:
# the paper ran the zoo's values (Appendix B); docs/baselines.md, "Table 9 against the zoo", lists each cell. Ant's
# column (SB3 1.6.2's defaults) serves envs outside the paper. total_timesteps: Table 1's budget (§4), not in Table 9.
# fmt: off
TASKS =             ("Swimmer",  "HalfCheetah",  "Hopper",    "Ant",      "Walker2d",   "Humanoid")
PRESET_TABLE = dict(
    total_timesteps=(1_000_000,  1_000_000,      1_000_000,   1_000_000,  1_000_000,    2_000_000),
    n_steps=        (2048,       512,            512,         2048,       512,          512),
    batch_size=     (64,         64,             32,          64,         32,           256),
    n_epochs=       (10,         20,             5,           10,         20,           5),
    learning_rate=  (3e-4,       2.0633e-5,      9.80828e-5,  3e-4,       5.05041e-5,   3.56987e-5),
    gamma=          (0.9999,     0.98,           0.999,       0.99,       0.99,         0.95),
    gae_lambda=     (0.95,       0.92,           0.99,        0.95,       0.95,         0.9),
    clip_range=     (0.2,        0.1,            0.2,         0.2,        0.1,          0.3),
    ent_coef=       (0.0,        0.000401762,    0.00229519,  0.0,        0.000585045,  0.00238306),
    vf_coef=        (0.5,        0.58096,        0.835671,    0.5,        0.871923,     0.431892),
    max_grad_norm=  (0.5,        0.8,            0.7,         0.5,        1.0,          2.0),
    net_arch=       ((64, 64),   (256, 256),     (256, 256),  (64, 64),   (64, 64),     (256, 256)),
    activation=     ("tanh",     "relu",         "relu",      "tanh",     "tanh",       "relu"),
    log_std_init=   (0.0,        -2.0,           -2.0,        0.0,        0.0,          -2.0),
    ortho_init=     (True,       False,          False,       True,       True,         False),
)
# fmt: on
PRESETS = {task: {field: row[i] for field, row in PRESET_TABLE.items()} for i, task in enumerate(TASKS)}


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, activation: str) -> nn.Sequential:
    layers = []
    for size in hidden:
        layers += [nn.Linear(in_dim, size), nn.ReLU(inplace=True) if activation == "relu" else nn.Tanh()]
        in_dim = size
    return nn.Sequential(*layers, nn.Linear(in_dim, out_dim))


class Agent(nn.Module):
    """SB3's MlpPolicy for Box actions: separate policy and value MLPs, a state-independent log-std; `ortho_init` as SB3
    (orthogonal weights, gain sqrt(2) in hidden layers, 0.01 at the policy's output, 1 at the value's; zero biases)."""

    def __init__(self, obs_dim: int, act_dim: int, net_arch: tuple, activation: str, log_std_init: float, ortho_init):
        super().__init__()
        self.policy_net = mlp(obs_dim, net_arch, act_dim, activation)  # outputs the mean action
        self.value_net = mlp(obs_dim, net_arch, 1, activation)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std_init)))
        if ortho_init:
            for net, output_gain in ((self.policy_net, 0.01), (self.value_net, 1.0)):
                linears = [layer for layer in net if isinstance(layer, nn.Linear)]
                for layer in linears:
                    nn.init.orthogonal_(layer.weight, gain=output_gain if layer is linears[-1] else math.sqrt(2))
                    nn.init.zeros_(layer.bias)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value_net(obs).squeeze(-1)

    def forward(self, obs: torch.Tensor, action: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, ...]:
        """-> (a, log pi(a|s), entropy of pi(.|s), V(s)); a ~ N(mean(s), std^2), not clipped, unless given."""
        mean = self.policy_net(obs)
        action = mean + self.log_std.exp() * torch.randn_like(mean) if action is None else action
        z = (action - mean) * torch.exp(-self.log_std)  # log N(a; mean, std^2), summed over the action dimensions
        log_prob = (-0.5 * z * z - self.log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        entropy = (0.5 + 0.5 * math.log(2 * math.pi) + self.log_std).sum().expand_as(log_prob)
        return action, log_prob, entropy, self.value(obs)


class ObsRewardNormalizer:
    """SB3's VecNormalize: observations (obs - mean) / std over every training observation so far, rewards divided by
    the std of each env's discounted return (not re-centred), both clipped to +-10; `enabled=False`: both unchanged.
    Running (mean, var, count) from a tiny prior count by Chan et al.'s parallel update, in float64, as SB3's."""

    def __init__(self, obs_dim: int, n_envs: int, gamma: float, enabled: bool = True):
        self.enabled, self.gamma, self.clip, self.epsilon = enabled, gamma, 10.0, 1e-8
        self.stats = {"obs": (np.zeros(obs_dim), np.ones(obs_dim), 1e-4), "return": (np.zeros(()), np.ones(()), 1e-4)}
        self.returns = np.zeros(n_envs)  # discounted return of each env's current episode

    def update(self, name: str, batch: np.ndarray) -> None:
        """Add a batch (n, ...) to the running statistics `name` (SB3's RunningMeanStd.update)."""
        (mean, var, count), batch_count = self.stats[name], batch.shape[0]
        delta, total = batch.mean(axis=0) - mean, count + batch_count
        sum_of_squares = var * count + batch.var(axis=0) * batch_count + delta**2 * count * batch_count / total
        self.stats[name] = (mean + delta * batch_count / total, sum_of_squares / total, total)

    def observation(self, obs: np.ndarray, update: bool) -> np.ndarray:
        """obs (n, obs_dim) -> normalized; `update` adds them to the statistics first (training steps only)."""
        if self.enabled and update:
            self.update("obs", obs)
        mean, var, _ = self.stats["obs"]
        return np.clip((obs - mean) / np.sqrt(var + self.epsilon), -self.clip, self.clip) if self.enabled else obs

    def reward(self, reward: np.ndarray, episode_over: np.ndarray) -> np.ndarray:
        """reward (n_envs,) of one step -> scaled; the returns of finished episodes restart at 0."""
        if not self.enabled:
            return reward
        self.returns = self.returns * self.gamma + reward
        self.update("return", self.returns)
        scaled = np.clip(reward / np.sqrt(self.stats["return"][1] + self.epsilon), -self.clip, self.clip)
        self.returns[episode_over] = 0.0
        return scaled

    def state_dict(self) -> dict:
        """float64 tensors, so that a saved model loads with torch.load's default weights_only=True."""
        arrays = {f"{name}_{key}": x for name, s in self.stats.items() for key, x in zip(("mean", "var", "count"), s)}
        return {key: torch.as_tensor(np.asarray(x)) for key, x in ({"returns": self.returns} | arrays).items()}

    def load_state_dict(self, state: dict) -> None:
        for name in self.stats:
            mean, var, count = (state[f"{name}_{key}"] for key in ("mean", "var", "count"))
            self.stats[name] = (mean.numpy(), var.numpy(), float(count))
        self.returns = state["returns"].numpy().copy()


Minibatch = namedtuple("Minibatch", ["obs", "actions", "log_probs", "advantages", "returns"])


class RolloutBuffer:
    """One rollout of n_steps x n_envs steps as tensors on the training device, then its advantages and returns."""

    def __init__(self, n_steps: int, n_envs: int, obs_dim: int, act_dim: int, device: torch.device):
        self.obs, self.actions = (torch.zeros(n_steps, n_envs, dim, device=device) for dim in (obs_dim, act_dim))
        for name in ("log_probs", "rewards", "values", "terminations", "episode_ends", "truncations", "final_values"):
            setattr(self, name, torch.zeros(n_steps, n_envs, device=device))  # truncations: by a time limit

    def add(self, step: int, **transition: torch.Tensor) -> None:
        for name, value in transition.items():
            getattr(self, name)[step] = value

    def compute_returns(self, last_value: torch.Tensor, gamma: float, gae_lambda: float) -> None:
        """GAE(lambda) (Schulman et al., 2017, Eqs. 11-12): delta_t = r_t + gamma (1 - terminated_t) V(s_t+1) - V(s_t),
        A_t = delta_t + gamma lambda (1 - end_t) A_t+1; after a time limit V(s_t+1) is V(the episode's final obs), as
        only our view of the episode ended. returns = A + V, the value targets (SB3's TD(lambda) targets)."""
        next_values = torch.cat([self.values[1:], last_value[None]])  # V(s_t+1) where the episode went on
        next_values = torch.where(self.truncations.bool(), self.final_values, next_values)
        self.advantages, advantage = torch.zeros_like(self.rewards), torch.zeros_like(self.rewards[0])
        for t in reversed(range(self.rewards.shape[0])):
            delta = self.rewards[t] + gamma * (1 - self.terminations[t]) * next_values[t] - self.values[t]
            advantage = delta + gamma * gae_lambda * (1 - self.episode_ends[t]) * advantage
            self.advantages[t] = advantage
        self.returns = self.advantages + self.values

    def minibatch(self, indices: torch.Tensor) -> Minibatch:
        """The steps at `indices` of the flattened rollout."""
        return Minibatch(*(getattr(self, name).flatten(0, 1)[indices] for name in Minibatch._fields))


def clipped_surrogate_loss(log_prob, old_log_prob, advantages, clip_range: float) -> torch.Tensor:
    """-mean min(r A, clip(r, 1 - eps, 1 + eps) A) with r = pi(a|s) / pi_old(a|s) (Schulman et al., 2017, Eq. 7)."""
    ratio = (log_prob - old_log_prob).exp()
    return -torch.min(ratio * advantages, ratio.clamp(1 - clip_range, 1 + clip_range) * advantages).mean()


def train_step(agent: Agent, optimizer: torch.optim.Optimizer, minibatch: Minibatch, args: Args) -> dict:
    """One gradient step on a minibatch (SB3's PPO.train, inner loop) minimizing -L^CLIP + vf_coef L^VF - ent_coef S
    (Schulman et al., 2017, Eq. 9); returns detached diagnostics. benchmarks/sps.py times it by name."""
    _, log_prob, entropy, value = agent(minibatch.obs, minibatch.actions)
    advantages = minibatch.advantages
    if args.normalize_advantage and len(advantages) > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    policy_loss = clipped_surrogate_loss(log_prob, minibatch.log_probs, advantages, args.clip_range)
    value_loss = nn.functional.mse_loss(value, minibatch.returns)  # not clipped: SB3's default (clip_range_vf None)
    entropy_loss = -entropy.mean()
    loss = policy_loss + args.ent_coef * entropy_loss + args.vf_coef * value_loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
    optimizer.step()
    with torch.no_grad():
        log_ratio = log_prob - minibatch.log_probs
        stats = dict(policy_loss=policy_loss, value_loss=value_loss, entropy=-entropy_loss)
        stats["approx_kl"] = (log_ratio.exp() - 1 - log_ratio).mean()  # Schulman's low-variance KL estimator, as SB3
        stats["clipfrac"] = ((log_ratio.exp() - 1).abs() > args.clip_range).float().mean()
    return {f"losses/{name}": value.detach() for name, value in stats.items()}


def evaluate(agent: Agent, normalizer: ObsRewardNormalizer, env: gym.Env, episodes: int, device, seed: int) -> list:
    """Greedy returns: the mean action clipped to the bounds (SB3's predict) on observations normalized with frozen
    statistics; raw rewards. Episode i starts from seed + i, the same start states at every evaluation."""
    returns = []
    for episode in range(episodes):
        (obs, _), done, total = env.reset(seed=seed + episode), False, 0.0
        while not done:
            normalized = normalizer.observation(obs[None], update=False)
            with torch.no_grad():
                mean = agent.policy_net(torch.as_tensor(normalized, dtype=torch.float32, device=device))
            action = np.clip(mean[0].cpu().numpy(), env.action_space.low, env.action_space.high)
            obs, reward, terminated, truncated, _ = env.step(action)
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


def make_eval_env(env_id: str, video_dir: Optional[str] = None) -> gym.Env:
    """One env for evaluation (and the check of the action space), recording videos to video_dir if given."""
    if video_dir:  # first, before any env imports MuJoCo: a machine that cannot record says so before training
        choose_renderer()
    env = gym.make(env_id, render_mode="rgb_array" if video_dir else None)
    if not isinstance(env.action_space, gym.spaces.Box):
        raise SystemExit(f"{env_id} has a {type(env.action_space).__name__} action space; this PPO needs a Box one.")
    if video_dir:
        env = gym.wrappers.RecordVideo(env, video_dir, episode_trigger=lambda episode: True, disable_logger=True)
        atexit.register(env.close)  # the last video written, the renderer released before interpreter shutdown
    return env


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
    """Fill every field left unset from the task's preset, then refuse values that would train silently wrong."""
    args.env_id = resolve_env_id(args.env_id)
    if (task := args.env_id.rpartition("-")[0]) not in PRESETS:
        print(f"{args.env_id} is not one of the paper's tasks; unset hyperparameters use SB3's PPO defaults.")
    for field, value in PRESETS.get(task, PRESETS["Ant"]).items():
        setattr(args, field, value if getattr(args, field) is None else getattr(args, field))
    rollout = args.n_steps * args.n_envs
    for failed, sentence in [
        (min(args.total_timesteps, args.n_envs, args.n_steps, args.n_epochs, args.eval_freq, args.eval_episodes) < 1,
         "--total-timesteps, --n-envs, --n-steps, --n-epochs and --eval-* must be positive."),
        (not 1 < args.batch_size <= rollout, f"--batch-size must lie between 2 and n_steps x n_envs = {rollout}."),
        (min(args.learning_rate, args.clip_range, args.max_grad_norm) <= 0,
         "--learning-rate, --clip-range and --max-grad-norm must be positive."),
        (min(args.ent_coef, args.vf_coef) < 0, "--ent-coef and --vf-coef must not be negative."),
        (not (0 <= args.gamma <= 1 and 0 <= args.gae_lambda <= 1), "--gamma and --gae-lambda must lie in [0, 1]."),
        (not args.net_arch or min(args.net_arch) < 1, "--net-arch needs at least one layer, each of positive size."),
    ]:  # fmt: skip
        if failed:
            raise SystemExit(sentence)
    args.total_timesteps = math.ceil(args.total_timesteps / rollout) * rollout  # whole rollouts, as SB3
    return args


def main(args: Args) -> str:
    """Train PPO; returns the run directory."""
    if args.evaluate:  # run control
        return watch(args)
    if args.resume:  # run control: continue with the run's saved hyperparameters; other flags are ignored
        args = type(args)(**load_checkpoint(args.resume)["args"] | {"resume": args.resume})
    args = resolve_args(args)
    run_dir = args.resume or f"{args.runs_dir}/{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    eval_env = make_eval_env(args.env_id, os.path.join(run_dir, "videos") if args.capture_video else None)
    # As SB3's DummyVecEnv: a finished episode resets within its last step (its last observation in info["final_obs"]).
    envs = [lambda: gym.make(args.env_id) for _ in range(args.n_envs)]
    envs = gym.vector.SyncVectorEnv(envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    # TRY NOT TO MODIFY: seeding
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    to_tensor = partial(torch.as_tensor, dtype=torch.float32, device=device)
    obs_dim, act_dim = eval_env.observation_space.shape[0], eval_env.action_space.shape[0]
    agent = Agent(obs_dim, act_dim, args.net_arch, args.activation, args.log_std_init, args.ortho_init).to(device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5, fused=True)  # eps as SB3's PPO
    normalizer = ObsRewardNormalizer(obs_dim, args.n_envs, args.gamma, enabled=args.normalize)
    buffer = RolloutBuffer(args.n_steps, args.n_envs, obs_dim, act_dim, device)
    rollout_size, n_iterations = args.n_steps * args.n_envs, args.total_timesteps // (args.n_steps * args.n_envs)
    raw_obs, _ = envs.reset(seed=args.seed)  # env i starts from seed + i
    # The training state, saved at a rollout's end (mid-episode, so with each simulator's state) and restored whole.
    state = dict(agent=agent, optimizer=optimizer, normalizer=normalizer, args=asdict(args), step=0,
                 obs=to_tensor(normalizer.observation(raw_obs, update=True)), recent_returns=deque(maxlen=10),
                 episode_returns=np.zeros(args.n_envs), episode_lengths=np.zeros(args.n_envs, dtype=int),
                 simulators=Simulators(envs.envs))  # fmt: skip
    if args.resume and load_checkpoint(args.resume, state, envs.envs)["step"] >= args.total_timesteps:  # run control
        print(f"{args.resume} already finished at step {state['step']}; nothing to do.")
        return args.resume
    obs, global_step, recent_returns = state["obs"].to(device), state["step"], state["recent_returns"]
    episode_returns, episode_lengths = state["episode_returns"], state["episode_lengths"]

    if args.track:  # run control: Weights & Biases as in CleanRL, before the SummaryWriter whose scalars it syncs
        import wandb

        wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, name=os.path.basename(run_dir),
                   id=os.path.basename(run_dir).replace(".", "-"), resume="allow", config=vars(args),
                   sync_tensorboard=True, save_code=True)  # fmt: skip
    writer = SummaryWriter(run_dir, purge_step=global_step + 1 if args.resume else None)  # resumed: no step twice
    if not args.resume:
        table = "\n".join(f"|{key}|{value}|" for key, value in vars(args).items())
        writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + table)
        with open(os.path.join(run_dir, "hyperparameters.json"), "w") as f:
            json.dump(asdict(args), f, indent=2)
    print("hyperparameters: " + ", ".join(f"{key}={value}" for key, value in asdict(args).items()))
    catch_stop_signals()  # run control
    start_step, start_time = global_step + 1, time.time()
    marks = deque([(start_time, global_step)], maxlen=12)  # run control: the progress line's recent speed

    for iteration in range(global_step // rollout_size + 1, n_iterations + 1):
        # ALGO LOGIC: a rollout of n_steps per env with the current policy
        for step in range(args.n_steps):
            with torch.no_grad():
                action, log_prob, _, value = agent(obs)
            env_action = np.clip(action.cpu().numpy(), envs.single_action_space.low, envs.single_action_space.high)
            raw_obs, raw_reward, terminated, truncated, info = envs.step(env_action)
            global_step, episode_over = global_step + args.n_envs, terminated | truncated
            episode_returns += raw_reward
            episode_lengths += 1
            for i in np.flatnonzero(episode_over):
                recent_returns.append(episode_returns[i])
                writer.add_scalar("charts/episodic_return", episode_returns[i], global_step)
                writer.add_scalar("charts/episodic_length", episode_lengths[i], global_step)
            episode_returns[episode_over], episode_lengths[episode_over] = 0.0, 0
            next_obs = to_tensor(normalizer.observation(raw_obs, update=True))
            reward = normalizer.reward(raw_reward, episode_over)
            # A time limit cut the episode short: its final observation's value stands in for the future.
            final_values, bootstrap = torch.zeros(args.n_envs, device=device), truncated & ~terminated
            if bootstrap.any():
                final_obs = to_tensor(normalizer.observation(np.stack(info["final_obs"][bootstrap]), update=False))
                with torch.no_grad():
                    final_values[bootstrap] = agent.value(final_obs)
            buffer.add(step, obs=obs, actions=action, log_probs=log_prob, rewards=to_tensor(reward), values=value,
                       terminations=to_tensor(terminated), episode_ends=to_tensor(episode_over),
                       truncations=to_tensor(bootstrap), final_values=final_values)  # fmt: skip
            obs = next_obs
        with torch.no_grad():
            buffer.compute_returns(agent.value(obs), args.gamma, args.gae_lambda)

        # ALGO LOGIC: n_epochs passes over the rollout, in minibatches of a fresh random permutation each pass
        stats = []
        for epoch in range(args.n_epochs):
            for idx in torch.randperm(rollout_size, device=device).split(args.batch_size):
                stats.append(train_step(agent=agent, optimizer=optimizer, minibatch=buffer.minibatch(idx), args=args))
        means = {tag: (sum(s[tag] for s in stats) / len(stats)).item() for tag in stats[0]}  # over the minibatches
        if bad := [tag for tag, mean in means.items() if not math.isfinite(mean)]:
            writer.close()
            raise SystemExit(f"{bad[0]} is {means[bad[0]]} at step {global_step}; stopping (logs kept in {run_dir}).")
        for tag, mean in means.items():
            writer.add_scalar(tag, mean, global_step)
        explained_variance = 1 - (buffer.returns - buffer.values).var() / buffer.returns.var()
        writer.add_scalar("losses/explained_variance", explained_variance.item(), global_step)
        writer.add_scalar("charts/action_std", agent.log_std.exp().mean().item(), global_step)
        writer.add_scalar("charts/SPS", (global_step - start_step + 1) / (time.time() - start_time), global_step)
        if time.time() - marks[-1][0] > 5 or iteration == n_iterations:  # run control: the progress line
            print(progress_line(global_step, n_iterations * rollout_size, marks, recent_returns))
        if global_step // args.eval_freq > (global_step - rollout_size) // args.eval_freq or iteration == n_iterations:
            eval_env.set_wrapper_attr("name_prefix", f"step{global_step}")  # videos/step<N>-episode-<k>.mp4
            returns = evaluate(agent, normalizer, eval_env, args.eval_episodes, device, seed=args.seed + 10_000)
            writer.add_scalar("eval/episodic_return", np.mean(returns), global_step)
            print(f"step {global_step}, eval return {np.mean(returns):.1f} +- {np.std(returns):.1f}")

        state["obs"] = obs.cpu()  # run control: checkpoint when due (at a rollout's end, mid-episode), exit 75 if asked
        checkpoint(run_dir, state, envs.envs, global_step, args, writer)

    if args.save_model:
        path = os.path.join(run_dir, f"{args.exp_name}.model")
        torch.save({"agent": agent.state_dict(), "normalizer": normalizer.state_dict(), "args": asdict(args)}, path)
        print(f"model saved to {path}")
    envs.close()
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


class Simulators:
    """Each MuJoCo env's whole integration state and time-limit step count, as a state_dict: PPO checkpoints at a
    rollout's end, mid-episode. (An env of another simulator restarts its episode on resume: not bit for bit.)"""

    def __init__(self, envs: list):  # mujoco not imported at the top: --capture-video sets MUJOCO_GL first
        self.envs, self.mujoco = [env for env in envs if hasattr(env.unwrapped, "data")], __import__("mujoco")
        self.kind = self.mujoco.mjtState.mjSTATE_INTEGRATION  # positions, velocities, warm start, ...

    def state_dict(self) -> list:
        states = [np.empty(self.mujoco.mj_stateSize(env.unwrapped.model, self.kind)) for env in self.envs]
        for env, physics in zip(self.envs, states):
            self.mujoco.mj_getState(env.unwrapped.model, env.unwrapped.data, physics, self.kind)
        return [(physics, env.get_wrapper_attr("_elapsed_steps")) for env, physics in zip(self.envs, states)]

    def load_state_dict(self, states: list) -> None:
        for env, (physics, elapsed_steps) in zip(self.envs, states):
            self.mujoco.mj_setState(env.unwrapped.model, env.unwrapped.data, physics, self.kind)
            env.set_wrapper_attr("_elapsed_steps", elapsed_steps)


def watch(args: Args) -> str:
    """--evaluate PATH: greedy episodes of a saved model or checkpoint (videos with --capture-video); no training."""
    saved = load_checkpoint(args.evaluate)
    run = Args(**saved["args"])
    run_dir = args.evaluate if os.path.isdir(args.evaluate) else os.path.dirname(args.evaluate)
    env = make_eval_env(run.env_id, os.path.join(run_dir, "videos_evaluate") if args.capture_video else None)
    env.set_wrapper_attr("name_prefix", f"step{saved.get('step', run.total_timesteps)}")
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    agent = Agent(obs_dim, act_dim, run.net_arch, run.activation, run.log_std_init, run.ortho_init)
    agent.load_state_dict(saved["agent"])
    normalizer = ObsRewardNormalizer(obs_dim, run.n_envs, run.gamma, enabled=run.normalize)
    normalizer.load_state_dict(saved["normalizer"])
    returns = evaluate(agent, normalizer, env, args.eval_episodes, torch.device("cpu"), seed=args.seed + 10_000)
    env.close()  # writes the last video
    print(f"{np.mean(returns):.1f} +- {np.std(returns):.1f} over {len(returns)} episodes")
    return run_dir


if __name__ == "__main__":
    main(tyro.cli(Args))
