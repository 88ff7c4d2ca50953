"""gamid_her_fetch.py: the HER buffer's relabelling on hand-built episodes, a real Fetch run, presets and bad input."""

import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import gamid_her_fetch as her

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T = 10  # steps per hand-built episode
STEP = 0.03  # achieved goals of consecutive states are 0.03 apart: within Fetch's 0.05 success threshold of the next one only
FAR = 50.0  # desired goals lie far from every achieved goal


@pytest.fixture(scope="module")
def fetch_reward():
    """The real vectorized compute_reward of FetchReach-v4 (sparse: 0 within 0.05 of the goal, else -1)."""
    env = her.make_env("FetchReach-v4", 0)
    yield env.unwrapped.compute_reward
    env.close()


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small networks: intra-op threads only add overhead on a shared machine
    yield
    torch.set_num_threads(threads)


def episode(e: int) -> dict:
    """Episode e, labelled so that a batch row tells where it came from: observation of state s = (e, s),
    achieved goal of state s = (100 e, 0.03 s, 0), desired goal (100 e, 50, 0), action (e, t, 0, 0)."""
    s = np.arange(T + 1, dtype=np.float32)
    return {"obs": np.stack([np.full_like(s, e), s], 1),
            "achieved_goals": np.stack([np.full_like(s, 100 * e), STEP * s, np.zeros_like(s)], 1),
            "desired_goals": np.tile(np.array([100 * e, FAR, 0], np.float32), (T, 1)),
            "actions": np.stack([np.full(T, e), np.arange(T), np.zeros(T), np.zeros(T)], 1)}


def buffer(compute_reward, n_episodes: int, capacity: int, k: int = 4, seed: int = 0) -> her.HerReplayBuffer:
    rb = her.HerReplayBuffer(capacity, T, 2, 3, 4, compute_reward, k, her.Normalizer(5, False), torch.device("cpu"),
                             np.random.default_rng(seed))
    for e in range(n_episodes):
        rb.add_episode(**episode(e))
    return rb


def decode(batch: her.Batch):
    """Per row: episode, step t, goal, the episode and step of the next state, and t' of a relabelled goal."""
    obs, next_obs, goal = batch.obs.numpy(), batch.next_obs.numpy(), batch.obs[:, 2:].numpy()
    relabelled = goal[:, 1] != FAR
    return (obs[:, 0].round().astype(int), obs[:, 1].round().astype(int), goal, next_obs[:, 0].round().astype(int),
            next_obs[:, 1].round().astype(int), relabelled, (goal[:, 1] / STEP).round().astype(int))


def test_relabelled_goal_is_a_later_achieved_goal_of_the_same_episode(fetch_reward):
    rb = buffer(fetch_reward, n_episodes=6, capacity=10)
    batch = rb.sample(4000)
    e, t, goal, next_e, next_t, relabelled, future = decode(batch)
    np.testing.assert_array_equal(next_e, e)  # s' is the next state of the same episode
    np.testing.assert_array_equal(next_t, t + 1)
    np.testing.assert_array_equal(batch.next_obs[:, 2:], batch.obs[:, 2:])  # s and s' carry the same goal
    np.testing.assert_array_equal(batch.actions[:, :2].numpy(), np.stack([e, t], 1))
    assert set(e) == set(range(6)) and set(t) == set(range(T))  # uniform over all stored transitions
    # A relabelled goal is the achieved goal of a state t' in [t + 1, T] of the same episode.
    np.testing.assert_array_equal(goal[relabelled, 0], 100 * e[relabelled])
    assert np.all(future[relabelled] >= t[relabelled] + 1) and np.all(future[relabelled] <= T)
    np.testing.assert_allclose(goal[relabelled, 1], STEP * future[relabelled], atol=1e-6)
    # ... chosen over the whole range: both ends occur, including the final state T from the last step.
    last = relabelled & (t == T - 1)
    assert np.all(future[last] == T) and last.any()
    assert np.any(relabelled & (future == t + 1)) and np.any(relabelled & (t == 0) & (future == T))
    # The others keep their own episode's desired goal.
    np.testing.assert_array_equal(goal[~relabelled], np.stack([100 * e[~relabelled], np.full((~relabelled).sum(), FAR),
                                                               np.zeros((~relabelled).sum())], 1))


def test_relabelled_reward_is_compute_reward_for_the_new_goal(fetch_reward):
    batch = buffer(fetch_reward, n_episodes=6, capacity=10).sample(4000)
    e, t, goal, *_ = decode(batch)
    achieved_next = np.stack([100 * e, STEP * (t + 1), np.zeros_like(t)], 1).astype(np.float32)
    expected = fetch_reward(achieved_next, goal, None)
    np.testing.assert_array_equal(batch.rewards.numpy(), expected)
    assert set(np.unique(expected)) == {-1.0, 0.0}  # goals reached (t' = t + 1, t + 2) and missed both occur
    np.testing.assert_array_equal(batch.terminated.numpy(), 0)  # time-limit episodes: always bootstrap


@pytest.mark.parametrize("k", [4, 1, 0])
def test_relabel_fraction_is_k_over_k_plus_1(fetch_reward, k):
    n = 20_000
    relabelled = decode(buffer(fetch_reward, n_episodes=6, capacity=10, k=k).sample(n))[5]
    p = k / (k + 1)
    assert abs(relabelled.mean() - p) <= 4 * np.sqrt(p * (1 - p) / n) + 1e-12


def test_buffer_that_wraps_around_keeps_episodes_whole(fetch_reward):
    rb = buffer(fetch_reward, n_episodes=7, capacity=3)  # episodes 0..6 through 3 slots: 4, 5, 6 remain
    assert rb.n_episodes == 3
    e, t, goal, next_e, next_t, relabelled, future = decode(rb.sample(3000))
    assert set(e) == {4, 5, 6}
    np.testing.assert_array_equal(next_e, e)
    np.testing.assert_array_equal(next_t, t + 1)
    np.testing.assert_array_equal(goal[:, 0], 100 * e)  # desired or relabelled, the goal is from the same episode
    assert np.all(future[relabelled] > t[relabelled])


def test_her_goals_is_a_pure_function_of_its_arguments():
    ep = [episode(e) for e in range(3)]
    achieved, desired = np.stack([x["achieved_goals"] for x in ep]), np.stack([x["desired_goals"] for x in ep])
    episodes, t = np.array([0, 1, 2, 2]), np.array([0, 3, 8, 9])
    first = her.her_goals(achieved, desired, episodes, t, 1.0, np.random.default_rng(3))
    again = her.her_goals(achieved, desired, episodes, t, 1.0, np.random.default_rng(3))
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(her.her_goals(achieved, desired, episodes, t, 0.0, np.random.default_rng(3)),
                                  desired[episodes, t])


def test_normalizer_tracks_running_mean_and_std_and_clips():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(1000, 4))
    norm = her.Normalizer(4, enabled=True)
    for chunk in np.split(data, [10, 300, 301]):
        norm.update(chunk)
    np.testing.assert_allclose(norm.mean, data.mean(0), rtol=1e-10)
    np.testing.assert_allclose(norm.var, data.var(0), rtol=1e-10)
    np.testing.assert_allclose(norm(data), np.clip((data - data.mean(0)) / data.std(0), -5, 5), rtol=1e-5, atol=1e-5)
    assert norm(np.full((1, 4), 1e6)).max() == 5.0
    off = her.Normalizer(4, enabled=False)
    off.update(data)
    np.testing.assert_array_equal(off(data), data.astype(np.float32))


def test_paper_fetch_ids_map_to_v4_and_take_their_presets(capsys):
    args = her.resolve_args(her.Args(env_id="FetchPush-v1"))
    assert "FetchPush-v1 needs mujoco-py" in capsys.readouterr().out
    assert (args.env_id, args.batch_size, args.n_actors, args.gamma, args.learning_rate, args.learning_starts) == \
        ("FetchPush-v4", 2048, 4, 0.95, 1e-3, 1000)
    assert (args.train_freq, args.gradient_steps, args.tau, args.net_arch, args.n_sampled_goal) == \
        ("episode", -1, 0.005, (512, 512, 512), 4)
    assert (args.temperature_initial, args.temperature_final, args.epsilon_initial, args.epsilon_final) == (0.3, 0.1, 0.1, 0.01)
    pick = her.resolve_args(her.Args(env_id="FetchPickAndPlace-v1", n_actors=1))  # a given flag overrides the preset
    assert (pick.env_id, pick.batch_size, pick.n_actors) == ("FetchPickAndPlace-v4", 1024, 1)
    slide = her.resolve_args(her.Args(env_id="FetchSlide-v4"))
    assert (slide.batch_size, slide.n_actors) == (2048, 8)
    reach = her.resolve_args(her.Args(env_id="FetchReach-v4"))  # not a paper task: FetchPush's numbers
    assert (reach.batch_size, reach.n_actors) == (2048, 4)


@pytest.mark.parametrize("paper_id", ["FetchPush-v1", "FetchSlide-v1", "FetchPickAndPlace-v1"])
def test_paper_fetch_envs_build_and_step(paper_id):
    """Keeps the mujoco pin honest: mujoco 3.12 and 4.0 break every Fetch env of gymnasium-robotics 1.4.2."""
    env = her.make_env(her.resolve_env_id(paper_id), 0)
    obs, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert set(her.GOAL_KEYS) <= set(obs) and "is_success" in info
    assert reward == env.unwrapped.compute_reward(obs["achieved_goal"][None], obs["desired_goal"][None], None)[0]
    env.close()


def test_end_to_end_fetch_run_logs_success_and_saves_a_model_that_loads(tmp_path, one_thread):
    args = her.Args(env_id="FetchReach-v4", total_timesteps=600, learning_starts=200, batch_size=64, net_arch=(64, 64),
                    n_actors=2, eval_freq=300, eval_episodes=2, log_freq=100, runs_dir=str(tmp_path), save_model=True,
                    normalize_obs=True)
    run_dir = her.main(args)
    acc = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    for tag in ("charts/success_rate", "eval/success_rate", "eval/episodic_return", "charts/episodic_return",
                "charts/sum_d_var", "charts/temperature", "charts/epsilon", "charts/selected_fraction/gaussian_1",
                "losses/qf_loss", "losses/actor_loss", "charts/SPS"):
        assert tag in tags, tag
    assert [e.step for e in acc.Scalars("eval/success_rate")] == [300, 600]
    assert all(0 <= e.value <= 1 for e in acc.Scalars("eval/success_rate") + acc.Scalars("charts/success_rate"))
    assert os.path.exists(os.path.join(run_dir, "hyperparameters.json"))

    checkpoint = torch.load(os.path.join(run_dir, "gamid_her_fetch.model"))  # weights_only: plain tensors and lists
    assert checkpoint["args"]["env_id"] == "FetchReach-v4" and checkpoint["normalizer"]["count"] > 0
    env = her.make_env("FetchReach-v4", 5)
    in_dim = env.observation_space["observation"].shape[0] + env.observation_space["desired_goal"].shape[0]
    actor = her.GaussianMeans(2, in_dim, 4, (64, 64))
    qf = her.TwinQ(in_dim, 4, (64, 64))
    actor.load_state_dict(checkpoint["actor"])
    qf.load_state_dict(checkpoint["qf"])
    normalizer = her.Normalizer(in_dim, False)
    normalizer.load_state_dict(checkpoint["normalizer"])
    assert normalizer.enabled
    returns, successes = her.evaluate(actor, qf, env, 2, torch.device("cpu"), normalizer, seed=args.seed + 10_000)
    assert len(returns) == 2 and all(-50 <= r <= 0 for r in returns) and set(successes) <= {0.0, 1.0}
    # Greedy and on the run's evaluation seeds, the loaded model reproduces the run's last evaluation (after so
    # short a run every FetchReach return may be -50; the seeding itself is checked by the next test).
    assert np.mean(returns) == pytest.approx(acc.Scalars("eval/episodic_return")[-1].value, rel=1e-5)
    assert np.mean(successes) == pytest.approx(acc.Scalars("eval/success_rate")[-1].value)
    env.close()


def test_non_goal_env_is_refused_with_one_sentence(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "gamid_her_fetch.py"), "--env-id", "Hopper-v4",
                             "--runs-dir", str(tmp_path / "runs")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("Hopper-v4 is not a goal env") and message.endswith(".") and message.count(". ") == 0
    assert "FetchPush" in message and "hyperparameters" not in result.stdout
    assert not (tmp_path / "runs").exists()


def test_unknown_env_id_is_refused_naming_the_supported_ones():
    with pytest.raises(SystemExit) as refused:
        her.resolve_args(her.Args(env_id="FetchPull-v4"))
    assert "FetchPush-v1/-v4" in str(refused.value) and "FetchPickAndPlace" in str(refused.value)


def test_every_evaluation_restarts_from_the_same_seeds(one_thread):
    seeds = []

    class RecordSeeds(gym.Wrapper):
        def reset(self, *, seed=None, options=None):
            seeds.append(seed)
            return super().reset(seed=seed, options=options)

    env = RecordSeeds(her.make_env("FetchReach-v4", 0))
    in_dim = env.observation_space["observation"].shape[0] + env.observation_space["desired_goal"].shape[0]
    actor, qf = her.GaussianMeans(2, in_dim, 4, (16,)), her.TwinQ(in_dim, 4, (16,))
    for _ in range(2):
        her.evaluate(actor, qf, env, 3, torch.device("cpu"), her.Normalizer(in_dim, False), seed=10)
    assert seeds == [10, 11, 12, 10, 11, 12]
    env.close()
