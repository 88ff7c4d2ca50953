"""Update-phase speed benchmark of the training scripts.

For every row below, the script's own `main(args)` builds its networks, optimizers and buffer with the
benchmark settings and collects experience as in training (uniform random actions until `learning_starts`,
fixed seed). At its first call of `train_step`, main() is stopped, and that same `train_step` is then timed
on the objects main() built. Nothing in a script is re-implemented here, so the benchmark times exactly the
code that trains.

What a script must offer (a fork that changes one of these gets a row naming what is missing, not a timing):
- `Args` (a dataclass) and `main(args)`;
- a module-level `train_step`, called by main() once per gradient step (PPO: once per minibatch step of its
  epochs over a rollout). While main() runs, the benchmark puts a stand-in in place of `train_step` that
  records the arguments of the first call and stops main(); the original is then put back;
- off-policy scripts: a `batch` argument of `train_step` drawn, just before the call, by the `sample` method
  of a class of the script (its replay buffer). The benchmark wraps that `sample` the same way while main()
  runs, and then draws a fresh batch with the same arguments for every timed update. A script with no such
  class (PPO) is timed on the same arguments (the same minibatch) at every call;
- `update_actor`, when `train_step` takes it, alternates with the run's `policy_delay` as in training;
- `hyperparameters.json` in the run directory (the resolved settings: `policy_delay`; for PPO `n_steps`,
  `n_envs`, `n_epochs` and `batch_size`, which say how many env steps one call stands for).

Reported per row: update SPS, the env steps per second that the update phase alone allows (with one gradient
step per env step, the gradient steps per second; for PPO, a rollout's env steps divided by the time of the
n_epochs x (rollout / batch_size) minibatch steps spent on it), the ratio to td3_baseline, the FLOPs per env
step (matmuls only, counted by torch.utils.flop_counter.FlopCounterMode, forward and backward) and the
achieved GFLOP/s as a fraction of this machine's float32 matmul peak, measured in the same run (a large
torch.mm, best of several, same thread count).

Rows are timed round-robin (every row once per round, `--rounds` rounds) so that a load change on a shared
machine hits all rows alike, and each row reports its best round, as the matmul peak is the best of its
repeats: other processes can only slow a round down (with two threads on two busy cores, by 10-100x: every
small op waits for a descheduled OpenMP thread).

    python benchmarks/sps.py              # a few minutes
    python benchmarks/sps.py --quick      # about a minute
    python benchmarks/sps.py --scripts td3_baseline gamid_continuous_action --threads 1
"""

import ast
import contextlib
import dataclasses
import glob
import importlib
import inspect
import io
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Literal, Optional

import torch
import tyro
from torch.utils.flop_counter import FlopCounterMode

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The same hyperparameters for every off-policy MuJoCo script: HalfCheetah, batch 256, 256x256 nets, one
# gradient step per env step (the targets compare Gamid's and TD3's arithmetic at equal settings).
# A script without one of these fields ignores it, and its row says so.
MUJOCO = {
    "env_id": "HalfCheetah-v4",
    "batch_size": 256,
    "net_arch": (256, 256),
    "train_freq": "step",
    "gradient_steps": 1,
    "buffer_size": 100_000,
}
# The HER rows run the script's own FetchPush preset; PPO runs its own HalfCheetah preset (Table 9).
FETCH = {"env_id": "FetchPush-v4"}
PPO = {"env_id": "HalfCheetah-v4"}
ROWS = (  # (label, script, settings)
    ("td3_baseline", "td3_baseline", MUJOCO),
    ("gamid N=1", "gamid_continuous_action", MUJOCO | {"n_actors": 1}),
    ("gamid N=5", "gamid_continuous_action", MUJOCO | {"n_actors": 5}),
    ("sacm K=1 (SAC)", "sacm_baseline", MUJOCO | {"n_components": 1}),
    ("sacm K=3", "sacm_baseline", MUJOCO | {"n_components": 3}),
    ("pmoe", "pmoe_baseline", MUJOCO),
    ("ppo", "ppo_baseline", PPO),
    ("her-fetch FetchPush N=4", "gamid_her_fetch", FETCH | {"n_actors": 4}),
    ("her-fetch FetchPush N=1 (TD3+HER)", "gamid_her_fetch", FETCH | {"n_actors": 1}),
    ("sacm-her FetchPush K=3", "sacm_her_fetch", FETCH | {"n_components": 3}),
    ("sacm-her FetchPush K=1 (SAC+HER)", "sacm_her_fetch", FETCH | {"n_components": 1}),
)
BASELINE = "td3_baseline"


@dataclass
class Args:
    quick: bool = False
    """a smoke run of about a minute: small buffer fill, one short round"""
    scripts: tuple[str, ...] = ()
    """only rows of these scripts (e.g. td3_baseline gamid_continuous_action); default all"""
    device: Literal["cpu", "cuda"] = "cpu"
    """where the updates run (cuda falls back to cpu when no GPU is present, as the scripts do)"""
    threads: Optional[int] = None
    """torch intra-op threads (default: torch's choice, here the number of cores)"""
    rounds: Optional[int] = None
    """timing rounds over all rows; each row reports its best (default 5, quick 1)"""
    seconds: Optional[float] = None
    """seconds each row is timed per round (default 3, quick 1.5)"""
    learning_starts: Optional[int] = None
    """random env steps put into the buffer before timing (MuJoCo rows; default 10000, quick 1000)"""
    seed: int = 1
    """seed handed to every script"""
    override: tuple[str, ...] = ()
    """extra KEY=VALUE settings for every script that has the field, e.g. compile=True"""


@dataclass
class Result:
    label: str
    script: str
    sps: float = float("nan")  # env steps per second of update time
    flops: float = float("nan")  # matmul FLOPs per env step
    note: str = ""


class ContractError(Exception):
    """A script lacks something the benchmark relies on, or main() fails before train_step; the message says which."""


class FirstCall(BaseException):
    """Raised by the stand-in train_step to stop main(); carries the arguments of that first call.

    A BaseException, so that a script's `except Exception` cannot swallow it."""


class Update:
    """One timed unit of a script: `update(i)` runs its train_step once, as main() would for update i."""

    def __init__(self, train_step, bound, batch_source, policy_delay: int, steps_per_call: float):
        self.train_step = train_step
        self.bound = bound  # the arguments of main()'s first call, bound to train_step's parameters
        self.batch_source = batch_source  # (sample, buffer, args, kwargs) of the buffer call, or None
        self.policy_delay = policy_delay
        self.steps_per_call = steps_per_call  # env steps one call stands for (PPO: the rollout's length)
        self.flops = float("nan")  # matmul FLOPs per env step, once counted
        self.next_index = 0  # index of the next update to run

    def __call__(self, i: int):
        if self.batch_source is not None:
            sample, buffer, sample_args, sample_kwargs = self.batch_source
            self.bound.arguments["batch"] = sample(buffer, *sample_args, **sample_kwargs)
        if "update_actor" in self.bound.arguments:
            # As main(): the actor learns when n_updates % policy_delay == 0, n_updates counting from 1.
            self.bound.arguments["update_actor"] = (i + 1) % self.policy_delay == 0
        return self.train_step(*self.bound.args, **self.bound.kwargs)


def parse_override(item: str) -> tuple[str, object]:
    """'compile=True' -> ('compile', True); values are Python literals, else strings."""
    key, _, text = item.partition("=")
    try:
        return key.replace("-", "_"), ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return key.replace("-", "_"), text


def check_contract(module) -> list[type]:
    """The script's classes with a `sample` method (its buffers); ContractError naming what is missing."""
    name = module.__name__ + ".py"
    if not dataclasses.is_dataclass(getattr(module, "Args", None)):
        raise ContractError(f"missing: {name} has no dataclass Args (the benchmark builds one with its settings)")
    if not callable(getattr(module, "main", None)):
        raise ContractError(f"missing: {name} has no main(args) (the benchmark runs it up to train_step)")
    if not inspect.isfunction(getattr(module, "train_step", None)):
        raise ContractError(f"missing: {name} has no module-level function train_step (the benchmark times it)")
    return [
        cls
        for cls in vars(module).values()
        if inspect.isclass(cls) and cls.__module__ == module.__name__ and inspect.isfunction(vars(cls).get("sample"))
    ]


def read_hyperparameters(runs_dir: str) -> dict:
    """The resolved settings that main() saved in its run directory (empty if it saved none)."""
    paths = glob.glob(os.path.join(runs_dir, "*", "hyperparameters.json"))
    if not paths:
        return {}
    with open(paths[0]) as f:
        return json.load(f)


def on_policy_steps_per_call(hyperparameters: dict) -> tuple[float, str]:
    """Env steps one train_step call stands for in an on-policy script, and how that was worked out.

    A rollout of n_steps x n_envs env steps is used for n_epochs passes of ceil(rollout / batch_size)
    minibatch gradient steps (PPO, as SB3). A script without n_epochs or batch_size is taken to update on
    the whole rollout in one call; without n_steps, SPS counts calls."""
    if "n_steps" not in hyperparameters:
        return 1.0, "no n_steps in hyperparameters.json: SPS counts train_step calls"
    rollout = hyperparameters["n_steps"] * hyperparameters.get("n_envs", 1)
    if "n_epochs" in hyperparameters and "batch_size" in hyperparameters:
        calls = hyperparameters["n_epochs"] * math.ceil(rollout / hyperparameters["batch_size"])
        return rollout / calls, f"one call = one minibatch step; a {rollout}-step rollout takes {calls} calls"
    return float(rollout), f"one call = one update on a {rollout}-step rollout"


def build_update(module, settings: dict, optional: frozenset = frozenset()) -> tuple[Update, str]:
    """Run module.main up to its first train_step call; return the update to time and a note for the table.

    A setting the script's Args lacks is left out; the note names it unless it is in `optional`."""
    buffer_classes = check_contract(module)
    name = module.__name__ + ".py"
    fields = {field.name: field for field in dataclasses.fields(module.Args)}
    if "total_timesteps" in fields and "total_timesteps" not in settings:
        # Bounded, should main() not be stopped: the random fill plus some training steps.
        learning_starts = settings.get("learning_starts", getattr(fields.get("learning_starts"), "default", 0))
        settings = settings | {"total_timesteps": (learning_starts or 0) + 10_000}
    ignored = sorted(set(settings) - set(fields) - optional)
    script_args = module.Args(**{key: value for key, value in settings.items() if key in fields})

    calls = {}

    def stand_in(*call_args, **call_kwargs):
        raise FirstCall(call_args, call_kwargs)

    def recording(sample):
        def wrapper(buffer, *sample_args, **sample_kwargs):
            out = sample(buffer, *sample_args, **sample_kwargs)
            calls["sample"] = (sample, buffer, sample_args, sample_kwargs, out)
            return out

        return wrapper

    train_step = module.train_step
    samples = {cls: cls.sample for cls in buffer_classes}
    try:
        for cls in buffer_classes:
            cls.sample = recording(cls.sample)
        module.train_step = stand_in
        # The script's progress lines and env warnings are not the benchmark's output.
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            module.main(script_args)
    except FirstCall as first_call:
        call_args, call_kwargs = first_call.args
    except (Exception, SystemExit) as error:
        raise ContractError(f"failed: {name}'s main() stopped before train_step: {type(error).__name__}: {error}")
    else:
        raise ContractError(f"missing: {name}'s main() finished without calling train_step (the benchmark times it)")
    finally:
        module.train_step = train_step
        for cls, sample in samples.items():
            cls.sample = sample

    try:
        bound = inspect.signature(train_step).bind(*call_args, **call_kwargs)
    except TypeError as error:
        raise ContractError(f"failed: main() calls {name}'s train_step with arguments it does not take: {error}")
    batch_source = None
    if buffer_classes:
        classes = ", ".join(cls.__name__ + ".sample" for cls in buffer_classes)
        if "batch" not in bound.arguments:
            raise ContractError(f"missing: {name}'s train_step takes no argument named batch (drawn by {classes})")
        if "sample" not in calls or bound.arguments["batch"] is not calls["sample"][-1]:
            raise ContractError(f"missing: {name}'s train_step got a batch not drawn by {classes} just before")
        batch_source = calls["sample"][:-1]

    hyperparameters = read_hyperparameters(settings.get("runs_dir", ""))
    notes = [f"ignored {', '.join(ignored)}"] if ignored else []
    steps_per_call = 1.0
    if not buffer_classes:  # on-policy (PPO): timed on the same arguments every call
        steps_per_call, note = on_policy_steps_per_call(hyperparameters)
        notes.append(note)
    policy_delay = hyperparameters.get("policy_delay", getattr(script_args, "policy_delay", None) or 2)
    return Update(train_step, bound, batch_source, policy_delay, steps_per_call), "; ".join(notes)


def sync(device: str):
    if device == "cuda" and torch.cuda.is_available():
        torch.cuda.synchronize()


def time_updates(update: Update, start: int, seconds: float, device: str) -> tuple[float, int]:
    """Run updates for about `seconds`; return (env steps per second, next update index)."""
    chunk = 1 if device == "cpu" else 25  # on a GPU, read the clock only after a sync
    sync(device)
    i, t0 = start, time.perf_counter()
    while True:
        for _ in range(chunk):
            update(i)
            i += 1
        sync(device)
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return (i - start) * update.steps_per_call / elapsed, i


def matmul_peak(device: str, size: int, repeats: int) -> float:
    """float32 GFLOP/s of the best of `repeats` size x size torch.mm (TF32 off)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = device if device == "cpu" or torch.cuda.is_available() else "cpu"
    a, b = torch.randn(size, size, device=dev), torch.randn(size, size, device=dev)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def count_flops(update: Update, start: int) -> float:
    """Matmul FLOPs per env step, averaged over one policy_delay cycle (one actor update)."""
    n = update.policy_delay
    with FlopCounterMode(display=False) as counter:
        for i in range(start, start + n):
            update(i)
    return counter.get_total_flops() / n / update.steps_per_call


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def prepare(script: str, settings: dict, optional: frozenset, quick: bool) -> tuple[Optional[Update], str]:
    """Import a script, build its update, count its FLOPs and warm it up; (None, reason) when that fails."""
    if not os.path.exists(os.path.join(REPO_ROOT, script + ".py")):
        return None, f"missing: {script}.py not found"
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # import-time notices of gymnasium-robotics
            module = importlib.import_module(script)
        update, note = build_update(module, settings, optional)
    except ContractError as error:
        return None, str(error)
    except Exception as error:  # the script does not even import
        return None, f"failed: importing {script}.py raised {type(error).__name__}: {error}"
    try:
        update.flops = count_flops(update, 0)  # also the first warm-up updates
        update.next_index = update.policy_delay
        t0 = time.perf_counter()
        while not quick and (update.next_index < 5 or time.perf_counter() - t0 < 1.0):  # warm-up
            update(update.next_index)
            update.next_index += 1
    except Exception as error:  # train_step itself fails on the arguments main() gave it
        return None, f"failed: {script}.py's train_step raised {type(error).__name__}: {error}"
    return update, note


def run(args: Args) -> tuple[list[Result], float, dict]:
    """Time every selected row; returns the results, the matmul peak (GFLOP/s) and run facts."""
    if args.threads:
        torch.set_num_threads(args.threads)
    rounds = args.rounds or (1 if args.quick else 5)
    seconds = args.seconds or (1.5 if args.quick else 3.0)
    learning_starts = args.learning_starts or (1_000 if args.quick else 10_000)
    overrides = dict(parse_override(item) for item in args.override)
    if REPO_ROOT not in sys.path:
        sys.path.insert(0, REPO_ROOT)

    known = {script for _, script, _ in ROWS}
    unknown = set(args.scripts) - known
    if unknown:
        raise SystemExit(f"Unknown script(s) {', '.join(sorted(unknown))}; choose from {', '.join(sorted(known))}.")
    results, updates = [], {}
    load_start = os.getloadavg()[0]
    size = 2048 if args.device == "cpu" else 8192  # of the square matmul that measures the peak
    with tempfile.TemporaryDirectory() as scratch:
        for label, script, settings in ROWS:
            if args.scripts and script not in args.scripts:
                continue
            result = Result(label, script)
            results.append(result)
            # Settings every script gets where it has the field (no note when it has not): its own run
            # directory (the row's hyperparameters.json), and no evaluation or checkpoint during the fill.
            common = {"seed": args.seed, "cuda": args.device == "cuda", "runs_dir": tempfile.mkdtemp(dir=scratch)}
            common |= {"eval_freq": 10**9, "checkpoint_freq": 0}
            if settings["env_id"] == MUJOCO["env_id"]:
                common["learning_starts"] = learning_starts
            update, result.note = prepare(script, common | settings | overrides, frozenset(common), args.quick)
            if update is not None:
                result.flops = update.flops
                updates[label] = update

        peaks, sps = [], {label: [] for label in updates}
        for _ in range(rounds):
            peaks.append(matmul_peak(args.device, size, 5))
            for label, update in updates.items():
                rate, update.next_index = time_updates(update, update.next_index, seconds, args.device)
                sps[label].append(rate)
        peaks.append(matmul_peak(args.device, size, 5))
        for result in results:
            if result.label in sps:
                result.sps = max(sps[result.label])
    device = args.device if args.device == "cpu" or torch.cuda.is_available() else "cpu (no GPU found)"
    facts = {
        "device": device,
        "threads": torch.get_num_threads(),
        "rounds": rounds,
        "seconds": seconds,
        "learning_starts": learning_starts,
        "torch": torch.__version__,
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "load": (load_start, os.getloadavg()[0]),
        "peak_size": size,
    }
    return results, max(peaks) if peaks else float("nan"), facts


def format_table(results: list[Result], peak: float, facts: dict) -> str:
    base = next((r.sps for r in results if r.label == BASELINE), float("nan"))
    lines = [
        "| row | update SPS | × td3_baseline | ms / env step | GFLOP / env step | GFLOP/s | % of matmul peak | note |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        if r.sps != r.sps:  # not timed
            lines.append(f"| {r.label} | – | – | – | – | – | – | {r.note} |")
            continue
        gflops = r.flops * r.sps / 1e9
        ratio = "–" if base != base else f"{r.sps / base:.2f}"
        cells = [f"{r.sps:,.1f}", ratio, f"{1e3 / r.sps:.2f}", f"{r.flops / 1e9:.3f}", f"{gflops:.1f}"]
        cells += [f"{100 * gflops / peak:.0f}%", r.note]
        lines.append(f"| {r.label} | " + " | ".join(cells) + " |")
    load_start, load_end = facts["load"]
    lines += [
        "",
        f"float32 matmul peak: {peak:.1f} GFLOP/s (torch.mm {facts['peak_size']}², best of the run) "
        f"on {facts['device']}, {facts['threads']} threads, {facts['cores']} cores ({facts['cpu']}), "
        f"torch {facts['torch']}; best of {facts['rounds']} round(s) × {facts['seconds']:g} s per row; "
        f"buffer filled with {facts['learning_starts']} random HalfCheetah steps (off-policy MuJoCo rows); "
        f"load average {load_start:.2f} at the start, {load_end:.2f} at the end. "
        "Off-policy MuJoCo rows: HalfCheetah-v4, batch 256, 256×256, one update per env step, policy_delay 2; "
        "HER rows: the script's FetchPush preset; PPO: its HalfCheetah preset, SPS = rollout env steps per "
        "second of updating on the rollout (all epochs). FLOPs count matmuls only (forward + backward).",
    ]
    if load_start > facts["cores"]:  # at the start: at the end the load includes this run
        lines.append(
            f"Busy machine (load above its {facts['cores']} cores): timings are noisy, and with more than one "
            "thread every small op waits for descheduled OpenMP threads; compare with --threads 1."
        )
    return "\n".join(lines)


def main(args: Args) -> str:
    table = format_table(*run(args))
    print(table)
    return table


if __name__ == "__main__":
    main(tyro.cli(Args))
