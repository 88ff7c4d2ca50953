"""sacm_her_fetch.py: SAC(M) math against torch.distributions, HER relabelling against a hand computation, a real
FetchReach run (tags, saved model, --evaluate), presets, bad input, and interrupted runs that resume exactly."""

import math
import os
import shutil
from functools import partial

import numpy as np
import pytest
import torch
import torch.distributions as D
from conftest import ENV, logged_the_same, run_script, scalars

import sacm_her_fetch as her

# FetchReach with small nets: a few seconds per run. 12 episodes; training from episode 7 on.
TINY = dict(
    env_id="FetchReach-v4",
    total_timesteps=600,
    learning_starts=300,
    batch_size=64,
    net_arch=(32, 32),
    eval_freq=300,
    eval_episodes=2,
    log_freq=100,
    checkpoint_freq=0,
    normalize_obs=True,
)
T = 10  # steps per hand-built episode
STEP = 0.03  # consecutive achieved goals are 0.03 apart: within Fetch's 0.05 success distance of the next one only
FAR = 50.0  # desired goals lie far from every achieved goal


@pytest.fixture(scope="module")
def fetch_reward():
    """FetchReach-v4's own vectorized compute_reward (sparse: 0 within 0.05 of the goal, else -1)."""
    env = her.make_goal_env("FetchReach-v4", 0)
    yield env.unwrapped.compute_reward
    env.close()


def saved_model(run_dir):
    return torch.load(os.path.join(run_dir, "sacm_her_fetch.model"))


# ---------------------------------------------------------------------------------------------------------------
# The SAC(M) pieces


def test_one_component_log_prob_and_actor_loss_are_plain_sacs():
    torch.manual_seed(0)
    actor = her.MixtureActor(1, 13, 4, (16, 16)).double()
    qf = her.TwinQ(13, 4, (16, 16)).double()
    obs = torch.randn(32, 13, dtype=torch.float64)
    alpha = torch.tensor(0.3, dtype=torch.float64)
    mean, log_std, log_weights = actor(obs)
    assert torch.equal(log_weights, torch.zeros(1, 32, dtype=torch.float64))
    u = mean[0] + log_std[0].exp() * torch.randn_like(mean[0])
    sac = D.TransformedDistribution(D.Independent(D.Normal(mean[0], log_std[0].exp()), 1), [D.TanhTransform()])
    ours = her.mixture_log_prob(u, mean, log_std, log_weights)
    assert torch.allclose(ours, sac.log_prob(torch.tanh(u)), rtol=0, atol=1e-8)

    # SAC's actor loss, mean_s[alpha log pi(a|s) - min(Q1, Q2)(s, a)] with one reparameterized a per state.
    torch.manual_seed(1)
    loss, entropy, weights, _ = her.actor_loss(actor, qf, obs, alpha)
    torch.manual_seed(1)
    a = torch.tanh(mean[0] + log_std[0].exp() * torch.randn_like(mean[0]))
    log_prob = sac.log_prob(a)
    expected = (alpha * log_prob - torch.minimum(*qf(obs, a))).mean()
    assert torch.allclose(loss, expected, rtol=0, atol=1e-8)
    assert torch.allclose(entropy, -log_prob.mean(), rtol=0, atol=1e-8)
    assert torch.equal(weights, torch.ones(1, 32, dtype=torch.float64))


def test_mixture_log_density_matches_mixture_same_family():
    g = torch.Generator().manual_seed(0)
    k, batch, act_dim = 3, 8, 4
    mean = torch.randn(k, batch, act_dim, generator=g, dtype=torch.float64)
    log_std = torch.rand(k, batch, act_dim, generator=g, dtype=torch.float64) - 1
    log_weights = torch.randn(k, batch, generator=g, dtype=torch.float64).log_softmax(0)
    u = torch.randn(5, batch, act_dim, generator=g, dtype=torch.float64)
    components = D.Independent(D.Normal(mean.transpose(0, 1), log_std.exp().transpose(0, 1)), 1)
    mixture = D.MixtureSameFamily(D.Categorical(logits=log_weights.T), components)
    expected = mixture.log_prob(u) - torch.log1p(-torch.tanh(u).pow(2)).sum(-1)
    assert torch.allclose(her.mixture_log_prob(u, mean, log_std, log_weights), expected, rtol=0, atol=1e-10)


def test_greedy_action_is_tanh_of_the_component_mean_with_the_highest_q1():
    torch.manual_seed(0)
    actor, qf = her.MixtureActor(3, 13, 4, (16,)), her.TwinQ(13, 4, (16,))
    obs = torch.randn(50, 13)
    greedy = her.greedy_mixture_action(actor, qf, obs)
    mean = actor(obs)[0]
    for b in range(50):  # one state at a time, Q1 of each component's squashed mean
        candidates = [torch.tanh(mean[i, b]) for i in range(3)]
        q1 = [qf(obs[b : b + 1], c[None])[0, 0].item() for c in candidates]
        assert torch.equal(greedy[b], candidates[int(np.argmax(q1))])
    first = (greedy == torch.tanh(mean[0])).all(-1)
    assert first.any() and not first.all()  # the choice depends on the state, not on the component's index


def test_train_step_tunes_alpha_and_polyak_averages_the_critics():
    torch.manual_seed(0)
    args = her.Args(gamma=0.95, tau=0.05, learning_rate=1e-2)
    actor, qf, qf_target = her.MixtureActor(3, 13, 4, (16,)), her.TwinQ(13, 4, (16,)), her.TwinQ(13, 4, (16,))
    old_target = [p.detach().clone() for p in qf_target.parameters()]
    log_alpha = torch.zeros((), requires_grad=True)
    batch = her.Batch(
        torch.randn(64, 13), torch.rand(64, 4) * 2 - 1, -torch.ones(64), torch.randn(64, 13), torch.zeros(64)
    )
    adam = partial(torch.optim.Adam, lr=args.learning_rate)
    stats = her.train_step(
        actor=actor,
        qf=qf,
        qf_target=qf_target,
        log_alpha=log_alpha,
        actor_optimizer=adam(actor.parameters()),
        q_optimizer=adam(qf.parameters()),
        alpha_optimizer=adam([log_alpha]),
        batch=batch,
        args=args,
    )
    assert stats["charts/entropy"] > -4  # a fresh actor is more random than the target entropy -|A|
    assert torch.isclose(log_alpha.detach(), torch.tensor(-args.learning_rate), atol=1e-6)  # so alpha falls
    for p, old, new in zip(qf_target.parameters(), old_target, qf.parameters()):
        assert torch.allclose(p, (1 - args.tau) * old + args.tau * new.detach(), atol=1e-7)


# ---------------------------------------------------------------------------------------------------------------
# HER


def hand_built_episode(e: int) -> dict:
    """Episode e, labelled so that a sampled row tells where it came from: observation of state s = (e, s),
    achieved goal of state s = (100 e, 0.03 s, 0), desired goal (100 e, 50, 0), action (e, t, 0, 0)."""
    s = np.arange(T + 1, dtype=np.float32)
    return {
        "obs": np.stack([np.full_like(s, e), s], 1),
        "achieved_goals": np.stack([np.full_like(s, 100 * e), STEP * s, np.zeros_like(s)], 1),
        "desired_goals": np.tile(np.array([100 * e, FAR, 0], np.float32), (T, 1)),
        "actions": np.stack([np.full(T, e), np.arange(T), np.zeros(T), np.zeros(T)], 1),
    }


def hand_built_buffer(compute_reward, n_episodes: int, capacity: int, k: int = 4) -> her.HerReplayBuffer:
    normalizer, cpu, rng = her.Normalizer(5, False), torch.device("cpu"), np.random.default_rng(0)
    rb = her.HerReplayBuffer(capacity, T, 2, 3, 4, compute_reward, k, normalizer, cpu, rng)
    for e in range(n_episodes):
        rb.add_episode(**hand_built_episode(e))
    return rb


def test_relabelled_goals_come_from_later_states_of_the_same_episode_and_rewards_are_recomputed(fetch_reward):
    rb = hand_built_buffer(fetch_reward, n_episodes=8, capacity=5)  # wrapped around: episodes 3..7 remain
    batch = rb.sample(5000)
    obs, next_obs, goals = batch.obs.numpy(), batch.next_obs.numpy(), batch.obs[:, 2:].numpy()
    e, t = obs[:, 0].round().astype(int), obs[:, 1].round().astype(int)
    assert set(e) == set(range(3, 8)) and set(t) == set(range(T))
    np.testing.assert_array_equal(next_obs[:, :2], np.stack([e, t + 1], 1))  # s' follows s in the same episode
    np.testing.assert_array_equal(next_obs[:, 2:], goals)  # ... under the same goal
    np.testing.assert_array_equal(batch.actions[:, :2].numpy(), np.stack([e, t], 1))

    # Independently, row by row: the goal is the step's own desired goal or the achieved goal of a state t' > t.
    episodes = {i: hand_built_episode(i) for i in range(3, 8)}
    relabelled = np.zeros(len(e), bool)
    for row, (i, step, goal) in enumerate(zip(e, t, goals)):
        later = episodes[i]["achieved_goals"][step + 1 :]
        if not np.array_equal(goal, episodes[i]["desired_goals"][step]):
            assert any(np.array_equal(goal, achieved) for achieved in later), (i, step, goal)
            relabelled[row] = True
    assert abs(relabelled.mean() - 0.8) < 4 * math.sqrt(0.8 * 0.2 / len(e))  # k / (k + 1) with k = 4
    # Every later state can be the new goal, the last one (t' = T) included.
    future = (goals[relabelled, 1] / STEP).round().astype(int)
    assert set(future - t[relabelled]) == set(range(1, T + 1))

    # The reward is the env's own for the (new) goal and the achieved goal after the action, by hand:
    # 0 within 0.05 of the goal, else -1.
    achieved_next = np.stack([100 * e, STEP * (t + 1), np.zeros_like(t)], 1)
    by_hand = -(np.linalg.norm(achieved_next - goals, axis=1) > 0.05).astype(np.float32)
    np.testing.assert_array_equal(batch.rewards.numpy(), by_hand)
    np.testing.assert_array_equal(batch.rewards.numpy(), fetch_reward(achieved_next, goals, None))
    assert set(np.unique(by_hand)) == {-1.0, 0.0}
    np.testing.assert_array_equal(batch.terminated.numpy(), 0)  # time-limit episodes: always bootstrap


def test_no_relabelling_with_k_zero(fetch_reward):
    batch = hand_built_buffer(fetch_reward, n_episodes=3, capacity=3, k=0).sample(500)
    np.testing.assert_array_equal(batch.obs[:, 3].numpy(), FAR)
    np.testing.assert_array_equal(batch.rewards.numpy(), -1)


# ---------------------------------------------------------------------------------------------------------------
# A real run


def test_fetch_run_logs_tags_and_saves_a_model_that_reproduces_its_evaluation(tmp_path, monkeypatch, capsys):
    k = 3
    actions = []  # every greedy action of every evaluation, in order
    real_greedy = her.greedy_mixture_action

    def recording(actor, qf, obs):
        action = real_greedy(actor, qf, obs)
        actions.append((obs.clone(), action.clone(), qf(obs, action)[0].clone()))
        return action

    monkeypatch.setattr(her, "greedy_mixture_action", recording)
    run_dir = her.main(her.Args(runs_dir=str(tmp_path), n_components=k, save_model=True, **TINY))
    logged = scalars(run_dir)
    expected = {"eval/episodic_return", "eval/success_rate", "charts/success_rate", "charts/SPS", "charts/entropy"}
    expected |= {f"charts/episodic_{name}" for name in ("return", "length")}
    expected |= {
        f"losses/{name}" for name in ("qf_loss", "qf1_values", "qf2_values", "actor_loss", "alpha", "alpha_loss")
    }
    expected |= {f"charts/component_{i}/{s}" for i in range(k) for s in ("weight", "std")}
    assert expected <= set(logged) and f"charts/component_{k}/weight" not in logged
    assert [step for step, _ in logged["eval/success_rate"]] == [300, 600]
    assert [step for step, _ in logged["losses/qf_loss"]] == [400, 500, 600]  # from learning_starts on
    assert all(0 <= value <= 1 for _, value in logged["eval/success_rate"] + logged["charts/success_rate"])
    assert logged["losses/alpha"][-1][1] < 1  # tuned down from 1 toward the target entropy
    with open(os.path.join(run_dir, "hyperparameters.json")) as f:
        assert '"n_components": %d' % k in f.read()
    assert not os.path.exists(os.path.join(run_dir, "checkpoint.pt"))  # --checkpoint-freq 0: never

    # The saved model, loaded into fresh networks, takes the same greedy actions with the same Q1 values on the
    # same (normalized) inputs as the run's last evaluation.
    model = saved_model(run_dir)
    last_evaluation = actions[len(actions) // 2 :]
    env = her.make_goal_env("FetchReach-v4", 0)
    actor, qf, _, _ = her.build_networks(her.Args(**model["args"]), env, torch.device("cpu"))
    actor.load_state_dict(model["actor"])
    qf.load_state_dict(model["qf"])
    normalizer = her.Normalizer(13, False)
    normalizer.load_state_dict(model["normalizer"])
    assert normalizer.enabled and normalizer.count == 12 * 50
    actions.clear()
    returns, successes = her.evaluate_goal_env(
        partial(her.greedy_mixture_action, actor, qf), env, 2, normalizer, torch.device("cpu"), 10_001
    )
    env.close()
    assert len(actions) == len(last_evaluation) == 100
    for (obs, action, q1), (obs_then, action_then, q1_then) in zip(actions, last_evaluation):
        assert torch.equal(obs, obs_then) and torch.equal(action, action_then) and torch.equal(q1, q1_then)
    assert np.mean(returns) == pytest.approx(logged["eval/episodic_return"][-1][1])
    assert 0 < model["log_alpha"].exp().item() < 1

    # --evaluate watches the same episodes and trains nothing.
    actions.clear()
    assert her.main(her.Args(evaluate=os.path.join(run_dir, "sacm_her_fetch.model"), eval_episodes=2)) == run_dir
    assert len(actions) == 100
    assert all(torch.equal(a, b) for (_, a, _), (_, b, _) in zip(actions, last_evaluation))
    assert "success rate" in capsys.readouterr().out.splitlines()[-1]


def test_paper_ids_map_to_v4_and_take_table_8(capsys):
    push = her.resolve_args(her.Args(env_id="FetchPush-v1"))
    assert "FetchPush-v1 needs mujoco-py" in capsys.readouterr().out
    assert push.env_id == "FetchPush-v4" and push.batch_size == 2048
    table_8 = (1_000_000, 1e-3, 1000, 0.95, True, (512, 512, 512), 3, 4)
    fields = ("total_timesteps", "learning_rate", "learning_starts", "gamma", "autotune", "net_arch")
    assert tuple(getattr(push, field) for field in (*fields, "n_components", "n_sampled_goal")) == table_8
    assert her.resolve_args(her.Args(env_id="FetchPickAndPlace-v1")).batch_size == 1024
    assert her.resolve_args(her.Args(env_id="FetchSlide-v4", n_components=1)).batch_size == 2048
    assert her.resolve_args(her.Args(env_id="FetchPickAndPlace-v4", batch_size=256)).batch_size == 256  # flag wins
    reach = her.resolve_args(her.Args(env_id="FetchReach-v4"))
    assert "FetchReach-v4 is not one of the paper's tasks" in capsys.readouterr().out and reach.batch_size == 2048


# ---------------------------------------------------------------------------------------------------------------
# Bad input

BAD = [
    (dict(n_components=0), "--n-components must be at least 1, got 0."),
    (dict(batch_size=2000, buffer_size=1000), "--batch-size 2000 exceeds the --buffer-size."),
    (dict(total_timesteps=300), "--total-timesteps must exceed --learning-starts."),
    (dict(gradient_steps=0), "--gradient-steps must be positive, or -1."),
    (dict(autotune=False, ent_coef=-1.0), "--ent-coef must be positive, got -1.0."),
    (dict(tau=1.5), "--tau must lie in (0, 1], got 1.5."),
    (dict(log_freq=0), "--batch-size, --eval-freq, --eval-episodes and --log-freq must be positive."),
    (dict(n_sampled_goal=-1), "--n-sampled-goal must not be negative, got -1."),
    (dict(env_id="FetchPull-v4"), "Unknown env id 'FetchPull-v4'; supported paper tasks are FetchPush-v1/-v4"),
    (dict(env_id="Hopper-v4"), "Hopper-v4 is not a goal env"),
]


@pytest.mark.parametrize("override,sentence", BAD, ids=[s for _, s in BAD])
def test_bad_input_is_refused_with_one_sentence_before_training(override, sentence, tmp_path):
    with pytest.raises(SystemExit) as refused:
        her.main(her.Args(runs_dir=str(tmp_path), **{**TINY, **override}))
    message = str(refused.value.code)
    assert sentence in message and message.endswith(".") and "\n" not in message
    assert not os.listdir(tmp_path)  # nothing was trained or logged


def test_non_goal_env_from_the_command_line_exits_nonzero_without_traceback(tmp_path):
    result = run_script("sacm_her_fetch.py", "--env-id", "Hopper-v4", "--runs-dir", tmp_path / "runs", timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("Hopper-v4 is not a goal env") and message.endswith(".") and "FetchPush" in message
    assert "hyperparameters" not in result.stdout and not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------------------------------------------
# Run control: one uninterrupted reference run; a crashed run resumes to the same end (test_gamid_her_fetch_resume.py
# interrupts gamid_her_fetch.py with SIGTERM).

RESUMABLE = {**TINY, "total_timesteps": 500, "learning_starts": 200, "log_freq": 50, "save_model": True}
RESUMABLE |= {"checkpoint_freq": 100}  # at the ends of episodes 2, 4, 6, 8 and 10


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run (on one thread, as every test here; the module fixture runs before `one_thread`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run_dir = her.main(her.Args(runs_dir=str(tmp_path_factory.mktemp("whole")), **RESUMABLE))
    torch.set_num_threads(threads)
    return run_dir


def assert_same_model(first: dict, second: dict):
    for name in ("actor", "qf"):
        assert first[name].keys() == second[name].keys()
        for key in first[name]:
            assert torch.equal(first[name][key], second[name][key]), (name, key)
    assert torch.equal(first["log_alpha"], second["log_alpha"])
    assert first["normalizer"] == second["normalizer"]


def assert_same_state(first, second, where="checkpoint"):
    """Equal to the bit, recursively: tensors, arrays, random generator states, numbers, lists and dicts."""
    if isinstance(first, dict):
        assert first.keys() == second.keys(), where
        for key in first:
            assert_same_state(first[key], second[key], f"{where}[{key!r}]")
    elif isinstance(first, (list, tuple)):
        assert len(first) == len(second), where
        for i, (a, b) in enumerate(zip(first, second)):
            assert_same_state(a, b, f"{where}[{i}]")
    elif isinstance(first, torch.Tensor):
        assert torch.equal(first, second), where
    elif isinstance(first, np.ndarray):
        assert np.array_equal(first, second), where
    else:
        assert first == second, where


def test_crashed_run_resumes_from_its_last_checkpoint_and_logs_the_steps_after_it_anew(
    reference, tmp_path, monkeypatch, capsys
):
    """A run that dies long after its last checkpoint has logged past it: the resumed run logs those steps anew,
    and TensorBoard shows each step once, with the resumed run's values."""
    real_checkpoint, kept = her.checkpoint, str(tmp_path / "step-300.pt")

    def keeping(run_dir, state, envs, step, args, writer):
        real_checkpoint(run_dir, state, envs, step, args, writer)
        if state["step"] == step == 300:
            shutil.copy(os.path.join(run_dir, "checkpoint.pt"), kept)

    monkeypatch.setattr(her, "checkpoint", keeping)
    run_dir = her.main(her.Args(runs_dir=str(tmp_path / "died"), **RESUMABLE))
    monkeypatch.setattr(her, "checkpoint", real_checkpoint)
    os.replace(kept, os.path.join(run_dir, "checkpoint.pt"))  # as if it had died after logging step 500
    os.remove(os.path.join(run_dir, "sacm_her_fetch.model"))
    assert her.main(her.Args(resume=run_dir)) == run_dir
    assert_same_model(saved_model(reference), saved_model(run_dir))
    logged_the_same(run_dir, reference)  # no step logged twice either: TensorBoard would show both
    # ... and in the same state: targets, optimizers, alpha, buffer, normalizer, bookkeeping, every random stream.
    ends = [torch.load(os.path.join(path, "checkpoint.pt"), weights_only=False) for path in (reference, run_dir)]
    assert ends[0]["step"] == 500 and [end.pop("args")["resume"] for end in ends] == [None, None]  # as first saved
    assert_same_state(*ends)

    # A finished run says so; --evaluate watches a checkpoint too.
    capsys.readouterr()
    assert her.main(her.Args(resume=run_dir)) == run_dir
    assert "already finished at step 500" in capsys.readouterr().out
    assert her.main(her.Args(evaluate=run_dir, eval_episodes=1)) == run_dir
    assert "success rate" in capsys.readouterr().out.splitlines()[-1]

    # A truncated checkpoint is refused with one sentence.
    path = os.path.join(run_dir, "checkpoint.pt")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    with pytest.raises(SystemExit) as refused:
        her.main(her.Args(resume=run_dir))
    assert str(refused.value.code).startswith(f"{path} cannot be read (")


def test_track_logs_to_weights_and_biases_offline(tmp_path):
    """--track with W&B offline (no network), in a subprocess: wandb patches TensorBoard for the process."""
    flags = ["--track", "--runs-dir", tmp_path, "--env-id", "FetchReach-v4", "--total-timesteps", "350"]
    flags += ["--learning-starts", "300", "--batch-size", "16", "--net-arch", "16", "--eval-episodes", "1"]
    result = run_script("sacm_her_fetch.py", *flags, "--log-freq", "50", env={**ENV, "WANDB_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-2000:]
    (record,) = (tmp_path / "wandb").glob("offline-run-*/*.wandb")  # what `wandb sync` would upload
    content = record.read_bytes()
    assert b"n_components" in content and b"FetchReach-v4" in content  # the hyperparameters as config
    assert b"eval/success_rate" in content and b"losses/alpha" in content  # TensorBoard synced


def test_capture_video_records_evaluation_episodes(tmp_path):
    flags = ["--env-id", "FetchReach-v4", "--total-timesteps", "100", "--net-arch", "16", "--learning-starts", "50"]
    flags += ["--batch-size", "16", "--eval-freq", "50", "--eval-episodes", "1", "--runs-dir", tmp_path]
    result = run_script("sacm_her_fetch.py", *flags, "--capture-video")
    if "--capture-video cannot render" in result.stderr:
        pytest.skip("no offscreen OpenGL here (apt-get install libosmesa6, or MUJOCO_GL=egl with a GPU)")
    assert result.returncode == 0, result.stderr[-2000:]
    videos = sorted(path.name for path in tmp_path.glob("*/videos/*.mp4"))
    assert videos == ["step100-episode-1.mp4", "step50-episode-0.mp4"]  # 2 evaluations x 1 episode, by step
