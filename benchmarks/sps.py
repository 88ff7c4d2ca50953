"""Update-phase speed benchmark of the training scripts (SPEC §11).

For every row below, the script's own `main(args)` builds its networks, optimizers and replay
buffer with the benchmark hyperparameters and fills the buffer with `learning_starts` env steps
of uniform random actions (fixed seed). At the first call of the module-level `train_step`,
main() is stopped and the same `train_step` is then timed on those objects: a fresh minibatch
from the buffer every call, `update_actor` alternating with the script's `policy_delay` as in
training. Nothing in a script is re-implemented here, so the benchmark times exactly the code
that trains.

Reported per row: update-phase SPS (gradient steps per second; with one gradient step per env
step this is the SPS training would reach if acting and env stepping were free), the ratio to
td3_baseline, FLOPs per update (matmuls only, counted by torch.utils.flop_counter.FlopCounterMode,
forward and backward) and the achieved GFLOP/s as a fraction of this machine's float32 matmul
peak, measured in the same run (a large torch.mm, best of several, same thread count).

Rows are timed round-robin (every row once per round, `--rounds` rounds) so that a load change on
a shared machine hits all rows alike, and each row reports its best round, as the matmul peak is
the best of its repeats: other processes can only slow a round down (with two threads on two
busy cores, by 10-100x: every small op waits for a descheduled OpenMP thread).

    python benchmarks/sps.py              # a few minutes
    python benchmarks/sps.py --quick      # well under a minute
    python benchmarks/sps.py --scripts td3_baseline gamid_continuous_action --threads 1
"""

import ast
import contextlib
import dataclasses
import importlib
import inspect
import io
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Literal, Optional

import torch
import tyro
from torch.utils.flop_counter import FlopCounterMode

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The same hyperparameters for every MuJoCo script (SPEC §11): HalfCheetah, batch 256, 256x256
# nets, one gradient step per env step. The HER rows use the script's FetchPush preset instead.
MUJOCO = {"env_id": "HalfCheetah-v4", "batch_size": 256, "net_arch": (256, 256), "train_freq": "step",
          "gradient_steps": 1, "buffer_size": 100_000}
FETCH = {"env_id": "FetchPush-v4"}
ROWS = (  # (label, script, settings)
    ("td3_baseline", "td3_baseline", MUJOCO),
    ("gamid N=1", "gamid_continuous_action", MUJOCO | {"n_actors": 1}),
    ("gamid N=5", "gamid_continuous_action", MUJOCO | {"n_actors": 5}),
    ("sacm K=1 (SAC)", "sacm_baseline", MUJOCO | {"n_components": 1}),
    ("sacm K=3", "sacm_baseline", MUJOCO | {"n_components": 3}),
    ("her-fetch FetchPush N=4", "gamid_her_fetch", FETCH | {"n_actors": 4}),
    ("her-fetch FetchPush N=1 (TD3+HER)", "gamid_her_fetch", FETCH | {"n_actors": 1}),
)
BASELINE = "td3_baseline"


@dataclass
class Args:
    quick: bool = False
    """a smoke run in well under a minute: small buffer fill, one short round"""
    scripts: tuple[str, ...] = ()
    """only rows of these scripts (e.g. td3_baseline gamid_continuous_action); default all present"""
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
    sps: float = float("nan")
    flops: float = float("nan")  # matmul FLOPs per update
    note: str = ""


class _Stop(BaseException):
    """Raised inside main() by the stand-in train_step; carries the arguments of that first call."""


def parse_override(item: str) -> tuple[str, object]:
    """'compile=True' -> ('compile', True); values are Python literals, else strings."""
    key, _, text = item.partition("=")
    try:
        return key.replace("-", "_"), ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return key.replace("-", "_"), text


def build_update(module, settings: dict) -> tuple[Callable[[int], object], str]:
    """Run module.main up to its first train_step call; return step(i), doing update i, and a note."""
    fields = {f.name: f for f in dataclasses.fields(module.Args)}
    if "total_timesteps" in fields and "total_timesteps" not in settings:  # bounded, should main() not be stopped
        settings = settings | {"total_timesteps": settings.get("learning_starts", fields["learning_starts"].default) + 10_000}
    missing = sorted(set(settings) - set(fields))
    script_args = module.Args(**{k: v for k, v in settings.items() if k in fields})

    # Spy on the buffer's sample() (any class of the module that has one) to find the batch argument.
    last = {}
    spied = [cls for cls in vars(module).values()
             if inspect.isclass(cls) and cls.__module__ == module.__name__ and callable(getattr(cls, "sample", None))]
    originals = {cls: cls.sample for cls in spied}

    def spy(original):
        def sample(self, *a, **k):
            out = original(self, *a, **k)
            last.update(buffer=self, sample=original, a=a, k=k, out=out)
            return out
        return sample

    def stand_in(*a, **k):
        raise _Stop(a, k)

    train_step = module.train_step
    try:
        for cls in spied:
            cls.sample = spy(cls.sample)
        module.train_step = stand_in
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            module.main(script_args)  # its progress lines and env warnings are not the benchmark's output
        raise RuntimeError(f"{module.__name__}.main() finished without calling train_step")
    except _Stop as stop:
        call_args, call_kwargs = stop.args
    finally:
        module.train_step = train_step
        for cls, original in originals.items():
            cls.sample = original

    bound = inspect.signature(train_step).bind(*call_args, **call_kwargs)
    batch_name = next((name for name, value in bound.arguments.items() if "out" in last and value is last["out"]), None)
    delay = getattr(script_args, "policy_delay", 2)
    notes = [f"ignored {', '.join(missing)}"] if missing else []
    if batch_name is None:
        notes.append("fixed batch")

    def step(i: int):
        if batch_name is not None:
            bound.arguments[batch_name] = last["sample"](last["buffer"], *last["a"], **last["k"])
        if "update_actor" in bound.arguments:
            bound.arguments["update_actor"] = (i + 1) % delay == 0  # as main(): n_updates % policy_delay == 0
        return train_step(*bound.args, **bound.kwargs)

    step.policy_delay = delay
    return step, "; ".join(notes)


def sync(device: str):
    if device == "cuda" and torch.cuda.is_available():
        torch.cuda.synchronize()


def time_steps(step, start: int, seconds: float, device: str) -> tuple[float, int]:
    """Run updates for about `seconds`; return (updates per second, next update index)."""
    chunk = 1 if device == "cpu" else 25  # on a GPU, read the clock only after a sync
    sync(device)
    i, t0 = start, time.perf_counter()
    while True:
        for _ in range(chunk):
            step(i)
            i += 1
        sync(device)
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return (i - start) / elapsed, i


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


def count_flops(step, start: int) -> float:
    """Matmul FLOPs per update, averaged over one policy_delay cycle (one actor update)."""
    n = step.policy_delay
    with FlopCounterMode(display=False) as counter:
        for i in range(start, start + n):
            step(i)
    return counter.get_total_flops() / n


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


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
    if set(args.scripts) - known:
        raise SystemExit(f"Unknown script(s) {', '.join(sorted(set(args.scripts) - known))}; choose from {', '.join(sorted(known))}.")
    results, steps, counters = [], {}, {}
    load_start = os.getloadavg()[0]
    size = 2048 if args.device == "cpu" else 8192  # of the square matmul that measures the peak
    with tempfile.TemporaryDirectory() as runs_dir:
        for label, script, settings in ROWS:
            if args.scripts and script not in args.scripts:
                continue
            result = Result(label, script)
            results.append(result)
            if not os.path.exists(os.path.join(REPO_ROOT, script + ".py")):
                result.note = f"skipped: {script}.py not in this checkout"
                continue
            settings = settings | {"seed": args.seed, "cuda": args.device == "cuda", "runs_dir": runs_dir,
                                   "eval_freq": 10**9} | overrides
            if "learning_starts" not in settings and settings["env_id"].startswith("HalfCheetah"):
                settings["learning_starts"] = learning_starts
            try:
                with contextlib.redirect_stderr(io.StringIO()):  # import-time notices of gymnasium-robotics
                    module = importlib.import_module(script)
                step, result.note = build_update(module, settings)
                result.flops = count_flops(step, 0)  # also the first warm-up updates
                i, t0 = step.policy_delay, time.perf_counter()
                while not args.quick and (i < 5 or time.perf_counter() - t0 < 1.0):  # warm-up
                    step(i)
                    i += 1
                steps[label], counters[label] = step, i
            except (Exception, SystemExit) as error:  # a broken or unfinished script is reported, not fatal
                result.note = f"failed: {type(error).__name__}: {error}"

        peaks, sps = [], {label: [] for label in steps}
        for _ in range(rounds):
            peaks.append(matmul_peak(args.device, size, 5))
            for label, step in steps.items():
                rate, counters[label] = time_steps(step, counters[label], seconds, args.device)
                sps[label].append(rate)
        peaks.append(matmul_peak(args.device, size, 5))
        for result in results:
            if result.label in sps:
                result.sps = max(sps[result.label])
    facts = {"device": args.device if args.device == "cpu" or torch.cuda.is_available() else "cpu (no GPU found)",
             "threads": torch.get_num_threads(), "rounds": rounds, "seconds": seconds,
             "learning_starts": learning_starts, "torch": torch.__version__, "cpu": cpu_name(),
             "cores": os.cpu_count(), "load": (load_start, os.getloadavg()[0]), "peak_size": size}
    return results, max(peaks) if peaks else float("nan"), facts


def format_table(results: list[Result], peak: float, facts: dict) -> str:
    base = next((r.sps for r in results if r.label == BASELINE), float("nan"))
    lines = ["| row | update SPS | × td3_baseline | ms / update | GFLOP / update | GFLOP/s | % of matmul peak | note |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        if r.sps != r.sps:  # not timed
            lines.append(f"| {r.label} | – | – | – | – | – | – | {r.note} |")
            continue
        gflops = r.flops * r.sps / 1e9
        ratio = "–" if base != base else f"{r.sps / base:.2f}"
        lines.append(f"| {r.label} | {r.sps:,.1f} | {ratio} | {1e3 / r.sps:.2f} | {r.flops / 1e9:.3f} | "
                     f"{gflops:.1f} | {100 * gflops / peak:.0f}% | {r.note} |")
    lines.append("")
    lines.append(f"float32 matmul peak: {peak:.1f} GFLOP/s (torch.mm {facts['peak_size']}², best of the run) on {facts['device']}, "
                 f"{facts['threads']} threads, {facts['cores']} cores ({facts['cpu']}), torch {facts['torch']}; "
                 f"best of {facts['rounds']} round(s) × {facts['seconds']:g} s per row; buffer filled with "
                 f"{facts['learning_starts']} random HalfCheetah steps (MuJoCo rows); load average {facts['load'][0]:.2f} at the "
                 f"start, {facts['load'][1]:.2f} at the end. MuJoCo rows: HalfCheetah-v4, batch 256, 256×256, one update per env step, "
                 "policy_delay 2; HER rows: the script's FetchPush preset. FLOPs count matmuls only (forward + backward).")
    if facts["load"][0] > facts["cores"]:  # at the start: at the end the load includes this run
        lines.append(f"Busy machine (load above its {facts['cores']} cores): timings are noisy, and with more than one "
                     "thread every small op waits for descheduled OpenMP threads; compare with --threads 1.")
    return "\n".join(lines)


def main(args: Args) -> str:
    table = format_table(*run(args))
    print(table)
    return table


if __name__ == "__main__":
    main(tyro.cli(Args))
