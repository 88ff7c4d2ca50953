"""Reading the runs for the summaries: their TensorBoard scalars and recorded means, and which runs to read.

By default a summary reads the finished runs. With `--partial` it also reads the unfinished and failed runs that
logged an evaluation, and cuts all the runs of a task at the last step at which every one of them logged one
(`select_runs`): final values are taken there and curves stop there, and every caption, markdown table and CSV
says so (`Cut.note`; CSV columns `cut_step`, `partial` and `unfinished_runs`).
"""

import glob
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .grid import EXPERIMENT_METHODS, FAILED, GRIDS, PAPER_BUDGET, Run, is_finished, manifest_grid, read_marker


def logged_scalars(run_dir: str):
    """TensorBoard's reader over every event file of a run directory (resumed attempts append their own files)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    pattern = os.path.join(glob.escape(run_dir), "**", "events.out.tfevents.*")
    files = sorted(glob.glob(pattern, recursive=True), key=os.path.getmtime)
    if not files:
        raise FileNotFoundError(f"no TensorBoard log under {run_dir}")
    # The accumulator reads the files in order and drops the steps that a resumed attempt logged again
    # (its purge_step).
    events = EventAccumulator(os.path.dirname(files[-1]), size_guidance={"scalars": 0})
    events.Reload()
    return events


def steps_and_values(events, tag: str, until: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one logged scalar, up to step `until` (--partial's cut) if given."""
    scalars = sorted(events.Scalars(tag), key=lambda e: e.step)
    if until is not None:
        scalars = [e for e in scalars if e.step <= until]
    return np.array([e.step for e in scalars]), np.array([e.value for e in scalars], dtype=float)


def read_curve(run_dir: str, until: Optional[int] = None) -> tuple[str, np.ndarray, np.ndarray]:
    """(tag, steps, values) of the run's greedy evaluations: eval/success_rate if logged, else eval/episodic_return."""
    events = logged_scalars(run_dir)
    tags = events.Tags()["scalars"]
    tag = next((t for t in ("eval/success_rate", "eval/episodic_return") if t in tags), None)
    if tag is None:
        raise KeyError(f"no eval/success_rate or eval/episodic_return logged under {run_dir}")
    return (tag, *steps_and_values(events, tag, until))


def read_scalar(run_dir: str, tag: str, until: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one logged scalar of the run."""
    events = logged_scalars(run_dir)
    if tag not in events.Tags()["scalars"]:
        raise KeyError(f"no {tag} logged under {run_dir}")
    return steps_and_values(events, tag, until)


def read_means(run: Run, out_dir: str, until: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """(steps (E,), means (E, N, P, act_dim)) that the run recorded with --record-means (its means.npz), up to step
    `until` (--partial's cut) if given."""
    paths = glob.glob(os.path.join(glob.escape(run.dir(out_dir)), "*", "means.npz"))
    if not paths:
        raise FileNotFoundError(f"no means.npz under {run.dir(out_dir)}")
    with np.load(max(paths, key=os.path.getmtime)) as saved:
        steps, means = saved["steps"], saved["means"]
    kept = steps <= until if until is not None else np.ones(len(steps), dtype=bool)
    return steps[kept], means[kept]


def run_budget(run: Run) -> int:
    """The run's --total-timesteps, or the paper's budget where the grid left it to the preset."""
    if "--total-timesteps" in run.argv:
        return int(run.argv[run.argv.index("--total-timesteps") + 1])
    return PAPER_BUDGET.get(run.task, 1_000_000)


def run_status(run: Run, out_dir: str) -> str:
    if is_finished(run, out_dir):
        return "finished"
    return "failed" if read_marker(run, out_dir, FAILED) is not None else "unfinished"


@dataclass
class Cut:
    """--partial: the step at which a summary cuts every run of one task, so that unfinished runs compare."""

    step: int  # the last step at which every included run of the task logged an evaluation
    budget: int  # their --total-timesteps (the largest, if they differ)
    unfinished: list  # run ids of the included runs that did not finish (unfinished or failed)

    def sentence(self) -> str:
        return f"runs cut at step {self.step:,} of {self.budget:,} (unfinished or failed runs included)"

    def note(self, task: str) -> str:
        unfinished = ", ".join(self.unfinished) or "none"
        return f"partial: {task} {self.sentence()}, final values at that step; unfinished: {unfinished}."


@dataclass
class Selection:
    """The runs a summary reads: by default the finished ones; with --partial also the others that logged an
    evaluation, each read up to its task's cut, so every final value (the last evaluation, the last logged
    temperature, the mean D_var over the 10% of the budget before the cut) is taken at one step."""

    run_ids: set  # the runs to read
    statuses: dict  # run id -> finished, unfinished or failed
    cuts: dict  # task -> Cut (with --partial only)

    def until(self, run: Run) -> Optional[int]:
        """The last step to read of the run: its task's cut, or None (all of it)."""
        cut = self.cuts.get(run.task)
        return cut.step if cut else None

    def notes(self, tasks) -> str:
        """The captions' sentences on the cut ("" without --partial)."""
        return " ".join(self.cuts[task].note(task) for task in tasks if task in self.cuts)

    def heading(self, tasks) -> list[str]:
        """A markdown table's first lines: one note per cut task and a blank line (none without --partial)."""
        notes = [self.cuts[task].note(task) for task in tasks if task in self.cuts]
        return [*notes, ""] if notes else []

    def columns(self, task: str, run_ids: list) -> dict:
        """The CSV columns of a row from these runs of the task: the cut and the unfinished runs among them."""
        cut = self.cuts.get(task)
        if cut is None:
            return {}
        unfinished = " ".join(run_id for run_id in run_ids if run_id in cut.unfinished)
        return {"cut_step": cut.step, "partial": cut.sentence(), "unfinished_runs": unfinished}


def select_runs(runs: list[Run], out_dir: str, partial: bool) -> Selection:
    """The runs to summarize (see Selection). The cut of a task is the last step that all its included runs
    logged an evaluation at (if they share none: the earliest last evaluation, a run's final its last before)."""
    statuses = {run.run_id: run_status(run, out_dir) for run in runs}
    if not partial:
        finished = {run_id for run_id, status in statuses.items() if status == "finished"}
        return Selection(run_ids=finished, statuses=statuses, cuts={})
    evaluated = {}  # run id -> its evaluation steps
    for run in runs:
        try:
            evaluated[run.run_id] = set(read_curve(run.dir(out_dir))[1].tolist())
        except (FileNotFoundError, KeyError) as error:
            if statuses[run.run_id] == "finished":  # the others may not have logged an evaluation yet
                print(f"note: {run.run_id} is left out: {error}")
    cuts = {}
    for task in dict.fromkeys(run.task for run in runs if run.run_id in evaluated):
        task_runs = [run for run in runs if run.task == task and run.run_id in evaluated]
        common = set.intersection(*(evaluated[run.run_id] for run in task_runs))
        step = max(common) if common else min(max(evaluated[run.run_id]) for run in task_runs)
        unfinished = [run.run_id for run in task_runs if statuses[run.run_id] != "finished"]
        budget = max(run_budget(run) for run in task_runs)
        cuts[task] = Cut(step=int(step), budget=budget, unfinished=unfinished)
    return Selection(run_ids=set(evaluated), statuses=statuses, cuts=cuts)


def experiment_runs(manifest: dict, out_dir: str, experiment: str) -> tuple[list[Run], list[str]]:
    """The runs and tasks of one experiment in its grid: in the shared grid, the runs of its variants on its tasks.
    A task without finished runs keeps its (empty) panel, the caption says why."""
    if manifest_grid(manifest) != GRIDS[experiment]:
        raise SystemExit(f"{out_dir} holds the {manifest_grid(manifest)} grid, not {experiment}'s.")
    tasks = manifest.get("experiment_tasks", {}).get(experiment)
    if experiment not in EXPERIMENT_METHODS:
        return manifest["runs"], tasks or manifest["tasks"]
    methods = EXPERIMENT_METHODS[experiment]
    if tasks is None:  # not run under this experiment's name: the grid's tasks with runs of its variants
        with_runs = {run.task for run in manifest["runs"] if run.method in methods}
        tasks = [task for task in manifest["tasks"] if task in with_runs]
    runs = [run for run in manifest["runs"] if run.method in methods and run.task in tasks]
    return runs, tasks
