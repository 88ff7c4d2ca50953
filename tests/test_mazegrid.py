"""Tests for mazegrid.py: the MazeGrid environment (SPEC §9.2) and its compact Gamid / SACM learners."""

import math
import pathlib
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from torch.distributions import Categorical, MixtureSameFamily, Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mazegrid  # noqa: E402

UP, DOWN, RIGHT, LEFT, STAY = (0, 1), (0, -1), (1, 0), (-1, 0), (0, 0)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small networks: threads only add overhead on a shared machine
    yield
    torch.set_num_threads(threads)


def walk(env, moves):
    out = None
    for move in moves:
        out = env.step(np.array(move, dtype=np.float32))
    return out


def test_registered_and_reset_puts_the_agent_at_the_centre():
    env = gym.make("MazeGrid-v0")
    obs, info = env.reset(seed=3)
    assert obs.dtype == np.float32 and obs.tolist() == [0.0, 0.0]
    assert env.unwrapped.pos.tolist() == [0.0, 0.0]
    walk(env, [RIGHT, UP])
    obs, _ = env.reset()
    assert obs.tolist() == [0.0, 0.0]


def test_a_move_into_a_wall_stops_just_short_of_it():
    env = mazegrid.MazeGridEnv()
    env.reset()
    walk(env, [RIGHT, UP])  # (0.5, 0.5); the wall y = 1 has its gap at x in [-0.2, 0.2], not at x = 0.5
    obs, reward, terminated, truncated, _ = walk(env, [UP])
    x, y = env.pos
    assert x == pytest.approx(0.5) and 1.0 - 0.011 < y < 1.0  # stopped 0.01 before the wall
    assert obs[1] == pytest.approx(y / 5) and (reward, terminated, truncated) == (0.0, False, False)
    walk(env, [UP, UP])
    assert env.pos[1] < 1.0  # pushing on does not pass it
    env.reset()
    walk(env, [LEFT] * 20)  # through the gap at x = -1, x = -3, then the outer wall at x = -5
    assert -5.0 < env.pos[0] < -4.98 and env.pos[1] == 0.0


def test_sliding_along_a_border_out_of_its_gap_stops_at_the_gap_edge():
    env = mazegrid.MazeGridEnv()
    env.reset()
    walk(env, [UP, UP])
    assert env.pos.tolist() == [0.0, 1.0]  # exactly on the border y = 1, inside its gap
    walk(env, [RIGHT])
    assert 0.18 < env.pos[0] < 0.2 and env.pos[1] == 1.0  # stopped just short of the gap's edge x = 0.2
    walk(env, [RIGHT, UP, UP])
    assert env.pos[0] < 0.2 + 1e-9 and env.pos[1] > 1.0  # no leak: it can only leave through the gap


def test_diagonal_move_stops_along_its_own_line():
    env = mazegrid.MazeGridEnv()
    env.reset()
    walk(env, [(1, 0.8), (1, 0.8)])  # the second move would cross x = 1 at y = 0.8, outside the gap
    x, y = env.pos
    assert x < 1.0 and y / x == pytest.approx(0.8)  # stopped on the segment, short of x = 1


def test_random_walks_never_pass_a_wall_outside_a_gap():
    # independent check of the dynamics: every border a move reaches or crosses is crossed inside a gap
    env, rng = mazegrid.MazeGridEnv(max_episode_steps=400), np.random.default_rng(0)
    borders = (-3.0, -1.0, 1.0, 3.0)
    gap = lambda v: abs(v - 2 * round(v / 2)) <= 0.2 + 1e-12  # noqa: E731
    for episode in range(30):
        env.reset()
        done = False
        while not done:  # actions on a coarse grid land exactly on borders often, the hard case
            action = rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], 2) if rng.random() < 0.7 else rng.uniform(-1, 1, 2)
            before = env.pos.copy()
            _, _, terminated, truncated, _ = env.step(action.astype(np.float32))
            after, done = env.pos.copy(), terminated or truncated
            assert np.all(np.abs(after) < 5.0)
            for axis in (0, 1):
                for c in borders:
                    a, b = before[axis] - c, after[axis] - c
                    if a * b < 0 or (b == 0 and a != 0):
                        t = a / (a - b)
                        assert gap(before[1 - axis] + t * (after[1 - axis] - before[1 - axis]))
                    if b == 0:
                        assert gap(after[1 - axis])  # resting on a border only inside its gap


def test_the_gaps_let_the_agent_through():
    env = mazegrid.MazeGridEnv()
    env.reset()
    walk(env, [UP] * 3)
    assert env.pos.tolist() == [0.0, 1.5]  # through the gap of the wall y = 1
    walk(env, [(0.0, 0.2)] * 5)  # to y = 2.0, level with the next cell's side gap
    walk(env, [RIGHT] * 3)
    assert env.pos == pytest.approx([1.5, 2.0])  # through the gap of the wall x = 1 at y = 2


def test_each_goal_gives_its_reward_and_terminates():
    env = mazegrid.MazeGridEnv()
    env.reset()
    obs, reward, terminated, truncated, info = walk(env, [RIGHT, RIGHT])  # the cell right of the start
    assert (reward, terminated, truncated) == (0.1, True, False)
    assert info["is_suboptimal"] and not info["is_success"]
    env.reset()
    path = [UP] * 4 + [RIGHT] * 8 + [UP] * 2  # up to (0, 2), right through two gaps to (4, 2), up into (4, 4)
    for move in path[:-1]:
        assert walk(env, [move])[1:3] == (0.0, False)
    obs, reward, terminated, truncated, info = walk(env, [path[-1]])
    assert (reward, terminated, truncated) == (1.0, True, False) and info["is_success"]


def test_the_time_limit_truncates():
    env = mazegrid.MazeGridEnv(max_episode_steps=100)
    env.reset()
    for _ in range(99):
        assert walk(env, [STAY])[2:4] == (False, False)
    _, reward, terminated, truncated, _ = walk(env, [STAY])
    assert (reward, terminated, truncated) == (0.0, False, True)


def test_render_shows_walls_goals_and_agent():
    env = mazegrid.MazeGridEnv(pixels_per_unit=20)
    env.reset()
    walk(env, [(1.0, 0.0)])  # agent at (0.5, 0)
    image = env.render()
    assert image.shape == (200, 200, 3) and image.dtype == np.uint8
    px = lambda x, y: image[int((5 - y) * 20), int((x + 5) * 20)].tolist()  # noqa: E731
    assert px(0.5, 0) == [220, 30, 30] and px(0, 0.5) == [255, 255, 255]  # agent, and not its mirror image
    assert px(4, 4) == [60, 180, 75] and px(2, 0) == [245, 160, 50]  # optimal and suboptimal goals
    assert px(1, 0.5) == [0, 0, 0] and px(1, 0) != [0, 0, 0]  # wall x = 1 and its gap at y = 0
    assert px(-2, -2) == [255, 255, 255]  # an empty passage


def test_gymnasium_env_checker_passes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning fails the test
        check_env(gym.make("MazeGrid-v0").unwrapped)


def test_environment_checks_its_arguments():
    with pytest.raises(ValueError):
        mazegrid.MazeGridEnv(render_mode="human")
    with pytest.raises(ValueError):
        mazegrid.MazeGridEnv(max_episode_steps=0)
    env = mazegrid.MazeGridEnv()
    with pytest.raises(RuntimeError):
        env.step(np.zeros(2, dtype=np.float32))
    env.reset()
    with pytest.raises(ValueError):
        env.step(np.array([0.0, np.nan]))
    with pytest.raises(ValueError):
        env.step(np.zeros(3))


def test_gamid_critic_target_is_max_over_gaussians_of_min_twin_q():
    args = mazegrid.Args(n_actors=3, policy_noise=0.0, total_timesteps=2000)  # no smoothing noise: deterministic target
    torch.manual_seed(0)
    agent = mazegrid.Gamid(args, 2, 2, torch.device("cpu"))
    obs, next_obs = torch.rand(16, 2) * 2 - 1, torch.rand(16, 2) * 2 - 1
    actions, rewards = torch.rand(16, 2) * 2 - 1, torch.rand(16)
    terminations = (torch.arange(16) % 4 == 0).float()
    with torch.no_grad():  # independent computation, one Gaussian and one critic at a time
        q_next = torch.stack([
            torch.stack([agent.critic_target(next_obs, agent.actor_target(next_obs)[i])[j] for j in range(2)]).min(0).values
            for i in range(3)
        ]).max(0).values
        target = rewards + args.gamma * (1 - terminations) * q_next
        q = agent.critic(obs, actions)
        expected = ((q[0] - target) ** 2).mean() + ((q[1] - target) ** 2).mean()
    logs = agent.update((obs, actions, next_obs, rewards, terminations), step=0)
    assert logs["losses/critic_loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_gamid_mean_network_i_gets_gradient_only_from_its_own_loss():
    args = mazegrid.Args(n_actors=3, total_timesteps=2000)
    torch.manual_seed(0)
    agent = mazegrid.Gamid(args, 2, 2, torch.device("cpu"))
    obs = torch.rand(8, 2)
    means = agent.actor(obs)  # (N, B, A) from one batched ensemble
    loss_i = -(agent.critic(obs, means, q1_only=True)[0].mean(1) + 0.3 * mazegrid.d_var(means).mean(1))
    loss_i[1].backward()
    for weight in agent.actor.net.weights:
        assert weight.grad[0].abs().sum() == 0 and weight.grad[2].abs().sum() == 0
        assert weight.grad[1].abs().sum() > 0


def test_sacm_component_log_probs_match_torch_distributions():
    torch.manual_seed(0)
    actor = mazegrid.MixtureActor(3, 2, 2, 16).double()
    obs = torch.rand(5, 2, dtype=torch.float64)
    torch.manual_seed(1)
    actions, log_prob = actor.sample_components(obs)  # (5, 3, 2), (5, 3)
    mean, log_std = actor(obs)
    base = MixtureSameFamily(
        Categorical(logits=actor.log_w.expand(5, 3)),
        torch.distributions.Independent(Normal(mean, log_std.exp()), 1),
    )
    reference = TransformedDistribution(base, [TanhTransform()])
    expected = torch.stack([reference.log_prob(actions[:, k]) for k in range(3)], 1)
    assert torch.allclose(log_prob, expected, atol=1e-6)


@pytest.mark.parametrize("algo", ["gamid", "sacm"])
def test_short_run_writes_tensorboard_events_and_figure(algo, tmp_path):
    args = mazegrid.Args(
        algo=algo, num_seeds=1, total_timesteps=300, learning_starts=100, batch_size=32, eval_freq=100,
        runs_dir=str(tmp_path),
    )
    curves = mazegrid.main(args)
    assert curves[algo][0][:, 0].tolist() == [100, 200, 300]
    (run_dir,) = tmp_path.iterdir()
    assert list((run_dir / f"{algo}__1").glob("events.out.tfevents.*"))
    assert (run_dir / "mazegrid.png").exists()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(run_dir / f"{algo}__1")).Reload().Tags()["scalars"]
    assert {"eval/success_rate", "eval/episodic_return", "charts/episodic_return", "losses/critic_loss"} <= set(tags)


def test_cli_rejects_unknown_algo_with_one_sentence(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "mazegrid.py"), "--algo", "ppo", "--runs-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "--algo must be gamid, sacm or both, not 'ppo'."
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("field, value", [("num_seeds", 0), ("n_actors", 0), ("epsilon_final", -0.1), ("temperature_final", -1.0)])
def test_bad_arguments_are_rejected_before_training(field, value, tmp_path):
    with pytest.raises(SystemExit) as excinfo:
        mazegrid.main(mazegrid.Args(runs_dir=str(tmp_path), **{field: value}))
    assert isinstance(excinfo.value.code, str) and not any(tmp_path.iterdir())


def test_same_seed_same_numbers(tmp_path):
    args = mazegrid.Args(algo="gamid", num_seeds=1, total_timesteps=200, learning_starts=50, batch_size=16,
                         eval_freq=100, runs_dir=str(tmp_path))
    torch.manual_seed(123)
    first = mazegrid.train(args, "gamid", 1, str(tmp_path / "a"), torch.device("cpu"))
    second = mazegrid.train(args, "gamid", 1, str(tmp_path / "b"), torch.device("cpu"))
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert math.isclose(first[1].sum(), 200)
