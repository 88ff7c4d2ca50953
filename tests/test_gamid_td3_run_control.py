"""Long runs of gamid_continuous_action.py and td3_baseline.py: checkpoints, signals, resume, --evaluate, --track.

Every run here is a subprocess with the same environment (one thread), as a user or a cluster starts it, so an
interrupted-and-resumed run can be compared bit for bit with the same run left alone.
"""

import glob
import math
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ENV, ROOT, logged_the_same, run_script, scalars

import gamid_continuous_action as gamid
import td3_baseline as td3

MODULES = {"gamid_continuous_action.py": gamid, "td3_baseline.py": td3}
# Short Hopper runs (many short episodes) with tiny nets, a checkpoint every 300 steps and evaluations to wait for.
FLAGS = [
    "--env-id", "Hopper-v4", "--total-timesteps", "1200", "--learning-starts", "300", "--batch-size", "32",
    "--net-arch", "32", "32", "--eval-freq", "400", "--eval-episodes", "2", "--log-freq", "100",
    "--checkpoint-freq", "300", "--save-model", "--no-cuda",
]  # fmt: skip
# Gamid's runs also learn the temperature (its parameter and optimizer are checkpointed) and record the means.
EXTRA = {
    "gamid_continuous_action.py": ["--n-actors", "3", "--temperature", "auto", "--epsilon", "auto", "--record-means",
                                   "--probe-states", "50"],
    "td3_baseline.py": [],
}  # fmt: skip


def run_until(script, runs_dir, line_start, signum):
    """Start a run, send `signum` once it prints a line starting with `line_start`; returns (exit code, output)."""
    command = [sys.executable, os.path.join(ROOT, script), *FLAGS, *EXTRA[script], "--runs-dir", runs_dir]
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    for line in process.stdout:
        output.append(line)
        if line.startswith(line_start):
            process.send_signal(signum)
            break
    rest, _ = process.communicate(timeout=600)
    return process.returncode, "".join(output) + rest


def assert_same_run(run_dir, reference_dir, script):
    """Every scalar at every step (none logged twice), every saved parameter and, for Gamid, means.npz."""
    logged_the_same(run_dir, reference_dir)
    model, reference = (torch.load(glob.glob(os.path.join(d, "*.model"))[0]) for d in (run_dir, reference_dir))
    for network in ("actor", "qf"):
        assert model[network].keys() == reference[network].keys()
        for name, tensor in model[network].items():
            assert torch.equal(tensor, reference[network][name]), f"{network}.{name}"
    if script.startswith("gamid"):
        means, reference_means = (np.load(os.path.join(d, "means.npz")) for d in (run_dir, reference_dir))
        assert means["steps"].tolist() == [400, 800, 1200]
        for name in ("steps", "means", "probe_obs"):
            assert np.array_equal(means[name], reference_means[name]), name


@pytest.fixture(scope="module", params=list(MODULES))
def reference(request, tmp_path_factory):
    """The uninterrupted run, tracked with W&B offline: (script, run directory, its output, the W&B directory)."""
    script, scratch = request.param, tmp_path_factory.mktemp("reference")
    env = {**ENV, "WANDB_DIR": str(scratch)}
    result = run_script(script, *FLAGS, *EXTRA[script], "--runs-dir", scratch / "runs", "--track", env=env)
    assert result.returncode == 0, result.stderr
    return script, glob.glob(str(scratch / "runs" / "*"))[0], result.stdout, scratch


@pytest.mark.parametrize("reference", ["td3_baseline.py"], indirect=True)  # one SIGTERM resume: TD3's
def test_sigterm_checkpoints_at_the_episode_end_and_the_resumed_run_ends_bit_for_bit_the_same(reference, tmp_path):
    script, reference_dir, _, _ = reference
    code, output = run_until(script, str(tmp_path), "step 400, eval return", signal.SIGTERM)
    assert code == 75, output  # EX_TEMPFAIL: benchmarks/reproduce.py resumes runs that exit so
    run_dir = glob.glob(str(tmp_path / "*"))[0]
    resume_line = output.strip().splitlines()[-1]
    assert resume_line.startswith("interrupted at step ") and resume_line.endswith(f" --resume {run_dir}")
    stopped_at = int(resume_line.split()[3].rstrip(";"))
    assert 400 < stopped_at < 1200  # the episode running at the signal was finished, not the run
    assert torch.load(os.path.join(run_dir, "checkpoint.pt"), weights_only=False)["step"] == stopped_at
    assert not glob.glob(os.path.join(run_dir, "*.model"))

    resumed = run_script(script, "--resume", run_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(run_dir, reference_dir, script)


@pytest.mark.parametrize("reference", ["gamid_continuous_action.py"], indirect=True)  # and Gamid's extra state
def test_sigkill_resumes_from_the_last_periodic_checkpoint_and_still_matches(reference, tmp_path):
    script, reference_dir, _, _ = reference
    code, _ = run_until(script, str(tmp_path), "step 800, eval return", signal.SIGKILL)
    assert code == -signal.SIGKILL
    run_dir = glob.glob(str(tmp_path / "*"))[0]
    checkpoint_step = torch.load(os.path.join(run_dir, "checkpoint.pt"), weights_only=False)["step"]
    assert 300 <= checkpoint_step < 800  # a periodic checkpoint: the run was killed before its end
    logged_when_killed = max(step for points in scalars(run_dir).values() for step, _ in points)
    assert logged_when_killed > checkpoint_step  # so the resumed run logs some steps a second time
    assert np.load(os.path.join(run_dir, "means.npz"))["steps"].tolist() == [400, 800]  # recorded again resumed

    resumed = run_script(script, "--resume", run_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(run_dir, reference_dir, script)


def test_the_tracked_reference_logged_to_weights_and_biases_and_learned_its_temperature(reference):
    script, reference_dir, _, scratch = reference
    assert len(glob.glob(str(scratch / "wandb" / "offline-run-*" / "run-*.wandb"))) == 1
    if script.startswith("gamid"):  # --temperature auto --epsilon auto: the default D* of N = 3, Hopper's 3 actions
        logged = {tag: [value for _, value in points] for tag, points in scalars(reference_dir).items()}
        assert logged["charts/temperature_target"] == pytest.approx([3.0 - math.log(2)] * 9)
        assert logged["charts/epsilon"] == pytest.approx([1 / 30] * 9)
        temperatures = logged["charts/temperature"]  # learned from Table 5's 0.1 on
        assert temperatures[0] == pytest.approx(0.1, rel=0.05) and len(set(temperatures)) == 9


def test_a_finished_run_says_so(reference, capsys):
    script, reference_dir, _, _ = reference
    module = MODULES[script]
    assert module.main(module.Args(resume=reference_dir)) == reference_dir
    assert capsys.readouterr().out.strip().endswith(f"{reference_dir} already finished at step 1200; nothing to do.")


def test_a_truncated_checkpoint_or_a_missing_run_is_refused_with_one_sentence(reference, tmp_path):
    script, reference_dir, _, _ = reference
    module = MODULES[script]
    run_dir = shutil.copytree(reference_dir, tmp_path / "run")
    path = run_dir / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    for resume, start, end in (
        (run_dir, f"{path} cannot be read (", "); runs write one every --checkpoint-freq."),
        (tmp_path, f"{tmp_path / 'checkpoint.pt'} cannot be read (FileNotFoundError)", "--checkpoint-freq."),
    ):
        with pytest.raises(SystemExit) as exit_info:
            module.main(module.Args(resume=str(resume)))
        message = str(exit_info.value.code)
        assert message.startswith(start) and message.endswith(end) and "\n" not in message


def test_evaluate_watches_a_saved_model_or_checkpoint_and_trains_nothing(reference, monkeypatch, capsys):
    script, reference_dir, output, _ = reference
    module = MODULES[script]
    final_evaluation = [line for line in output.splitlines() if line.startswith("step 1200, eval return")][0]
    model = glob.glob(os.path.join(reference_dir, "*.model"))[0]
    before = sorted(os.listdir(reference_dir))
    # To more digits than printed: the same greedy policy from the same start states gives the run's final
    # evaluation, from the model and from the run directory's final checkpoint.pt alike.
    seen = []
    real_evaluate = module.evaluate
    monkeypatch.setattr(module, "evaluate", lambda *a, **kw: seen.append(real_evaluate(*a, **kw)) or seen[-1])
    for path in (model, reference_dir):
        module.main(module.Args(evaluate=path, eval_episodes=2, seed=1))
        mean_and_std = final_evaluation.split("eval return ")[1]
        assert capsys.readouterr().out.strip().splitlines()[-1] == f"eval return {mean_and_std} over 2 episodes"
    assert sorted(os.listdir(reference_dir)) == before  # nothing trained, logged or saved
    logged = scalars(reference_dir)["eval/episodic_return"][-1][1]
    returns = [result[0] if script.startswith("gamid") else result for result in seen]  # Gamid's: and switch rate
    assert [sum(episodes) / 2 for episodes in returns] == pytest.approx([logged, logged], rel=1e-6)
