"""Reproduce the paper's Table 1 and Figures 2, 4, 5, 8-9 and 10-15, and test the learned temperature: a grid of
(script, task, seed) training runs, then the table and the figures. `--experiment` picks what (each writes its PNGs
and a CSV of every plotted number; the modules of benchmarks/reproduction/ say what each file holds):
- `table1` (the default): every script on every task of Table 1; the table and Figure 4's curves (table1.py);
- `fig2`: the sum of D_var with the temperature static at 0, at 10, and as the preset (Figure 2; fig2_fig5.py);
- `fig5`: the N, temperature and epsilon ablations of §4.4 on Walker2d (Figures 10-15: other --tasks; fig2_fig5.py);
- `fig8`: PCA of the Gaussian means for the same three temperatures on Hopper (Figure 9: HalfCheetah; fig8.py);
- `auto-temperature`: the preset against `--temperature auto --epsilon auto` (the paper's future work, §5;
  auto_temperature.py).
Every curve is the mean over seeds with the paper's band (Figure 4; stats.py). The grid and its run folders:
grid.py; interrupted runs resume, in the local pool (`--workers`, pool.py) or on SLURM (`--slurm`, slurm.py);
`--partial` summarizes unfinished runs too, cut at a common step (logs.py). Run one harness at a time on an out-dir.

    python benchmarks/reproduce.py --total-timesteps 200000 --workers 2
    python benchmarks/reproduce.py --scripts gamid_continuous_action td3_baseline \\
        --tasks HalfCheetah-v4 Hopper-v4 --seeds 1 2 --total-timesteps 20000 --workers 2
    python benchmarks/reproduce.py --slurm   # the paper's budgets; then: sbatch <out-dir>/grid.sbatch
    python benchmarks/reproduce.py --experiment fig5 --seeds 1 2 3 --total-timesteps 100000 --workers 2
    python benchmarks/reproduce.py --experiment auto-temperature --seeds 1 2 3 --total-timesteps 50000 --workers 2
    python benchmarks/reproduce.py --experiment auto-temperature --summarize-only --partial \\
        --out-dir benchmarks/results/gamid-50000
"""

import math
import os
import sys

import tyro

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
if BENCHMARKS not in sys.path:  # loaded by its path (tests/): the reproduction package is next to it
    sys.path.insert(0, BENCHMARKS)

from reproduction import plots  # noqa: E402
from reproduction.auto_temperature import summarize_auto_temperature  # noqa: E402
from reproduction.fig2_fig5 import summarize_figure  # noqa: E402
from reproduction.fig8 import summarize_fig8  # noqa: E402
from reproduction.grid import (  # noqa: E402
    ABLATIONS,
    COMMAND,
    DONE,
    FAILED,
    GRIDS,
    INTERRUPTED_EXIT_CODE,
    PAPER_BUDGET,
    REPO_ROOT,
    VARIANTS,
    Args,
    build_grid,
    command_text,
    eval_freq,
    is_finished,
    read_manifest,
    record_exit,
    selected_tasks,
    write_manifest,
)
from reproduction.logs import read_curve  # noqa: E402
from reproduction.pool import run_grid  # noqa: E402
from reproduction.slurm import slurm_seconds, write_slurm  # noqa: E402
from reproduction.stats import binomial_quantile, tolerance_interval, welch_t_test  # noqa: E402
from reproduction.table1 import summarize  # noqa: E402

# What tests/ and tests/test_slurm.py reach through this script.
__all__ = [
    "ABLATIONS",
    "COMMAND",
    "DONE",
    "FAILED",
    "PAPER_BUDGET",
    "VARIANTS",
    "binomial_quantile",
    "command_text",
    "eval_freq",
    "is_finished",
    "plots",
    "read_curve",
    "read_manifest",
    "record_exit",
    "tolerance_interval",
    "welch_t_test",
]


def main(args: Args) -> int:
    budget = args.total_timesteps or "paper"
    default_dir = os.path.join(REPO_ROOT, "benchmarks", "results", f"{GRIDS[args.experiment]}-{budget}")
    out_dir = os.path.abspath(args.out_dir or default_dir)
    failed, interrupted = 0, 0
    if not args.summarize_only:
        problems = [
            (args.workers < 1, f"--workers must be at least 1, got {args.workers}."),
            (not args.seeds or not selected_tasks(args), "--seeds and --tasks each need at least one value."),
            (
                args.total_timesteps is not None and args.total_timesteps < 1,
                f"--total-timesteps must be positive, got {args.total_timesteps}.",
            ),
            (args.eval_freq is not None and args.eval_freq < 1, f"--eval-freq must be positive, got {args.eval_freq}."),
            (args.slurm_signal_seconds < 0, "--slurm-signal-seconds cannot be negative."),
            (
                args.slurm and (slurm_seconds(args.slurm_time) or math.inf) <= args.slurm_signal_seconds + 60,
                f"--slurm-time {args.slurm_time} leaves no time to train: SLURM sends the warning "
                f"--slurm-signal-seconds ({args.slurm_signal_seconds}) before the limit, or up to 60 s earlier still, "
                "and every attempt would stop and requeue at once; make the time longer or the warning shorter.",
            ),
            (not args.ablations, "--ablations needs at least one of n_actors, temperature, epsilon."),
        ]
        for wrong, sentence in problems:
            if wrong:
                raise SystemExit(sentence)
        runs, missing = build_grid(args, out_dir)
        write_manifest(runs, missing, selected_tasks(args), out_dir, args.experiment)
        if not runs:
            raise SystemExit("The grid is empty: no selected script exists or takes the selected tasks.")
        if args.slurm:
            path = write_slurm(runs, out_dir, args)
            commands = os.path.join(out_dir, "commands.txt")
            print(f"wrote {path} ({len(runs)} array tasks) and {commands}; submit with: sbatch {path}")
            return 0
        try:
            failed, interrupted = run_grid(runs, out_dir, args)
        except KeyboardInterrupt:  # a second Ctrl-C
            print("stopped at once: running the same command again resumes each run from its last checkpoint.")
            return 130
        if interrupted:
            print(f"interrupted: run the same command again to resume ({interrupted} run(s) left).")
            if not args.partial:  # with --partial, summarize what the runs logged so far
                return INTERRUPTED_EXIT_CODE
    if args.experiment == "table1":
        print(summarize(out_dir, args.partial)["table"])
        print(f"wrote {os.path.join(out_dir, 'table.md')}, results.csv, summary.json and curves_<task>.png/.csv")
    elif args.experiment in ("fig2", "fig5"):
        for path in summarize_figure(out_dir, args.experiment, args.partial):
            print(f"wrote {path}")
    elif args.experiment == "fig8":
        for path in summarize_fig8(out_dir, args.partial):
            print(f"wrote {path}")
    else:
        for path in summarize_auto_temperature(out_dir, args.partial):
            print(f"wrote {path}")
    if interrupted:
        return INTERRUPTED_EXIT_CODE
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(tyro.cli(Args)))
