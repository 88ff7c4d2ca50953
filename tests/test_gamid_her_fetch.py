"""gamid_her_fetch.py: HER relabelling on hand-built episodes, the critic target, greedy evaluation, a real Fetch run,
the paper's presets cell by cell, and bad input. Interrupting and resuming runs: test_gamid_her_fetch_resume.py."""

import os
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import scalars

import gamid_her_fetch as her

T = 10  # steps per hand-built episode
# Achieved goals of consecutive states are 0.03 apart: within Fetch's 0.05 success threshold of the next one only.
STEP = 0.03
FAR = 50.0  # desired goals lie far from every achieved goal


@pytest.fixture(scope="module")
def fetch_reward():
    """The real vectorized compute_reward of FetchReach-v4 (sparse: 0 within 0.05 of the goal, else -1)."""
    env = her.make_goal_env("FetchReach-v4", 0)
    yield env.unwrapped.compute_reward
    env.close()


def episode(e: int) -> dict:
    """Episode e, labelled so that a batch row tells where it came from: observation of state s = (e, s),
    achieved goal of state s = (100 e, 0.03 s, 0), desired goal (100 e, 50, 0), action (e, t, 0, 0)."""
    s = np.arange(T + 1, dtype=np.float32)
    return {
        "obs": np.stack([np.full_like(s, e), s], 1),
        "achieved_goals": np.stack([np.full_like(s, 100 * e), STEP * s, np.zeros_like(s)], 1),
        "desired_goals": np.tile(np.array([100 * e, FAR, 0], np.float32), (T, 1)),
        "actions": np.stack([np.full(T, e), np.arange(T), np.zeros(T), np.zeros(T)], 1),
    }


def buffer(compute_reward, n_episodes: int, capacity: int, k: int = 4, seed: int = 0) -> her.HerReplayBuffer:
    rb = her.HerReplayBuffer(
        capacity,
        T,
        2,
        3,
        4,
        compute_reward,
        k,
        her.Normalizer(5, False),
        torch.device("cpu"),
        np.random.default_rng(seed),
    )
    for e in range(n_episodes):
        rb.add_episode(**episode(e))
    return rb


def decode(batch: her.Batch):
    """Per row: episode, step t, goal, the episode and step of the next state, and t' of a relabelled goal."""
    obs, next_obs, goal = batch.obs.numpy(), batch.next_obs.numpy(), batch.obs[:, 2:].numpy()
    relabelled = goal[:, 1] != FAR
    return (
        obs[:, 0].round().astype(int),
        obs[:, 1].round().astype(int),
        goal,
        next_obs[:, 0].round().astype(int),
        next_obs[:, 1].round().astype(int),
        relabelled,
        (goal[:, 1] / STEP).round().astype(int),
    )


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
    np.testing.assert_array_equal(
        goal[~relabelled],
        np.stack([100 * e[~relabelled], np.full((~relabelled).sum(), FAR), np.zeros((~relabelled).sum())], 1),
    )


def test_relabelled_reward_is_compute_reward_for_the_new_goal(fetch_reward):
    batch = buffer(fetch_reward, n_episodes=6, capacity=10).sample(4000)
    e, t, goal, *_ = decode(batch)
    achieved_next = np.stack([100 * e, STEP * (t + 1), np.zeros_like(t)], 1).astype(np.float32)
    expected = fetch_reward(achieved_next, goal, None)
    np.testing.assert_array_equal(batch.rewards.numpy(), expected)
    assert set(np.unique(expected)) == {-1.0, 0.0}  # goals reached (t' = t + 1, t + 2) and missed both occur
    np.testing.assert_array_equal(batch.terminated.numpy(), 0)  # time-limit episodes: always bootstrap


def test_relabel_fraction_is_k_over_k_plus_1(fetch_reward):
    n = 20_000
    for k in (4, 1, 0):
        relabelled = decode(buffer(fetch_reward, n_episodes=6, capacity=10, k=k).sample(n))[5]
        p = k / (k + 1)
        assert abs(relabelled.mean() - p) <= 4 * np.sqrt(p * (1 - p) / n) + 1e-12, k


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
    np.testing.assert_array_equal(
        her.her_goals(achieved, desired, episodes, t, 0.0, np.random.default_rng(3)), desired[episodes, t]
    )


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


@pytest.mark.parametrize("paper_id", ["FetchPush-v1", "FetchSlide-v1", "FetchPickAndPlace-v1"])
def test_paper_fetch_envs_build_and_step(paper_id):
    """Keeps the mujoco pin honest: mujoco 3.12 and 4.0 break every Fetch env of gymnasium-robotics 1.4.2."""
    env = her.make_goal_env(her.resolve_fetch_env_id(paper_id), 0)
    obs, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert set(her.GOAL_KEYS) <= set(obs) and "is_success" in info
    assert reward == env.unwrapped.compute_reward(obs["achieved_goal"][None], obs["desired_goal"][None], None)[0]
    env.close()


def test_non_goal_env_is_refused_with_one_sentence(tmp_path):
    with pytest.raises(SystemExit) as refused:
        her.main(her.Args(env_id="Hopper-v4", runs_dir=str(tmp_path / "runs")))
    message = str(refused.value)
    assert message.startswith("Hopper-v4 is not a goal env") and message.endswith(".") and message.count(". ") == 0
    assert "FetchPush" in message and not (tmp_path / "runs").exists()


def test_unknown_env_id_is_refused_naming_the_supported_ones():
    with pytest.raises(SystemExit) as refused:
        her.resolve_args(her.Args(env_id="FetchPull-v4"))
    assert "FetchPush-v1/-v4" in str(refused.value) and "FetchPickAndPlace" in str(refused.value)


def test_every_evaluation_restarts_from_the_same_seeds():
    seeds = []

    class RecordSeeds(gym.Wrapper):
        def reset(self, *, seed=None, options=None):
            seeds.append(seed)
            return super().reset(seed=seed, options=options)

    env = RecordSeeds(her.make_goal_env("FetchReach-v4", 0))
    in_dim = env.observation_space["observation"].shape[0] + env.observation_space["desired_goal"].shape[0]
    actor, qf = her.GaussianMeans(2, in_dim, 4, (16,)), her.TwinQ(in_dim, 4, (16,))
    for _ in range(2):
        her.evaluate_goal_env(
            lambda obs: her.greedy_action(actor, qf, obs)[0],
            env,
            3,
            her.Normalizer(in_dim, False),
            torch.device("cpu"),
            seed=10,
        )
    assert seeds == [10, 11, 12, 10, 11, 12]
    env.close()


# ---- The critic target (Alg. 1 line 10 on TD3): the best Gaussian on the noise-free means, then the noise. ----
class FixedMeans:
    """A target actor with hand-set means (N = 3, B = 2, act = 1): state 1 lists state 0's means in another order."""

    means = torch.tensor([[[-0.2], [0.7]], [[0.1], [-0.2]], [[0.7], [0.1]]])

    def __call__(self, next_obs):
        return self.means.clone()


class HandQ:
    """Twin target critics in closed form: Q1(a) = -(a - 0.1)^2, Q2(a) = -(a - 0.1)^2 + 0.1 a. Records its inputs."""

    def __init__(self):
        self.seen = []

    def __call__(self, obs, actions, members=2):
        self.seen.append(actions.clone())
        a = actions[..., 0]
        return torch.stack([-((a - 0.1) ** 2), -((a - 0.1) ** 2) + 0.1 * a])[:members]


def test_critic_target_picks_the_gaussian_on_noise_free_means_then_smooths_its_action(monkeypatch):
    monkeypatch.setattr(torch, "randn_like", torch.ones_like)  # every smoothing draw is +1: noise = +policy_noise
    batch = her.Batch(
        obs=torch.zeros(2, 3),
        actions=torch.zeros(2, 1),
        rewards=torch.tensor([-1.0, 0.0]),
        next_obs=torch.zeros(2, 3),
        terminated=torch.zeros(2),
    )
    critic = HandQ()
    y = her.td_target(FixedMeans(), critic, batch, SimpleNamespace(gamma=0.95, policy_noise=0.3, noise_clip=0.5))
    # Noise-free, min(Q1, Q2) at the means -0.2, 0.1, 0.7 is min(-0.09, -0.11), min(0, 0.01), min(-0.36, -0.29)
    # = -0.11, 0, -0.36, so i* is the mean 0.1; its smoothed action 0.1 + 0.3 = 0.4 has min(-0.09, -0.05) = -0.09.
    new_rule = [-1.0 + 0.95 * -0.09, 0.0 + 0.95 * -0.09]
    # The old rule put the noise on all three (-0.1, 0.4, 1.0: min -0.05, -0.09, -0.81) and took the max: the
    # noise, not the critic, chose the Gaussian at -0.2, and y = r + 0.95 * -0.05.
    old_rule = [-1.0 + 0.95 * -0.05, 0.0 + 0.95 * -0.05]
    assert y.tolist() == pytest.approx(new_rule, abs=1e-6)
    assert y.tolist() != pytest.approx(old_rule, abs=1e-3)
    assert torch.equal(critic.seen[0], FixedMeans.means)  # i* is chosen on the noise-free target means
    assert critic.seen[1][:, 0].tolist() == pytest.approx([0.4, 0.4])  # the noise goes on the chosen action only


def test_critic_target_always_bootstraps_on_fetch_batches(fetch_reward):
    """Fetch episodes end by time limit only: the buffer's terminated is 0, so y = r + gamma min Q for every row."""
    batch = buffer(fetch_reward, n_episodes=3, capacity=3).sample(64)
    critic = HandQ()
    means = FixedMeans.means[:, :1].expand(3, 64, 1)
    args = SimpleNamespace(gamma=0.95, policy_noise=0.2, noise_clip=0.5)
    y = her.td_target(lambda next_obs: means, critic, batch, args)
    a = critic.seen[1][:, 0]
    torch.testing.assert_close(y, batch.rewards + 0.95 * torch.minimum(-((a - 0.1) ** 2), -((a - 0.1) ** 2) + 0.1 * a))
    assert torch.all((a - 0.1).abs() <= 0.5 + 1e-7)  # the noise, clipped to 0.5, is on i*'s mean 0.1


# ---- Greedy evaluation draws from no random stream, so how often a run evaluates cannot change it. ----
def test_greedy_action_is_the_best_mean_and_draws_nothing():
    torch.manual_seed(0)
    actor, qf = her.GaussianMeans(3, 5, 4, (16,)), her.TwinQ(5, 4, (16,))
    obs = torch.randn(32, 5)
    means = actor(obs).detach()
    best = qf(obs, means, members=1)[0].argmax(0)
    assert len(set(best.tolist())) > 1  # the states disagree on the best Gaussian
    states = (torch.get_rng_state(), np.random.get_state()[1].copy())
    action, _ = her.greedy_action(actor, qf, obs)
    torch.testing.assert_close(action, means[best, torch.arange(32)], rtol=0, atol=0)
    assert torch.equal(torch.get_rng_state(), states[0]) and np.array_equal(np.random.get_state()[1], states[1])


def tiny_run(tmp_path, name: str, **overrides) -> str:
    args = dict(
        env_id="FetchReach-v4",
        total_timesteps=900,
        learning_starts=300,
        batch_size=32,
        net_arch=(32, 32),
        n_actors=2,
        eval_freq=900,
        eval_episodes=2,
        log_freq=100,
        runs_dir=str(tmp_path / name),
        save_model=True,
        checkpoint_freq=0,
        cuda=False,
    )
    return her.main(her.Args(**(args | overrides)))


# ---- Evaluation draws nothing, so how often a run evaluates cannot change it; a saved model loads back to the trained
# one: the same actions and Q values on the same normalized inputs, not just the same return. ----
def test_eval_freq_changes_nothing_and_the_saved_model_loads_back_to_the_same_actions(tmp_path, monkeypatch):
    calls = []
    greedy = her.greedy_action

    def recording_greedy_action(actor, qf, obs):
        action, best = greedy(actor, qf, obs)
        calls.append((obs.clone(), action.clone(), qf(obs, action).detach()))
        return action, best

    monkeypatch.setattr(her, "greedy_action", recording_greedy_action)
    short = dict(total_timesteps=600, eval_freq=600, normalize_obs=True)
    rarely, often = tiny_run(tmp_path, "rarely", **short), tiny_run(tmp_path, "often", **short | {"eval_freq": 150})
    logged_rarely, logged_often = scalars(rarely), scalars(often)
    assert len(logged_often["eval/episodic_return"]) == 4 and len(logged_rarely["eval/episodic_return"]) == 1
    for tag in set(logged_rarely) - {"charts/SPS", "eval/episodic_return", "eval/success_rate"}:
        assert logged_often[tag] == logged_rarely[tag], tag
    model_often = torch.load(os.path.join(often, "gamid_her_fetch.model"))  # weights_only: plain tensors and lists
    model_rarely = torch.load(os.path.join(rarely, "gamid_her_fetch.model"))
    for net in ("actor", "qf"):
        for name, value in model_rarely[net].items():
            assert torch.equal(model_often[net][name], value), (net, name)

    trained = calls[-100:]  # the last evaluation: 2 episodes of 50 steps, after the last update
    assert len(calls) == 500 and len({tuple(action[0].tolist()) for _, action, _ in trained}) > 50
    assert model_often["args"]["env_id"] == "FetchReach-v4" and model_often["normalizer"]["count"] > 0
    env = her.make_goal_env("FetchReach-v4", 5)
    in_dim = env.observation_space["observation"].shape[0] + env.observation_space["desired_goal"].shape[0]
    actor, qf = her.GaussianMeans(2, in_dim, 4, (32, 32)), her.TwinQ(in_dim, 4, (32, 32))
    actor.load_state_dict(model_often["actor"])
    qf.load_state_dict(model_often["qf"])
    normalizer = her.Normalizer(in_dim, False)
    normalizer.load_state_dict(model_often["normalizer"])
    calls.clear()
    her.evaluate_goal_env(
        lambda obs: her.greedy_action(actor, qf, obs)[0], env, 2, normalizer, torch.device("cpu"), seed=10_001
    )
    env.close()
    loaded = calls.copy()
    calls.clear()  # --evaluate PATH loads the same way
    her.main(her.Args(evaluate=os.path.join(often, "gamid_her_fetch.model"), eval_episodes=2))
    for watched in (loaded, calls):
        assert len(watched) == 100
        for (obs, action, q), (loaded_obs, loaded_action, loaded_q) in zip(trained, watched):
            assert torch.equal(loaded_obs, obs)  # the same normalized inputs: the normalizer statistics came back
            assert torch.equal(loaded_action, action) and torch.equal(loaded_q, q)


# ---- The paper's presets, cell by cell. ----
# Paper Table 4 (shared TD3 hyperparameters, Fetch), transcribed row by row: (Push, Slide, PickAndPlace).
TABLE_4 = {
    "n_timesteps": (1000000, 1000000, 1000000),
    "learning_rate": (0.001, 0.001, 0.001),
    "learning_starts": (1000, 1000, 1000),
    "batch_size": (2048, 2048, 1024),
    "gamma": (0.95, 0.95, 0.95),
    "noise_type": ("normal", "normal", "normal"),
    "noise_std": (0.1, 0.1, 0.1),
    "net_arch": ([512, 512, 512], [512, 512, 512], [512, 512, 512]),
    "activation_fn": ("nn.ReLU", "nn.ReLU", "nn.ReLU"),
    "replay_buffer_class": ("HerReplayBuffer", "HerReplayBuffer", "HerReplayBuffer"),
    "replay_buffer_kwargs": ("dict(online_sampling=True, goal_selection_strategy='future', n_sampled_goal=4)",) * 3,
}
# Paper Table 5 (Gamid-specific hyperparameters), its Push., Slide. and Pick. columns.
TABLE_5 = {
    "n_actors": (4, 8, 8),
    "temperature_initial": (0.3, 0.3, 0.3),
    "temperature_final": (0.1, 0.1, 0.1),
    "temperature_fraction": (1.0, 1.0, 1.0),
    "epsilon_initial": (0.1, 0.1, 0.1),
    "epsilon_final": (0.01, 0.01, 0.01),
    "epsilon_fraction": (1.0, 1.0, 1.0),
}
PAPER_IDS = ("FetchPush-v1", "FetchSlide-v1", "FetchPickAndPlace-v1")


@pytest.mark.parametrize("column", range(3), ids=PAPER_IDS)
def test_presets_match_every_cell_of_tables_4_and_5(column, capsys):
    args = her.resolve_args(her.Args(env_id=PAPER_IDS[column]))
    assert "needs mujoco-py" in capsys.readouterr().out and args.env_id == PAPER_IDS[column].replace("-v1", "-v4")
    table = {name: row[column] for name, row in (TABLE_4 | TABLE_5).items()}
    assert args.total_timesteps == table["n_timesteps"]
    for name in ("learning_rate", "learning_starts", "batch_size", "gamma", "noise_std", *TABLE_5):
        assert getattr(args, name) == table[name], name
    assert list(args.net_arch) == table["net_arch"]
    # The other cells name behaviour: ReLU layers (test_ensemble_member_is_a_relu_mlp), Gaussian noise
    # (test_exploration_noise_is_normal_with_noise_std), and HER `future` relabelling at sampling time (online)
    # with k = 4 (the relabelling tests above); here the rows' names and k.
    assert (table["noise_type"], table["activation_fn"], table["replay_buffer_class"]) == (
        "normal",
        "nn.ReLU",
        her.HerReplayBuffer.__name__,
    )
    assert f"n_sampled_goal={args.n_sampled_goal})" in table["replay_buffer_kwargs"]
    assert "goal_selection_strategy='future'" in table["replay_buffer_kwargs"]
    # Table 4 sets no train_freq, gradient_steps or tau: SB3 1.6.2's TD3 defaults ran.
    assert (args.train_freq, args.gradient_steps, args.tau) == ("episode", -1, 0.005)


def test_a_given_flag_overrides_the_preset_and_other_goal_envs_take_fetchpush():
    pick = her.resolve_args(her.Args(env_id="FetchPickAndPlace-v4", n_actors=1, batch_size=64))
    assert (pick.n_actors, pick.batch_size, pick.temperature_initial) == (1, 64, 0.3)
    reach = her.resolve_args(her.Args(env_id="FetchReach-v4"))
    assert (reach.batch_size, reach.n_actors) == (TABLE_4["batch_size"][0], TABLE_5["n_actors"][0])


def test_ensemble_member_is_a_relu_mlp():
    torch.manual_seed(0)
    net = her.EnsembleMLP(3, 5, 2, (8, 8))
    x = torch.randn(10, 5)
    for member in range(3):
        layers = []
        for weight, bias in zip(net.weights, net.biases):
            linear = torch.nn.Linear(*weight.shape[1:])
            linear.weight.data, linear.bias.data = weight[member].T.detach(), bias[member, 0].detach()
            layers += [linear, torch.nn.ReLU()]
        reference = torch.nn.Sequential(*layers[:-1])  # no activation after the output layer
        torch.testing.assert_close(net(x[None])[member], reference(x))


def test_exploration_noise_is_normal_with_noise_std():
    torch.manual_seed(0)
    actor, qf = her.GaussianMeans(2, 5, 4, (8,)), her.TwinQ(5, 4, (8,))
    obs = torch.zeros(20_000, 5)  # one state, many draws
    action, _ = her.gmm_action(actor, qf, obs, epsilon=0.0, noise_std=0.1)
    noise = (action - her.greedy_action(actor, qf, obs[:1])[0]).flatten() / 0.1
    assert abs(noise.mean()) < 0.02 and abs(noise.std() - 1) < 0.02
    # Normal, not uniform or Laplace: 68.3% within one std and 95.4% within two.
    assert abs((noise.abs() < 1).float().mean() - 0.683) < 0.01 and abs((noise.abs() < 2).float().mean() - 0.954) < 0.01


BAD = [
    (dict(n_actors=0), "--n-actors must be at least 1, got 0."),
    (dict(temperature_final=-0.1), "Temperatures must not be negative."),
    (dict(epsilon_initial=1.5), "Epsilons and schedule fractions must lie in [0, 1]."),
    (dict(temperature_fraction=-0.5), "Epsilons and schedule fractions must lie in [0, 1]."),
    (dict(batch_size=4096, buffer_size=2000), "--batch-size must not exceed --buffer-size."),
    (dict(total_timesteps=1000), "--total-timesteps must exceed --learning-starts."),
    (dict(gradient_steps=-2), "--gradient-steps must be positive, or -1."),
    (dict(n_sampled_goal=-1), "--n-sampled-goal must not be negative."),
    (
        dict(policy_delay=0),
        "--batch-size, --policy-delay, --eval-freq, --eval-episodes and --log-freq must be positive.",
    ),
    (dict(temperature_target=1.0), "--temperature-target is the target of --temperature auto; give both or neither."),
    (
        dict(epsilon="auto", epsilon_final=0.3),
        "--epsilon auto sets epsilon to 1/(10N); drop the --epsilon-* schedule flags.",
    ),
]


def test_bad_values_are_refused_with_one_sentence():
    for flags, sentence in BAD:
        with pytest.raises(SystemExit) as refused:
            her.resolve_args(her.Args(env_id="FetchReach-v4", **flags))
        assert str(refused.value) == sentence, flags
    assert her.resolve_args(her.Args(env_id="FetchReach-v4", n_actors=5, epsilon="auto")).epsilon_final == 1 / 50
