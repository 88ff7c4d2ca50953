"""Reproduce Table 1 of the paper: a grid of (script, task, seed) training runs, then the table.

Each run is an ordinary command line (`python td3_baseline.py --env-id Hopper-v4 --seed 2 ...`)
with its own `--runs-dir` under `--out-dir`, so its TensorBoard log is found without guessing.
A run is finished once its process exited 0: a `DONE` marker holding the command is then
written next to its log. Running the same command again resumes: finished runs are skipped,
unfinished ones are cleaned and started again. A run whose DONE holds a different command (say, a
different budget) counts as unfinished.

Runs go to a local process pool (`--workers`), or with `--slurm` into a SLURM array job
(`grid.sbatch`, one array index per run, plus `commands.txt`) that is written, not submitted.

The summary (also alone with `--summarize-only`) reads every finished run's last greedy
evaluation (`eval/success_rate` where logged, i.e. Fetch, else `eval/episodic_return`), and writes
to `--out-dir`:
- `table.md`: mean ± sample standard deviation (ddof = 1) over seeds per task and method, the
  best mean of each row in bold, and the p-value of Welch's two-sided t-test of Gamid against
  TD3 per task (paper §4.3);
- `results.csv`: the final value of every run; `summary.json`: the numbers behind the table;
- `curves_<task>.png`: learning curves, mean over seeds with a ±1 std band per method.

    python benchmarks/reproduce.py --total-timesteps 200000 --workers 2
    python benchmarks/reproduce.py --scripts gamid_continuous_action td3_baseline \\
        --tasks HalfCheetah-v4 Hopper-v4 --seeds 1 2 --total-timesteps 20000 --workers 2
    python benchmarks/reproduce.py --total-timesteps 1000000 --slurm   # then: sbatch <out-dir>/grid.sbatch
"""

import csv
import glob
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import tyro

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MUJOCO_TASKS = ("Swimmer-v4", "HalfCheetah-v4", "Hopper-v4", "Ant-v4", "Walker2d-v4", "Humanoid-v4")
FETCH_TASKS = ("FetchPush-v4", "FetchSlide-v4", "FetchPickAndPlace-v4")
FETCH_SCRIPTS = ("gamid_her_fetch",)  # scripts that run the Fetch tasks; all others run the MuJoCo tasks
# Table 1 columns each script fills: (method id used in run names, column, extra flags).
VARIANTS = {
    "td3_baseline": [("td3", "TD3", ())],
    "sacm_baseline": [("sac", "SAC", ("--n-components", "1")), ("sacm", "SACM", ("--n-components", "3"))],
    "gamid_continuous_action": [("gamid", "Gamid", ())],
    "gamid_her_fetch": [("td3-her", "TD3", ("--n-actors", "1")), ("gamid-her", "Gamid", ())],
}
COLUMNS = ("TD3", "SAC", "SACM", "Gamid")  # Table 1's order (PMOE and PPO are not part of this project)
DONE = "DONE"


@dataclass
class Args:
    scripts: tuple[str, ...] = tuple(VARIANTS)
    """training scripts (file names without .py); sacm_baseline runs as SAC (K = 1) and SACM (K = 3),
    gamid_her_fetch as Gamid+HER and TD3+HER (N = 1)"""
    tasks: tuple[str, ...] = MUJOCO_TASKS + FETCH_TASKS
    """tasks; Fetch* tasks go to the HER script, the others to the MuJoCo scripts"""
    seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    """seeds of every (script, task) pair (the paper: five runs)"""
    total_timesteps: Optional[int] = None
    """budget of every run (default: each script's paper preset, 1e6 steps, 2e6 for Humanoid)"""
    learning_starts: Optional[int] = None
    """random steps before training, passed to every run (default: the scripts' own)"""
    eval_freq: Optional[int] = None
    """greedy evaluation every this many steps (default: a tenth of --total-timesteps, else the scripts' 10000)"""
    eval_episodes: int = 10
    """episodes per evaluation"""
    workers: int = 1
    """runs at once in the local process pool"""
    threads_per_run: Optional[int] = None
    """torch threads of each run (OMP_NUM_THREADS; default: CPU cores // workers, at least 1)"""
    out_dir: Optional[str] = None
    """where runs, logs, table and plots go (default: benchmarks/results/table1-<budget>)"""
    slurm: bool = False
    """write <out-dir>/grid.sbatch and commands.txt for `sbatch` instead of running"""
    slurm_time: str = "48:00:00"
    """SLURM --time of one run"""
    slurm_cpus: int = 2
    """SLURM --cpus-per-task (also the run's OMP_NUM_THREADS)"""
    slurm_mem: str = "8G"
    """SLURM --mem of one run"""
    slurm_partition: Optional[str] = None
    """SLURM --partition (default: the cluster's)"""
    slurm_setup: Optional[str] = None
    """shell line run before each job, e.g. 'source .venv/bin/activate' (default: activate this Python's venv)"""
    summarize_only: bool = False
    """do not run anything; summarize the finished runs in --out-dir"""
    repo_root: str = REPO_ROOT
    """where the training scripts are"""


@dataclass
class Run:
    run_id: str  # <task>__<method>__<seed>, also the name of its directory under <out-dir>/runs
    task: str
    method: str
    column: str
    script: str
    seed: int
    argv: list  # the command after the Python interpreter, run in the repository root

    def dir(self, out_dir: str) -> str:
        return os.path.join(out_dir, "runs", self.run_id)


def build_grid(args: Args, out_dir: str) -> list[Run]:
    """Every (script variant, task, seed) of the selection whose script exists; missing scripts are reported and skipped."""
    runs = []
    for script in args.scripts:
        if script not in VARIANTS:
            raise SystemExit(f"Unknown script '{script}'; choose from {', '.join(VARIANTS)}.")
        if not os.path.exists(os.path.join(args.repo_root, script + ".py")):
            print(f"note: {script}.py is not in {args.repo_root}; its runs are skipped.")
            continue
        tasks = [t for t in args.tasks if t.startswith("Fetch") == (script in FETCH_SCRIPTS)]
        for task in tasks:
            for method, column, flags in VARIANTS[script]:
                for seed in args.seeds:
                    run_id = f"{task}__{method}__{seed}"
                    argv = [f"{script}.py", "--env-id", task, "--seed", str(seed),
                            "--runs-dir", os.path.join(out_dir, "runs", run_id), *flags]
                    if args.total_timesteps is not None:
                        argv += ["--total-timesteps", str(args.total_timesteps)]
                    if args.learning_starts is not None:
                        argv += ["--learning-starts", str(args.learning_starts)]
                    eval_freq = args.eval_freq or (max(1, args.total_timesteps // 10) if args.total_timesteps else None)
                    if eval_freq is not None:
                        argv += ["--eval-freq", str(eval_freq)]
                    argv += ["--eval-episodes", str(args.eval_episodes)]
                    runs.append(Run(run_id, task, method, column, script, seed, argv))
    return runs


def write_manifest(runs: list[Run], out_dir: str) -> None:
    """Add the runs to <out-dir>/grid.json (kept across invocations, so the summary sees every grid run here)."""
    path = os.path.join(out_dir, "grid.json")
    manifest = {}
    if os.path.exists(path):
        with open(path) as f:
            manifest = json.load(f)
    manifest |= {run.run_id: asdict(run) for run in runs}
    os.makedirs(out_dir, exist_ok=True)
    with open(path, "w") as f:
        json.dump(manifest, f, indent=1)


def read_manifest(out_dir: str) -> list[Run]:
    path = os.path.join(out_dir, "grid.json")
    if not os.path.exists(path):
        raise SystemExit(f"No grid in {out_dir} (grid.json is missing); run the grid first.")
    with open(path) as f:
        return [Run(**entry) for entry in json.load(f).values()]


def done_text(run: Run) -> str:
    return " ".join(run.argv)


def is_finished(run: Run, out_dir: str) -> bool:
    marker = os.path.join(run.dir(out_dir), DONE)
    if not os.path.exists(marker):
        return False
    with open(marker) as f:
        if f.read().strip() == done_text(run):
            return True
    print(f"note: {run.run_id} finished with another command; it runs again.")
    return False


# --- local process pool --------------------------------------------------------------------------

def run_one(run: Run, out_dir: str, repo_root: str, threads: int, running: dict) -> tuple[int, float]:
    """Clean the run's directory, run it, and mark it DONE if it exits 0. -> (exit code, seconds)."""
    run_dir = run.dir(out_dir)
    shutil.rmtree(run_dir, ignore_errors=True)  # an interrupted attempt's partial logs must not mix in
    os.makedirs(run_dir)
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.time()
    with open(os.path.join(run_dir, "train.log"), "w") as log:
        process = subprocess.Popen([sys.executable, *run.argv], cwd=repo_root, stdout=log, stderr=subprocess.STDOUT, env=env)
        running[run.run_id] = process
        code = process.wait()
        running.pop(run.run_id, None)
    if code == 0:
        with open(os.path.join(run_dir, DONE), "w") as f:
            f.write(done_text(run) + "\n")
    return code, time.time() - start


def run_grid(runs: list[Run], out_dir: str, args: Args) -> int:
    """Run the unfinished runs, `workers` at a time. Returns the number of failed runs."""
    todo = [run for run in runs if not is_finished(run, out_dir)]
    threads = args.threads_per_run or max(1, (os.cpu_count() or 1) // args.workers)
    print(f"{len(runs)} runs in the grid, {len(runs) - len(todo)} already finished; running {len(todo)} "
          f"with {args.workers} worker(s), {threads} thread(s) each. Logs: {os.path.join(out_dir, 'runs', '<run>', 'train.log')}")
    running, failed, start = {}, 0, time.time()
    pool = ThreadPoolExecutor(max_workers=args.workers)
    try:
        futures = {pool.submit(run_one, run, out_dir, args.repo_root, threads, running): run for run in todo}
        for k, future in enumerate(as_completed(futures), 1):
            run, (code, seconds) = futures[future], future.result()
            failed += code != 0
            status = "finished" if code == 0 else f"FAILED (exit {code}, see {os.path.join(run.dir(out_dir), 'train.log')})"
            print(f"[{k}/{len(todo)}] {run.run_id} {status} in {seconds:.0f} s (grid {time.time() - start:.0f} s)", flush=True)
    except KeyboardInterrupt:
        print("interrupted: stopping the running runs; run the same command again to resume.")
        pool.shutdown(wait=False, cancel_futures=True)
        for process in list(running.values()):
            process.terminate()
        raise
    pool.shutdown()
    print(f"grid wall time {time.time() - start:.0f} s, {failed} failed run(s)")
    return failed


# --- SLURM ---------------------------------------------------------------------------------------

def write_slurm(runs: list[Run], out_dir: str, args: Args) -> str:
    """Write grid.sbatch (array index i runs line i + 1 of commands.txt) and commands.txt; returns the sbatch path."""
    os.makedirs(os.path.join(out_dir, "slurm"), exist_ok=True)
    setup = args.slurm_setup
    if setup is None:
        setup = f"source {shlex.quote(os.path.join(sys.prefix, 'bin', 'activate'))}" if sys.prefix != sys.base_prefix else ""
    with open(os.path.join(out_dir, "commands.txt"), "w") as f:
        f.writelines(f"python {shlex.join(run.argv)}\n" for run in runs)
    lines = [
        "#!/bin/bash",
        "#SBATCH --job-name=gamid-table1",
        f"#SBATCH --array=0-{len(runs) - 1}",
        f"#SBATCH --cpus-per-task={args.slurm_cpus}",
        f"#SBATCH --mem={args.slurm_mem}",
        f"#SBATCH --time={args.slurm_time}",
        f"#SBATCH --output={os.path.join(out_dir, 'slurm', '%A_%a.out')}",
        *([f"#SBATCH --partition={args.slurm_partition}"] if args.slurm_partition else []),
        f"# Written by benchmarks/reproduce.py: {len(runs)} runs, array index i = line i + 1 of commands.txt. Submit with: sbatch {shlex.quote(os.path.join(out_dir, 'grid.sbatch'))}",
        "# Resubmitting resumes: runs with a DONE marker exit at once. Summarize with --summarize-only.",
        "set -eo pipefail",
        *([setup] if setup else []),
        "set -u",
        f"cd {shlex.quote(os.path.abspath(args.repo_root))}",
        f"export OMP_NUM_THREADS={args.slurm_cpus} MKL_NUM_THREADS={args.slurm_cpus}",
        'case "${SLURM_ARRAY_TASK_ID:?submit with sbatch, or set SLURM_ARRAY_TASK_ID}" in',
    ]
    for i, run in enumerate(runs):
        lines.append(f"  {i}) RUN_DIR={shlex.quote(run.dir(out_dir))}; set -- {shlex.join(run.argv)} ;;")
    lines += [
        '  *) echo "no run for array index $SLURM_ARRAY_TASK_ID" >&2; exit 1 ;;',
        "esac",
        'if [ -f "$RUN_DIR/DONE" ] && [ "$(cat "$RUN_DIR/DONE")" = "$*" ]; then echo "already finished: $RUN_DIR"; exit 0; fi',
        'rm -rf "$RUN_DIR" && mkdir -p "$RUN_DIR"',
        'python "$@" 2>&1 | tee "$RUN_DIR/train.log"',
        'printf \'%s\\n\' "$*" > "$RUN_DIR/DONE"',
    ]
    path = os.path.join(out_dir, "grid.sbatch")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


# --- summary -------------------------------------------------------------------------------------

def read_curve(run_dir: str) -> tuple[str, np.ndarray, np.ndarray]:
    """(tag, steps, values) of the run's greedy evaluations: eval/success_rate if logged, else eval/episodic_return."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(glob.glob(os.path.join(run_dir, "**", "events.out.tfevents.*"), recursive=True), key=os.path.getmtime)
    if not files:
        raise FileNotFoundError(f"no TensorBoard log under {run_dir}")
    events = EventAccumulator(os.path.dirname(files[-1]), size_guidance={"scalars": 0})
    events.Reload()
    tags = events.Tags()["scalars"]
    tag = next((t for t in ("eval/success_rate", "eval/episodic_return") if t in tags), None)
    if tag is None:
        raise KeyError(f"no eval/success_rate or eval/episodic_return in {files[-1]}")
    scalars = sorted(events.Scalars(tag), key=lambda e: e.step)
    return tag, np.array([e.step for e in scalars]), np.array([e.value for e in scalars], dtype=float)


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) by its continued fraction (modified Lentz; Numerical Recipes §6.4)."""
    if x <= 0 or x >= 1:
        return float(x >= 1)
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast on this side only
        return 1 - regularized_incomplete_beta(b, a, 1 - x)
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1 + num * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + num / c
            c = c if abs(c) > tiny else tiny
            h *= c * d
        if abs(c * d - 1) < 1e-15:
            break
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    return math.exp(log_front) * h / a


def welch_t_test(a, b) -> tuple[float, float, float]:
    """Welch's unequal-variance t-test: (t, degrees of freedom, two-sided p). NaN when a group has < 2 values or no variance."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return (math.nan,) * 3
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0:
        return (math.nan,) * 3
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return t, df, regularized_incomplete_beta(df / 2, 0.5, df / (df + t * t))  # P(|T_df| >= |t|)


def fmt(x: float, metric: str) -> str:
    """Numbers as in Table 1: success rates with two decimals; returns whole, with a decimal below 10 (344 ± 4.1)."""
    if math.isnan(x):
        return "–"
    if metric == "eval/success_rate":
        return f"{x:.2f}"
    return f"{x:,.0f}" if abs(x) >= 10 else f"{x:.1f}"


def summarize(out_dir: str) -> dict:
    """Write table.md, results.csv, summary.json and curves_<task>.png for the finished runs in out_dir."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = read_manifest(out_dir)
    curves, rows, skipped = {}, [], []
    for run in runs:
        if not is_finished(run, out_dir):
            skipped.append(run.run_id)
            continue
        try:
            tag, steps, values = read_curve(run.dir(out_dir))
        except (FileNotFoundError, KeyError) as error:
            print(f"note: {run.run_id} is left out: {error}")
            skipped.append(run.run_id)
            continue
        curves.setdefault((run.task, run.column), []).append((run.seed, steps, values))
        rows.append({"run_id": run.run_id, "task": run.task, "method": run.method, "column": run.column,
                     "script": run.script, "seed": run.seed, "metric": tag,
                     "final_step": int(steps[-1]), "final_value": float(values[-1])})
    with open(os.path.join(out_dir, "results.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["run_id", "task", "method", "column", "script", "seed", "metric",
                                               "final_step", "final_value"])
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: (r["task"], r["column"], r["seed"])))

    if not rows:
        raise SystemExit(f"No finished run with an evaluation in {out_dir} yet.")
    expected = {}
    for run in runs:
        expected[(run.task, run.column)] = expected.get((run.task, run.column), 0) + 1
    tasks = [t for t in MUJOCO_TASKS + FETCH_TASKS if any(r["task"] == t for r in rows)]
    tasks += sorted({r["task"] for r in rows} - set(tasks))
    columns = [c for c in COLUMNS if any(r["column"] == c for r in rows)]
    summary = {"tasks": {}, "left_out": skipped}
    lines = ["| task | " + " | ".join(columns) + " | p (Gamid vs TD3) |", "|---" * (len(columns) + 2) + "|"]
    for task in tasks:
        cells, finals = {}, {}
        for column in columns:
            values = np.array([r["final_value"] for r in rows if r["task"] == task and r["column"] == column])
            if len(values):
                finals[column] = values
                cells[column] = {"n": len(values), "mean": float(values.mean()),
                                 "std": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
                                 "values": values.tolist(), "expected_n": expected.get((task, column), len(values))}
        best = max(cell["mean"] for cell in cells.values())
        t, df, p = welch_t_test(finals["Gamid"], finals["TD3"]) if {"Gamid", "TD3"} <= set(finals) else (math.nan,) * 3
        summary["tasks"][task] = {"cells": cells, "welch_t": t, "welch_df": df, "p_gamid_vs_td3": p}
        row = []
        for column in columns:
            if column not in cells:
                row.append("—")
                continue
            cell = cells[column]
            metric = next(r["metric"] for r in rows if r["task"] == task and r["column"] == column)
            text = f"{fmt(cell['mean'], metric)} ± {fmt(cell['std'], metric)}"
            if cell["n"] < cell["expected_n"]:
                text += f" (n={cell['n']})"
            row.append(f"**{text}**" if cell["mean"] == best else text)
        p_text = "–" if math.isnan(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")
        lines.append(f"| {task} | " + " | ".join(row) + f" | {p_text} |")
    n_seeds = sorted({cell["n"] for task in summary["tasks"].values() for cell in task["cells"].values()})
    metrics = sorted({r["metric"] for r in rows})
    lines += ["", f"Final greedy evaluation ({', '.join(metrics)}), mean ± sample std (ddof = 1) over "
                  f"{'/'.join(map(str, n_seeds))} seeds; best mean per task in bold; p: Welch's two-sided t-test. "
                  "Fetch: TD3 = gamid_her_fetch.py --n-actors 1 (TD3+HER), Gamid = gamid_her_fetch.py."]
    if skipped:
        lines.append(f"{len(skipped)} run(s) left out (unfinished or without evaluations): {', '.join(sorted(skipped))}.")
    table = "\n".join(lines)
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)

    for task in tasks:
        fig, ax = plt.subplots(figsize=(6, 4))
        for column in columns:
            series = curves.get((task, column))
            if not series:
                continue
            steps = sorted(set.intersection(*(set(s.tolist()) for _, s, _ in series)))
            if not steps:  # evaluations at different steps: put every run on the union of steps
                steps = sorted(set.union(*(set(s.tolist()) for _, s, _ in series)))
            values = np.array([np.interp(steps, s, v) for _, s, v in series])
            mean = values.mean(0)
            std = values.std(0, ddof=1) if len(values) > 1 else np.zeros_like(mean)
            ax.plot(steps, mean, label=f"{column} (n={len(values)})")
            ax.fill_between(steps, mean - std, mean + std, alpha=0.25)
        ax.set(title=f"{task}: mean ± 1 std over seeds", xlabel="environment steps", ylabel=", ".join(metrics))
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, f"curves_{task}.png"), dpi=100)
        plt.close(fig)
    summary["table"] = table
    return summary


def main(args: Args) -> int:
    out_dir = os.path.abspath(args.out_dir or os.path.join(REPO_ROOT, "benchmarks", "results",
                                                           f"table1-{args.total_timesteps or 'paper'}"))
    failed = 0
    if not args.summarize_only:
        if args.workers < 1:
            raise SystemExit("--workers must be at least 1.")
        runs = build_grid(args, out_dir)
        if not runs:
            raise SystemExit("The grid is empty: no selected script exists or takes the selected tasks.")
        write_manifest(runs, out_dir)
        if args.slurm:
            path = write_slurm(runs, out_dir, args)
            print(f"wrote {path} ({len(runs)} array tasks) and {os.path.join(out_dir, 'commands.txt')}; "
                  f"submit with: sbatch {path}")
            return 0
        failed = run_grid(runs, out_dir, args)
    print(summarize(out_dir)["table"])
    print(f"wrote {os.path.join(out_dir, 'table.md')}, results.csv, summary.json and curves_<task>.png")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(tyro.cli(Args)))
