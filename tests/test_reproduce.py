"""benchmarks/reproduce.py on tiny grids: the table against hand computations, the evaluation schedule,
resuming interrupted runs (local pool and SLURM), the SLURM script.

The runs here are a stand-in script with the real scripts' run control (checkpoint.pt, the interruption's exit
status 75, --resume); tests/test_reproduce_resume.py interrupts and resumes a real training script.
"""

import importlib.util
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("reproduce", os.path.join(REPO_ROOT, "benchmarks", "reproduce.py"))
reproduce = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reproduce)

# A stand-in training script with the real scripts' command line and run control. It takes one "episode" every
# 10 steps, logs eval/episodic_return (and eval/success_rate on Fetch) every --eval-freq steps, writes
# checkpoint.pt (JSON here) every --checkpoint-freq steps at an episode's end, and on SIGTERM, SIGUSR1 or SIGINT
# checkpoints at the episode's end and exits 75. `--resume RUN_DIR` continues after the checkpoint's step.
# Each attempt appends "<cell> <first step>" to calls.txt next to it. Files next to it steer it: crash-<cell>
# makes it exit 1 half-way; slow makes every step take 10 ms.
FAKE_SCRIPT = textwrap.dedent("""
    import argparse, json, os, signal, sys, time
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    parser = argparse.ArgumentParser()
    for flag in ("--env-id", "--runs-dir", "--n-actors", "--n-components", "--resume"):
        parser.add_argument(flag)
    for flag in ("--seed", "--total-timesteps", "--eval-freq", "--eval-episodes", "--learning-starts"):
        parser.add_argument(flag, type=int)
    parser.add_argument("--checkpoint-freq", type=int, default=50)
    args = parser.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    if args.resume:
        run_dir = args.resume
        with open(os.path.join(run_dir, "hyperparameters.json")) as f:
            args = argparse.Namespace(**json.load(f))
        with open(os.path.join(run_dir, "checkpoint.pt")) as f:
            start = json.load(f)["step"] + 1
        if start > args.total_timesteps:
            print(f"{run_dir} already finished; nothing to do.")
            sys.exit(0)
    else:
        name = f"{args.env_id}__{os.path.basename(__file__)[:-3]}__{args.seed}__{int(time.time())}"
        run_dir = os.path.join(args.runs_dir, name)
        os.makedirs(run_dir)
        args.total_timesteps = args.total_timesteps or 1000
        with open(os.path.join(run_dir, "hyperparameters.json"), "w") as f:
            json.dump(vars(args), f)
        start = 1
    cell = os.path.basename(args.runs_dir)
    with open(os.path.join(here, "calls.txt"), "a") as f:
        f.write(f"{cell} {start}\\n")
    received = []
    for signum in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: received.append(signum))

    def checkpoint(step):
        with open(os.path.join(run_dir, "checkpoint.tmp"), "w") as f:
            json.dump({"step": step}, f)
        os.replace(os.path.join(run_dir, "checkpoint.tmp"), os.path.join(run_dir, "checkpoint.pt"))

    writer = EventFileWriter(run_dir)
    if start > 1:  # as SummaryWriter(purge_step=start): readers drop what was logged after the checkpoint
        restart = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
        writer.add_event(event_pb2.Event(step=start, session_log=restart))
    slow = os.path.exists(os.path.join(here, "slow"))
    for step in range(start, args.total_timesteps + 1):
        if slow:
            time.sleep(0.01)
        if step % args.eval_freq == 0:
            value = args.seed * 100.0 * step / args.total_timesteps
            tags = [("eval/episodic_return", value)]
            tags += [("eval/success_rate", value / 1000)] if "Fetch" in args.env_id else []
            values = [summary_pb2.Summary.Value(tag=tag, simple_value=v) for tag, v in tags]
            summary = summary_pb2.Summary(value=values)
            writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))
            writer.flush()
        if step == args.total_timesteps // 2 and os.path.exists(os.path.join(here, "crash-" + cell)):
            sys.exit("simulated crash")
        if step % 10 == 0 and (step % args.checkpoint_freq == 0 or received):
            checkpoint(step)
            if received:
                writer.close()
                print(f"interrupted at step {step}; resume with: python {__file__} --resume {run_dir}")
                sys.exit(75)
    checkpoint(args.total_timesteps)
    writer.close()
""")


def fake_repo(tmp_path, scripts=("gamid_continuous_action", "td3_baseline")):
    repo = tmp_path / "repo"
    repo.mkdir()
    for script in scripts:
        (repo / f"{script}.py").write_text(FAKE_SCRIPT)
    return repo


def calls(repo) -> list[tuple[str, int]]:
    """(cell, first step) of every attempt so far."""
    path = repo / "calls.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(line.split()[0], int(line.split()[1])) for line in lines]


def eval_steps(cell_dir) -> list[int]:
    return reproduce.read_curve(str(cell_dir))[1].tolist()


def wait_for(condition, seconds=60.0):
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


# --- Welch's t-test ------------------------------------------------------------------------------


def student_t_two_sided_p(t: float, df: float) -> float:
    """Independent check: 2 * integral of the Student-t density from |t| to infinity (x = |t| / u, u in (0, 1])."""
    u = np.linspace(1e-9, 1.0, 2_000_001)
    x = abs(t) / u
    density = (
        math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2))
        / math.sqrt(df * math.pi)
        * (1 + x * x / df) ** (-(df + 1) / 2)
    )
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


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """Independent check: I_x(a, b) by its continued fraction (modified Lentz; Numerical Recipes §6.4)."""
    if x <= 0 or x >= 1:
        return float(x >= 1)
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast on this side only
        return 1 - regularized_incomplete_beta(b, a, 1 - x)
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        even_term = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        odd_term = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        for term in (even_term, odd_term):
            d = 1 + term * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + term / c
            c = c if abs(c) > tiny else tiny
            h *= c * d
        if abs(c * d - 1) < 1e-15:
            break
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    return math.exp(log_front) * h / a


def test_welch_p_value_matches_the_incomplete_beta_function():
    # The two-sided p of Student's t is P(|T_df| >= |t|) = I_{df / (df + t^2)}(df / 2, 1 / 2).
    assert regularized_incomplete_beta(1.0, 1.0, 0.3) == pytest.approx(0.3)  # I_x(1, 1) = x
    assert regularized_incomplete_beta(2.0, 0.5, 0.5) == pytest.approx(1 - 1.25 * math.sqrt(0.5))  # by hand
    rng = np.random.default_rng(2)
    for n, m in ((2, 2), (3, 5), (5, 5), (10, 4), (30, 7)):
        a, b = rng.normal(0, 1, n), rng.normal(0.5, 3, m)
        t, df, p = reproduce.welch_t_test(a, b)
        assert p == pytest.approx(regularized_incomplete_beta(df / 2, 0.5, df / (df + t * t)), rel=1e-9)


def test_welch_p_value_matches_scipy_when_installed():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n, m in ((2, 2), (3, 5), (5, 5), (10, 4)):
        a, b = rng.normal(0, 1, n), rng.normal(0.5, 3, m)
        assert reproduce.welch_t_test(a, b)[2] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9)


# --- the table from logs -------------------------------------------------------------------------------------


def test_table_numbers_equal_hand_computation(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    scripts = ("gamid_continuous_action", "td3_baseline", "gamid_her_fetch")
    repo = fake_repo(tmp_path, scripts)
    out = str(tmp_path / "out")
    args = reproduce.Args(
        scripts=scripts, tasks=("Hopper-v4", "FetchPush-v4"), seeds=(1, 2, 3), total_timesteps=2000, repo_root=str(repo)
    )
    runs, missing = reproduce.build_grid(args, out)
    reproduce.write_manifest(runs, missing, args.tasks, out)
    assert missing == [] and {(r.task, r.column) for r in runs} == {
        ("Hopper-v4", "Gamid"),
        ("Hopper-v4", "TD3"),
        ("FetchPush-v4", "Gamid"),
        ("FetchPush-v4", "TD3"),
    }
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
            reproduce.record_exit(run, out, 0)
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
    assert lines[0] == "| task | TD3 | SAC | SACM | PMOE | PPO | Gamid | p (Gamid vs TD3) |"
    p_hopper = summary["tasks"]["Hopper-v4"]["p_gamid_vs_td3"]
    p_push = summary["tasks"]["FetchPush-v4"]["p_gamid_vs_td3"]
    assert lines[2] == (
        "| Hopper-v4 | 3,000 ± 100 (paper 3,392 ± 125) | not run (paper 3,027 ± 664) | not run (paper 2,848 ± 677) "
        "| not run (paper 2,900 ± 461) | not run (paper 918 ± 156) | **3,200 ± 200** (paper 3,301 ± 209) "
        f"| {p_hopper:.3f} |"
    )
    assert lines[3] == (
        "| FetchPush-v4 | 0.40 ± 0.14 (n=2 of 3) (paper 0.34 ± 0.43) | not run (paper 0.99 ± 0.02) "
        f"| not run (paper 0.99 ± 0.02) | n/a | n/a | **0.90 ± 0.10** (paper 0.95 ± 0.05) | {p_push:.3f} |"
    )
    assert "FetchPush-v4__td3-her__3" in table  # the unfinished run is named, not counted
    csv_lines = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 11
    for task in ("Hopper-v4", "FetchPush-v4"):
        assert (tmp_path / "out" / f"curves_{task}.png").stat().st_size > 1000


def test_every_column_says_why_it_has_no_number(tmp_path):
    # PPO's and the Fetch scripts do not exist; SAC's runs all fail, one of SACM's; PMOE's never run;
    # SAC+HER is not selected.
    repo = fake_repo(tmp_path, ("td3_baseline", "gamid_continuous_action", "pmoe_baseline", "sacm_baseline"))
    for cell in ("Hopper-v4__sac__1", "Hopper-v4__sac__2", "Hopper-v4__sacm__2"):
        (repo / f"crash-{cell}").touch()
    out = tmp_path / "out"
    args = reproduce.Args(
        scripts=("td3_baseline", "gamid_continuous_action", "sacm_baseline", "ppo_baseline", "gamid_her_fetch"),
        tasks=("Hopper-v4", "FetchSlide-v4"),
        seeds=(1, 2),
        total_timesteps=100,
        eval_freq=50,
        workers=2,
        out_dir=str(out),
        repo_root=str(repo),
    )
    assert reproduce.main(args) == 1  # the SAC runs failed
    pmoe_runs, _ = reproduce.build_grid(reproduce.Args(**{**args.__dict__, "scripts": ("pmoe_baseline",)}), str(out))
    reproduce.write_manifest(pmoe_runs, [], args.tasks, str(out))  # in the grid, never run
    summary = reproduce.summarize(str(out))
    cells = summary["tasks"]["Hopper-v4"]["cells"]
    assert cells["TD3"]["values"] == [100.0, 200.0] and cells["Gamid"]["values"] == [100.0, 200.0]
    assert cells["SAC"]["status"] == "failed (2 of 2 runs; see runs/Hopper-v4__sac__1/train.log)"
    assert cells["SACM"]["values"] == [100.0]
    assert "| 100 ± – (n=1 of 2, 1 failed) (paper 2,848 ± 677) |" in summary["table"].splitlines()[2]
    assert cells["PMOE"]["status"] == "unfinished (0 of 2 runs)"
    assert cells["PPO"]["status"] == "missing: ppo_baseline.py not found"
    fetch = summary["tasks"]["FetchSlide-v4"]["cells"]
    assert [fetch[c]["status"] for c in ("PMOE", "PPO")] == ["n/a", "n/a"]
    assert fetch["TD3"]["status"] == fetch["Gamid"]["status"] == "missing: gamid_her_fetch.py not found"
    assert fetch["SAC"]["status"] == "not run"  # sacm_her_fetch was not selected
    row = summary["table"].splitlines()[3]
    assert row.startswith("| FetchSlide-v4 | missing: gamid_her_fetch.py not found (paper 0.13 ± 0.18) | not run")
    assert "| n/a | n/a |" in row
    assert (out / "runs" / "Hopper-v4__sac__1" / reproduce.FAILED).read_text() == "exit 1\n"


# --- evaluation schedule -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "total, task, expected",
    [
        (None, "Hopper-v4", 10_000),  # the paper's 1M steps: every 10k, 100 evaluations
        (None, "Humanoid-v4", 10_000),  # 2M: every 10k, 200 evaluations
        (1_000_000, "Hopper-v4", 10_000),
        (200_000, "Hopper-v4", 4_000),  # a short budget: 50 evaluations
        (2_000, "FetchPush-v4", 40),
        (30, "Hopper-v4", 1),
    ],
)
def test_runs_evaluate_at_least_50_times_and_at_least_every_10k_steps(tmp_path, total, task, expected):
    args = reproduce.Args(total_timesteps=total)
    assert reproduce.eval_freq(args, task) == expected
    budget = total or reproduce.PAPER_BUDGET.get(task, 1_000_000)
    assert budget // expected >= min(50, budget) and expected <= 10_000  # 30 steps: 30 evaluations
    script = "gamid_her_fetch" if task.startswith("Fetch") else "td3_baseline"
    repo = fake_repo(tmp_path, (script,))
    grid = reproduce.Args(scripts=(script,), tasks=(task,), seeds=(1,), total_timesteps=total, repo_root=str(repo))
    runs, _ = reproduce.build_grid(grid, str(tmp_path / "out"))
    argv = runs[-1].argv
    assert argv[argv.index("--eval-freq") + 1] == str(expected)
    assert reproduce.eval_freq(reproduce.Args(total_timesteps=total, eval_freq=123), task) == 123


def test_grid_covers_the_six_columns_and_nine_rows(tmp_path):
    repo = fake_repo(tmp_path, tuple(reproduce.VARIANTS))
    runs, missing = reproduce.build_grid(reproduce.Args(seeds=(1,), repo_root=str(repo)), str(tmp_path / "out"))
    cells = {(run.task, run.column): run.argv for run in runs}
    assert missing == [] and len(cells) == len(runs) == 6 * 6 + 3 * 4  # Fetch rows: no PMOE, no PPO
    for (task, column), argv in cells.items():
        script = {
            ("TD3", False): "td3_baseline.py",
            ("Gamid", False): "gamid_continuous_action.py",
            ("SAC", False): "sacm_baseline.py",
            ("SACM", False): "sacm_baseline.py",
            ("PMOE", False): "pmoe_baseline.py",
            ("PPO", False): "ppo_baseline.py",
            ("TD3", True): "gamid_her_fetch.py",
            ("Gamid", True): "gamid_her_fetch.py",
            ("SAC", True): "sacm_her_fetch.py",
            ("SACM", True): "sacm_her_fetch.py",
        }[(column, task.startswith("Fetch"))]
        assert argv[0] == script
        flags = dict(zip(argv[1::2], argv[2::2]))
        if column in ("SAC", "SACM"):
            assert flags["--n-components"] == {"SAC": "1", "SACM": "3"}[column]
        if script == "gamid_her_fetch.py":
            assert ("--n-actors" in flags) == (column == "TD3")
    ppo = reproduce.build_grid(
        reproduce.Args(
            scripts=("ppo_baseline",), tasks=("Hopper-v4",), seeds=(1,), learning_starts=5, repo_root=str(repo)
        ),
        str(tmp_path / "out"),
    )[0][0]
    assert "--learning-starts" not in ppo.argv  # PPO has no replay buffer to fill


def test_missing_script_is_reported_and_marked(tmp_path, capsys):
    repo = fake_repo(tmp_path, ("td3_baseline",))
    args = reproduce.Args(
        scripts=("td3_baseline", "sacm_baseline"), tasks=("Hopper-v4",), seeds=(1,), repo_root=str(repo)
    )
    runs, missing = reproduce.build_grid(args, str(tmp_path / "out"))
    assert [r.run_id for r in runs] == ["Hopper-v4__td3__1"] and missing == ["sacm_baseline"]
    assert "sacm_baseline.py is not in" in capsys.readouterr().out


# --- resuming ------------------------------------------------------------------------------------------------


def test_rerun_skips_finished_runs_and_resumes_a_crashed_one_from_its_last_checkpoint(tmp_path):
    repo = fake_repo(tmp_path)
    out = tmp_path / "out"
    args = reproduce.Args(
        scripts=("gamid_continuous_action", "td3_baseline"),
        tasks=("Hopper-v4",),
        seeds=(1, 2),
        total_timesteps=1000,
        workers=2,
        checkpoint_freq=100,
        out_dir=str(out),
        repo_root=str(repo),
    )
    (repo / "crash-Hopper-v4__td3__2").touch()  # this run dies at step 500, after evaluating, before checkpointing
    assert reproduce.main(args) == 1
    assert sorted(calls(repo)) == [(f"Hopper-v4__{m}__{s}", 1) for m in ("gamid", "td3") for s in (1, 2)]
    crashed = out / "runs" / "Hopper-v4__td3__2"
    assert not (crashed / reproduce.DONE).exists() and (crashed / reproduce.FAILED).read_text() == "exit 1\n"
    finished_marker = out / "runs" / "Hopper-v4__gamid__1" / reproduce.DONE
    stamp = finished_marker.stat().st_mtime_ns

    (repo / "crash-Hopper-v4__td3__2").unlink()
    assert reproduce.main(args) == 0
    assert calls(repo)[4:] == [("Hopper-v4__td3__2", 401)]  # only the crashed run ran, from its last checkpoint
    assert "--resume" in (crashed / "train.log").read_text()
    assert (crashed / reproduce.DONE).exists() and not (crashed / reproduce.FAILED).exists()
    assert finished_marker.stat().st_mtime_ns == stamp
    assert eval_steps(crashed) == list(range(20, 1001, 20))  # one curve, steps 420-500 once (purged, logged again)
    summary = reproduce.summarize(str(out))
    assert summary["tasks"]["Hopper-v4"]["cells"]["TD3"]["values"] == [100.0, 200.0]  # seed * 100 at the end

    assert reproduce.main(args) == 0  # nothing left to do
    assert len(calls(repo)) == 5
    args.total_timesteps = 2000  # another budget is another command: those runs start again from step 1
    assert reproduce.main(args) == 0
    assert calls(repo)[5:] and all(step == 1 for _, step in calls(repo)[5:]) and len(calls(repo)) == 9


def test_ctrl_c_on_the_pool_checkpoints_the_runs_and_the_rerun_resumes_them(tmp_path):
    repo = fake_repo(tmp_path)
    (repo / "slow").touch()  # 10 ms per step: 10 s per run, interrupted long before the end
    out = tmp_path / "out"
    command = [sys.executable, os.path.join(REPO_ROOT, "benchmarks", "reproduce.py"), "--out-dir", str(out)]
    command += ["--repo-root", str(repo), "--scripts", "gamid_continuous_action", "td3_baseline"]
    command += ["--tasks", "Hopper-v4", "--seeds", "1", "--total-timesteps", "1000", "--workers", "2"]
    command += ["--checkpoint-freq", "100"]
    pool = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cells = [out / "runs" / f"Hopper-v4__{method}__1" for method in ("gamid", "td3")]
    wait_for(lambda: all(list(cell.glob("*/checkpoint.pt")) for cell in cells))
    pool.send_signal(signal.SIGINT)  # as Ctrl-C, but to the pool only: it must pass the signal on
    output, _ = pool.communicate(timeout=60)
    assert pool.returncode == reproduce.INTERRUPTED_EXIT_CODE, output
    assert "interrupted: run the same command again to resume" in output
    stopped_at = {}
    for cell in cells:
        assert not (cell / reproduce.DONE).exists() and not (cell / reproduce.FAILED).exists()
        assert "interrupted at step" in (cell / "train.log").read_text()
        (checkpoint,) = cell.glob("*/checkpoint.pt")
        stopped_at[cell.name] = json.loads(checkpoint.read_text())["step"]
        assert 100 <= stopped_at[cell.name] < 1000

    (repo / "slow").unlink()
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "running 2 (2 resumed from their checkpoint)" in rerun.stdout
    resumed = dict(calls(repo)[2:])
    assert resumed == {name: step + 1 for name, step in stopped_at.items()}  # carried on, not from step 1
    for cell in cells:
        assert (cell / reproduce.DONE).exists()
        assert len(list(cell.glob("*/hyperparameters.json"))) == 1  # the same run directory
        assert eval_steps(cell) == list(range(20, 1001, 20))
        assert "--resume" in (cell / "train.log").read_text()


# --- SLURM ---------------------------------------------------------------------------------------------------


def write_grid(tmp_path, repo, **overrides):
    out = tmp_path / "out"
    python_dir = shlex.quote(os.path.dirname(sys.executable))
    settings = dict(
        scripts=("gamid_continuous_action", "td3_baseline", "sacm_baseline"),
        tasks=("Hopper-v4", "Walker2d-v4"),
        seeds=(1, 2, 3),
        total_timesteps=1000,
        slurm=True,
        out_dir=str(out),
        repo_root=str(repo),
        slurm_setup=f"export PATH={shlex.quote(str(tmp_path / 'bin'))}:{python_dir}:$PATH",
    )
    assert reproduce.main(reproduce.Args(**settings | overrides)) == 0
    # A stand-in scontrol that records its arguments, as the cluster's would requeue the task.
    (tmp_path / "bin").mkdir(exist_ok=True)
    scontrol = tmp_path / "bin" / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {shlex.quote(str(tmp_path / "scontrol.txt"))}\n')
    scontrol.chmod(0o755)
    return out


def test_slurm_script_is_well_formed_and_runs_one_command_per_index(tmp_path):
    repo = fake_repo(tmp_path, ("gamid_continuous_action", "td3_baseline", "sacm_baseline"))
    out = write_grid(tmp_path, repo)
    assert calls(repo) == []  # written, not run
    runs = reproduce.read_manifest(str(out))["runs"]
    n = len(runs)
    assert n == 4 * 2 * 3  # gamid, td3, sac, sacm x 2 tasks x 3 seeds
    script = (out / "grid.sbatch").read_text()
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    directives = [line for line in lines if line.startswith("#SBATCH")]
    assert lines[1 : 1 + len(directives)] == directives  # all directives before the first command
    assert f"#SBATCH --array=0-{n - 1}" in directives
    assert {"#SBATCH --signal=B:USR1@300", "#SBATCH --requeue", "#SBATCH --open-mode=append"} <= set(directives)
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
    env = os.environ | {"SLURM_ARRAY_TASK_ID": "5", "SLURM_JOB_ID": "1005"}
    subprocess.run(["bash", str(out / "grid.sbatch")], check=True, env=env, capture_output=True)
    assert calls(repo) == [(runs[5].run_id, 1)]
    assert reproduce.is_finished(runs[5], str(out))
    again = subprocess.run(["bash", str(out / "grid.sbatch")], check=True, env=env, capture_output=True, text=True)
    assert "already finished" in again.stdout and calls(repo) == [(runs[5].run_id, 1)]
    bad = subprocess.run(["bash", str(out / "grid.sbatch")], env=env | {"SLURM_ARRAY_TASK_ID": str(n)})
    assert bad.returncode != 0

    (repo / f"crash-{runs[6].run_id}").touch()
    crashed = subprocess.run(["bash", str(out / "grid.sbatch")], env=env | {"SLURM_ARRAY_TASK_ID": "6"})
    assert crashed.returncode == 1 and (out / "runs" / runs[6].run_id / reproduce.FAILED).read_text() == "exit 1\n"
    assert not (tmp_path / "scontrol.txt").exists()  # a failed run is not requeued


def test_slurm_warning_signal_checkpoints_requeues_and_the_requeued_task_resumes(tmp_path):
    repo = fake_repo(tmp_path, ("td3_baseline",))
    out = write_grid(tmp_path, repo, scripts=("td3_baseline",), tasks=("Hopper-v4",), seeds=(1,), checkpoint_freq=100)
    (repo / "slow").touch()
    env = os.environ | {"SLURM_ARRAY_TASK_ID": "0", "SLURM_JOB_ID": "4242"}
    task = subprocess.Popen(["bash", str(out / "grid.sbatch")], env=env, stdout=subprocess.PIPE, text=True)
    cell = out / "runs" / "Hopper-v4__td3__1"
    wait_for(lambda: list(cell.glob("*/checkpoint.pt")))
    task.send_signal(signal.SIGUSR1)  # what --signal=B:USR1@300 sends to the batch shell
    output, _ = task.communicate(timeout=60)
    assert task.returncode == reproduce.INTERRUPTED_EXIT_CODE, output
    assert (tmp_path / "scontrol.txt").read_text() == "requeue 4242\n"
    (checkpoint,) = cell.glob("*/checkpoint.pt")
    stopped_at = json.loads(checkpoint.read_text())["step"]
    assert 100 <= stopped_at < 1000 and not (cell / reproduce.FAILED).exists()

    (repo / "slow").unlink()
    requeued = subprocess.run(["bash", str(out / "grid.sbatch")], env=env, capture_output=True, text=True)
    assert requeued.returncode == 0, requeued.stdout + requeued.stderr
    assert calls(repo) == [("Hopper-v4__td3__1", 1), ("Hopper-v4__td3__1", stopped_at + 1)]
    assert "--resume" in requeued.stdout
    assert eval_steps(cell) == list(range(20, 1001, 20)) and (cell / reproduce.DONE).exists()


@pytest.mark.parametrize(
    "overrides, sentence",
    [
        ({"workers": 0}, "--workers must be at least 1, got 0."),
        ({"seeds": ()}, "--seeds and --tasks each need at least one value."),
        ({"total_timesteps": 0}, "--total-timesteps must be positive, got 0."),
        ({"eval_freq": -5}, "--eval-freq must be positive, got -5."),
        ({"scripts": ("td3",)}, "Unknown script 'td3'; choose from " + ", ".join(reproduce.VARIANTS) + "."),
    ],
)
def test_bad_input_gets_one_sentence_before_anything_runs(tmp_path, overrides, sentence):
    repo = fake_repo(tmp_path)
    args = reproduce.Args(tasks=("Hopper-v4",), out_dir=str(tmp_path / "out"), repo_root=str(repo))
    with pytest.raises(SystemExit) as error:
        reproduce.main(reproduce.Args(**args.__dict__ | overrides))
    assert str(error.value) == sentence and calls(repo) == []
