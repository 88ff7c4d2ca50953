"""ppo_baseline.py: GAE, the clipped objective and the normalizer by hand; presets against the zoo; real runs."""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import ENV, ROOT, logged_the_same, run_script, scalars
from torch.utils.tensorboard import SummaryWriter

import ppo_baseline as ppo

# Hopper (terminating episodes) with small nets and short rollouts: a few seconds.
TINY = dict(
    env_id="Hopper-v4",
    total_timesteps=1024,
    n_steps=256,
    batch_size=64,
    n_epochs=2,
    net_arch=(32, 32),
    eval_freq=512,
    eval_episodes=2,
    checkpoint_freq=0,
)


def filled_buffer(rows, n_envs):
    """A RolloutBuffer holding `rows`: one dict of per-env lists per step (fields left out stay 0)."""
    buffer = ppo.RolloutBuffer(n_steps=len(rows), n_envs=n_envs, obs_dim=1, act_dim=1, device=torch.device("cpu"))
    for step, row in enumerate(rows):
        buffer.add(step, **{name: torch.tensor(values) for name, values in row.items()})
    return buffer


def test_gae_by_hand_bootstraps_a_time_limit_but_not_a_termination():
    """Two envs see the same rewards and values; at step 1 env 0 hits the time limit, env 1 terminates."""
    rows = []
    for step, (reward, value) in enumerate([(1.0, 0.5), (2.0, 1.0), (3.0, 1.5)]):
        ended = float(step == 1)
        rows.append(dict(rewards=[reward, reward], values=[value, value], terminations=[0.0, ended],
                         truncations=[ended, 0.0], episode_ends=[ended, ended],
                         final_values=[4.0 * ended, 0.0]))  # V(final obs) of the time-limited episode  # fmt: skip
    buffer = filled_buffer(rows, n_envs=2)
    buffer.compute_returns(last_value=torch.tensor([2.0, 2.0]), gamma=0.9, gae_lambda=0.5)

    # Step 2 starts new episodes in both: delta_2 = 3 + 0.9 * 2 - 1.5 = 3.3 = A_2.
    # Env 0, step 1: delta = 2 + 0.9 * V(final obs) 4 - 1 = 4.6; the episode ends, so A_1 = 4.6.
    #        step 0: delta = 1 + 0.9 * 1 - 0.5 = 1.4; A_0 = 1.4 + 0.9 * 0.5 * 4.6 = 3.47.
    # Env 1, step 1: delta = 2 + 0 - 1 = 1 (no future after a termination) = A_1; A_0 = 1.4 + 0.45 * 1 = 1.85.
    expected = torch.tensor([[3.47, 1.85], [4.6, 1.0], [3.3, 3.3]])
    assert torch.allclose(buffer.advantages, expected, atol=1e-6)
    assert torch.allclose(buffer.returns, expected + torch.tensor([[0.5], [1.0], [1.5]]), atol=1e-6)

    # With lambda = 1 and no episode end, A_t is the discounted return (bootstrapped at the end) minus V(s_t).
    rows = [dict(rewards=[reward], values=[value]) for reward, value in [(1.0, 0.3), (2.0, 0.2), (3.0, 0.1)]]
    buffer = filled_buffer(rows, n_envs=1)
    buffer.compute_returns(last_value=torch.tensor([5.0]), gamma=0.5, gae_lambda=1.0)
    discounted = [1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 5, 2 + 0.5 * 3 + 0.25 * 5, 3 + 0.5 * 5]
    assert torch.allclose(buffer.advantages[:, 0], torch.tensor(discounted) - torch.tensor([0.3, 0.2, 0.1]))


def test_clipped_surrogate_by_hand_value_and_gradient():
    ratios = torch.tensor([0.5, 1.1, 1.5, 0.7])
    advantages = torch.tensor([1.0, -1.0, 2.0, -2.0])
    old_log_prob = torch.tensor([0.1, -0.2, 0.3, -0.4])
    log_prob = (old_log_prob + ratios.log()).requires_grad_()
    loss = ppo.clipped_surrogate_loss(log_prob, old_log_prob, advantages, clip_range=0.2)
    # min(r A, clip(r, 0.8, 1.2) A): 0.5 (unclipped), -1.1 (inside), 2.4 (clipped at 1.2), -1.6 (clipped at 0.8).
    assert loss.item() == pytest.approx(-(0.5 - 1.1 + 2.4 - 1.6) / 4, abs=1e-6)
    loss.backward()
    # d(-r A / 4) / d log_prob = -r A / 4 where unclipped; a clipped term carries no gradient.
    assert torch.allclose(log_prob.grad, torch.tensor([-0.5 / 4, 1.1 / 4, 0.0, 0.0]), atol=1e-6)


def test_the_policy_log_prob_and_entropy_are_the_gaussian_ones():
    torch.manual_seed(0)
    agent = ppo.Agent(obs_dim=4, act_dim=2, net_arch=(8,), activation="tanh", log_std_init=-0.3, ortho_init=False)
    obs, actions = torch.randn(5, 4), torch.randn(5, 2)
    _, log_prob, entropy, value = agent(obs, actions)
    normal = torch.distributions.Normal(agent.policy_net(obs), agent.log_std.exp())
    assert torch.allclose(log_prob, normal.log_prob(actions).sum(-1), atol=1e-6)
    assert torch.allclose(entropy, normal.entropy().sum(-1), atol=1e-6)
    assert torch.equal(value, agent.value_net(obs)[:, 0])


def pooled_mean_var(samples: np.ndarray, prior_count: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of all samples at once, with SB3's prior: a pseudo-sample of mean 0, variance 1."""
    count = len(samples) + prior_count
    mean = samples.sum(0) / count
    var = (((samples - mean) ** 2).sum(0) + prior_count * (1 + mean**2)) / count
    return mean, var


def test_running_statistics_and_normalizer_match_numpy():
    rng = np.random.default_rng(0)
    normalizer = ppo.ObsRewardNormalizer(obs_dim=3, n_envs=2, gamma=0.9)
    seen_obs, seen_returns, returns = [], [], np.zeros(2)
    for step in range(200):
        obs = rng.normal(loc=[5.0, -2.0, 0.0], scale=[1.0, 10.0, 0.1], size=(2, 3))
        seen_obs.append(obs)
        normalized = normalizer.observation(obs, update=True)
        mean, var = pooled_mean_var(np.concatenate(seen_obs))
        np.testing.assert_allclose(normalized, np.clip((obs - mean) / np.sqrt(var + 1e-8), -10, 10), rtol=1e-9)

        reward = rng.normal(size=2)
        done = rng.random(2) < 0.05
        returns = returns * 0.9 + reward  # the discounted return of each env's episode so far
        seen_returns.append(returns.copy())
        scaled = normalizer.reward(reward, done)
        _, return_var = pooled_mean_var(np.concatenate(seen_returns))
        np.testing.assert_allclose(scaled, np.clip(reward / np.sqrt(return_var + 1e-8), -10, 10), rtol=1e-9)
        returns[done] = 0.0
    assert np.abs(normalized).max() < 10  # the clip did not decide the comparison above

    frozen = {key: value.clone() for key, value in normalizer.state_dict().items()}
    far = normalizer.observation(np.array([[1e6, 0.0, 0.0]]), update=False)
    assert far[0, 0] == 10.0  # clipped at 10
    assert all(torch.equal(value, normalizer.state_dict()[key]) for key, value in frozen.items())  # not updated
    restored = ppo.ObsRewardNormalizer(obs_dim=3, n_envs=2, gamma=0.9)
    restored.load_state_dict(frozen)
    obs = rng.normal(size=(2, 3))
    assert np.array_equal(restored.observation(obs, update=True), normalizer.observation(obs, update=True))


def test_orthogonal_init_gains_as_sb3():
    torch.manual_seed(0)
    agent = ppo.Agent(obs_dim=11, act_dim=3, net_arch=(64, 64), activation="tanh", log_std_init=-0.5, ortho_init=True)
    hidden = agent.policy_net[0].weight  # (64, 11): orthonormal columns scaled by sqrt(2)
    assert torch.allclose(hidden.T @ hidden, 2 * torch.eye(11), atol=1e-5)
    head = agent.policy_net[-1].weight  # (3, 64): orthonormal rows scaled by 0.01
    assert torch.allclose(head @ head.T, 1e-4 * torch.eye(3), atol=1e-9)
    value_head = agent.value_net[-1].weight
    assert torch.allclose(value_head @ value_head.T, torch.ones(1, 1), atol=1e-5)
    assert all(not layer.bias.any() for layer in agent.modules() if isinstance(layer, torch.nn.Linear))
    assert torch.equal(agent.log_std, torch.full((3,), -0.5))


# RL Baselines3 Zoo v1.6.2, hyperparams/ppo.yml, the six MuJoCo entries as the zoo writes them (keys it sets),
# and SB3 1.6.2's PPO and MlpPolicy defaults for the rest. Transcribed separately from the script's PRESETS.
SB3_DEFAULTS = dict(
    n_steps=2048, batch_size=64, n_epochs=10, learning_rate=3e-4, gamma=0.99, gae_lambda=0.95, clip_range=0.2,
    ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5, net_arch=(64, 64), activation="tanh", log_std_init=0.0,
    ortho_init=True, n_envs=1,
)  # fmt: skip
ZOO_POLICY_KWARGS = dict(log_std_init=-2, ortho_init=False, activation="relu", net_arch=(256, 256))
ZOO = {
    "Ant": dict(normalize=True, n_timesteps=1e6),
    "Swimmer": dict(normalize=True, n_timesteps=1e6, gamma=0.9999),
    "HalfCheetah": dict(
        normalize=True, n_envs=1, n_timesteps=1e6, batch_size=64, n_steps=512, gamma=0.98, learning_rate=2.0633e-05,
        ent_coef=0.000401762, clip_range=0.1, n_epochs=20, gae_lambda=0.92, max_grad_norm=0.8, vf_coef=0.58096,
        **ZOO_POLICY_KWARGS,
    ),
    "Hopper": dict(
        normalize=True, n_envs=1, n_timesteps=1e6, batch_size=32, n_steps=512, gamma=0.999, learning_rate=9.80828e-05,
        ent_coef=0.00229519, clip_range=0.2, n_epochs=5, gae_lambda=0.99, max_grad_norm=0.7, vf_coef=0.835671,
        **ZOO_POLICY_KWARGS,
    ),
    "Walker2d": dict(
        normalize=True, n_envs=1, n_timesteps=1e6, batch_size=32, n_steps=512, gamma=0.99, learning_rate=5.05041e-05,
        ent_coef=0.000585045, clip_range=0.1, n_epochs=20, gae_lambda=0.95, max_grad_norm=1, vf_coef=0.871923,
    ),
    "Humanoid": dict(
        normalize=True, n_envs=1, n_timesteps=1e7, batch_size=256, n_steps=512, gamma=0.95, learning_rate=3.56987e-05,
        ent_coef=0.00238306, clip_range=0.3, n_epochs=5, gae_lambda=0.9, max_grad_norm=2, vf_coef=0.431892,
        **ZOO_POLICY_KWARGS,
    ),
}  # fmt: skip


@pytest.mark.parametrize("task", sorted(ZOO))
def test_every_preset_cell_is_the_zoo_value(task):
    args = ppo.resolve_args(ppo.Args(env_id=f"{task}-v3"))
    assert args.env_id == f"{task}-v4"
    zoo = SB3_DEFAULTS | ZOO[task]
    for field in ppo.PRESETS[task]:
        if field == "total_timesteps":  # the paper's budget (Table 1), not the zoo's 1e7 for Humanoid; whole rollouts
            budget = 2_000_000 if task == "Humanoid" else zoo["n_timesteps"]
            assert ppo.PRESETS[task][field] == budget and 0 <= args.total_timesteps - budget < args.n_steps
        else:
            assert getattr(args, field) == zoo[field], f"{task} {field}"
    assert (args.n_envs, args.normalize) == (zoo["n_envs"], zoo["normalize"])
    assert set(ppo.PRESETS[task]) == set(SB3_DEFAULTS) - {"n_envs"} | {"total_timesteps"}  # every field, no other


def test_an_explicit_flag_beats_the_preset(capsys):
    args = ppo.resolve_args(ppo.Args(env_id="Hopper-v3", learning_rate=3e-4, net_arch=(64, 64)))
    assert "Hopper-v3 needs mujoco-py" in capsys.readouterr().out
    assert (args.learning_rate, args.net_arch, args.batch_size) == (3e-4, (64, 64), 32)
    args = ppo.resolve_args(ppo.Args(env_id="Hopper-v4", total_timesteps=1000, n_steps=128, n_envs=2))
    assert args.total_timesteps == 1024  # rounded up to whole rollouts, as SB3 runs them


def test_bad_input_is_refused_with_one_sentence():
    for overrides, words in [
        (dict(batch_size=1024, n_steps=512), "--batch-size must lie between 2 and n_steps x n_envs = 512"),
        (dict(gamma=1.5), "--gamma and --gae-lambda must lie in [0, 1]"),
        (dict(clip_range=0.0), "must be positive"),
        (dict(n_epochs=0), "must be positive"),
        (dict(ent_coef=-0.1), "must not be negative"),
        (dict(net_arch=()), "--net-arch needs at least one layer"),
        (dict(env_id="Hopper-v9"), "Unknown env id 'Hopper-v9'"),
    ]:
        with pytest.raises(SystemExit) as refusal:
            ppo.resolve_args(ppo.Args(**{"env_id": "Hopper-v4"} | overrides))
        message = str(refusal.value.code)
        assert words in message and message.count(". ") == 0 and "\n" not in message, message


def test_a_discrete_env_is_refused_before_a_run_directory_is_made(tmp_path):
    with pytest.raises(SystemExit) as refusal:  # a string: Python prints it alone and exits with status 1
        ppo.main(ppo.Args(env_id="CartPole-v1", runs_dir=str(tmp_path)))
    assert refusal.value.code == "CartPole-v1 has a Discrete action space; this PPO needs a Box one."
    assert not os.listdir(tmp_path)


# Six rollouts of 2 x 64 steps, checkpoints every two, evaluations at 512 and at the end (a budget that is not a
# whole number of rollouts, rounded up to 768). Two envs: a checkpoint falls mid-episode in each.
RESUMABLE = TINY | dict(n_envs=2, n_steps=64, total_timesteps=700, checkpoint_freq=256, save_model=True)


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory):
    return ppo.main(ppo.Args(runs_dir=str(tmp_path_factory.mktemp("whole")), **RESUMABLE))


def test_a_run_logs_standard_tags_and_its_saved_model_reproduces_the_evaluation(whole_run, capsys):
    run_dir = whole_run
    logged = scalars(run_dir)
    expected = {"charts/episodic_return", "charts/episodic_length", "charts/SPS", "eval/episodic_return",
                "losses/policy_loss", "losses/value_loss", "losses/entropy", "losses/approx_kl", "losses/clipfrac",
                "losses/explained_variance", "charts/action_std"}  # fmt: skip
    assert expected == set(logged)
    assert [step for step, _ in logged["eval/episodic_return"]] == [512, 768]
    assert [step for step, _ in logged["losses/policy_loss"]] == [128, 256, 384, 512, 640, 768]
    assert os.path.exists(os.path.join(run_dir, "hyperparameters.json"))

    saved = torch.load(os.path.join(run_dir, "ppo_baseline.model"))  # weights_only=True: tensors and plain values
    run_args = ppo.Args(**saved["args"])
    assert run_args.total_timesteps == 768
    env = ppo.make_eval_env(run_args.env_id)
    agent = ppo.Agent(11, 3, run_args.net_arch, run_args.activation, run_args.log_std_init, run_args.ortho_init)
    agent.load_state_dict(saved["agent"])
    normalizer = ppo.ObsRewardNormalizer(11, run_args.n_envs, run_args.gamma)
    normalizer.load_state_dict(saved["normalizer"])
    returns = ppo.evaluate(agent, normalizer, env, 2, torch.device("cpu"), seed=run_args.seed + 10_000)
    assert np.mean(returns) == pytest.approx(logged["eval/episodic_return"][-1][1], rel=1e-5)

    capsys.readouterr()
    ppo.main(ppo.Args(evaluate=os.path.join(run_dir, "ppo_baseline.model"), eval_episodes=2))
    assert capsys.readouterr().out.strip().endswith(f"{np.mean(returns):.1f} +- {np.std(returns):.1f} over 2 episodes")


def final_parameters(run_dir):
    saved = torch.load(os.path.join(run_dir, "ppo_baseline.model"))
    return {f"{part}.{name}": tensor for part in ("agent", "normalizer") for name, tensor in saved[part].items()}


def assert_same_run(parts, whole):
    """The same final parameters and normalization statistics, the same logs (none twice), bit for bit."""
    whole_parameters, parts_parameters = final_parameters(whole), final_parameters(parts)
    assert all(torch.equal(tensor, parts_parameters[name]) for name, tensor in whole_parameters.items())
    logged_the_same(parts, whole)


def test_a_sigterm_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch, whole_run):
    calls = []
    real_train_step = ppo.train_step

    def interrupted_train_step(**kwargs):
        calls.append(1)
        if len(calls) == 3:  # in the first update (2 minibatches x 2 epochs): finish it, checkpoint and exit
            os.kill(os.getpid(), signal.SIGTERM)
        return real_train_step(**kwargs)

    monkeypatch.setattr(ppo, "train_step", interrupted_train_step)
    with pytest.raises(SystemExit) as interruption:
        ppo.main(ppo.Args(runs_dir=str(tmp_path), **RESUMABLE))
    assert interruption.value.code == ppo.INTERRUPTED_EXIT_CODE == 75
    monkeypatch.setattr(ppo, "train_step", real_train_step)
    (parts,) = [str(path) for path in tmp_path.iterdir()]
    assert torch.load(os.path.join(parts, "checkpoint.pt"), weights_only=False)["step"] == 128  # not a periodic one
    leftover = SummaryWriter(parts)  # what a killed run may have flushed past its checkpoint: to be purged
    leftover.add_scalar("charts/episodic_return", -1.0, 150)
    leftover.add_scalar("eval/episodic_return", -1.0, 512)
    leftover.close()
    time.sleep(1.1)  # event files are read in the order of the second in their names

    assert ppo.main(ppo.Args(resume=parts)) == parts
    assert_same_run(parts, whole_run)
    assert ppo.main(ppo.Args(resume=parts)) == parts  # a finished run resumes to nothing more
    logged_the_same(parts, whole_run)
    with pytest.raises(SystemExit) as refusal:  # a directory without a checkpoint
        ppo.main(ppo.Args(resume=str(tmp_path)))
    assert str(refusal.value.code).startswith(f"{tmp_path}/checkpoint.pt cannot be read (FileNotFoundError); runs")

    shutil.copy(os.path.join(parts, "checkpoint.pt"), tmp_path / "truncated.pt")
    with open(tmp_path / "truncated.pt", "r+b") as f:
        f.truncate(os.path.getsize(tmp_path / "truncated.pt") // 2)
    with pytest.raises(SystemExit) as refusal:
        ppo.load_checkpoint(str(tmp_path / "truncated.pt"))
    assert "cannot be read" in str(refusal.value.code)


def test_a_killed_run_resumes_from_its_last_checkpoint_to_the_uninterrupted_result(tmp_path, whole_run):
    flags = ["--runs-dir", str(tmp_path)]
    for field, value in RESUMABLE.items():
        if value is True:
            flags.append(f"--{field.replace('_', '-')}")
        else:
            flags += [f"--{field.replace('_', '-')}", *map(str, value if isinstance(value, tuple) else [value])]
    command = [sys.executable, os.path.join(ROOT, "ppo_baseline.py"), *flags]
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not list(tmp_path.glob("*/checkpoint.pt")):  # written by rename: whole once it is there
        assert process.poll() is None, "the run ended before its first checkpoint"
        time.sleep(0.02)
    process.kill()  # SIGKILL: no chance to checkpoint; the periodic checkpoint is all there is
    process.wait()
    (parts,) = [str(path) for path in tmp_path.iterdir()]
    assert torch.load(os.path.join(parts, "checkpoint.pt"), weights_only=False)["step"] < 768
    time.sleep(1.1)  # event files are read in the order of the second in their names

    ppo.main(ppo.Args(resume=parts))
    assert_same_run(parts, whole_run)


def test_a_nan_loss_stops_the_run_naming_the_step_and_the_loss(tmp_path, monkeypatch):
    real_train_step = ppo.train_step
    monkeypatch.setattr(
        ppo, "train_step", lambda **kwargs: real_train_step(**kwargs) | {"losses/value_loss": torch.tensor(np.nan)}
    )
    with pytest.raises(SystemExit) as stop:
        ppo.main(ppo.Args(runs_dir=str(tmp_path), **TINY))
    assert str(stop.value.code).startswith("losses/value_loss is nan at step 256; stopping")


def test_track_and_capture_video_in_one_real_run_then_watching_records_too(tmp_path):
    """--track with W&B offline (no network) and --capture-video, in a subprocess: wandb patches TensorBoard for the
    process, and MUJOCO_GL is chosen before MuJoCo's first import."""
    flags = ["--env-id", "InvertedPendulum-v4", "--total-timesteps", "128", "--n-steps", "64", "--batch-size", "32"]
    flags += ["--n-epochs", "1", "--net-arch", "16", "16", "--eval-freq", "64", "--eval-episodes", "1"]
    flags += ["--runs-dir", tmp_path / "runs", "--save-model", "--track"]
    env = ENV | {"WANDB_DIR": str(tmp_path)}
    result, videos = run_script("ppo_baseline.py", *flags, "--capture-video", env=env), True
    if result.returncode == 1 and "--capture-video cannot render" in result.stderr:  # no offscreen OpenGL here
        result, videos = run_script("ppo_baseline.py", *flags, env=env), False
    assert result.returncode == 0, result.stderr[-2000:]
    (record,) = (tmp_path / "wandb").glob("offline-run-*/*.wandb")  # what `wandb sync` would upload
    content = record.read_bytes()
    assert b"n_steps" in content and b"InvertedPendulum-v4" in content  # the hyperparameters as config
    assert b"eval/episodic_return" in content and b"losses/value_loss" in content  # TensorBoard synced
    if not videos:
        pytest.skip("no offscreen OpenGL here for --capture-video (apt-get install libosmesa6)")
    (run_dir,) = (tmp_path / "runs").iterdir()
    recorded = sorted(path.name for path in (run_dir / "videos").glob("*.mp4"))
    assert recorded == ["step128-episode-1.mp4", "step64-episode-0.mp4"]  # 2 evaluations x 1 episode, by step
    watch = ["--evaluate", run_dir / "ppo_baseline.model", "--eval-episodes", "3", "--capture-video"]
    assert run_script("ppo_baseline.py", *watch).returncode == 0
    assert len(list((run_dir / "videos_evaluate").glob("*.mp4"))) == 3  # the last one written when the env closes


def test_time_limits_bootstrap_from_the_final_observation_in_a_vector_env(tmp_path, monkeypatch):
    """Swimmer never terminates; its 1000-step time limit truncates each of two envs once, at step 999 of 1024."""
    rollouts = []
    real_compute_returns = ppo.RolloutBuffer.compute_returns

    def recording_compute_returns(self, last_value, gamma, gae_lambda):
        rollouts.append({name: getattr(self, name).clone() for name in ("terminations", "truncations", "episode_ends",
                                                                        "final_values", "rewards")})  # fmt: skip
        return real_compute_returns(self, last_value, gamma, gae_lambda)

    monkeypatch.setattr(ppo.RolloutBuffer, "compute_returns", recording_compute_returns)
    settings = TINY | dict(env_id="Swimmer-v4", n_envs=2, n_steps=512, total_timesteps=2048, eval_freq=10**6)
    ppo.main(ppo.Args(runs_dir=str(tmp_path), **settings | dict(eval_episodes=1)))

    truncations = torch.cat([rollout["truncations"] for rollout in rollouts])  # (1024 steps, 2 envs)
    assert truncations.nonzero().tolist() == [[999, 0], [999, 1]]
    assert torch.equal(torch.cat([rollout["episode_ends"] for rollout in rollouts]), truncations)
    assert not any(rollout["terminations"].any() for rollout in rollouts)
    final_values = torch.cat([rollout["final_values"] for rollout in rollouts])
    assert final_values[999].abs().min() > 0 and not final_values[truncations == 0].any()  # V(final obs), there only
    rewards = torch.cat([rollout["rewards"] for rollout in rollouts])
    assert rewards[1000].abs().min() > 0  # the next step is the new episode's first, not a reset with reward 0
