"""auto-temperature (the paper's future work, §5): Gamid with the task's preset against Gamid with
`--temperature auto --epsilon auto`, on Hopper, HalfCheetah and Walker2d.
- `auto_temperature.md`: per task, the final greedy return of both (mean ± sample std over seeds, Welch's
  two-sided p), and the auto runs' final temperature and mean D_var beside the target D*;
  `auto_temperature.csv`: every run's final values;
- `auto_temperature_<task>.png`/`.csv`: the return curves, the learned temperature (the preset's schedule dashed),
  and the mean D_var (moving average over 10% of the budget) with D*.
"""

import math
import os

from . import plots
from .grid import SHARED_VARIANTS, read_manifest
from .logs import experiment_runs, logged_scalars, run_budget, select_runs, steps_and_values
from .stats import mean_and_std, moving_average, smoothing_window, trailing_mean, welch_t_test


def summarize_auto_temperature(out_dir: str, partial: bool = False) -> list[str]:
    """auto_temperature.md and .csv: per task, the final greedy return of the preset and of --temperature auto
    --epsilon auto (Welch's test), the auto runs' final temperature and mean D_var beside the target D*;
    auto_temperature_<task>.png and .csv: return curves, the temperature, and the mean D_var over training.
    Partial: see select_runs. Returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, tasks = experiment_runs(read_manifest(out_dir), out_dir, "auto-temperature")
    tags = {"return": "eval/episodic_return", "temperature": "charts/temperature", "mean_d_var": "charts/mean_d_var"}
    selection = select_runs(runs, out_dir, partial)
    series, rows, left_out, windows = {}, [], [], set()  # series: (task, panel, method) -> [(run id, steps, values)]
    for run in runs:
        if run.run_id not in selection.run_ids:
            left_out.append(run.run_id)
            continue
        window = smoothing_window(run_budget(run))
        until = selection.until(run)
        try:
            events = logged_scalars(run.dir(out_dir))
            logged = {panel: steps_and_values(events, tag, until) for panel, tag in tags.items()}
        except (FileNotFoundError, KeyError) as error:
            print(f"note: {run.run_id} is left out: {error}")
            left_out.append(run.run_id)
            continue
        windows.add(window)
        target = math.nan
        if "charts/temperature_target" in events.Tags()["scalars"]:
            target = float(steps_and_values(events, "charts/temperature_target", until)[1][-1])
        steps, d_var = logged["mean_d_var"]
        logged["mean_d_var"] = (steps, moving_average(steps, d_var, window))
        final_d_var = trailing_mean(steps, d_var, window, end=steps[-1] if until is None else until)
        for panel, (steps, values) in logged.items():
            series.setdefault((run.task, panel, run.method), []).append((run.run_id, steps, values))
        row = {
            "task": run.task,
            "method": run.method,
            "seed": run.seed,
            "final_step": int(logged["return"][0][-1]),
            "final_return": float(logged["return"][1][-1]),
            "final_temperature": float(logged["temperature"][1][-1]),
            "final_mean_d_var": final_d_var,
            "temperature_target": target,
        }
        rows.append(row | selection.columns(run.task, [run.run_id]))
    rows.sort(key=lambda row: (tasks.index(row["task"]), row["method"], row["seed"]))
    plots.write_rows(os.path.join(out_dir, "auto_temperature.csv"), rows)

    budgets = "/".join(f"{b:,}" for b in sorted({run_budget(run) for run in runs}))
    window = "/".join(f"{w:,}" for w in sorted(windows)) or "–"
    last = "the" if partial else "the last"  # with --partial, the window before the cut
    lines = [
        *selection.heading(tasks),
        "| task | preset: return | auto: return | n (preset, auto) | p | auto: final temperature | "
        "auto: final mean D_var | D* | preset: final mean D_var |",
        "|---" * 9 + "|",
    ]
    for task in tasks:
        preset = [row for row in rows if (row["task"], row["method"]) == (task, "preset")]
        auto = [row for row in rows if (row["task"], row["method"]) == (task, "auto")]
        returns = {
            method: [row["final_return"] for row in group] for method, group in (("preset", preset), ("auto", auto))
        }
        _, _, p = welch_t_test(returns["preset"], returns["auto"])
        targets = sorted({row["temperature_target"] for row in auto})
        cells = [
            task,
            mean_and_std(returns["preset"], "{:,.0f}"),
            mean_and_std(returns["auto"], "{:,.0f}"),
            f"{len(preset)}, {len(auto)}",
            "–" if math.isnan(p) else f"{p:.3g}",
            mean_and_std([row["final_temperature"] for row in auto], "{:.3g}"),
            mean_and_std([row["final_mean_d_var"] for row in auto], "{:.3g}"),
            "/".join(f"{target:.3g}" for target in targets) or "–",
            mean_and_std([row["final_mean_d_var"] for row in preset], "{:.3g}"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Runs of {budgets} steps (the paper: 1M). preset: Gamid with the task's preset (Table 5); auto: the same N "
        "with --temperature auto --epsilon auto (the temperature learned to hold the mean D_var at D*, epsilon = "
        "1/(10N)). Return: the final greedy evaluation (eval/episodic_return), mean ± sample std (ddof = 1) over "
        "seeds; p: Welch's two-sided t-test of the two. Final temperature: the last logged; final mean D_var: the "
        f"mean of charts/mean_d_var over {last} {window} steps (10% of the budget){' before the cut' * partial}.",
    ]
    if left_out:
        lines.append(f"{len(left_out)} run(s) left out (unfinished, failed or without logs): {', '.join(left_out)}.")
    table = "\n".join(lines)
    written = [os.path.join(out_dir, "auto_temperature.md"), os.path.join(out_dir, "auto_temperature.csv")]
    with open(written[0], "w") as f:
        f.write(table + "\n")
    print(table)

    titles = {"return": "greedy evaluation return", "temperature": "temperature", "mean_d_var": "mean D_var"}
    for task in tasks:
        fig, axes = plt.subplots(1, 3, figsize=(15, 4))
        plotted = []
        for ax, panel in zip(axes, titles):
            for method, color in (("preset", "C0"), ("auto", "C1")):
                runs_here = series.get((task, panel, method))
                if not runs_here:
                    continue
                steps, values = plots.align(runs_here)
                label = SHARED_VARIANTS[method][0]
                partial_columns = selection.columns(task, [run_id for run_id, _, _ in runs_here])
                plotted += [row | partial_columns for row in plots.band_rows(task, panel, method, steps, values)]
                if panel == "temperature" and method == "preset":  # a schedule, the same for every seed
                    ax.plot(steps, values.mean(0), "--", color=color, label=f"{label}: its schedule")
                else:
                    plots.plot_band(ax, steps, values, label=label, color=color)
            if panel == "mean_d_var":
                targets = sorted({row["temperature_target"] for row in rows if row["task"] == task})
                for target in (target for target in targets if not math.isnan(target)):
                    ax.axhline(target, linestyle="--", color="black", label=f"D* = {target:.3g}")
            ax.set(title=f"{task}: {titles[panel]}", xlabel="environment steps", ylabel=tags[panel])
            ax.legend(fontsize=7)
        caption = (
            f"Runs of {budgets} steps (the paper: 1M); mean over seeds, {plots.BAND_TEXT}. Mean D_var: moving "
            f"average over the last {window} steps (10% of the budget)."
        )
        if task in selection.cuts:
            caption += " " + selection.notes([task])
        plots.caption_figure(fig, caption, fontsize=7, least_room=0.06)
        png, curves = (os.path.join(out_dir, f"auto_temperature_{task}.{extension}") for extension in ("png", "csv"))
        fig.savefig(png, dpi=100)
        plt.close(fig)
        plots.write_rows(curves, plotted)
        written += [png, curves]
    return written
