"""Walker2d: why Gamid trails TD3 early, and whether it catches up (docs/results.md, "Walker2d").

Runs TD3 and Gamid variants on Walker2d-v4 (one process per worker, one thread each, resumable from checkpoints),
then summarizes: final greedy return and the mean of the last 10 evaluations per variant, Welch's t-test against
TD3 (scipy.stats), the learning curves and the Gamid diagnostics over training.

    python benchmarks/walker2d.py --variants td3 preset fig5 mixture auto penalty --seeds 1 2 3 4 5 --workers 2
    python benchmarks/walker2d.py --variants td3 penalty --seeds 1 2 3 --total-timesteps 200000 --workers 2
    python benchmarks/walker2d.py --summarize-only --total-timesteps 50000
"""

import csv
import glob
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import tyro

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GAMID = "gamid_continuous_action.py"
# name -> (label, script, flags). Table 5's Walker2d column is the preset; Figure 5's settings are the paper's
# ablation winners (temperature 0.1 -> 0.01 over 30%, epsilon 1/(10N)).
VARIANTS = {
    "td3": ("TD3", "td3_baseline.py", ()),
    "preset": ("Gamid, preset (Table 5)", GAMID, ()),
    "fig5": (
        "Gamid, Figure 5 settings",
        GAMID,
        ("--temperature-final", "0.01", "--temperature-fraction", "0.3", "--epsilon", "auto"),
    ),
    "mixture": (
        "N = 3, temperature 0, epsilon 0",
        GAMID,
        ("--temperature-initial", "0", "--temperature-final", "0", "--epsilon-initial", "0", "--epsilon-final", "0"),
    ),
    "auto": ("Gamid, temperature auto, epsilon auto", GAMID, ("--temperature", "auto", "--epsilon", "auto")),
    "penalty": ("Gamid, preset + pre-tanh penalty 0.01", GAMID, ("--preactivation-penalty", "0.01")),
}
DIAGNOSTICS = (
    "diagnostics/saturated_fraction",
    "diagnostics/q_gap",
    "diagnostics/diversity_to_q_grad",
    "eval/switch_rate",
)


@dataclass
class Args:
    variants: tuple[str, ...] = tuple(VARIANTS)
    """which variants to run (td3 preset fig5 mixture auto penalty)"""
    seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    """seeds of every variant"""
    total_timesteps: int = 50_000
    """budget of every run"""
    eval_freq: int = 1_000
    """greedy evaluation (10 episodes) every this many steps"""
    workers: int = 2
    """runs at once, one thread each"""
    out_dir: Optional[str] = None
    """where runs and summaries go (default: benchmarks/results/walker2d-<budget>)"""
    repo_root: str = REPO_ROOT
    """where the training scripts are"""
    summarize_only: bool = False
    """run nothing; summarize the runs in --out-dir (unfinished ones cut at their last evaluation, marked)"""


def run_dir(out_dir: str, variant: str, seed: int) -> Optional[str]:
    found = sorted(glob.glob(os.path.join(out_dir, "runs", f"{variant}__{seed}", "*")))
    return found[-1] if found else None


def command(args: Args, out_dir: str, variant: str, seed: int) -> list[str]:
    """A new run, or --resume of an interrupted one (its checkpoint every 10k steps)."""
    existing = run_dir(out_dir, variant, seed)
    _, script, flags = VARIANTS[variant]
    script = os.path.join(args.repo_root, script)
    if existing and os.path.exists(os.path.join(existing, "checkpoint.pt")):
        return [sys.executable, script, "--resume", existing]
    runs = os.path.join(out_dir, "runs", f"{variant}__{seed}")
    return [sys.executable, script, "--env-id", "Walker2d-v4", "--seed", str(seed), "--total-timesteps",
            str(args.total_timesteps), "--eval-freq", str(args.eval_freq), "--checkpoint-freq", "10000",
            "--runs-dir", runs, *flags]  # fmt: skip


def finished(out_dir: str, variant: str, seed: int, total: int) -> bool:
    existing = run_dir(out_dir, variant, seed)
    return bool(existing) and os.path.exists(os.path.join(existing, "done"))


def run_all(args: Args, out_dir: str) -> None:
    queue = [(v, s) for v in args.variants for s in args.seeds if not finished(out_dir, v, s, args.total_timesteps)]
    running = []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    while queue or running:
        while queue and len(running) < args.workers:
            variant, seed = queue.pop(0)
            os.makedirs(os.path.join(out_dir, "logs"), exist_ok=True)
            log = open(os.path.join(out_dir, "logs", f"{variant}__{seed}.log"), "a")
            process = subprocess.Popen(
                command(args, out_dir, variant, seed), stdout=log, stderr=subprocess.STDOUT, env=env
            )
            running.append((process, variant, seed, time.time()))
            print(f"started {variant} seed {seed}", flush=True)
        time.sleep(5)
        for item in list(running):
            process, variant, seed, start = item
            if process.poll() is not None:
                running.remove(item)
                if process.returncode == 0:
                    open(os.path.join(run_dir(out_dir, variant, seed), "done"), "w").write(
                        f"{time.time() - start:.0f}\n"
                    )
                print(
                    f"{variant} seed {seed} exited {process.returncode} after {time.time() - start:.0f} s", flush=True
                )


def scalars(path: str) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(path, size_guidance={"scalars": 0})
    events.Reload()
    return {tag: np.array([(e.step, e.value) for e in events.Scalars(tag)]) for tag in events.Tags()["scalars"]}


def reused_finals() -> dict:
    """Final returns of the earlier 50k-step Walker2d runs published in docs/results/ (same code path, eval every 1,000
    steps, reproducible bit for bit): (variant, seed) -> return. Used for seeds without a run directory here."""
    docs = os.path.join(REPO_ROOT, "docs", "results")
    finals = {}
    with open(os.path.join(docs, "table1-50k", "results.csv")) as f:
        for row in csv.DictReader(f):
            if row["task"] == "Walker2d-v4" and row["method"] in ("td3", "gamid"):
                finals[("td3" if row["method"] == "td3" else "preset", int(row["seed"]))] = float(row["final_value"])
    with open(os.path.join(docs, "gamid-50k", "auto_temperature.csv")) as f:
        for row in csv.DictReader(f):
            if row["task"] == "Walker2d-v4" and row["method"] == "auto":
                finals[("auto", int(row["seed"]))] = float(row["final_return"])
    return finals


def summarize(args: Args, out_dir: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import ttest_ind

    rows, per_variant = [], {}
    reused = reused_finals() if args.total_timesteps == 50_000 else {}
    for variant in VARIANTS:
        for seed in args.seeds:
            path = run_dir(out_dir, variant, seed)
            if not path:
                if (variant, seed) in reused:  # published earlier: the final return only, no curve here
                    final = reused[(variant, seed)]
                    rows.append(dict(variant=variant, seed=seed, finished=True, last_step=50_000, final=final,
                                     last10=float("nan"), source="docs/results (earlier run)"))  # fmt: skip
                continue
            logged = scalars(path)
            curve = logged.get("eval/episodic_return")
            if curve is None:
                continue
            done = finished(out_dir, variant, seed, args.total_timesteps)
            rows.append(dict(variant=variant, seed=seed, finished=done, last_step=int(curve[-1, 0]),
                             final=curve[-1, 1], last10=curve[-10:, 1].mean(), source="this run"))  # fmt: skip
            per_variant.setdefault(variant, []).append((seed, done, logged))
    with open(os.path.join(out_dir, "runs.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "| variant | seeds | final return | p vs TD3 | mean of last 10 evaluations | p vs TD3 |",
        "|---|---|---|---|---|---|",
    ]
    base = {key: [r[key] for r in rows if r["variant"] == "td3" and r["finished"]] for key in ("final", "last10")}
    for variant in per_variant:
        done = [r for r in rows if r["variant"] == variant and r["finished"]]
        if not done:
            continue
        cells = []
        for key in ("final", "last10"):
            values = [r[key] for r in done if np.isfinite(r[key])]
            reference = [value for value in base[key] if np.isfinite(value)]
            enough = variant != "td3" and len(values) > 1 and len(reference) > 1
            p = ttest_ind(values, reference, equal_var=False).pvalue if enough else None
            spread = np.std(values, ddof=1) if len(values) > 1 else 0
            cells += [f"{np.mean(values):.0f} ± {spread:.0f} (n = {len(values)})", "–" if p is None else f"{p:.3f}"]
        lines.append(
            f"| {VARIANTS[variant][0]} | {' '.join(str(r['seed']) for r in done)} | " + " | ".join(cells) + " |"
        )
    table = "\n".join(lines)
    open(os.path.join(out_dir, "table.md"), "w").write(table + "\n")
    print(table)

    fig, ax = plt.subplots(figsize=(8, 5))
    curve_rows = []
    for variant, runs in per_variant.items():
        curves = [logged["eval/episodic_return"] for _, done, logged in runs if done]
        if not curves:
            continue
        n = min(len(c) for c in curves)
        steps, values = curves[0][:n, 0], np.stack([c[:n, 1] for c in curves])
        mean = values.mean(0)
        ax.plot(steps, mean, label=f"{VARIANTS[variant][0]} ({len(curves)} seeds)")
        ax.fill_between(steps, values.min(0), values.max(0), alpha=0.15)
        curve_rows += [dict(variant=variant, step=int(s), mean=m, min=lo, max=hi, n_runs=len(curves))
                       for s, m, lo, hi in zip(steps, mean, values.min(0), values.max(0))]  # fmt: skip
    ax.set(
        xlabel="environment steps",
        ylabel="greedy evaluation return (10 episodes)",
        title="Walker2d-v4; band: min-max over seeds",
    )
    ax.legend(fontsize=8)
    fig.savefig(os.path.join(out_dir, "curves.png"), dpi=100, bbox_inches="tight")
    with open(os.path.join(out_dir, "curves.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(curve_rows[0]))
        writer.writeheader()
        writer.writerows(curve_rows)

    fig, axes = plt.subplots(1, len(DIAGNOSTICS), figsize=(18, 4))
    diagnostic_rows = []
    for ax, tag in zip(axes, DIAGNOSTICS):
        for variant, runs in per_variant.items():
            series = [logged[tag] for _, done, logged in runs if done and tag in logged]
            if series:
                n = min(len(s) for s in series)
                steps, mean = series[0][:n, 0], np.mean([s[:n, 1] for s in series], 0)
                ax.plot(steps, mean, label=f"{VARIANTS[variant][0]} ({len(series)} seeds)")
                diagnostic_rows += [dict(tag=tag, variant=variant, step=int(step), mean=value, n_runs=len(series))
                                    for step, value in zip(steps, mean)]  # fmt: skip
        ax.set(title=tag, xlabel="environment steps")
    axes[0].legend(fontsize=7)
    fig.savefig(os.path.join(out_dir, "diagnostics.png"), dpi=100, bbox_inches="tight")
    with open(os.path.join(out_dir, "diagnostics.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(diagnostic_rows[0]))
        writer.writeheader()
        writer.writerows(diagnostic_rows)


def main(args: Args) -> None:
    out_dir = args.out_dir or os.path.join(
        REPO_ROOT, "benchmarks", "results", f"walker2d-{args.total_timesteps // 1000}k"
    )
    if not args.summarize_only:
        run_all(args, out_dir)
    summarize(args, out_dir)


if __name__ == "__main__":
    main(tyro.cli(Args))
