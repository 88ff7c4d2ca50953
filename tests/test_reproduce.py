"""benchmarks/reproduce.py on tiny grids: the table against hand computations, resuming, the SLURM script."""

import importlib.util
import math
import os
import re
import shlex
import subprocess
import sys
import textwrap

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("reproduce", os.path.join(REPO_ROOT, "benchmarks", "reproduce.py"))
reproduce = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reproduce)

# A stand-in training script: logs eval/episodic_return (and for Fetch eval/success_rate) like the real
# ones, counts its calls in calls.txt next to it, and crashes half-way when a file crash-<run name> exists.
FAKE_SCRIPT = textwrap.dedent('''
    import argparse, os, sys, time
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    parser = argparse.ArgumentParser()
    for flag in ("--env-id", "--runs-dir", "--n-actors", "--n-components"):
        parser.add_argument(flag)
    for flag in ("--seed", "--total-timesteps", "--eval-freq", "--eval-episodes", "--learning-starts"):
        parser.add_argument(flag, type=int)
    args = parser.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    name = f"{args.env_id}__{os.path.basename(__file__)[:-3]}__{args.seed}"
    with open(os.path.join(here, "calls.txt"), "a") as f:
        f.write(os.path.basename(args.runs_dir) + "\\n")
    writer = EventFileWriter(os.path.join(args.runs_dir, name + "__1"))
    total = args.total_timesteps or 1000
    for step in range(args.eval_freq, total + 1, args.eval_freq):
        value = args.seed * 100.0 * step / total
        tags = [("eval/episodic_return", value)] + ([("eval/success_rate", value / 1000)] if "Fetch" in args.env_id else [])
        writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag=tag, simple_value=v) for tag, v in tags])))
        writer.flush()
        if os.path.exists(os.path.join(here, "crash-" + os.path.basename(args.runs_dir))):
            sys.exit("simulated crash")
    writer.close()
''')


def fake_repo(tmp_path, scripts=("gamid_continuous_action", "td3_baseline")):
    repo = tmp_path / "repo"
    repo.mkdir()
    for script in scripts:
        (repo / f"{script}.py").write_text(FAKE_SCRIPT)
    return repo


def calls(repo) -> list[str]:
    path = repo / "calls.txt"
    return path.read_text().split() if path.exists() else []


# --- Welch's t-test ------------------------------------------------------------------------------

def student_t_two_sided_p(t: float, df: float) -> float:
    """Independent check: 2 * integral of the Student-t density from |t| to infinity (x = |t| / u, u in (0, 1])."""
    u = np.linspace(1e-9, 1.0, 2_000_001)
    x = abs(t) / u
    density = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi) * (1 + x * x / df) ** (-(df + 1) / 2)
    return 2 * np.trapezoid(density * abs(t) / u**2, u)


def test_welch_p_value_matches_closed_form_and_integration():
    # Equal n and variances give df = 2(n - 1); for df = 2 the two-sided p is 1 - |t| / sqrt(2 + t^2).
    t, df, p = reproduce.welch_t_test([0.0, 2.0], [3.0, 5.0])
    assert (t, df) == pytest.approx((-3 / math.sqrt(2), 2.0))
    assert p == pytest.approx(1 - abs(t) / math.sqrt(2 + t * t), rel=1e-10)
    # Unequal variances (non-integer df): against the textbook formulas and a numerical integral.
    a, b = np.array([3000.0, 3200.0, 3400.0, 3350.0]), np.array([2900.0, 3000.0, 3050.0])
    t, df, p = reproduce.welch_t_test(a, b)
    va, vb = a.var(ddof=1) / 4, b.var(ddof=1) / 3
    assert t == pytest.approx((a.mean() - b.mean()) / math.sqrt(va + vb))
    assert df == pytest.approx((va + vb) ** 2 / (va**2 / 3 + vb**2 / 2))
    assert p == pytest.approx(student_t_two_sided_p(t, df), rel=1e-6)
    assert math.isnan(reproduce.welch_t_test([1.0], [2.0, 3.0])[2])  # one run: no test


def test_welch_p_value_matches_scipy_when_installed():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n, m in ((2, 2), (3, 5), (5, 5), (10, 4)):
        a, b = rng.normal(0, 1, n), rng.normal(0.5, 3, m)
        assert reproduce.welch_t_test(a, b)[2] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9)


# --- the table from logs -------------------------------------------------------------------------

def test_table_numbers_equal_hand_computation(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    repo = fake_repo(tmp_path, ("gamid_continuous_action", "td3_baseline", "gamid_her_fetch"))
    out = str(tmp_path / "out")
    args = reproduce.Args(scripts=("gamid_continuous_action", "td3_baseline", "gamid_her_fetch"),
                          tasks=("Hopper-v4", "FetchPush-v4"), seeds=(1, 2, 3), total_timesteps=2000, repo_root=str(repo))
    runs = reproduce.build_grid(args, out)
    reproduce.write_manifest(runs, out)
    assert {(r.task, r.column) for r in runs} == {("Hopper-v4", "Gamid"), ("Hopper-v4", "TD3"),
                                                  ("FetchPush-v4", "Gamid"), ("FetchPush-v4", "TD3")}
    finals = {  # (task, method) -> final value per seed; None: the run did not finish
        ("Hopper-v4", "gamid"): [3000.0, 3200.0, 3400.0],
        ("Hopper-v4", "td3"): [2900.0, 3000.0, 3100.0],
        ("FetchPush-v4", "gamid-her"): [0.9, 1.0, 0.8],
        ("FetchPush-v4", "td3-her"): [0.3, 0.5, None],
    }
    for run in runs:
        final = finals[(run.task, run.method)][run.seed - 1]
        writer = SummaryWriter(os.path.join(run.dir(out), "x"))
        tag = "eval/success_rate" if run.task.startswith("Fetch") else "eval/episodic_return"
        writer.add_scalar(tag, -1.0, 1000)  # an earlier evaluation: not the final one
        if run.task.startswith("Fetch"):
            writer.add_scalar("eval/episodic_return", -50.0, 2000)  # Fetch reports the success rate, not the return
        if final is not None:
            writer.add_scalar(tag, final, 2000)
            with open(os.path.join(run.dir(out), reproduce.DONE), "w") as f:
                f.write(reproduce.done_text(run) + "\n")
        writer.close()

    summary = reproduce.summarize(out)
    for (task, method), values in finals.items():
        column = {"gamid": "Gamid", "td3": "TD3", "gamid-her": "Gamid", "td3-her": "TD3"}[method]
        done = np.array([v for v in values if v is not None])
        cell = summary["tasks"][task]["cells"][column]
        assert cell["n"] == len(done)
        assert cell["mean"] == pytest.approx(done.mean(), rel=1e-6)
        assert cell["std"] == pytest.approx(np.sqrt(((done - done.mean()) ** 2).sum() / (len(done) - 1)), rel=1e-6)
    for task, gamid, td3 in (("Hopper-v4", "gamid", "td3"), ("FetchPush-v4", "gamid-her", "td3-her")):
        a = np.array([v for v in finals[(task, gamid)] if v is not None])
        b = np.array([v for v in finals[(task, td3)] if v is not None])
        se2 = a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)
        t = (a.mean() - b.mean()) / math.sqrt(se2)
        df = se2**2 / ((a.var(ddof=1) / len(a)) ** 2 / (len(a) - 1) + (b.var(ddof=1) / len(b)) ** 2 / (len(b) - 1))
        assert summary["tasks"][task]["p_gamid_vs_td3"] == pytest.approx(student_t_two_sided_p(t, df), rel=1e-5)

    table = (tmp_path / "out" / "table.md").read_text()
    lines = table.splitlines()
    assert lines[0] == "| task | TD3 | Gamid | p (Gamid vs TD3) |"
    p_hopper = summary["tasks"]["Hopper-v4"]["p_gamid_vs_td3"]
    p_push = summary["tasks"]["FetchPush-v4"]["p_gamid_vs_td3"]
    assert lines[2] == f"| Hopper-v4 | 3,000 ± 100 | **3,200 ± 200** | {p_hopper:.3f} |"
    assert lines[3] == f"| FetchPush-v4 | 0.40 ± 0.14 (n=2) | **0.90 ± 0.10** | {p_push:.3f} |"
    assert "FetchPush-v4__td3-her__3" in table  # the unfinished run is named, not counted
    csv_lines = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 11
    for task in ("Hopper-v4", "FetchPush-v4"):
        assert (tmp_path / "out" / f"curves_{task}.png").stat().st_size > 1000


# --- resuming ------------------------------------------------------------------------------------

def test_interrupted_grid_resumes_without_redoing_finished_runs(tmp_path):
    repo = fake_repo(tmp_path)
    out = tmp_path / "out"
    args = reproduce.Args(scripts=("gamid_continuous_action", "td3_baseline"), tasks=("Hopper-v4",), seeds=(1, 2),
                          total_timesteps=1000, workers=2, out_dir=str(out), repo_root=str(repo))
    (repo / "crash-Hopper-v4__td3__2").touch()  # this run dies half-way, as if the grid was killed
    assert reproduce.main(args) == 1
    assert sorted(calls(repo)) == ["Hopper-v4__gamid__1", "Hopper-v4__gamid__2", "Hopper-v4__td3__1", "Hopper-v4__td3__2"]
    crashed = out / "runs" / "Hopper-v4__td3__2"
    assert not (crashed / reproduce.DONE).exists() and (crashed / "train.log").exists()
    (crashed / "stale-partial-file").touch()
    finished_marker = out / "runs" / "Hopper-v4__gamid__1" / reproduce.DONE
    stamp = finished_marker.stat().st_mtime_ns

    (repo / "crash-Hopper-v4__td3__2").unlink()
    assert reproduce.main(args) == 0
    assert calls(repo)[4:] == ["Hopper-v4__td3__2"]  # only the unfinished run ran again
    assert not (crashed / "stale-partial-file").exists()  # from a clean directory
    assert (crashed / reproduce.DONE).exists() and finished_marker.stat().st_mtime_ns == stamp
    summary = reproduce.summarize(str(out))
    assert summary["tasks"]["Hopper-v4"]["cells"]["TD3"]["values"] == [100.0, 200.0]  # seed * 100 at the last step

    assert reproduce.main(args) == 0  # nothing left to do
    assert len(calls(repo)) == 5
    args.total_timesteps = 2000  # another budget is another command: those runs are not finished
    assert reproduce.main(args) == 0
    assert len(calls(repo)) == 9


def test_missing_script_is_skipped_with_a_note(tmp_path, capsys):
    repo = fake_repo(tmp_path, ("td3_baseline",))
    args = reproduce.Args(scripts=("td3_baseline", "sacm_baseline"), tasks=("Hopper-v4",), seeds=(1,), repo_root=str(repo))
    runs = reproduce.build_grid(args, str(tmp_path / "out"))
    assert [r.run_id for r in runs] == ["Hopper-v4__td3__1"]
    assert "sacm_baseline.py is not in" in capsys.readouterr().out


# --- SLURM ---------------------------------------------------------------------------------------

def test_slurm_script_is_well_formed_and_runs_one_command_per_index(tmp_path):
    repo = fake_repo(tmp_path, ("gamid_continuous_action", "td3_baseline", "sacm_baseline"))
    out = tmp_path / "out"
    args = reproduce.Args(scripts=("gamid_continuous_action", "td3_baseline", "sacm_baseline"),
                          tasks=("Hopper-v4", "Walker2d-v4"), seeds=(1, 2, 3), total_timesteps=1000, slurm=True,
                          out_dir=str(out), repo_root=str(repo),
                          slurm_setup=f"export PATH={shlex.quote(os.path.dirname(sys.executable))}:$PATH")
    assert reproduce.main(args) == 0
    assert calls(repo) == []  # written, not run
    runs = reproduce.read_manifest(str(out))
    n = len(runs)
    assert n == 4 * 2 * 3  # gamid, td3, sac, sacm x 2 tasks x 3 seeds
    script = (out / "grid.sbatch").read_text()
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    directives = [line for line in lines if line.startswith("#SBATCH")]
    assert lines[1:1 + len(directives)] == directives  # all directives before the first command
    assert f"#SBATCH --array=0-{n - 1}" in directives
    arms = re.findall(r"^  (\d+)\) RUN_DIR=(\S+); set -- (.*) ;;$", script, flags=re.M)
    assert [int(i) for i, _, _ in arms] == list(range(n))  # each index exactly once, in order
    commands = (out / "commands.txt").read_text().splitlines()
    assert len(commands) == n
    for (i, run_dir, argv), run, command in zip(arms, runs, commands):
        assert shlex.split(argv) == run.argv and shlex.split(run_dir) == [run.dir(str(out))]
        assert shlex.split(command) == ["python", *run.argv]
    assert len({argv for _, _, argv in arms}) == n  # no two indices run the same thing
    subprocess.run(["bash", "-n", str(out / "grid.sbatch")], check=True)

    # Run array index 5 as SLURM would: it trains run 5 only and marks it finished for the summary.
    env = os.environ | {"SLURM_ARRAY_TASK_ID": "5"}
    subprocess.run(["bash", str(out / "grid.sbatch")], check=True, env=env, capture_output=True)
    assert calls(repo) == [runs[5].run_id]
    assert reproduce.is_finished(runs[5], str(out))
    again = subprocess.run(["bash", str(out / "grid.sbatch")], check=True, env=env, capture_output=True, text=True)
    assert "already finished" in again.stdout and calls(repo) == [runs[5].run_id]
    bad = subprocess.run(["bash", str(out / "grid.sbatch")], env=os.environ | {"SLURM_ARRAY_TASK_ID": str(n)})
    assert bad.returncode != 0
