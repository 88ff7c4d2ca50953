"""benchmarks/reproduce.py's figures: the tolerance interval of the curves' bands against a hand computation
from its definition, each experiment (table1's curves, fig2, fig5, fig8, auto-temperature) end to end at a tiny
budget, and the grid that fig2, fig8 and auto-temperature share (a run two of them need runs once)."""

import csv
import importlib.util
import math
import os
import re
import textwrap

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("reproduce", os.path.join(REPO_ROOT, "benchmarks", "reproduce.py"))
reproduce = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reproduce)


def read_rows(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


# --- tolerance interval ----------------------------------------------------------------------------------


def binomial_cdf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def binomial_quantile_by_hand(q: float, n: int, p: float) -> int:
    """The smallest k with P(Binomial(n, p) <= k) >= q, summing the probability mass function."""
    for k in range(n + 1):
        if binomial_cdf(k, n, p) >= q:
            return k
    return n


def test_binomial_quantile_matches_the_probability_mass_function():
    for n in range(1, 61):
        for q in (0.9, 0.95, 0.99):
            for p in (0.3, 0.7):
                assert reproduce.binomial_quantile(q, n, p) == binomial_quantile_by_hand(q, n, p), (q, n, p)


def test_tolerance_interval_of_five_runs_is_their_range():
    # By hand: P(Binomial(5, 0.7) <= 4) = 1 - 0.7^5 = 0.83193 < 0.95, so k = 5 and no run is left outside.
    assert 1 - 0.7**5 == pytest.approx(0.83193, abs=1e-5)
    assert reproduce.binomial_quantile(0.95, 5, 0.7) == 5
    values = np.array([[3.0, 10.0], [1.0, 50.0], [4.0, 20.0], [1.5, 40.0], [9.0, 30.0]])
    lower, upper = reproduce.tolerance_interval(values, alpha=0.05, beta=0.7)
    assert lower.tolist() == [1.0, 10.0] and upper.tolist() == [9.0, 50.0]


def test_tolerance_interval_of_twenty_runs_leaves_one_run_out_on_each_side():
    # By hand: P(Binomial(20, 0.7) <= 16) = 0.8929 < 0.95 <= P(Binomial(20, 0.7) <= 17) = 0.9645, so k = 17:
    # 20 - 17 = 3 runs outside, 3 // 2 = 1 below and 1 above: the 2nd smallest and the 2nd largest run.
    assert binomial_cdf(16, 20, 0.7) == pytest.approx(0.8929, abs=1e-4)
    assert binomial_cdf(17, 20, 0.7) == pytest.approx(0.9645, abs=1e-4)
    assert reproduce.binomial_quantile(0.95, 20, 0.7) == 17
    runs = np.random.default_rng(0).permutation(20).astype(float)
    values = np.stack([runs, 100 - 2 * runs], axis=1)  # two steps, different orders
    lower, upper = reproduce.tolerance_interval(values, alpha=0.05, beta=0.7)
    assert lower.tolist() == [1.0, 100 - 2 * 18.0] and upper.tolist() == [18.0, 100 - 2 * 1.0]
    # Its actual confidence, by simulation: for a uniform population the coverage of the 2nd smallest to the 2nd
    # largest of 20 runs is Beta(17, 4), and P(Beta(17, 4) >= 0.7) = P(Binomial(20, 0.7) <= 16) = 0.893: the
    # library's rule is one order statistic short of the 0.95 its alpha asks for (we follow it, as the paper did).
    samples = np.random.default_rng(1).random((20, 20_000))
    lower, upper = reproduce.tolerance_interval(samples, alpha=0.05, beta=0.7)
    assert np.mean(upper - lower >= 0.7) == pytest.approx(binomial_cdf(16, 20, 0.7), abs=0.01)


# --- experiments end to end ------------------------------------------------------------------------------

# A stand-in gamid_continuous_action.py (a real run takes a minute here even at 600 steps; the harness is what is
# tested): the real command line and a PRESETS dict as the real one writes it. It logs charts/sum_d_var every
# --log-freq steps and eval/episodic_return every --eval-freq steps, each a closed form of its flags, the seed and
# the step, so a test can compute every plotted number by hand.
FAKE_GAMID = textwrap.dedent("""
    import argparse, os, time
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    PRESETS = {
        "Hopper": dict(total_timesteps=1_000_000, n_actors=2, temperature_initial=0.1, epsilon_initial=0.1),
        "Walker2d": dict(total_timesteps=1_000_000, n_actors=3, temperature_initial=0.1, epsilon_initial=0.3),
    }
    parser = argparse.ArgumentParser()
    for flag in ("--env-id", "--runs-dir"):
        parser.add_argument(flag)
    for flag in ("--seed", "--total-timesteps", "--eval-freq", "--eval-episodes", "--learning-starts", "--n-actors",
                 "--probe-states"):
        parser.add_argument(flag, type=int)
    for flag in ("--temperature-initial", "--temperature-final", "--temperature-fraction", "--epsilon-initial",
                 "--epsilon-final"):
        parser.add_argument(flag, type=float)
    parser.add_argument("--log-freq", type=int, default=1000)
    parser.add_argument("--record-means", action="store_true")
    parser.add_argument("--temperature", choices=["auto"])
    parser.add_argument("--epsilon", choices=["auto"])
    args = parser.parse_args()
    preset = PRESETS[args.env_id.split("-")[0]]
    n_actors = args.n_actors or preset["n_actors"]
    temperature = preset["temperature_initial"] if args.temperature_initial is None else args.temperature_initial
    epsilon = preset["epsilon_initial"] if args.epsilon_initial is None else args.epsilon_initial
    run_dir = os.path.join(args.runs_dir, f"{args.env_id}__gamid__{args.seed}__{int(time.time())}")
    writer = EventFileWriter(run_dir)
    for step in range(1, args.total_timesteps + 1):
        tags = []
        if step % args.log_freq == 0:
            tags.append(("charts/sum_d_var", temperature * step / 100 + args.seed + (step // 10) % 3))
        if step % args.eval_freq == 0:
            value = 1000 * n_actors + 100 * temperature + 10 * epsilon + args.seed * step / 100
            tags.append(("eval/episodic_return", value))
        if tags:
            values = [summary_pb2.Summary.Value(tag=tag, simple_value=v) for tag, v in tags]
            writer.add_event(event_pb2.Event(step=step, summary=summary_pb2.Summary(value=values)))
    writer.close()
""")


def fake_sum_d_var(temperature: float, seed: int, step: int) -> float:
    return temperature * step / 100 + seed + (step // 10) % 3


def fake_return(n_actors: int, temperature: float, epsilon: float, seed: int, step: int) -> float:
    return 1000 * n_actors + 100 * temperature + 10 * epsilon + seed * step / 100


def tiny_grid(experiment: str, out, task: str = "Hopper-v4", **overrides) -> "reproduce.Args":
    """The small grid the tests here run: one task, one seed, one evaluation episode, two runs at a time."""
    settings = dict(
        experiment=experiment,
        tasks=(task,),
        seeds=(1,),
        eval_episodes=1,
        workers=2,
        threads_per_run=1,
        out_dir=str(out),
    )
    return reproduce.Args(**(settings | overrides))


def run_experiment(tmp_path, experiment, task, seeds, total=1000, flags="", ablations=reproduce.ABLATIONS):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "gamid_continuous_action.py").write_text(FAKE_GAMID)
    out = tmp_path / "out"
    args = tiny_grid(
        experiment,
        out,
        task,
        scripts=("gamid_continuous_action",),
        seeds=seeds,
        total_timesteps=total,
        script_flags=flags,
        ablations=ablations,
        repo_root=str(repo),
    )
    assert reproduce.main(args) == 0
    return out


def commands(out) -> dict:
    """run id -> its command line (the flags after the script)."""
    return {path.parent.name: path.read_text().split() for path in (out / "runs").glob("*/COMMAND")}


def test_fig2_plots_the_smoothed_sum_of_d_var_for_temperatures_0_10_and_the_preset(tmp_path):
    out = run_experiment(tmp_path, "fig2", "Hopper-v4", seeds=(1, 2), flags="--log-freq 10")
    temperatures = {"temperature 0": 0.0, "temperature 10": 10.0, "temperature as preset (Table 5)": 0.1}
    argv = commands(out)
    assert " --temperature-initial 10 --temperature-final 10 " in " ".join(argv["Hopper-v4__temperature-10__1"])
    assert " --temperature-initial 0 --temperature-final 0 " in " ".join(argv["Hopper-v4__temperature-0__2"])
    assert "--temperature-initial" not in argv["Hopper-v4__preset__2"]
    rows = read_rows(out / "fig2.csv")
    assert {row["curve"] for row in rows} == set(temperatures) and (out / "fig2.png").stat().st_size > 1000
    window = 100  # the paper's 100k steps at 1M, scaled to this budget of 1000 steps
    logged = np.arange(10, 1001, 10)
    for row in rows:
        step, temperature = int(row["step"]), temperatures[row["curve"]]
        smoothed = [  # by hand: the mean of what each seed logged in (step - 100, step]
            np.mean([fake_sum_d_var(temperature, seed, s) for s in logged if step - window < s <= step])
            for seed in (1, 2)
        ]
        assert float(row["mean"]) == pytest.approx(np.mean(smoothed), rel=1e-6)
        assert float(row["lower"]) == pytest.approx(min(smoothed), rel=1e-6)  # two runs: their range
        assert float(row["upper"]) == pytest.approx(max(smoothed), rel=1e-6)
    assert len(rows) == 3 * len(logged)


def test_fig5_runs_the_three_ablations_at_the_tasks_preset_and_plots_their_returns(tmp_path):
    out = run_experiment(tmp_path, "fig5", "Walker2d-v4", seeds=(1,), total=500)
    n = 3  # the stand-in's Walker2d preset, as in Table 5
    # (panel, curve) -> (n_actors, temperature, epsilon) of the runs: one setting changed, the others at the preset
    expected = {("n_actors", f"N = {k}"): (k, 0.1, 0.3) for k in range(1, 6)}
    for temperature in (0.01, 0.1, 0.5):
        expected[("temperature", f"temperature {temperature}")] = (n, temperature, 0.3)
    expected[("temperature", "temperature 0.1 -> 0.01 over 30%")] = (n, 0.1, 0.3)  # the stand-in reads initial
    for name, epsilon in (("0", 0), ("1/(10N) = 0.0333", 1 / 30), ("1/(2N) = 0.167", 1 / 6), ("1/N = 0.333", 1 / 3)):
        expected[("epsilon", f"epsilon = {name}")] = (n, 0.1, epsilon)
    argv = {run_id: " ".join(words) for run_id, words in commands(out).items()}
    assert len(argv) == 13
    assert " --temperature-fraction 0.3 " in argv["Walker2d-v4__temperature-0.1-to-0.01__1"]
    assert (
        " --epsilon-initial 0.03333333333333333 --epsilon-final 0.03333333333333333 "
        in argv["Walker2d-v4__epsilon-1_10N__1"]
    )
    assert " --n-actors " not in argv["Walker2d-v4__epsilon-1_N__1"]
    rows = read_rows(out / "fig5_Walker2d-v4.csv")
    assert (out / "fig5_Walker2d-v4.png").stat().st_size > 1000
    assert {(row["panel"], row["curve"]) for row in rows} == set(expected)
    evaluations = list(range(10, 501, 10))  # every budget // 50 steps
    for row in rows:
        settings = expected[(row["panel"], row["curve"])]
        logged = fake_return(*settings, seed=1, step=int(row["step"]))
        assert float(row["mean"]) == float(row["lower"]) == float(row["upper"]) == pytest.approx(logged, rel=1e-6)
    assert len(rows) == 13 * len(evaluations)


def test_fig5_runs_and_plots_only_the_selected_ablation(tmp_path):
    out = run_experiment(tmp_path, "fig5", "Walker2d-v4", seeds=(1,), total=200, ablations=("n_actors",))
    assert sorted(commands(out)) == [f"Walker2d-v4__n-actors-{k}__1" for k in range(1, 6)]
    rows = read_rows(out / "fig5_Walker2d-v4.csv")
    assert {(row["panel"], row["curve"]) for row in rows} == {("n_actors", f"N = {k}") for k in range(1, 6)}
    png = (out / "fig5_Walker2d-v4.png").read_bytes()
    assert int.from_bytes(png[16:20], "big") == 500  # the PNG header's width: one panel of 5 inches at 100 dpi
    with pytest.raises(SystemExit, match="--ablations needs at least one of n_actors, temperature, epsilon"):
        reproduce.main(reproduce.Args(experiment="fig5", ablations=(), out_dir=str(tmp_path / "empty")))
    assert not (tmp_path / "empty").exists()


def test_table1_curves_csv_holds_the_mean_and_the_tolerance_interval_of_the_runs(tmp_path):
    out = run_experiment(tmp_path, "table1", "Hopper-v4", seeds=(1, 2, 3), total=300)
    rows = read_rows(out / "curves_Hopper-v4.csv")
    assert (out / "curves_Hopper-v4.png").stat().st_size > 1000
    assert {row["curve"] for row in rows} == {"Gamid"} and len(rows) == 50
    for row in rows:
        returns = [fake_return(2, 0.1, 0.1, seed, int(row["step"])) for seed in (1, 2, 3)]
        assert float(row["mean"]) == pytest.approx(np.mean(returns), rel=1e-6)
        assert (float(row["lower"]), float(row["upper"])) == pytest.approx((min(returns), max(returns)), rel=1e-6)


def test_auto_temperature_builds_the_preset_and_the_auto_runs_of_the_shared_grid(tmp_path):
    args = reproduce.Args(
        experiment="auto-temperature", seeds=(1, 2, 3), total_timesteps=50_000, workers=16, out_dir=str(tmp_path)
    )
    runs, _ = reproduce.build_grid(args, str(tmp_path))
    assert len(runs) == 18
    assert {run.task for run in runs} == {"Hopper-v4", "HalfCheetah-v4", "Walker2d-v4"}
    for run in runs:
        assert run.run_id == f"{run.task}__{run.method}__{run.seed}" and run.method in ("preset", "auto")
        expected = [
            "gamid_continuous_action.py",
            *("--env-id", run.task, "--seed", str(run.seed), "--runs-dir", run.dir(str(tmp_path))),
            "--record-means",
            *(("--temperature", "auto", "--epsilon", "auto") if run.method == "auto" else ()),
            *("--total-timesteps", "50000", "--eval-freq", "1000", "--eval-episodes", "10"),
        ]
        assert run.argv == expected


def test_fig2_fig8_and_auto_temperature_share_one_grid_and_fig5_keeps_its_own(tmp_path):
    fig2 = reproduce.Args(experiment="fig2", tasks=("Hopper-v4",), seeds=(1,), total_timesteps=500)
    fig8 = reproduce.Args(experiment="fig8", seeds=(1,), total_timesteps=500)
    fig2_runs, _ = reproduce.build_grid(fig2, str(tmp_path))
    fig8_runs, _ = reproduce.build_grid(fig8, str(tmp_path))
    assert [run.argv for run in fig2_runs] == [run.argv for run in fig8_runs]  # the same three Hopper runs
    assert all("--record-means" in run.argv for run in fig2_runs)
    fig5 = reproduce.Args(experiment="fig5", ablations=("n_actors",), seeds=(1,), total_timesteps=500)
    assert [run.method for run in reproduce.build_grid(fig5, str(tmp_path))[0]] == [
        f"n-actors-{k}" for k in range(1, 6)
    ]
    # A run of 2000 steps evaluates every 40: its probe states (the first states in the buffer) must be there.
    short = reproduce.build_grid(reproduce.Args(experiment="fig8", seeds=(1,), total_timesteps=2000), str(tmp_path))
    assert all(" --eval-freq 40 " in " ".join(run.argv) for run in short[0])
    assert all(" --probe-states 40 " in " ".join(run.argv) for run in short[0])
    assert " --probe-states 10 " in " ".join(fig8_runs[0].argv)  # 500 steps: an evaluation every 10
    full = reproduce.build_grid(reproduce.Args(experiment="fig8", seeds=(1,), total_timesteps=50_000), str(tmp_path))
    assert all("--probe-states" not in run.argv for run in full[0])  # the script's 100
    reproduce.write_manifest(fig2_runs, [], ("Hopper-v4",), str(tmp_path), "fig2")
    reproduce.write_manifest(fig8_runs, [], ("Hopper-v4",), str(tmp_path), "fig8")  # the same grid: accepted
    assert len(reproduce.read_manifest(str(tmp_path))["runs"]) == 3
    with pytest.raises(SystemExit, match="holds the gamid grid"):
        reproduce.write_manifest([], [], ("Walker2d-v4",), str(tmp_path), "fig5")


def test_a_second_fig2_command_runs_only_the_unfinished_runs(tmp_path):
    out = run_experiment(tmp_path, "fig2", "Hopper-v4", seeds=(1,), total=200, flags="--log-freq 10")
    first = (out / "fig2.csv").read_text()
    (out / "runs" / "Hopper-v4__temperature-10__1" / reproduce.DONE).unlink()  # as if it had been interrupted
    started = {path.parent.name: path.stat().st_mtime_ns for path in (out / "runs").glob("*/COMMAND")}
    args = tiny_grid(
        "fig2", out, total_timesteps=200, script_flags="--log-freq 10", workers=1, repo_root=str(tmp_path / "repo")
    )
    assert reproduce.main(args) == 0
    again = {path.parent.name: path.stat().st_mtime_ns for path in (out / "runs").glob("*/COMMAND")}
    rerun = {run_id for run_id in started if again[run_id] != started[run_id]}
    assert rerun == {"Hopper-v4__temperature-10__1"}  # started afresh (the stand-in writes no checkpoint)
    assert (out / "fig2.csv").read_text() == first


def test_fig2_after_auto_temperature_skips_the_finished_preset_run(tmp_path):
    run_experiment(tmp_path, "auto-temperature", "Hopper-v4", seeds=(1,), total=200, flags="--log-freq 10")
    out = tmp_path / "out"
    started = {path.parent.name: path.stat().st_mtime_ns for path in (out / "runs").glob("*/COMMAND")}
    assert set(started) == {"Hopper-v4__preset__1", "Hopper-v4__auto__1"}
    args = tiny_grid("fig2", out, total_timesteps=200, script_flags="--log-freq 10", repo_root=str(tmp_path / "repo"))
    assert reproduce.main(args) == 0
    again = {path.parent.name: path.stat().st_mtime_ns for path in (out / "runs").glob("*/COMMAND")}
    assert set(again) == set(started) | {"Hopper-v4__temperature-0__1", "Hopper-v4__temperature-10__1"}
    assert again["Hopper-v4__preset__1"] == started["Hopper-v4__preset__1"]  # not run again
    assert {row["curve"] for row in read_rows(out / "fig2.csv")} == {  # fig2 plots its three variants only
        "temperature 0",
        "temperature 10",
        "temperature as preset (Table 5)",
    }


# --- fig8, auto-temperature and fig2 with the real gamid_continuous_action.py --------------------------------


@pytest.fixture(scope="module")
def shared_grid(tmp_path_factory):
    """auto-temperature, then fig8, then fig2, on one out-dir: Hopper, seed 1, 400 steps (training from step 100),
    an evaluation (and a record of the means on 20 probe states) every 100 steps, 16 x 16 networks."""
    out = tmp_path_factory.mktemp("shared") / "out"
    started = {}
    for experiment in ("auto-temperature", "fig8", "fig2"):
        args = tiny_grid(
            experiment,
            out,
            total_timesteps=400,
            learning_starts=100,
            eval_freq=100,
            script_flags="--net-arch 16 16 --batch-size 32 --log-freq 10 --probe-states 20",
        )
        assert reproduce.main(args) == 0
        started[experiment] = {path.parent.name: path.stat().st_mtime_ns for path in (out / "runs").glob("*/COMMAND")}
    return out, started


def event_scalars(run_dir, tag: str) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {event.step: event.value for event in events.Scalars(tag)}


def run_directory(out, run_id: str):
    (run_dir,) = (out / "runs" / run_id).glob("Hopper-v4__*")
    return run_dir


def test_fig2_with_the_real_gamid_script_plots_what_its_runs_logged(shared_grid):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, started = shared_grid  # fig2's runs are fig8's: the fig2 command started none
    assert started["fig2"] == started["fig8"]
    rows = read_rows(out / "fig2.csv")
    assert (out / "fig2.png").stat().st_size > 1000
    for run_dir in (out / "runs").glob("*/Hopper-v4__*"):
        if "auto" in run_dir.parent.name:  # auto-temperature's run: not in fig2
            continue
        events = EventAccumulator(str(run_dir))
        events.Reload()
        logged = {event.step: event.value for event in events.Scalars("charts/sum_d_var")}
        steps = sorted(logged)
        assert steps == list(range(110, 401, 10))  # training starts after step 100, logged every 10 steps
        curve = {
            "Hopper-v4__temperature-0__1": "temperature 0",
            "Hopper-v4__temperature-10__1": "temperature 10",
            "Hopper-v4__preset__1": "temperature as preset (Table 5)",
        }[run_dir.parent.name]
        plotted = {int(row["step"]): float(row["mean"]) for row in rows if row["curve"] == curve}
        window = 40  # 10% of the budget
        for step in steps:  # by hand: the mean of what was logged in (step - 40, step]: at most four values
            expected = np.mean([logged[s] for s in steps if step - window < s <= step])
            assert plotted[step] == pytest.approx(expected, rel=1e-6)


def test_fig8_plots_the_pca_of_the_recorded_means_and_their_spread(shared_grid):
    out, _ = shared_grid
    assert (out / "fig8_Hopper-v4.png").stat().st_size > 1000
    rows = read_rows(out / "fig8_Hopper-v4.csv")
    spread_rows = read_rows(out / "fig8_spread_Hopper-v4.csv")
    assert {row["variant"] for row in rows} == {"temperature-0", "temperature-10", "preset"}
    for variant in ("temperature-0", "temperature-10", "preset"):
        with np.load(run_directory(out, f"Hopper-v4__{variant}__1") / "means.npz") as saved:
            steps, means = saved["steps"], saved["means"]
        assert steps.tolist() == [100, 200, 300, 400] and means.shape == (4, 2, 20, 3)  # Hopper: N = 2, 3 actions
        for e, step in enumerate(steps):  # four evaluations, four columns
            panel = [row for row in rows if row["variant"] == variant and int(row["step"]) == step]
            assert len(panel) == 2 * 20
            plotted = np.zeros((2, 20, 2))
            for row in panel:
                plotted[int(row["gaussian"]), int(row["probe"])] = float(row["pc1"]), float(row["pc2"])
            # Independently: the eigenvectors of the covariance of the 40 means, largest eigenvalues first.
            points = means[e].reshape(40, 3).astype(float)
            centred = points - points.mean(0)
            _, eigenvectors = np.linalg.eigh(centred.T @ centred)  # eigenvalues in ascending order
            expected = (centred @ eigenvectors[:, ::-1][:, :2]).reshape(2, 20, 2)
            for k in range(2):  # a component's sign is arbitrary
                sign = np.sign(np.sum(expected[..., k] * plotted[..., k]))
                np.testing.assert_allclose(plotted[..., k], sign * expected[..., k], atol=1e-5)
            # The spread by hand: the distance between the two means, averaged over the probe states.
            spread = np.mean([np.linalg.norm(means[e, 0, p] - means[e, 1, p]) for p in range(20)])
            (row,) = [row for row in spread_rows if row["variant"] == variant and int(row["step"]) == step]
            assert float(row["spread"]) == pytest.approx(spread, rel=1e-5)
    table = (out / "fig8_Hopper-v4.md").read_text()
    final = [row for row in spread_rows if row["variant"] == "temperature-10" and row["step"] == "400"]
    assert f"| temperature 10 | 1 | 400 | {float(final[0]['spread']):.3f} |" in table  # one seed: no std


def test_auto_temperature_table_and_curves_hold_what_the_runs_logged(shared_grid):
    out, _ = shared_grid
    assert (out / "auto_temperature_Hopper-v4.png").stat().st_size > 1000
    rows = {row["method"]: row for row in read_rows(out / "auto_temperature.csv")}
    assert set(rows) == {"preset", "auto"}
    for method, row in rows.items():
        run_dir = run_directory(out, f"Hopper-v4__{method}__1")
        returns = event_scalars(run_dir, "eval/episodic_return")
        temperatures = event_scalars(run_dir, "charts/temperature")
        d_var = event_scalars(run_dir, "charts/mean_d_var")
        assert int(row["final_step"]) == max(returns) == 400
        assert float(row["final_return"]) == pytest.approx(returns[400], rel=1e-6)
        assert float(row["final_temperature"]) == pytest.approx(temperatures[max(temperatures)], rel=1e-6)
        window = 40  # 10% of the budget: the mean of the values logged in (360, 400]
        expected = np.mean([value for step, value in d_var.items() if step > 400 - window])
        assert float(row["final_mean_d_var"]) == pytest.approx(expected, rel=1e-6)
    target = event_scalars(run_directory(out, "Hopper-v4__auto__1"), "charts/temperature_target")
    assert float(rows["auto"]["temperature_target"]) == pytest.approx(target[max(target)], rel=1e-6)
    assert rows["preset"]["temperature_target"] == "nan"
    assert float(rows["preset"]["final_temperature"]) == pytest.approx(0.01, rel=1e-5)  # Hopper's schedule ends there
    table = (out / "auto_temperature.md").read_text()
    preset, auto = (f"{float(rows[method]['final_return']):,.0f}" for method in ("preset", "auto"))
    assert f"| Hopper-v4 | {preset} | {auto} | 1, 1 | – |" in table
    curves = read_rows(out / "auto_temperature_Hopper-v4.csv")
    plotted = {(row["panel"], row["curve"], int(row["step"])): float(row["mean"]) for row in curves}
    temperatures = event_scalars(run_directory(out, "Hopper-v4__auto__1"), "charts/temperature")
    assert {step: plotted[("temperature", "auto", step)] for step in temperatures} == pytest.approx(temperatures)


def test_fig8_after_auto_temperature_ran_only_the_two_new_runs(shared_grid):
    out, started = shared_grid  # run id -> when its COMMAND was written, after each experiment
    assert set(started["auto-temperature"]) == {"Hopper-v4__preset__1", "Hopper-v4__auto__1"}
    new = {"Hopper-v4__temperature-0__1", "Hopper-v4__temperature-10__1"}
    assert set(started["fig8"]) == set(started["auto-temperature"]) | new
    for run_id in ("Hopper-v4__preset__1", "Hopper-v4__auto__1"):
        assert started["fig8"][run_id] == started["auto-temperature"][run_id]  # not started again
    assert all((out / "runs" / run_id / reproduce.DONE).exists() for run_id in started["fig8"])
    log = (out / "runs" / "Hopper-v4__preset__1" / "train.log").read_text()
    assert len(re.findall(r"^--- \d{4}-", log, flags=re.MULTILINE)) == 1  # one attempt: fig8 found it finished
