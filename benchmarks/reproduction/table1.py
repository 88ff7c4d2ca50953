"""table1: Table 1 and Figure 4's learning curves, from every finished run's greedy evaluations
(`eval/success_rate` where logged, i.e. Fetch, else `eval/episodic_return`). Writes to --out-dir:
- `table.md`: Table 1 laid out as in the paper (columns TD3, SAC, SACM, PMOE, PPO, Gamid). Each cell holds our mean
  ± sample std (ddof = 1) over seeds of the final evaluation, beside the paper's value; our best mean of each row
  in bold. A cell without our number says why: `n/a` (the paper combined neither PMOE nor PPO with HER),
  `missing` (the script is not in this checkout), `failed`, `unfinished`, or `not run`. Last column: the p-value
  of Welch's two-sided t-test of Gamid against TD3 (paper §4.3);
- `results.csv`: the final value of every run; `summary.json`: the numbers behind the table;
- `curves_<task>.png` and `.csv`: every method's mean over seeds with the band of Figure 4.
"""

import csv
import json
import math
import os
from dataclasses import asdict

import numpy as np

from . import plots
from .grid import FETCH_SCRIPTS, FETCH_TASKS, MUJOCO_TASKS, VARIANTS, Run, read_manifest
from .logs import read_curve, select_runs
from .stats import welch_t_test

COLUMNS = ("TD3", "SAC", "SACM", "PMOE", "PPO", "Gamid")  # Table 1's order
NO_FETCH_COLUMNS = ("PMOE", "PPO")  # the paper: no prior work combined PMOE or PPO with HER

# Paper Table 1: (mean, 1 std) over five runs after 2M steps (Humanoid) or 1M (the others), columns in the
# paper's order. The paper ran the MuJoCo tasks as -v3 and the Fetch tasks as -v1 (rows Push, Slide and
# PickAndPlace); we run -v4, the same tasks on the maintained mujoco bindings. None: "—" in the paper.
# fmt: off
PAPER_TABLE1 = {  #         TD3            SAC            SACM         PMOE           PPO           Gamid
    "Swimmer-v4":           ((263, 139),   (318, 43),     (336, 1.4),  (50, 3.82),    (318, 22.1),  (344, 4.1)),
    "HalfCheetah-v4":       ((9578, 648),  (10427, 206),  (9599, 357), (7934, 1072),  (5251, 907),  (11063, 300)),
    "Hopper-v4":            ((3392, 125),  (3027, 664),   (2848, 677), (2900, 461),   (918, 156),   (3301, 209)),
    "Ant-v4":               ((4264, 1671), (3613, 1365),  (4159, 512), (1874, 491),   (2204, 781),  (4998, 828)),
    "Walker2d-v4":          ((4153, 429),  (4237, 429),   (4187, 245), (4046, 530),   (3023, 1543), (4835, 187)),
    "Humanoid-v4":          ((5727, 411),  (5949, 560),   (5498, 770), (5039, 394),   (812, 136),   (6141, 629)),
    "FetchPush-v4":         ((0.34, 0.43), (0.99, 0.02),  (0.99, 0.02), None,         None,         (0.95, 0.05)),
    "FetchSlide-v4":        ((0.13, 0.18), (0.76, 0.26),  (0.75, 0.27), None,         None,         (0.45, 0.31)),
    "FetchPickAndPlace-v4": ((0.03, 0.04), (0.99, 0.01),  (0.99, 0.01), None,         None,         (0.66, 0.24)),
}
# fmt: on


def fmt(x: float, metric: str) -> str:
    """Numbers as in Table 1: success rates with two decimals; returns whole, with a decimal below 10 (344 ± 4.1)."""
    if math.isnan(x):
        return "–"
    if metric == "eval/success_rate":
        return f"{x:.2f}"
    return f"{x:,.0f}" if abs(x) >= 10 else f"{x:.1f}"


def paper_cell(task: str, column: str) -> str:
    """The paper's Table 1 entry as printed there ("9,578 ± 648", "344 ± 4.1"), or "—" where it has none."""
    value = PAPER_TABLE1.get(task, (None,) * len(COLUMNS))[COLUMNS.index(column)]
    return "—" if value is None else f"{value[0]:,g} ± {value[1]:,g}"


def column_scripts(column: str, task: str) -> list[str]:
    """The scripts that fill a column on a task."""
    fetch = task.startswith("Fetch")
    return [
        script
        for script, variants in VARIANTS.items()
        if (script in FETCH_SCRIPTS) == fetch and any(variant[1] == column for variant in variants)
    ]


def cell_without_values(task: str, column: str, runs: list[Run], statuses: dict, missing: list[str]) -> str:
    """Why a cell has no number of ours: n/a, missing, failed, unfinished or not run."""
    if task.startswith("Fetch") and column in NO_FETCH_COLUMNS:
        return "n/a"
    if runs:
        failed = [run for run in runs if statuses[run.run_id] == "failed"]
        if failed:
            return f"failed ({len(failed)} of {len(runs)} runs; see runs/{failed[0].run_id}/train.log)"
        return f"unfinished (0 of {len(runs)} runs)"
    absent = [script + ".py" for script in column_scripts(column, task) if script in missing]
    return f"missing: {', '.join(absent)} not found" if absent else "not run"


def summarize(out_dir: str, partial: bool = False) -> dict:
    """Write table.md, results.csv, summary.json and curves_<task>.png for the finished runs in out_dir (with
    partial, for the runs that logged an evaluation, cut at a common step per task)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    manifest = read_manifest(out_dir)
    runs, missing = manifest["runs"], manifest["missing_scripts"]
    selection = select_runs(runs, out_dir, partial)
    curves, rows, statuses, left_out = {}, [], dict(selection.statuses), []
    for run in runs:
        if run.run_id not in selection.run_ids:
            left_out.append(run.run_id)
            continue
        try:
            tag, steps, values = read_curve(run.dir(out_dir), selection.until(run))
        except (FileNotFoundError, KeyError) as error:
            print(f"note: {run.run_id} is left out: {error}")
            statuses[run.run_id] = "failed"
            left_out.append(run.run_id)
            continue
        curves.setdefault((run.task, run.column), []).append((run.run_id, steps, values))
        row = {
            "run_id": run.run_id,
            "task": run.task,
            "method": run.method,
            "column": run.column,
            "script": run.script,
            "seed": run.seed,
            "metric": tag,
            "final_step": int(steps[-1]),
            "final_value": float(values[-1]),
        }
        rows.append(row | selection.columns(run.task, [run.run_id]))
    with open(os.path.join(out_dir, "results.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["run_id"])
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: (r["task"], r["column"], r["seed"])))

    tasks = [task for task in MUJOCO_TASKS + FETCH_TASKS if task in manifest["tasks"]]
    tasks += [task for task in manifest["tasks"] if task not in tasks]
    summary = {"tasks": {}, "left_out": left_out}
    if partial:
        summary["partial"] = {task: asdict(cut) for task, cut in selection.cuts.items()}
    lines = [
        *selection.heading(tasks),
        "| task | " + " | ".join(COLUMNS) + " | p (Gamid vs TD3) |",
        "|---" * (len(COLUMNS) + 2) + "|",
    ]
    for task in tasks:
        cells, finals, texts = {}, {}, {}
        for column in COLUMNS:
            column_runs = [run for run in runs if run.task == task and run.column == column]
            done = [row for row in rows if row["task"] == task and row["column"] == column]
            paper = paper_cell(task, column)
            if not done:
                texts[column] = cell_without_values(task, column, column_runs, statuses, missing)
                cells[column] = {"n": 0, "status": texts[column], "paper": paper}
                continue
            values = np.array([row["final_value"] for row in done])
            finals[column] = values
            std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
            cells[column] = {"n": len(values), "mean": float(values.mean()), "std": std, "values": values.tolist()}
            cells[column] |= {"expected_n": len(column_runs), "paper": paper, "metric": done[0]["metric"]}
        means = [cell["mean"] for cell in cells.values() if cell["n"]]
        for column, cell in cells.items():
            if not cell["n"]:
                continue
            text = f"{fmt(cell['mean'], cell['metric'])} ± {fmt(cell['std'], cell['metric'])}"
            text = f"**{text}**" if cell["mean"] == max(means) else text
            if cell["n"] < cell["expected_n"]:
                n_failed = sum(
                    statuses[run.run_id] == "failed" and run.run_id in left_out
                    for run in runs
                    if (run.task, run.column) == (task, column)
                )
                text += f" (n={cell['n']} of {cell['expected_n']}" + (f", {n_failed} failed)" if n_failed else ")")
            texts[column] = f"{text} (paper {cell['paper']})"
        for column in COLUMNS:  # cells without our value show the paper's, where it has one
            if not cells[column]["n"] and cells[column]["paper"] != "—":
                texts[column] += f" (paper {cells[column]['paper']})"
        t, df, p = (math.nan,) * 3
        if {"Gamid", "TD3"} <= set(finals):
            t, df, p = welch_t_test(finals["Gamid"], finals["TD3"])
        summary["tasks"][task] = {"cells": cells, "welch_t": t, "welch_df": df, "p_gamid_vs_td3": p}
        p_text = "–" if math.isnan(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")
        lines.append(f"| {task} | " + " | ".join(texts[column] for column in COLUMNS) + f" | {p_text} |")
    n_seeds = sorted({cell["n"] for task in summary["tasks"].values() for cell in task["cells"].values() if cell["n"]})
    metrics = sorted({row["metric"] for row in rows})
    lines += [
        "",
        f"Final greedy evaluation ({', '.join(metrics) or 'none yet'}), ours: mean ± sample std (ddof = 1) over "
        f"{'/'.join(map(str, n_seeds)) or 'no'} seeds, our best mean per task in bold; beside it the paper's "
        "Table 1 (MuJoCo -v3, Fetch -v1; 2M steps for Humanoid, 1M for the others). p: Welch's two-sided t-test "
        "of our Gamid against our TD3. Fetch: TD3 = gamid_her_fetch.py --n-actors 1 (TD3+HER), Gamid = "
        "gamid_her_fetch.py, SAC = sacm_her_fetch.py --n-components 1, SACM = sacm_her_fetch.py; n/a: the paper "
        "has no PMOE or PPO with HER.",
    ]
    if left_out:
        names = ", ".join(sorted(left_out))
        lines.append(f"{len(left_out)} run(s) left out (unfinished, failed or without evaluations): {names}.")
    table = "\n".join(lines)
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)

    for task in tasks:
        if not any((task, column) in curves for column in COLUMNS):
            continue
        fig, ax = plt.subplots(figsize=(7, 4.5))
        plotted = []
        for column in COLUMNS:
            series = curves.get((task, column))
            if not series:
                continue
            steps, values = plots.align(series)
            plots.plot_band(ax, steps, values, label=column)
            partial_columns = selection.columns(task, [run_id for run_id, _, _ in series])
            plotted += [row | partial_columns for row in plots.band_rows(task, "", column, steps, values)]
        cells = summary["tasks"][task]["cells"]
        without = [f"{column}: {cells[column]['status']}" for column in COLUMNS if (task, column) not in curves]
        caption = [selection.notes([task])] if task in selection.cuts else []
        if without:  # every method is in the figure, as a curve or as the reason it has none
            caption.append("no curve: " + "; ".join(without) + ".")
        task_metrics = ", ".join(sorted({row["metric"] for row in rows if row["task"] == task}))
        ax.set(title=f"{task}: mean over seeds", xlabel="environment steps", ylabel=task_metrics)
        ax.legend()
        plots.caption_figure(fig, " ".join([*caption, plots.BAND_TEXT]), fontsize=6, least_room=0.03)
        fig.savefig(os.path.join(out_dir, f"curves_{task}.png"), dpi=100)
        plt.close(fig)
        plots.write_rows(os.path.join(out_dir, f"curves_{task}.csv"), plotted)
    summary["table"] = table
    return summary
