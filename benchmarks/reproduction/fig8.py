"""fig8 (paper Figure 8 on Hopper, Figure 9 with --tasks HalfCheetah-v4): the N Gaussian means on fixed probe states
(the run's first observations), recorded at every evaluation (`means.npz`, --record-means).
- `fig8_<task>.png`/`.csv`: rows temperature 0, 10 and the preset, columns four training steps evenly spaced over
  the evaluations (the last included), each panel the top two principal components of that step's N x P means
  (PCA per panel), coloured by Gaussian, for the first seed (the paper shows one run);
- the paper's claim, "higher spread for temperature 10", as a number: `fig8_spread_<task>.csv`, the mean over
  probe states of the mean pairwise distance between the N means (action scale) per variant, seed and
  evaluation, and `fig8_<task>.md`, its final value (mean ± std over seeds) with Welch's test of 10 against 0.
"""

import math
import os

import numpy as np

from . import plots
from .grid import EXPERIMENT_METHODS, SHARED_VARIANTS, read_manifest
from .logs import experiment_runs, read_means, run_budget, select_runs
from .stats import mean_and_std, welch_t_test

FIG8_COLUMNS = 4  # training steps per row of the PCA figure


def plotted_evaluations(n_recorded: int, columns: int = FIG8_COLUMNS) -> list[int]:
    """Indices of `columns` evaluations evenly spaced over the recorded ones, the last included: at 1/4, 2/4, 3/4
    and 4/4 of them (E = 50: the 12th, 25th, 37th and 50th)."""
    return sorted({max(0, round(n_recorded * k / columns) - 1) for k in range(1, columns + 1)})


def top_two_components(points: np.ndarray) -> np.ndarray:
    """(K, 2): the points (K, d) projected on their top two principal components (numpy SVD of the centred points).

    Each component's sign is fixed so that its largest loading is positive; with d = 1 the second is 0."""
    centred = points - points.mean(0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    components = components[:2]
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(1)])
    projected = centred @ (components * signs[:, None]).T
    return np.pad(projected, ((0, 0), (0, 2 - projected.shape[1])))


def mean_pairwise_distance(means: np.ndarray) -> float:
    """Spread of the N means (N, P, act_dim): the Euclidean distance between two of them in the action scale,
    averaged over the N (N - 1) / 2 pairs and then over the P probe states (NaN for N = 1)."""
    n = len(means)
    if n < 2:
        return math.nan
    distances = np.linalg.norm(means[:, None] - means[None], axis=-1)  # (N, N, P)
    first, second = np.triu_indices(n, k=1)
    return float(distances[first, second].mean())


def summarize_fig8(out_dir: str, partial: bool = False) -> list[str]:
    """fig8_<task>.png and .csv: the top two principal components of the N means on the probe states at four
    training steps (columns) for temperatures 0, 10 and the preset (rows), for the first seed (the paper shows one
    run); fig8_spread_<task>.csv and .md: the spread of the means (mean_pairwise_distance) over every recorded
    step of every seed, and at the final step. Partial: see select_runs. Returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, tasks = experiment_runs(read_manifest(out_dir), out_dir, "fig8")
    selection = select_runs(runs, out_dir, partial)
    recorded, left_out = {}, []  # (task, method, seed) -> (steps, means)
    run_ids = {(run.task, run.method, run.seed): run.run_id for run in runs}
    for run in runs:
        if run.run_id not in selection.run_ids:
            left_out.append(run.run_id)
            continue
        try:
            recorded[(run.task, run.method, run.seed)] = read_means(run, out_dir, selection.until(run))
        except FileNotFoundError as error:
            print(f"note: {run.run_id} is left out: {error}")
            left_out.append(run.run_id)
    methods = EXPERIMENT_METHODS["fig8"]
    written = []
    for task in tasks:
        task_runs = [run for run in runs if run.task == task]
        seeds = sorted({seed for (t, _, seed) in recorded if t == task})
        budgets = "/".join(f"{b:,}" for b in sorted({run_budget(run) for run in task_runs}))
        spread_rows, points = [], []
        for method in methods:
            for seed in seeds:
                if (task, method, seed) not in recorded:
                    continue
                steps, means = recorded[(task, method, seed)]
                partial_columns = selection.columns(task, [run_ids[(task, method, seed)]])
                for step, step_means in zip(steps, means):
                    spread = mean_pairwise_distance(step_means)
                    row = {"variant": method, "seed": seed, "step": int(step), "spread": spread}
                    spread_rows.append(row | partial_columns)

        shape = (len(methods), FIG8_COLUMNS)  # common axes: the spreads of the panels compare at a glance
        fig, axes = plt.subplots(*shape, figsize=(3.2 * FIG8_COLUMNS, 3 * len(methods)), sharex=True, sharey=True)
        axes = np.asarray(axes).reshape(shape)
        seed = seeds[0] if seeds else None
        for row, method in enumerate(methods):
            label = SHARED_VARIANTS[method][0]
            if (task, method, seed) not in recorded:
                axes[row, 0].set_title(f"{label}: no {'' if partial else 'finished '}run", fontsize=8)
                continue
            steps, means = recorded[(task, method, seed)]
            for column, evaluation in enumerate(plotted_evaluations(len(steps))):
                n_actors, n_probes, act_dim = means[evaluation].shape
                projected = top_two_components(means[evaluation].reshape(-1, act_dim)).reshape(n_actors, n_probes, 2)
                step = int(steps[evaluation])
                ax = axes[row, column]
                for gaussian in range(n_actors):
                    ax.scatter(*projected[gaussian].T, s=6, label=f"Gaussian {gaussian}")
                points += [
                    dict(variant=method, seed=seed, step=step, gaussian=gaussian, probe=probe, pc1=pc1, pc2=pc2)
                    | selection.columns(task, [run_ids[(task, method, seed)]])
                    for gaussian in range(n_actors)
                    for probe, (pc1, pc2) in enumerate(projected[gaussian].tolist())
                ]
                ax.set_title(f"{label}, step {step:,}", fontsize=8)
                ax.set(xlabel="PC 1", ylabel="PC 2")
            axes[row, 0].legend(fontsize=6, markerscale=2)
        caption = (
            f"{task}: the top two principal components of the N Gaussian means (action scale) on {task}'s fixed "
            "probe states (the run's first observations, uniform random actions); PCA fitted per panel, common axes "
            f"in action units. Seed {seed} of runs of {budgets} steps (the paper: one run of 1M steps, Figures 8-9)."
        )
        if task in selection.cuts:
            caption += " " + selection.notes([task])
        if left_out:
            caption += f" {len(left_out)} run(s) left out (unfinished, failed or without means.npz)."
        plots.caption_figure(fig, caption, fontsize=7, least_room=0.05)
        png = os.path.join(out_dir, f"fig8_{task}.png")
        fig.savefig(png, dpi=100)
        plt.close(fig)
        plots.write_rows(os.path.join(out_dir, f"fig8_{task}.csv"), points)
        plots.write_rows(os.path.join(out_dir, f"fig8_spread_{task}.csv"), spread_rows)

        lines = [
            f"Spread of the Gaussian means on {task} at the final step (runs of {budgets} steps): the Euclidean "
            "distance between two of the N means in the [-1, 1] action scale, averaged over pairs and probe states; "
            "mean ± sample std (ddof = 1) over seeds.",
            "",
            *selection.heading([task]),
            "| variant | n seeds | final step | spread |",
            "|---|---|---|---|",
        ]
        finals = {}
        for method in methods:
            # Each seed's last recorded step (the rows of a seed are in the order of its steps).
            last = {row["seed"]: row for row in spread_rows if row["variant"] == method}
            finals[method] = [row["spread"] for row in last.values()]
            final_steps = "/".join(f"{s:,}" for s in sorted({row["step"] for row in last.values()})) or "–"
            text = mean_and_std(finals[method], "{:.3f}")
            lines.append(f"| {SHARED_VARIANTS[method][0]} | {len(last)} | {final_steps} | {text} |")
        _, _, p = welch_t_test(finals["temperature-10"], finals["temperature-0"])
        p_text = "–" if math.isnan(p) else f"{p:.3g}"
        lines += [
            "",
            f"Temperature 10 against temperature 0 (the paper: higher spread at 10): Welch two-sided p = {p_text}.",
        ]
        md = os.path.join(out_dir, f"fig8_{task}.md")
        with open(md, "w") as f:
            f.write("\n".join(lines) + "\n")
        print("\n".join(lines))
        written += [
            png,
            os.path.join(out_dir, f"fig8_{task}.csv"),
            os.path.join(out_dir, f"fig8_spread_{task}.csv"),
            md,
        ]
    return written
