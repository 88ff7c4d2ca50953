"""gamid_her_fetch.py's long-run control: a run interrupted (SIGTERM, or SIGKILL after a periodic checkpoint) and
resumed ends exactly where the uninterrupted run ends; bad checkpoints and flags are refused; --evaluate watches."""

import glob
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "gamid_her_fetch.py")
# FetchReach with tiny networks. A 1000-transition buffer holds 20 of the 30 episodes, so the checkpointed buffer
# has wrapped around; --normalize-obs puts the normalizer statistics in play. Checkpoints every 4 episodes.
TINY = [
    "--env-id", "FetchReach-v4", "--total-timesteps", "1500", "--learning-starts", "300", "--batch-size", "32",
    "--net-arch", "32", "32", "--n-actors", "2", "--buffer-size", "1000", "--normalize-obs", "--eval-freq", "500",
    "--eval-episodes", "2", "--log-freq", "100", "--checkpoint-freq", "200", "--save-model", "--no-cuda",
]  # fmt: skip
ENV = os.environ | {"OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
COMPARED_TAGS = (
    "charts/episodic_return",
    "eval/episodic_return",
    "eval/success_rate",
    "charts/success_rate",
    "losses/qf_loss",
    "losses/actor_loss",
    "charts/sum_d_var",
    "charts/selected_fraction/gaussian_1",
)


def start(runs_dir, *flags, env=ENV) -> subprocess.Popen:
    command = [sys.executable, SCRIPT, *TINY, "--runs-dir", str(runs_dir), *flags]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def resume(run_dir, *flags) -> subprocess.CompletedProcess:
    command = [sys.executable, SCRIPT, "--resume", run_dir, *flags]
    return subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)


def only_run_dir(runs_dir) -> str:
    (run_dir,) = glob.glob(os.path.join(str(runs_dir), "*"))
    return run_dir


def wait_for_checkpoints(process: subprocess.Popen, run_dir_parent, count: int) -> str:
    """Wait until the run has written `count` checkpoints (seen as new modification times); returns its run dir."""
    seen, deadline = set(), time.time() + 240
    while len(seen) < count:
        assert process.poll() is None, "the run ended before it could be interrupted: make it longer"
        assert time.time() < deadline
        for path in glob.glob(os.path.join(str(run_dir_parent), "*", "checkpoint.pt")):
            seen.add(os.stat(path).st_mtime_ns)
        time.sleep(0.01)
    return os.path.dirname(path)


def scalars(run_dir: str) -> dict:
    """tag -> [(step, value)], as TensorBoard shows them (EventAccumulator applies the resume's purge marker)."""
    accumulator = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: [(event.step, event.value) for event in accumulator.Scalars(tag)] for tag in COMPARED_TAGS}


def saved_model(run_dir: str) -> dict:
    return torch.load(os.path.join(run_dir, "gamid_her_fetch.model"))


def assert_same_run(run_dir: str, reference_dir: str):
    model, reference = saved_model(run_dir), saved_model(reference_dir)
    for net in ("actor", "qf"):
        for name, value in reference[net].items():
            assert torch.equal(model[net][name], value), (net, name)
    assert model["normalizer"] == reference["normalizer"]
    logged, reference_logged = scalars(run_dir), scalars(reference_dir)
    for tag in COMPARED_TAGS:
        steps = [step for step, _ in logged[tag]]
        assert steps == sorted(set(steps)), f"{tag}: duplicated or unordered steps"
        assert logged[tag] == reference_logged[tag], tag


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> str:
    runs_dir = tmp_path_factory.mktemp("uninterrupted")
    process = start(runs_dir)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return only_run_dir(runs_dir)


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

    result = resume(run_dir)
    assert result.returncode == 0, result.stderr
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

    result = resume(run_dir)
    assert result.returncode == 0, result.stderr
    assert_same_run(run_dir, uninterrupted)


def test_resuming_a_finished_run_says_so(uninterrupted):
    result = resume(uninterrupted)
    assert result.returncode == 0 and "already finished at step 1500; nothing to do." in result.stdout


def test_truncated_or_missing_checkpoint_is_refused_with_one_sentence(uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "hyperparameters.json").write_bytes(
        (open(os.path.join(uninterrupted, "hyperparameters.json"), "rb").read())
    )
    missing = resume(str(run_dir))
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines()[-1] == f"There is no checkpoint at {run_dir / 'checkpoint.pt'}; " + (
        "runs write one every --checkpoint-freq steps.")  # fmt: skip

    whole = open(os.path.join(uninterrupted, "checkpoint.pt"), "rb").read()
    (run_dir / "checkpoint.pt").write_bytes(whole[: len(whole) // 2])
    truncated = resume(str(run_dir))
    assert truncated.returncode != 0 and "Traceback" not in truncated.stderr
    message = truncated.stderr.strip().splitlines()[-1]
    assert message.startswith(f"{run_dir / 'checkpoint.pt'} cannot be read (") and message.endswith(
        "truncated or corrupt."
    )


def test_a_flag_that_contradicts_the_saved_run_is_refused(uninterrupted):
    result = resume(uninterrupted, "--learning-rate", "0.5")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "--learning-rate 0.5 conflicts with the run's saved value 0.001."


@pytest.mark.parametrize(
    "saved", ["gamid_her_fetch.model", "checkpoint.pt", ""], ids=["model", "checkpoint", "run-dir"]
)
def test_evaluate_watches_a_saved_model_or_checkpoint_and_trains_nothing(uninterrupted, saved, tmp_path):
    path = os.path.join(uninterrupted, saved)
    command = [sys.executable, SCRIPT, "--evaluate", path, "--eval-episodes", "2", "--runs-dir", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    mean = [value for step, value in scalars(uninterrupted)["eval/episodic_return"] if step == 1500][0]
    # The run's last evaluation used the same seeds and model: the same mean return.
    assert result.stdout.strip().splitlines()[-1].startswith(f"eval return {mean:.1f} +- ")
    assert os.listdir(tmp_path) == []


def test_track_logs_to_weights_and_biases_offline(tmp_path):
    """--track as CleanRL: a W&B run with the hyperparameters as config and TensorBoard synced (offline: no network)."""
    flags = ["--track", "--total-timesteps", "400", "--checkpoint-freq", "0", "--wandb-project-name", "test"]
    process = start(tmp_path / "runs", *flags, env=ENV | {"WANDB_DIR": str(tmp_path)})
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    (run,) = glob.glob(str(tmp_path / "wandb" / "offline-run-*"))
    (log,) = glob.glob(os.path.join(run, "run-*.wandb"))
    records = open(log, "rb").read()  # the offline run's records: config and synced TensorBoard scalars
    assert b"n_actors" in records and b"eval/success_rate" in records and b"charts/episodic_return" in records


def test_evaluate_refuses_a_missing_path_with_one_sentence(tmp_path):
    command = [sys.executable, SCRIPT, "--evaluate", str(tmp_path / "nothing.model")]
    result = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip().splitlines()[-1]
        == f"There is no saved model or checkpoint at {tmp_path / 'nothing.model'}."
    )
