"""fig2 and fig5: curves of one logged scalar per variant, the mean over seeds with the band of Figure 4.
- `fig2.png`/`.csv` (paper Figure 2, §4.2): the sum of D_var over training (charts/sum_d_var) with the temperature
  static at 0, at 10, and as the task's preset, on Hopper, HalfCheetah and Walker2d, smoothed by a moving average
  over 10% of the budget (the paper: 100k steps at 1M);
- `fig5_<task>.png`/`.csv` (paper Figure 5, §4.4; Figures 10-15 for other tasks): the greedy return of the
  ablations, all else at the task's preset, one panel each: N = 1..5; the temperature static at 0.01, 0.1, 0.5
  and decayed 0.1 -> 0.01 over 30% of the budget; epsilon static at 0, 1/(10N), 1/(2N), 1/N.
"""

import os

from . import plots
from .grid import ABLATIONS, read_manifest
from .logs import experiment_runs, read_scalar, run_budget, select_runs
from .stats import moving_average, smoothing_window

PANEL_TITLES = {"n_actors": "number of Gaussians N", "temperature": "temperature", "epsilon": "epsilon (Line 3)"}


def summarize_figure(out_dir: str, experiment: str, partial: bool = False) -> list[str]:
    """fig2: fig2.png and fig2.csv, the sum of D_var over training, one panel per task. fig5: fig5_<task>.png and
    .csv, three panels (N, temperature, epsilon) of learning curves. Partial: see select_runs. Returns the paths
    written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, tasks = experiment_runs(read_manifest(out_dir), out_dir, experiment)
    tag = "charts/sum_d_var" if experiment == "fig2" else "eval/episodic_return"
    selection = select_runs(runs, out_dir, partial)
    series, left_out, windows = {}, [], set()  # series: (task, panel, curve) -> [(run id, steps, values)]
    for run in runs:
        if run.run_id not in selection.run_ids:
            left_out.append(run.run_id)
            continue
        try:
            steps, values = read_scalar(run.dir(out_dir), tag, selection.until(run))
        except (FileNotFoundError, KeyError) as error:
            print(f"note: {run.run_id} is left out: {error}")
            left_out.append(run.run_id)
            continue
        if experiment == "fig2":
            windows.add(smoothing_window(run_budget(run)))
            values = moving_average(steps, values, smoothing_window(run_budget(run)))
        series.setdefault((run.task, run.panel, run.column), []).append((run.run_id, steps, values))
    budgets = "/".join(f"{b:,}" for b in sorted({run_budget(run) for run in runs}))
    note = f"Runs of {budgets} steps (the paper: 1M, 2M for Humanoid). "
    note += f"{len(left_out)} run(s) left out (unfinished or failed): {', '.join(left_out)}. " if left_out else ""
    figures = []  # (file name, tasks in it, panels, caption)
    if experiment == "fig2":
        window = "/".join(f"{w:,}" for w in sorted(windows))
        caption = (
            f"Sum of D_var over the N Gaussians (charts/sum_d_var), mean over seeds; moving average over the last "
            f"{window} steps (the paper's 100,000-step window at 1M steps, scaled with the budget). {plots.BAND_TEXT}."
        )
        figures.append(("fig2", tasks, [""], caption))
    else:
        caption = (
            f"Greedy evaluation return, mean over seeds; the rest of each run at the task's preset. {plots.BAND_TEXT}."
        )
        panels = [panel for panel in ABLATIONS if any(run.panel == panel for run in runs)]
        figures += [(f"fig5_{task}", [task], panels, caption) for task in tasks]
    written = []
    for name, figure_tasks, panels, caption in figures:
        cells = [(task, panel) for task in figure_tasks for panel in panels]
        fig, axes = plt.subplots(1, len(cells), figsize=(5 * len(cells), 4), squeeze=False)
        rows = []
        for ax, (task, panel) in zip(axes[0], cells):
            for (curve_task, curve_panel, curve), runs in series.items():
                if (curve_task, curve_panel) != (task, panel):
                    continue
                steps, values = plots.align(runs)
                plots.plot_band(ax, steps, values, label=curve)
                partial_columns = selection.columns(task, [run_id for run_id, _, _ in runs])
                rows += [row | partial_columns for row in plots.band_rows(task, panel, curve, steps, values)]
            ax.set(title=f"{task} {PANEL_TITLES.get(panel, '')}".strip(), xlabel="environment steps", ylabel=tag)
            ax.legend(fontsize=7)
        cut_note = selection.notes(figure_tasks)
        plots.caption_figure(fig, note + (cut_note + " " if cut_note else "") + caption, fontsize=7, least_room=0.1)
        png, table = (os.path.join(out_dir, f"{name}.{extension}") for extension in ("png", "csv"))
        fig.savefig(png, dpi=100)
        plots.write_rows(table, rows)
        written += [png, table]
        plt.close(fig)
    return written
