"""gamid_her_fetch.py's run control: a SIGTERM-interrupted run resumed ends exactly where the uninterrupted run ends
(steps logged past the checkpoint by a run that died are logged anew); an unreadable checkpoint is refused; --evaluate
and --track work. sacm_her_fetch.py's tests resume a crashed run."""

import glob
import os
import signal

import pytest
import torch
from conftest import ENV, logged_the_same, run_script, scalars
from torch.utils.tensorboard import SummaryWriter

import gamid_her_fetch as her

# FetchReach with tiny networks. A 500-transition buffer holds 10 of the 16 episodes, so the checkpointed buffer has
# wrapped around; --normalize-obs puts the normalizer statistics in play. Checkpoints every 2 episodes.
TINY = dict(env_id="FetchReach-v4", total_timesteps=800, learning_starts=200, batch_size=32, net_arch=(32, 32),
            n_actors=2, buffer_size=500, normalize_obs=True, eval_freq=400, eval_episodes=2, log_freq=50,
            checkpoint_freq=100, save_model=True, cuda=False)  # fmt: skip


def assert_same_run(run_dir: str, reference_dir: str):
    """The same networks and normalizer at the end, and every scalar logged once per step, as the reference."""
    model, reference = (torch.load(os.path.join(d, "gamid_her_fetch.model")) for d in (run_dir, reference_dir))
    for net in ("actor", "qf"):
        for name, value in reference[net].items():
            assert torch.equal(model[net][name], value), (net, name)
    assert model["normalizer"] == reference["normalizer"]
    logged_the_same(run_dir, reference_dir)  # TensorBoard would show a step logged twice as two points


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> str:
    threads = torch.get_num_threads()  # the module fixture runs before `one_thread`
    torch.set_num_threads(1)
    run_dir = her.main(her.Args(runs_dir=str(tmp_path_factory.mktemp("uninterrupted")), **TINY))
    torch.set_num_threads(threads)
    return run_dir


def test_sigterm_checkpoints_and_the_resumed_run_ends_as_the_uninterrupted_one(
    uninterrupted, tmp_path, monkeypatch, capsys
):
    real_train_step, calls = her.train_step, []

    def signalled(**kwargs):  # SIGTERM in the middle of the 3rd training episode (step 320): it ends at step 350
        calls.append(1)
        if len(calls) == 120:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_train_step(**kwargs)

    monkeypatch.setattr(her, "train_step", signalled)
    with pytest.raises(SystemExit) as stopped:
        her.main(her.Args(runs_dir=str(tmp_path), **TINY))
    monkeypatch.setattr(her, "train_step", real_train_step)
    assert stopped.value.code == her.INTERRUPTED_EXIT_CODE == 75  # benchmarks/reproduce.py resumes runs that exit so
    (run_dir,) = glob.glob(str(tmp_path / "*"))
    out = capsys.readouterr().out
    assert "SIGTERM received" in out
    assert f"interrupted at step 350; resume with: python {os.path.relpath(her.__file__)} --resume {run_dir}" in out
    assert torch.load(os.path.join(run_dir, "checkpoint.pt"), weights_only=False)["step"] == 350
    assert not os.path.exists(os.path.join(run_dir, "gamid_her_fetch.model"))
    # A run killed long after its checkpoint has logged past it on disk: those steps must not survive as duplicates.
    with SummaryWriter(run_dir) as stale:
        stale.add_scalar("charts/episodic_return", 123.0, 400)
        stale.add_scalar("losses/qf_loss", 123.0, 450)

    assert her.main(her.Args(resume=run_dir, learning_rate=0.5)) == run_dir  # the saved hyperparameters win
    assert_same_run(run_dir, uninterrupted)
    assert her.main(her.Args(resume=run_dir)) == run_dir
    assert "already finished at step 800" in capsys.readouterr().out


def test_evaluate_watches_a_checkpoint_and_an_unreadable_one_is_refused(uninterrupted, tmp_path, capsys):
    assert her.main(her.Args(evaluate=uninterrupted, eval_episodes=2)) == uninterrupted
    mean = [value for step, value in scalars(uninterrupted)["eval/episodic_return"] if step == 800][0]
    # The run's last evaluation used the same seeds and networks: the same mean return.
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith(f"eval return {mean:.1f} +- ")

    with open(os.path.join(uninterrupted, "checkpoint.pt"), "rb") as f:
        (tmp_path / "checkpoint.pt").write_bytes(f.read()[:100_000])  # truncated
    for flags in (dict(resume=str(tmp_path)), dict(evaluate=str(tmp_path / "nothing.model"))):
        with pytest.raises(SystemExit) as refused:
            her.main(her.Args(**flags))
        assert " cannot be read (" in str(refused.value) and str(refused.value).endswith("every --checkpoint-freq.")


def test_track_logs_to_weights_and_biases_offline(tmp_path):
    """--track as CleanRL: a W&B run with the hyperparameters as config and TensorBoard synced (offline: no network)."""
    flags = ["--env-id", "FetchReach-v4", "--total-timesteps", "350", "--learning-starts", "300", "--batch-size", "16"]
    flags += ["--net-arch", "16", "--eval-episodes", "1", "--log-freq", "50", "--track", "--runs-dir", tmp_path]
    result = run_script("gamid_her_fetch.py", *flags, env=ENV | {"WANDB_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-2000:]
    (record,) = (tmp_path / "wandb").glob("offline-run-*/*.wandb")  # what `wandb sync` would upload
    content = record.read_bytes()
    assert b"n_actors" in content and b"eval/success_rate" in content and b"charts/episodic_return" in content
