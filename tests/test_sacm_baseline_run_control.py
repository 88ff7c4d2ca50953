"""sacm_baseline.py's run control: an interrupted run (SIGTERM, or killed) resumes to exactly the uninterrupted run,
bad checkpoints are refused in one sentence, --evaluate watches a checkpoint, --track logs offline. Every run is a tiny
Hopper configuration; the uninterrupted reference is trained once per module."""

import glob
import os
import re
import shutil
import signal
import time
from collections import deque

import pytest
import torch
from conftest import ENV, logged_the_same, run_script, scalars
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.compat.proto.event_pb2 import SessionLog

import sacm_baseline as sacm

# Hopper episodes last ~20-60 steps here, so a checkpoint every 100 steps comes several times per run.
RUN = dict(env_id="Hopper-v4", n_components=2, total_timesteps=500, learning_starts=200, batch_size=32,
           net_arch=(16, 16), eval_freq=250, eval_episodes=2, log_freq=50, save_model=True, checkpoint_freq=100,
           cuda=False)  # fmt: skip


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run that every interrupted and resumed one must reproduce bit for bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run_dir = sacm.main(sacm.Args(runs_dir=str(tmp_path_factory.mktemp("reference")), **RUN))
    torch.set_num_threads(threads)
    return run_dir


def assert_same_run(run_dir: str, reference_dir: str) -> None:
    """The same scalars at the same steps (none twice) and bit-identical final networks and entropy coefficient."""
    logged_the_same(run_dir, reference_dir)
    ours, theirs = (
        torch.load(os.path.join(d, "sacm_baseline.model"), weights_only=False) for d in (run_dir, reference_dir)
    )
    for part in ("actor", "qf"):
        assert all(torch.equal(tensor, ours[part][name]) for name, tensor in theirs[part].items()), part
    assert torch.equal(ours["log_alpha"], theirs["log_alpha"])


def test_sigterm_checkpoints_at_the_episode_end_and_the_resumed_run_equals_the_uninterrupted_one(
    reference, tmp_path, monkeypatch, capsys
):
    real, calls = sacm.train_step, []

    def interrupt_once(**kwargs):
        calls.append(1)
        if len(calls) == 100:  # env step 300, mid-episode
            os.kill(os.getpid(), signal.SIGTERM)
        return real(**kwargs)

    monkeypatch.setattr(sacm, "train_step", interrupt_once)
    with pytest.raises(SystemExit) as exit_info:
        sacm.main(sacm.Args(runs_dir=str(tmp_path), **RUN))
    assert exit_info.value.code == sacm.INTERRUPTED_EXIT_CODE == 75
    monkeypatch.undo()
    (run_dir,) = glob.glob(str(tmp_path / "*"))
    output = capsys.readouterr().out
    assert "SIGTERM received: finishing this episode, then saving a checkpoint." in output
    match = re.fullmatch(r"interrupted at step (\d+); resume with: python \S*sacm_baseline.py --resume (\S+)",
                         output.strip().splitlines()[-1])  # fmt: skip
    step = int(match[1])
    assert match[2] == run_dir and step in [s for s, _ in scalars(reference)["charts/episodic_return"]]
    assert 300 <= step < RUN["total_timesteps"]  # the episode was finished first
    assert torch.load(os.path.join(run_dir, "checkpoint.pt"), weights_only=False)["step"] == step
    assert not os.path.exists(os.path.join(run_dir, "sacm_baseline.model"))

    sacm.main(sacm.Args(resume=run_dir))
    assert_same_run(run_dir, reference)
    assert sacm.main(sacm.Args(resume=run_dir)) == run_dir  # a finished run says so and trains nothing
    assert f"{run_dir} already finished at step {RUN['total_timesteps']}; nothing to do." in capsys.readouterr().out


def test_a_killed_run_resumes_from_its_last_periodic_checkpoint_purging_the_steps_logged_after_it(
    reference, tmp_path, monkeypatch
):
    class Killed(Exception):
        """Stands in for SIGKILL: the loop stops at once, with no checkpoint of its own."""

    writers, real, calls = [], sacm.train_step, []

    class KeptWriter(sacm.SummaryWriter):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            writers.append(self)

    def killed_at_step_400(**kwargs):
        calls.append(1)
        if len(calls) == 200:
            raise Killed
        return real(**kwargs)

    monkeypatch.setattr(sacm, "SummaryWriter", KeptWriter)
    monkeypatch.setattr(sacm, "train_step", killed_at_step_400)
    with pytest.raises(Killed):
        sacm.main(sacm.Args(runs_dir=str(tmp_path), **RUN))
    writers[0].close()  # everything logged before the kill reaches the disk: the worst case for duplicates
    monkeypatch.undo()
    (run_dir,) = glob.glob(str(tmp_path / "*"))
    step = torch.load(os.path.join(run_dir, "checkpoint.pt"), weights_only=False)["step"]
    assert 200 < step < max(steps[-1][0] for steps in scalars(run_dir).values()) < 400  # logged past its checkpoint

    time.sleep(1.1)  # event files are named by the second they were opened: keep the resumed one last
    sacm.main(sacm.Args(resume=run_dir))
    starts = [[e.step for e in EventFileLoader(path).Load() if e.session_log.status == SessionLog.START]
              for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*")))]  # fmt: skip
    assert starts[1][0] == step + 1  # the resumed writer purges what the killed run logged after its checkpoint
    assert_same_run(run_dir, reference)


def test_a_missing_run_and_a_truncated_checkpoint_are_refused_in_one_sentence_before_anything_is_written(
    reference, tmp_path
):
    with pytest.raises(SystemExit) as exit_info:
        sacm.main(sacm.Args(resume=str(tmp_path)))
    unreadable = "{} cannot be read ({}); runs write one every --checkpoint-freq."
    assert str(exit_info.value.code) == unreadable.format(tmp_path / "checkpoint.pt", "FileNotFoundError")
    run_dir = shutil.copytree(reference, tmp_path / "run")
    path = run_dir / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    files = sorted(os.listdir(run_dir))
    with pytest.raises(SystemExit) as exit_info:
        sacm.main(sacm.Args(resume=str(run_dir)))
    assert re.fullmatch(re.escape(unreadable.format(path, "@")).replace("@", r"\w+"), str(exit_info.value.code))
    assert sorted(os.listdir(run_dir)) == files  # no new event file, nothing overwritten


def test_evaluate_watches_a_checkpoint_and_trains_nothing(reference, capsys):
    last = scalars(reference)["eval/episodic_return"][-1][1]  # greedy, same seeds: the same episodes again
    files = sorted(os.listdir(reference))
    assert sacm.main(sacm.Args(evaluate=reference, eval_episodes=RUN["eval_episodes"])) == reference
    mean = float(re.search(r"^(-?[\d.]+) \+- [\d.]+ over 2 episodes$", capsys.readouterr().out, re.M)[1])
    assert mean == pytest.approx(last, abs=0.05)
    assert sorted(os.listdir(reference)) == files


def test_track_logs_to_weights_and_biases_offline(tmp_path):
    """--track with W&B offline (no network), in a subprocess: wandb patches TensorBoard for the process."""
    flags = ["--track", "--runs-dir", tmp_path, "--env-id", "Hopper-v4", "--total-timesteps", "250"]
    flags += ["--learning-starts", "200", "--batch-size", "16", "--net-arch", "16", "16", "--eval-episodes", "1"]
    flags += ["--log-freq", "50", "--checkpoint-freq", "0", "--n-components", "2"]
    result = run_script("sacm_baseline.py", *flags, env={**ENV, "WANDB_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-2000:]
    (record,) = (tmp_path / "wandb").glob("offline-run-*/*.wandb")  # what `wandb sync` would upload
    content = record.read_bytes()
    assert b"n_components" in content and b"Hopper-v4" in content  # the hyperparameters as config
    assert b"eval/episodic_return" in content and b"charts/component_1/weight" in content  # TensorBoard synced


def test_progress_line_shows_the_fraction_done_the_recent_speed_and_an_eta():
    marks = deque([(time.time() - 10, 0)], maxlen=12)
    line = sacm.progress_line(250, 1000, marks, deque([1.0, 3.0]))
    assert re.fullmatch(r"step 250/1000 \(25\.0%\), 25 SPS, ETA 0h00m(29|30)s, recent return 2\.0", line), line
