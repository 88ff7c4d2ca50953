"""benchmarks/reproduce.py --partial: the summaries of a grid with unfinished and failed runs, read from fake
TensorBoard logs whose every value is a closed form of the run and the step, so each number is computed by hand.

The fake grid (Hopper, budget 1000 steps, seeds 1 and 2): an evaluation every 100 steps up to each run's last
step, the training scalars every 75 steps (so not at every evaluation) up to 100 steps beyond it. Every run
finished at 1000 except temperature-0 seed 2 (failed at 600), temperature-10 seed 1 (unfinished at 800) and auto
seed 1 (unfinished at 700). So fig2 and fig8 (temperature 0, 10 and the preset) cut at 600, and auto-temperature
(the preset and auto) at 700."""

import csv
import importlib.util
import os

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("reproduce", os.path.join(REPO_ROOT, "benchmarks", "reproduce.py"))
reproduce = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reproduce)

BUDGET = 1000
WINDOW = 100  # 10% of the budget: the mean D_var window and fig2's moving average
METHOD_INDEX = {"temperature-0": 0, "temperature-10": 1, "preset": 2, "auto": 3, "td3": 4, "gamid": 5}
METHOD_INDEX |= {f"n-actors-{k}": 10 + k for k in range(1, 6)}  # fig5's N ablation
LAST_STEP = {"Hopper-v4__temperature-0__2": 600, "Hopper-v4__temperature-10__1": 800, "Hopper-v4__auto__1": 700}
FAILED_RUNS = {"Hopper-v4__temperature-0__2"}
TRAINING_LOGS = np.arange(75, BUDGET + 1, 75)  # the steps of the training scalars (75, 150, ..., 975)


def fake_return(method: str, seed: int, step: int) -> float:
    return 1000 * METHOD_INDEX[method] + 10 * seed + step / 100


def fake_temperature(method: str, seed: int, step: int) -> float:
    return METHOD_INDEX[method] + seed / 10 + step / 1000


def fake_mean_d_var(seed: int, step: int) -> float:
    return step / 10 + seed


def fake_sum_d_var(method: str, seed: int, step: int) -> float:
    return 100 * METHOD_INDEX[method] + step / 5 + seed


def fake_spread(method: str, seed: int, step: int) -> float:
    """The distance between the two means of every probe state (see write_fake_run)."""
    return METHOD_INDEX[method] + (1 + seed) * step / 1000


def write_fake_run(run, out_dir: str, last_step: int, failed: bool) -> None:
    """The logs, means.npz and markers that the harness and the Gamid script leave for a run stopped at last_step:
    evaluations up to last_step, training scalars up to 100 steps beyond it (a run logs them between evaluations)."""
    from torch.utils.tensorboard import SummaryWriter

    run_dir = os.path.join(run.dir(out_dir), f"{run.task}__gamid_continuous_action__{run.seed}__1")
    writer = SummaryWriter(run_dir)
    for step in TRAINING_LOGS[TRAINING_LOGS <= min(last_step + 100, BUDGET)]:
        writer.add_scalar("charts/temperature", fake_temperature(run.method, run.seed, step), step)
        writer.add_scalar("charts/mean_d_var", fake_mean_d_var(run.seed, step), step)
        writer.add_scalar("charts/sum_d_var", fake_sum_d_var(run.method, run.seed, step), step)
        if run.method == "auto":
            writer.add_scalar("charts/temperature_target", 3.0, step)
    evaluations = np.arange(100, last_step + 1, 100)
    for step in evaluations:
        writer.add_scalar("eval/episodic_return", fake_return(run.method, run.seed, step), step)
    writer.close()
    # Two Gaussians, three probe states, two action dimensions: the second mean at (spread, 0) from the first.
    means = np.zeros((len(evaluations), 2, 3, 2), dtype=np.float32)
    means[:, 1, :, 0] = [[fake_spread(run.method, run.seed, step)] for step in evaluations]
    np.savez(os.path.join(run_dir, "means.npz"), steps=evaluations, means=means)
    with open(os.path.join(run.dir(out_dir), reproduce.COMMAND), "w") as f:
        f.write(reproduce.command_text(run) + "\n")
    if failed:
        with open(os.path.join(run.dir(out_dir), reproduce.FAILED), "w") as f:
            f.write("exit 143\n")
    elif last_step == BUDGET:
        with open(os.path.join(run.dir(out_dir), reproduce.DONE), "w") as f:
            f.write(reproduce.command_text(run) + "\n")


@pytest.fixture
def fake_grid(tmp_path):
    """The shared grid of fig2, fig8 and auto-temperature (eight runs), as the module docstring describes."""
    out = str(tmp_path / "out")
    runs = {}
    for experiment in ("fig2", "fig8", "auto-temperature"):
        args = reproduce.Args(experiment=experiment, tasks=("Hopper-v4",), seeds=(1, 2), total_timesteps=BUDGET)
        experiment_runs, _ = reproduce.build_grid(args, out)
        reproduce.write_manifest(experiment_runs, [], ("Hopper-v4",), out, experiment)
        runs |= {run.run_id: run for run in experiment_runs}
    assert len(runs) == 8
    for run_id, run in runs.items():
        write_fake_run(run, out, LAST_STEP.get(run_id, BUDGET), failed=run_id in FAILED_RUNS)
    return tmp_path / "out"


def summarize(out, experiment: str, partial: bool) -> int:
    args = reproduce.Args(experiment=experiment, summarize_only=True, partial=partial, out_dir=str(out))
    return reproduce.main(args)


def read_rows(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture
def captions(monkeypatch) -> list:
    """The figure captions the summaries write."""
    written = []
    caption_figure = reproduce.plots.caption_figure

    def recording(fig, caption, **kwargs):
        written.append(caption)
        caption_figure(fig, caption, **kwargs)

    monkeypatch.setattr(reproduce.plots, "caption_figure", recording)
    return written


def test_partial_auto_temperature_takes_every_final_value_at_the_common_step(fake_grid, captions):
    assert summarize(fake_grid, "auto-temperature", partial=True) == 0
    rows = {(row["method"], int(row["seed"])): row for row in read_rows(fake_grid / "auto_temperature.csv")}
    assert set(rows) == {("preset", 1), ("preset", 2), ("auto", 1), ("auto", 2)}  # auto seed 1 unfinished, included
    for (method, seed), row in rows.items():
        # The cut: 700, the last evaluation of auto seed 1 (the others logged one there too).
        assert int(row["final_step"]) == int(row["cut_step"]) == 700
        assert float(row["final_return"]) == pytest.approx(fake_return(method, seed, 700))
        # The last temperature logged up to the cut: at 675 (auto seed 1 logged one at 750, after its last evaluation).
        assert float(row["final_temperature"]) == pytest.approx(fake_temperature(method, seed, 675))
        # The mean D_var over the 100 steps before the cut, (600, 700]: the value at 675 alone.
        assert float(row["final_mean_d_var"]) == pytest.approx(fake_mean_d_var(seed, 675))
        assert row["partial"] == "runs cut at step 700 of 1,000 (unfinished or failed runs included)"
        assert row["unfinished_runs"] == ("Hopper-v4__auto__1" if (method, seed) == ("auto", 1) else "")
    table = (fake_grid / "auto_temperature.md").read_text()
    assert table.startswith(
        "partial: Hopper-v4 runs cut at step 700 of 1,000 (unfinished or failed runs included), final values at "
        "that step; unfinished: Hopper-v4__auto__1."
    )
    # By hand: preset 2017 and 2027, auto 3017 and 3027 (mean ± sample std: 2,022 ± 7); auto temperatures 3.775
    # and 3.875; mean D_var 68.5 and 69.5.
    assert "| Hopper-v4 | 2,022 ± 7 | 3,022 ± 7 | 2, 2 |" in table
    temperature = f"{np.mean([3.775, 3.875]):.3g} ± {np.std([3.775, 3.875], ddof=1):.3g}"
    assert f"| {temperature} | 69 ± 0.707 | 3 | 69 ± 0.707 |" in table
    assert "over the 100 steps (10% of the budget) before the cut" in table
    curves = read_rows(fake_grid / "auto_temperature_Hopper-v4.csv")
    assert max(int(row["step"]) for row in curves) == 700  # every curve stops at the cut
    (final,) = [row for row in curves if (row["panel"], row["curve"], row["step"]) == ("return", "auto", "700")]
    assert float(final["mean"]) == pytest.approx((fake_return("auto", 1, 700) + fake_return("auto", 2, 700)) / 2)
    assert final["unfinished_runs"] == "Hopper-v4__auto__1"
    assert len(captions) == 1 and "partial: Hopper-v4 runs cut at step 700 of 1,000" in captions[0]


def test_partial_fig2_and_fig8_cut_their_curves_and_means_at_their_own_common_step(fake_grid, captions):
    assert summarize(fake_grid, "fig2", partial=True) == 0
    rows = read_rows(fake_grid / "fig2.csv")
    assert {row["cut_step"] for row in rows} == {"600"}  # temperature-0 seed 2 failed after its evaluation at 600
    unfinished = {row["curve"]: row["unfinished_runs"] for row in rows}
    assert unfinished == {
        "temperature 0": "Hopper-v4__temperature-0__2",
        "temperature 10": "Hopper-v4__temperature-10__1",
        "temperature as preset (Table 5)": "",
    }
    for row in rows:
        method = {"temperature 0": "temperature-0", "temperature 10": "temperature-10"}.get(row["curve"], "preset")
        step = int(row["step"])
        assert step <= 600
        window = [s for s in TRAINING_LOGS if step - 100 < s <= step]  # the moving average over 100 steps
        smoothed = [np.mean([fake_sum_d_var(method, seed, s) for s in window]) for seed in (1, 2)]
        assert float(row["mean"]) == pytest.approx(np.mean(smoothed))
    assert len(rows) == 3 * 8  # logged at 75, 150, ..., 600
    fig2_caption = captions[-1]
    assert "partial: Hopper-v4 runs cut at step 600 of 1,000 (unfinished or failed runs included)" in fig2_caption
    assert "unfinished: Hopper-v4__temperature-0__2, Hopper-v4__temperature-10__1." in fig2_caption

    assert summarize(fake_grid, "fig8", partial=True) == 0
    spread = read_rows(fake_grid / "fig8_spread_Hopper-v4.csv")
    assert max(int(row["step"]) for row in spread) == 600 and len(spread) == 6 * 6  # six runs, six evaluations
    for row in spread:
        expected = fake_spread(row["variant"], int(row["seed"]), int(row["step"]))
        assert float(row["spread"]) == pytest.approx(expected, rel=1e-6)
    points = read_rows(fake_grid / "fig8_Hopper-v4.csv")
    assert sorted({int(row["step"]) for row in points}) == [200, 300, 400, 600]  # four columns of six evaluations
    table = (fake_grid / "fig8_Hopper-v4.md").read_text()
    # By hand at 600: temperature 0: 1.2 and 1.8; temperature 10: 2.2 and 2.8; the preset: 3.2 and 3.8.
    assert "| temperature 0 | 2 | 600 | 1.500 ± 0.424 |" in table
    assert "| temperature 10 | 2 | 600 | 2.500 ± 0.424 |" in table
    assert "| temperature as preset (Table 5) | 2 | 600 | 3.500 ± 0.424 |" in table
    assert "partial: Hopper-v4 runs cut at step 600 of 1,000" in table
    assert "partial: Hopper-v4 runs cut at step 600 of 1,000" in captions[-1]


def test_without_partial_the_unfinished_runs_are_left_out_and_nothing_is_cut(fake_grid, captions):
    assert summarize(fake_grid, "auto-temperature", partial=False) == 0
    rows = read_rows(fake_grid / "auto_temperature.csv")
    assert {(row["method"], row["seed"]) for row in rows} == {("preset", "1"), ("preset", "2"), ("auto", "2")}
    assert all(int(row["final_step"]) == 1000 for row in rows) and "cut_step" not in rows[0]
    table = (fake_grid / "auto_temperature.md").read_text()
    assert (
        "partial" not in table and "1 run(s) left out (unfinished, failed or without logs): Hopper-v4__auto__1" in table
    )
    assert "| Hopper-v4 | 2,025 ± 7 | 3,030 | 2, 1 |" in table  # returns at 1000: 2020, 2030 and 3030
    assert "partial" not in captions[0]

    assert summarize(fake_grid, "fig2", partial=False) == 0
    rows = read_rows(fake_grid / "fig2.csv")
    assert max(int(row["step"]) for row in rows) == 975 and "cut_step" not in rows[0]  # the last log of the runs
    assert {row["curve"]: row["n_runs"] for row in rows} == {
        "temperature 0": "1",
        "temperature 10": "1",
        "temperature as preset (Table 5)": "2",
    }
    assert "partial" not in captions[1]
    assert (
        "2 run(s) left out (unfinished or failed): Hopper-v4__temperature-0__2, Hopper-v4__temperature-10__1"
        in (captions[1])
    )


def test_partial_table1_cuts_every_method_of_a_task_at_one_step(tmp_path):
    out = str(tmp_path / "out")
    args = reproduce.Args(
        scripts=("td3_baseline", "gamid_continuous_action"), tasks=("Hopper-v4",), seeds=(1, 2), total_timesteps=BUDGET
    )
    runs, _ = reproduce.build_grid(args, out)
    reproduce.write_manifest(runs, [], ("Hopper-v4",), out)
    for run in runs:
        write_fake_run(run, out, last_step=500 if run.run_id == "Hopper-v4__gamid__2" else BUDGET, failed=False)

    assert reproduce.main(reproduce.Args(summarize_only=True, out_dir=out)) == 0
    table = (tmp_path / "out" / "table.md").read_text()
    # By hand, at 1000: TD3 4020 and 4030; Gamid seed 1 alone: 5020.
    assert "| Hopper-v4 | 4,025 ± 7.1 (paper 3,392 ± 125) |" in table and "**5,020 ± –** (n=1 of 2)" in table

    assert reproduce.main(reproduce.Args(summarize_only=True, partial=True, out_dir=out)) == 0
    table = (tmp_path / "out" / "table.md").read_text()
    # At the cut, 500: TD3 4015 and 4025, Gamid 5015 and 5025 (a std below 10 with one decimal, as Table 1).
    assert "| Hopper-v4 | 4,020 ± 7.1 (paper 3,392 ± 125) |" in table and "**5,020 ± 7.1** (paper 3,301 ± 209)" in table
    assert "partial: Hopper-v4 runs cut at step 500 of 1,000 (unfinished or failed runs included), final values" in (
        table
    )
    rows = {row["run_id"]: row for row in read_rows(tmp_path / "out" / "results.csv")}
    assert len(rows) == 4
    for run_id, row in rows.items():
        method, seed = row["method"], int(row["seed"])
        assert int(row["final_step"]) == int(row["cut_step"]) == 500
        assert float(row["final_value"]) == pytest.approx(fake_return(method, seed, 500))
        assert row["unfinished_runs"] == (run_id if run_id == "Hopper-v4__gamid__2" else "")
    curves = read_rows(tmp_path / "out" / "curves_Hopper-v4.csv")
    assert max(int(row["step"]) for row in curves) == 500


def test_an_interrupted_grid_run_writes_its_summary_with_partial_only(fake_grid, monkeypatch):
    monkeypatch.setattr(reproduce, "run_grid", lambda runs, out_dir, args: (0, 1))  # as if Ctrl-C stopped a run
    args = reproduce.Args(
        experiment="auto-temperature",
        tasks=("Hopper-v4",),
        seeds=(1, 2),
        total_timesteps=BUDGET,
        out_dir=str(fake_grid),
    )
    assert reproduce.main(args) == reproduce.INTERRUPTED_EXIT_CODE
    assert not (fake_grid / "auto_temperature.md").exists()
    args.partial = True
    assert reproduce.main(args) == reproduce.INTERRUPTED_EXIT_CODE
    assert "partial: Hopper-v4 runs cut at step 700 of 1,000" in (fake_grid / "auto_temperature.md").read_text()


def test_partial_fig5_cuts_the_ablation_curves(tmp_path):
    out = str(tmp_path / "out")
    args = reproduce.Args(
        experiment="fig5", tasks=("Walker2d-v4",), ablations=("n_actors",), seeds=(1,), total_timesteps=BUDGET
    )
    runs, _ = reproduce.build_grid(args, out)
    reproduce.write_manifest(runs, [], ("Walker2d-v4",), out, "fig5")
    for run in runs:
        write_fake_run(run, out, last_step=400 if run.method == "n-actors-3" else BUDGET, failed=False)
    assert reproduce.main(reproduce.Args(experiment="fig5", summarize_only=True, partial=True, out_dir=out)) == 0
    rows = read_rows(tmp_path / "out" / "fig5_Walker2d-v4.csv")
    assert sorted({row["curve"] for row in rows}) == [f"N = {k}" for k in range(1, 6)]
    assert len(rows) == 5 * 4  # evaluations at 100, 200, 300 and 400
    for row in rows:
        k, step = int(row["curve"][-1]), int(row["step"])
        assert float(row["mean"]) == pytest.approx(fake_return(f"n-actors-{k}", 1, step))
        assert row["unfinished_runs"] == ("Walker2d-v4__n-actors-3__1" if k == 3 else "")
