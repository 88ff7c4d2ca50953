"""sacm_baseline.py's long-run machinery: an interrupted run (SIGTERM or SIGKILL) resumes to exactly the
uninterrupted run, bad checkpoints are refused in one sentence, --evaluate watches a saved model, --track logs
offline. Every run is a tiny Hopper configuration; the uninterrupted reference is trained once per module."""

import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import deque

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.compat.proto.event_pb2 import SessionLog

import sacm_baseline as sacm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "sacm_baseline.py")
# Hopper episodes last ~20-60 steps here, so a checkpoint every 150 steps comes several times per run.
RUN = dict(
    env_id="Hopper-v4",
    n_components=2,
    total_timesteps=900,
    learning_starts=200,
    batch_size=32,
    net_arch=(32, 32),
    eval_freq=300,
    eval_episodes=2,
    log_freq=100,
    save_model=True,
    checkpoint_freq=150,
)
COMPARED = ("charts/episodic_return", "charts/episodic_length", "eval/episodic_return", "losses/qf_loss")


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run that every interrupted and resumed one must reproduce bit for bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run_dir = sacm.main(sacm.Args(runs_dir=str(tmp_path_factory.mktemp("reference")), **RUN))
    torch.set_num_threads(threads)
    return run_dir


def flags(config: dict) -> list[str]:
    """The command-line form of an Args config."""
    out = []
    for name, value in config.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, tuple):
            out += [flag, *map(str, value)]
        else:
            out += [flag, str(value)]
    return out


def launch(arguments: list[str]) -> subprocess.Popen:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, SCRIPT, *arguments]
    return subprocess.Popen(
        command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def read_until(process: subprocess.Popen, text: str) -> list[str]:
    """The child's output lines up to and including the first that contains `text`."""
    lines = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if text in line:
            return lines
    raise AssertionError(f"the run ended without printing {text!r}:\n" + "\n".join(lines[-20:]))


def scalars(run_dir: str) -> dict:
    """Every scalar as (step, value) pairs, as TensorBoard shows them (a resume's purge applied)."""
    acc = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def raw_events(run_dir: str) -> list[list]:
    """Per event file, in the order written: (step, tag or 'START') of each scalar and each session start."""
    files = []
    for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
        events = []
        for event in EventFileLoader(path).Load():
            if event.HasField("session_log") and event.session_log.status == SessionLog.START:
                events.append((event.step, "START"))
            for value in event.summary.value:
                events.append((event.step, value.tag))
        files.append(events)
    return files


def assert_same_run(run_dir: str, reference_dir: str) -> None:
    """Bit-identical final parameters and the same logged returns, losses and steps, none of them twice."""
    ours, theirs = scalars(run_dir), scalars(reference_dir)
    for tag in COMPARED:
        steps = [step for step, _ in ours[tag]]
        assert steps == sorted(set(steps)), f"{tag} has duplicated or unordered steps"
        assert ours[tag] == theirs[tag], tag
    a = torch.load(os.path.join(run_dir, "sacm_baseline.model"))
    b = torch.load(os.path.join(reference_dir, "sacm_baseline.model"))
    for part in ("actor", "qf"):
        assert all(torch.equal(a[part][name], b[part][name]) for name in b[part]), part
    assert torch.equal(a["log_alpha"], b["log_alpha"])


def test_sigterm_checkpoints_at_the_episode_end_and_the_resumed_run_equals_the_uninterrupted_one(reference, tmp_path):
    process = launch(flags({**RUN, "runs_dir": str(tmp_path)}))
    read_until(process, "step 300, eval return")
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == sacm.INTERRUPTED_EXIT_CODE == 75
    assert "SIGTERM received: finishing this episode, then saving a checkpoint." in output
    match = re.fullmatch(
        r"interrupted at step (\d+); resume with: python sacm_baseline.py --resume (\S+)",
        output.strip().splitlines()[-1],
    )
    step, run_dir = int(match[1]), match[2]
    episode_ends = [s for s, _ in scalars(reference)["charts/episodic_return"]]
    assert 300 <= step < RUN["total_timesteps"] and step in episode_ends  # the episode was finished first
    assert torch.load(os.path.join(run_dir, "checkpoint.pt"), weights_only=False)["step"] == step

    resumed = subprocess.run(
        [sys.executable, SCRIPT, "--resume", run_dir],
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_run(run_dir, reference)


def test_a_killed_run_resumes_from_its_last_periodic_checkpoint_and_still_matches(reference, tmp_path):
    process = launch(flags({**RUN, "runs_dir": str(tmp_path)}))
    read_until(process, "step 600, eval return")
    process.kill()  # SIGKILL: no handler runs, no final checkpoint
    process.wait(timeout=60)
    (run_dir,) = glob.glob(str(tmp_path / "*"))
    step = torch.load(os.path.join(run_dir, "checkpoint.pt"), weights_only=False)["step"]
    assert 450 <= step < RUN["total_timesteps"]  # periodic, every 150 steps at an episode's end
    assert not os.path.exists(os.path.join(run_dir, "sacm_baseline.model"))

    sacm.main(sacm.Args(resume=run_dir))
    assert_same_run(run_dir, reference)


def test_steps_logged_after_the_checkpoint_by_a_crashed_run_are_purged_not_duplicated(reference, tmp_path, monkeypatch):
    """A run that died after logging past its checkpoint: the resumed run's logs show each step once."""
    saved = []
    real = sacm.save_checkpoint

    def keep_the_first(state, run_dir):
        real(state, run_dir)
        if not saved:
            saved.append(state["step"])
            shutil.copy(os.path.join(run_dir, "checkpoint.pt"), os.path.join(run_dir, "first.pt"))

    monkeypatch.setattr(sacm, "save_checkpoint", keep_the_first)
    run_dir = sacm.main(sacm.Args(runs_dir=str(tmp_path), **RUN))  # logs all the way to the end
    os.replace(os.path.join(run_dir, "first.pt"), os.path.join(run_dir, "checkpoint.pt"))  # then "crashed" here
    monkeypatch.setattr(sacm, "save_checkpoint", real)
    time.sleep(1.1)  # event files are named by the second they were opened: keep the resumed one last
    sacm.main(sacm.Args(resume=run_dir))

    first_file, resumed_file = raw_events(run_dir)
    logged_again = {event for event in resumed_file if event[0] > saved[0] and event[1] != "START"}
    assert logged_again & set(first_file)  # the raw files do hold those steps twice ...
    assert resumed_file[0] == (saved[0] + 1, "START")  # ... and the resumed file starts by purging them
    assert_same_run(run_dir, reference)  # ... so TensorBoard shows each step once, as the uninterrupted run


def test_a_truncated_checkpoint_is_refused_in_one_sentence_before_anything_is_written(reference, tmp_path):
    run_dir = str(tmp_path / "run")
    shutil.copytree(reference, run_dir)
    path = os.path.join(run_dir, "checkpoint.pt")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    files = sorted(os.listdir(run_dir))
    with pytest.raises(SystemExit) as exit_info:
        sacm.main(sacm.Args(resume=run_dir))
    assert str(exit_info.value.code) == f"{path} cannot be read (RuntimeError): it is truncated or corrupt."
    assert sorted(os.listdir(run_dir)) == files  # no new event file, nothing overwritten

    os.remove(path)
    with pytest.raises(SystemExit) as exit_info:
        sacm.main(sacm.Args(resume=run_dir))
    assert str(exit_info.value.code).startswith(f"There is no checkpoint at {path};")


def test_resuming_a_finished_run_says_so_and_a_conflicting_flag_is_refused(reference, capsys):
    assert sacm.main(sacm.Args(resume=reference)) == reference
    assert f"{reference} already finished at step {RUN['total_timesteps']}; nothing to do." in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        sacm.main(sacm.Args(resume=reference, seed=2))
    assert str(exit_info.value.code) == "--seed 2 conflicts with the run's saved value 1."


def test_evaluate_watches_a_saved_model_or_a_checkpoint_and_trains_nothing(reference, capsys):
    last = scalars(reference)["eval/episodic_return"][-1][1]  # greedy, same seeds: the same episodes again
    files = sorted(os.listdir(reference))
    for path in (os.path.join(reference, "sacm_baseline.model"), reference):  # the final checkpoint also loads
        sacm.main(sacm.Args(evaluate=path, eval_episodes=RUN["eval_episodes"]))
        mean = float(re.search(r"^(-?[\d.]+) \+- [\d.]+ over 2 episodes$", capsys.readouterr().out, re.M)[1])
        assert mean == pytest.approx(last, abs=0.05)
    assert sorted(os.listdir(reference)) == files
    with pytest.raises(SystemExit) as exit_info:
        sacm.main(sacm.Args(evaluate=os.path.join(reference, "missing.model")))
    assert "There is no saved model at" in str(exit_info.value.code)


def test_track_logs_to_weights_and_biases_offline(tmp_path):
    config = dict(RUN, total_timesteps=300, checkpoint_freq=0, save_model=False, runs_dir=str(tmp_path / "runs"))
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path)}
    environment |= {"WANDB_SILENT": "true"}
    result = subprocess.run(
        [sys.executable, SCRIPT, *flags(config), "--track", "--wandb-project-name", "test"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (offline_run,) = glob.glob(str(tmp_path / "wandb" / "offline-run-*"))
    assert glob.glob(os.path.join(offline_run, "*.wandb"))


def test_progress_line_shows_the_fraction_done_and_an_eta():
    line = sacm.progress_line(250, 1000, 1, time.time() - 10, deque([1.0, 3.0]))
    assert re.fullmatch(r"step 250/1000 \(25\.0%\), 25 SPS, ETA 0h00m(29|30)s, recent return 2\.0", line), line
