"""gamid_her_fetch.py's run control: a run interrupted (SIGTERM, or SIGKILL after a periodic checkpoint) and resumed
ends exactly where the uninterrupted run ends; an unreadable checkpoint is refused; --evaluate and --track work."""

import glob
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ENV, ROOT, logged_the_same, run_script, scalars
from torch.utils.tensorboard import SummaryWriter

SCRIPT = os.path.join(ROOT, "gamid_her_fetch.py")
# FetchReach with tiny networks. A 1000-transition buffer holds 20 of the 30 episodes, so the checkpointed buffer
# has wrapped around; --normalize-obs puts the normalizer statistics in play. Checkpoints every 4 episodes.
TINY = [
    "--env-id", "FetchReach-v4", "--total-timesteps", "1500", "--learning-starts", "300", "--batch-size", "32",
    "--net-arch", "32", "32", "--n-actors", "2", "--buffer-size", "1000", "--normalize-obs", "--eval-freq", "500",
    "--eval-episodes", "2", "--log-freq", "100", "--checkpoint-freq", "200", "--save-model", "--no-cuda",
]  # fmt: skip


def start(runs_dir, *flags, env=ENV) -> subprocess.Popen:
    command = [sys.executable, SCRIPT, *TINY, "--runs-dir", str(runs_dir), *flags]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_checkpoints(process: subprocess.Popen, runs_dir, count: int) -> str:
    """Wait until the run has written `count` checkpoints (seen as new modification times); returns its run dir."""
    seen, deadline = set(), time.time() + 240
    while len(seen) < count:
        assert process.poll() is None, "the run ended before it could be interrupted: make it longer"
        assert time.time() < deadline
        for path in glob.glob(os.path.join(str(runs_dir), "*", "checkpoint.pt")):
            seen.add(os.stat(path).st_mtime_ns)
        time.sleep(0.01)
    return os.path.dirname(path)


def assert_same_run(run_dir: str, reference_dir: str):
    """The same networks and normalizer at the end, and every scalar logged once per step, as the reference."""
    model, reference = (torch.load(os.path.join(d, "gamid_her_fetch.model")) for d in (run_dir, reference_dir))
    for net in ("actor", "qf"):
        for name, value in reference[net].items():
            assert torch.equal(model[net][name], value), (net, name)
    assert model["normalizer"] == reference["normalizer"]
    for tag, logged in scalars(run_dir).items():
        steps = [step for step, _ in logged]
        assert steps == sorted(set(steps)), f"{tag}: duplicated or unordered steps"
    logged_the_same(run_dir, reference_dir)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> str:
    runs_dir = tmp_path_factory.mktemp("uninterrupted")
    process = start(runs_dir)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    (run_dir,) = glob.glob(os.path.join(str(runs_dir), "*"))
    return run_dir


def test_sigterm_checkpoints_and_the_resumed_run_ends_as_the_uninterrupted_one(uninterrupted, tmp_path):
    process = start(tmp_path)
    run_dir = wait_for_checkpoints(process, tmp_path, count=1)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 75, err  # EX_TEMPFAIL: benchmarks/reproduce.py resumes runs that exit so
    assert "SIGTERM received" in out
    interrupted = out.strip().splitlines()[-1]
    assert interrupted.startswith("interrupted at step ") and interrupted.endswith(f"--resume {run_dir}")
    step = int(interrupted.split()[3].rstrip(";"))
    assert step % 50 == 0 and 200 < step < 1500  # at an episode boundary, part-way
    assert torch.load(os.path.join(run_dir, "checkpoint.pt"), weights_only=False)["step"] == step

    result = run_script(SCRIPT, "--resume", run_dir, "--learning-rate", "0.5")  # the saved hyperparameters win
    assert result.returncode == 0, result.stderr
    assert "learning_rate=0.001" in result.stdout
    assert_same_run(run_dir, uninterrupted)


def test_sigkill_resumes_from_the_last_periodic_checkpoint(uninterrupted, tmp_path):
    process = start(tmp_path)
    run_dir = wait_for_checkpoints(process, tmp_path, count=2)
    process.kill()  # no chance to save anything
    process.communicate(timeout=60)
    step = torch.load(os.path.join(run_dir, "checkpoint.pt"), weights_only=False)["step"]
    assert 200 <= step < 1500 and not os.path.exists(os.path.join(run_dir, "gamid_her_fetch.model"))
    # A long run flushes its logs every 2 minutes, so a kill can leave logged steps past the last checkpoint on
    # disk. Such steps (here written by hand) must not survive the resume as duplicates.
    with SummaryWriter(run_dir) as stale:
        stale.add_scalar("charts/episodic_return", 123.0, step + 50)
        stale.add_scalar("losses/qf_loss", 123.0, step + 100)

    result = run_script(SCRIPT, "--resume", run_dir)
    assert result.returncode == 0, result.stderr
    assert_same_run(run_dir, uninterrupted)


def test_evaluate_watches_a_checkpoint_and_an_unreadable_one_is_refused(uninterrupted, tmp_path):
    result = run_script(SCRIPT, "--evaluate", uninterrupted, "--eval-episodes", "2", "--runs-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    mean = [value for step, value in scalars(uninterrupted)["eval/episodic_return"] if step == 1500][0]
    # The run's last evaluation used the same seeds and networks: the same mean return, and nothing is written.
    assert result.stdout.strip().splitlines()[-1].startswith(f"eval return {mean:.1f} +- ")
    assert os.listdir(tmp_path) == []

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with open(os.path.join(uninterrupted, "hyperparameters.json"), "rb") as f:
        (run_dir / "hyperparameters.json").write_bytes(f.read())
    with open(os.path.join(uninterrupted, "checkpoint.pt"), "rb") as f:
        (run_dir / "checkpoint.pt").write_bytes(f.read()[:100_000])  # truncated
    for flags in (["--resume", run_dir], ["--evaluate", run_dir / "nothing.model"]):
        refused = run_script(SCRIPT, *flags)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        message = refused.stderr.strip().splitlines()[-1]
        assert " cannot be read (" in message and message.endswith("runs write one every --checkpoint-freq.")


def test_track_logs_to_weights_and_biases_offline(tmp_path):
    """--track as CleanRL: a W&B run with the hyperparameters as config and TensorBoard synced (offline: no network)."""
    flags = ["--track", "--total-timesteps", "400", "--checkpoint-freq", "0", "--wandb-project-name", "test"]
    process = start(tmp_path / "runs", *flags, env=ENV | {"WANDB_DIR": str(tmp_path)})
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    (run,) = glob.glob(str(tmp_path / "wandb" / "offline-run-*"))
    (log,) = glob.glob(os.path.join(run, "run-*.wandb"))
    with open(log, "rb") as f:
        records = f.read()  # the offline run's records: config and synced TensorBoard scalars
    assert b"n_actors" in records and b"eval/success_rate" in records and b"charts/episodic_return" in records
