"""benchmarks/reproduce.py with a real training script: Ctrl-C on the pool checkpoints the run, and running the
same grid again resumes it from that checkpoint instead of starting it again (tiny settings, Pendulum-v1)."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("reproduce", os.path.join(REPO_ROOT, "benchmarks", "reproduce.py"))
reproduce = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reproduce)

SCRIPT = "td3_baseline"
METHOD, COLUMN, _ = reproduce.VARIANTS[SCRIPT][0]
TOTAL, EVAL_FREQ, CHECKPOINT_FREQ = 2000, 500, 400  # Pendulum episodes are 200 steps


def checkpoint_step(run_dir) -> int:
    import torch

    return torch.load(os.path.join(run_dir, "checkpoint.pt"), map_location="cpu", weights_only=False)["step"]


def scalar_steps_by_file(run_dir: str, tag: str) -> list[list[int]]:
    """The steps of `tag` in each event file of the run directory, oldest file first (raw, before any purge)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    steps = []
    for name in sorted(n for n in os.listdir(run_dir) if n.startswith("events.out.tfevents.")):
        events = EventFileLoader(os.path.join(run_dir, name)).Load()
        steps.append([e.step for e in events if any(value.tag == tag for value in e.summary.value)])
    return steps


def test_ctrl_c_then_rerun_resumes_a_real_run_from_its_checkpoint(tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, os.path.join(REPO_ROOT, "benchmarks", "reproduce.py"), "--out-dir", str(out)]
    command += ["--scripts", SCRIPT, "--tasks", "Pendulum-v1", "--seeds", "1", "--total-timesteps", str(TOTAL)]
    command += ["--learning-starts", "200", "--eval-freq", str(EVAL_FREQ), "--eval-episodes", "1"]
    command += ["--checkpoint-freq", str(CHECKPOINT_FREQ), "--threads-per-run", "1"]
    command += ["--script-flags=--net-arch 32 32 --batch-size 32 --buffer-size 5000 --no-cuda"]
    pool = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cell = out / "runs" / f"Pendulum-v1__{METHOD}__1"
    deadline = time.time() + 120
    while not list(cell.glob("*/checkpoint.pt")):  # the run is training, past its first periodic checkpoint
        assert time.time() < deadline and pool.poll() is None, pool.stdout.read() if pool.poll() is not None else ""
        time.sleep(0.1)
    pool.send_signal(signal.SIGINT)  # Ctrl-C, sent to the pool only: the pool must pass it on
    output, _ = pool.communicate(timeout=120)
    log = (cell / "train.log").read_text()
    assert pool.returncode == reproduce.INTERRUPTED_EXIT_CODE, output + log
    assert "interrupted at step" in log and not (cell / reproduce.DONE).exists()
    (run_dir,) = cell.glob("*/checkpoint.pt")
    run_dir = run_dir.parent
    stopped_at = checkpoint_step(run_dir)
    assert CHECKPOINT_FREQ <= stopped_at < TOTAL and stopped_at % 200 == 0  # at an episode's end

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    log = (cell / "train.log").read_text()
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr + log
    assert "running 1 (1 resumed from their checkpoint)" in rerun.stdout
    assert f"--resume {run_dir}" in log
    assert [p.parent for p in cell.glob("*/hyperparameters.json")] == [run_dir]  # the same run, not a new one
    assert checkpoint_step(run_dir) == TOTAL
    # The resumed attempt's own log starts after the checkpoint, not at step 0 ...
    first_file, *_, last_file = scalar_steps_by_file(str(run_dir), "charts/episodic_return")
    assert first_file[0] == 200 and last_file[0] > stopped_at
    # ... and the curve the summary reads holds every evaluation once.
    assert reproduce.read_curve(str(cell))[1].tolist() == list(range(EVAL_FREQ, TOTAL + 1, EVAL_FREQ))
    assert json.loads((out / "summary.json").read_text())["tasks"]["Pendulum-v1"]["cells"][COLUMN]["n"] == 1
