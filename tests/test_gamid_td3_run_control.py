"""Long runs of gamid_continuous_action.py and td3_baseline.py: checkpoints, signals, resume, --evaluate, --track.

Every run here is a subprocess with the same environment (one thread), as a user or a cluster starts it, so an
interrupted-and-resumed run can be compared bit for bit with the same run left alone.
"""

import glob
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import gamid_continuous_action as gamid
import td3_baseline as td3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = {"gamid_continuous_action.py": gamid, "td3_baseline.py": td3}
# Short Hopper runs (many short episodes) with tiny nets, a checkpoint every 300 steps and evaluations to wait for.
FLAGS = [
    "--env-id", "Hopper-v4", "--total-timesteps", "1500", "--learning-starts", "300", "--batch-size", "32",
    "--net-arch", "32", "32", "--eval-freq", "500", "--eval-episodes", "2", "--log-freq", "100",
    "--checkpoint-freq", "300", "--save-model", "--no-cuda",
]  # fmt: skip
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def command(script, *flags):
    return [sys.executable, os.path.join(ROOT, script), *flags]


def run(script, *flags, env=ENV):
    return subprocess.run(command(script, *flags), env=env, capture_output=True, text=True, timeout=600)


def run_until(script, runs_dir, line_start, signum):
    """Start a run, send `signum` once it prints a line starting with `line_start`; returns (exit code, output)."""
    process = subprocess.Popen(
        command(script, *FLAGS, "--runs-dir", runs_dir),
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = []
    for line in process.stdout:
        output.append(line)
        if line.startswith(line_start):
            process.send_signal(signum)
            break
    rest, _ = process.communicate(timeout=600)
    return process.returncode, "".join(output) + rest


def scalars(run_dir):
    """Every scalar as a list of (step, value), as TensorBoard shows it (purged steps dropped)."""
    accumulator = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def saved_parameters(run_dir, script):
    model = torch.load(os.path.join(run_dir, script.replace(".py", ".model")))
    return {f"{network}.{name}": tensor for network in ("actor", "qf") for name, tensor in model[network].items()}


def assert_same_run(run_dir, reference_dir, script):
    resumed, reference = scalars(run_dir), scalars(reference_dir)
    for tag in ("charts/episodic_return", "eval/episodic_return", "losses/qf_loss", "losses/actor_loss"):
        assert resumed[tag] == reference[tag], tag
    for tag, points in resumed.items():
        steps = [step for step, _ in points]
        assert steps == sorted(set(steps)), f"{tag} logs a step twice"
    parameters, reference_parameters = saved_parameters(run_dir, script), saved_parameters(reference_dir, script)
    assert parameters.keys() == reference_parameters.keys()
    for name, tensor in parameters.items():
        assert torch.equal(tensor, reference_parameters[name]), name


@pytest.fixture(scope="module", params=list(MODULES))
def reference(request, tmp_path_factory):
    """The uninterrupted run: (script, run directory, its output)."""
    script = request.param
    runs_dir = str(tmp_path_factory.mktemp("reference"))
    result = run(script, *FLAGS, "--runs-dir", runs_dir)
    assert result.returncode == 0, result.stderr
    return script, glob.glob(os.path.join(runs_dir, "*"))[0], result.stdout


def test_sigterm_checkpoints_at_the_episode_end_and_the_resumed_run_ends_bit_for_bit_the_same(reference, tmp_path):
    script, reference_dir, _ = reference
    code, output = run_until(script, str(tmp_path), "step 500, eval return", signal.SIGTERM)
    assert code == 75, output  # EX_TEMPFAIL: benchmarks/reproduce.py resumes runs that exit so
    run_dir = glob.glob(str(tmp_path / "*"))[0]
    resume_line = output.strip().splitlines()[-1]
    assert resume_line.startswith("interrupted at step ") and resume_line.endswith(f" --resume {run_dir}")
    stopped_at = int(resume_line.split()[3].rstrip(";"))
    assert 500 < stopped_at < 1500  # the episode running at the signal was finished, not the run
    assert torch.load(os.path.join(run_dir, "checkpoint.pt"), weights_only=False)["step"] == stopped_at
    assert not os.path.exists(os.path.join(run_dir, script.replace(".py", ".model")))

    resumed = run(script, "--resume", run_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(run_dir, reference_dir, script)


def test_sigkill_resumes_from_the_last_periodic_checkpoint_and_still_matches(reference, tmp_path):
    script, reference_dir, _ = reference
    code, _ = run_until(script, str(tmp_path), "step 1000, eval return", signal.SIGKILL)
    assert code == -signal.SIGKILL
    run_dir = glob.glob(str(tmp_path / "*"))[0]
    checkpoint_step = torch.load(os.path.join(run_dir, "checkpoint.pt"), weights_only=False)["step"]
    assert 300 <= checkpoint_step < 1500  # a periodic checkpoint: the run was killed before its end
    logged_when_killed = max(step for points in scalars(run_dir).values() for step, _ in points)
    assert logged_when_killed > checkpoint_step  # so the resumed run logs some steps a second time

    resumed = run(script, "--resume", run_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(run_dir, reference_dir, script)


def test_a_finished_run_says_so_and_a_conflicting_flag_is_refused(reference):
    script, reference_dir, _ = reference
    finished = run(script, "--resume", reference_dir)
    assert finished.returncode == 0
    assert finished.stdout.strip().endswith(f"{reference_dir} already finished at step 1500; nothing to do.")
    conflict = run(script, "--resume", reference_dir, "--learning-rate", "0.5")
    assert conflict.returncode != 0 and "Traceback" not in conflict.stderr
    assert conflict.stderr.strip().splitlines()[-1].startswith("--learning-rate 0.5 conflicts with the run's saved")


def test_a_truncated_checkpoint_is_refused_with_one_sentence(reference, tmp_path):
    script, reference_dir, _ = reference
    run_dir = shutil.copytree(reference_dir, tmp_path / "run")
    path = run_dir / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    module = MODULES[script]
    with pytest.raises(SystemExit) as exit_info:
        module.main(module.Args(resume=str(run_dir)))
    message = str(exit_info.value.code)
    assert message.startswith(f"{path} cannot be read (") and message.endswith("): it is truncated or corrupt.")
    missing = run(script, "--resume", str(tmp_path))  # not a run directory
    assert missing.returncode != 0 and "Traceback" not in missing.stderr


def test_evaluate_watches_a_saved_model_or_checkpoint_and_trains_nothing(reference, monkeypatch):
    script, reference_dir, output = reference
    final_evaluation = [line for line in output.splitlines() if line.startswith("step 1500, eval return")][0]
    model = os.path.join(reference_dir, script.replace(".py", ".model"))
    before = sorted(os.listdir(reference_dir))
    watched = run(script, "--evaluate", model, "--eval-episodes", "2", "--seed", "1")
    assert watched.returncode == 0, watched.stderr
    mean_and_std = final_evaluation.split("eval return ")[1]
    assert watched.stdout.strip().splitlines()[-1] == f"eval return {mean_and_std} over 2 episodes"
    assert sorted(os.listdir(reference_dir)) == before  # nothing trained, logged or saved

    # To more digits than printed: the same greedy policy from the same start states gives the run's final
    # evaluation, from the model and from the run directory's final checkpoint.pt alike.
    module = MODULES[script]
    seen = []
    real_evaluate = module.evaluate
    monkeypatch.setattr(module, "evaluate", lambda *a, **kw: seen.append(real_evaluate(*a, **kw)) or seen[-1])
    for path in (model, reference_dir):
        module.main(module.Args(evaluate=path, eval_episodes=2, seed=1))
    logged = scalars(reference_dir)["eval/episodic_return"][-1][1]
    returns = [result[0] if script.startswith("gamid") else result for result in seen]  # Gamid's: and switch rate
    assert [sum(episodes) / 2 for episodes in returns] == pytest.approx([logged, logged], rel=1e-6)


@pytest.mark.parametrize("script", list(MODULES))
def test_track_logs_to_weights_and_biases_offline(script, tmp_path):
    env = {**ENV, "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true"}
    flags = ["--env-id", "Hopper-v4", "--total-timesteps", "400", "--learning-starts", "300", "--batch-size", "32"]
    flags += ["--net-arch", "32", "32", "--eval-freq", "400", "--eval-episodes", "1", "--runs-dir", str(tmp_path)]
    result = run(script, *flags, "--track", env=env)
    assert result.returncode == 0, result.stderr
    offline_runs = glob.glob(str(tmp_path / "wandb" / "offline-run-*" / "run-*.wandb"))
    assert len(offline_runs) == 1
