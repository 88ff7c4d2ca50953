"""Tests for mazegrid.py: the MazeGrid environment and its compact Gamid / SACM learners."""

import copy
import math
import random
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import run_script, scalars
from gymnasium.utils.env_checker import check_env
from torch.distributions import Categorical, MixtureSameFamily, Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

import mazegrid

UP, DOWN, RIGHT, LEFT, STAY = (0, 1), (0, -1), (1, 0), (-1, 0), (0, 0)


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


def test_a_bad_action_is_refused():
    env = mazegrid.MazeGridEnv()
    env.reset()
    with pytest.raises(ValueError):
        env.step(np.array([0.0, np.nan]))
    with pytest.raises(ValueError):
        env.step(np.zeros(3))


def small_args(**overrides):
    """Small networks for fast tests; every other field at its default."""
    return mazegrid.Args(net_arch=(16, 16), **overrides)


def random_batch(size=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.rand(*shape, generator=generator) * 2 - 1  # noqa: E731
    terminated = (torch.arange(size) % 4 == 0).float()
    return mazegrid.Batch(rand(size, 2), rand(size, 2), rand(size).abs(), rand(size, 2), terminated)


def test_gamid_target_smooths_only_the_gaussian_chosen_on_noise_free_means():
    # Alg. 1 line 10 on TD3: i* = argmax_i min_k Q_targ,k(s', mu'_i(s')) without noise, then TD3's clipped noise on
    # mu'_i*(s') alone. Built here one Gaussian and one critic at a time, with the noise drawn from the same seed.
    args = small_args(n_actors=3, policy_noise=0.5, noise_clip=0.5)
    torch.manual_seed(0)
    agent = mazegrid.Gamid(args, 2, 2, torch.device("cpu"))
    batch = random_batch()
    with torch.no_grad():
        means = [agent.actor_target(batch.next_obs)[i] for i in range(3)]  # (B, 2) each
        min_q = lambda a: torch.minimum(*[agent.qf_target(batch.next_obs, a)[k] for k in range(2)])  # noqa: E731
        chosen = torch.stack([min_q(m) for m in means]).argmax(0)  # (B,)
        torch.manual_seed(1)
        noise = (torch.randn(16, 2) * 0.5).clamp(-0.5, 0.5)
        action = torch.stack([means[i][b] for b, i in enumerate(chosen.tolist())])
        expected = batch.rewards + args.gamma * (1 - batch.terminated) * min_q((action + noise).clamp(-1, 1))
        # the previous rule: the same noise on every Gaussian's action, then the max over the N noisy ones
        old = torch.stack([min_q((m + noise).clamp(-1, 1)) for m in means]).max(0).values
        old = batch.rewards + args.gamma * (1 - batch.terminated) * old
    torch.manual_seed(1)
    target = agent.td_target(batch)
    assert torch.allclose(target, expected, atol=1e-6)
    assert (old - target).abs().max() > 1e-3  # the two rules differ on this batch


def test_sacm_soft_target_subtracts_the_entropy_term_and_stops_at_terminations():
    # y = r + gamma (1 - d) (min_k Q_targ,k(s', a') - alpha log pi(a'|s')), a' drawn from the mixture; built from the
    # agent's own draw, replayed from the same seed, so the sign of alpha and the (1 - d) factor are both checked.
    args = small_args(n_components=3)
    torch.manual_seed(0)
    agent = mazegrid.SACM(args, 2, 2, torch.device("cpu"))
    batch, alpha = random_batch(), torch.tensor(0.7)
    with torch.no_grad():
        torch.manual_seed(1)
        u, log_prob = agent.sample(batch.next_obs)
        next_v = agent.qf_target(batch.next_obs, torch.tanh(u)).min(0).values - alpha * log_prob
        torch.manual_seed(1)
        target = agent.td_target(batch, alpha)
    expected = batch.rewards + args.gamma * (1 - batch.terminated) * next_v
    assert torch.allclose(target, expected, atol=1e-6)
    assert torch.equal(target[batch.terminated == 1], batch.rewards[batch.terminated == 1])  # no bootstrap there


def hand_d_var(means, i):
    """-log sum_{j != i} exp(-||mu_i - sg(mu_j)||^2), one pair at a time (Eq. 4)."""
    terms = [torch.exp(-(means[i] - means[j].detach()).pow(2).sum(-1)) for j in range(len(means)) if j != i]
    return -torch.log(sum(terms))


def test_gamid_actor_and_targets_move_every_policy_delay_steps_along_the_hand_gradient():
    args = small_args(n_actors=3, policy_delay=2, total_timesteps=1000, temperature_initial=0.3, temperature_final=0.1)
    torch.manual_seed(0)
    agent = mazegrid.Gamid(args, 2, 2, torch.device("cpu"))
    start = {name: p.detach().clone() for name, p in agent.actor.state_dict().items()}
    start_q_target = [p.detach().clone() for p in agent.qf_target.parameters()]
    batch = random_batch()

    stats = agent.update(batch, step=500)  # first gradient step: critics only
    assert "losses/actor_loss" not in stats
    assert all(p.grad is None for p in agent.actor.parameters())
    assert all(torch.equal(p, start[n]) for n, p in agent.actor.state_dict().items())
    assert all(torch.equal(p, q) for p, q in zip(agent.qf_target.parameters(), start_q_target))

    stats = agent.update(batch, step=500)  # second: critics, then actor and both targets
    temperature = 0.3 + 500 / 1000 * (0.1 - 0.3)
    assert stats["charts/temperature"] == pytest.approx(temperature)
    reference = mazegrid.GaussianMeans(3, 2, 2, (16, 16))
    reference.load_state_dict(start)
    means = [reference(batch.obs)[i] for i in range(3)]
    loss = sum(-agent.qf(batch.obs, means[i])[0].mean() - temperature * hand_d_var(means, i).mean() for i in range(3))
    assert stats["losses/actor_loss"].item() == pytest.approx(loss.item(), rel=1e-5)
    loss.backward()
    for p, hand in zip(agent.actor.parameters(), reference.parameters()):
        assert torch.allclose(p.grad, hand.grad, atol=1e-6)
    # Adam's first step moves each weight by lr * g / (|g| + eps); the targets then trail by tau
    for (name, p), hand in zip(agent.actor.state_dict().items(), reference.parameters()):
        moved = start[name] - args.learning_rate * hand.grad / (hand.grad.abs() + 1e-8)
        assert torch.allclose(p, moved, atol=1e-6)
        target = agent.actor_target.state_dict()[name]
        assert torch.allclose(target, (1 - args.tau) * start[name] + args.tau * p, atol=1e-7)


def test_gamid_mean_network_i_gets_gradient_only_from_its_own_loss():
    torch.manual_seed(0)
    agent = mazegrid.Gamid(small_args(n_actors=3), 2, 2, torch.device("cpu"))
    losses, _ = agent.actor_losses(torch.rand(8, 2), temperature=0.3)
    losses[1].backward()
    for weight in agent.actor.net.weights:
        assert weight.grad[0].abs().sum() == 0 and weight.grad[2].abs().sum() == 0
        assert weight.grad[1].abs().sum() > 0


def squashed_mixture(mean, log_std):
    """torch.distributions' tanh-squashed uniform mixture for one state: mean, log_std (K, act)."""
    k = mean.shape[0]
    components = torch.distributions.Independent(Normal(mean, log_std.exp()), 1)
    base = MixtureSameFamily(Categorical(logits=torch.zeros(k, dtype=mean.dtype)), components)
    return TransformedDistribution(base, [TanhTransform()])


def test_sacm_mixture_log_prob_matches_torch_distributions():
    torch.manual_seed(0)
    mean, log_std = torch.randn(3, 5, 2, dtype=torch.float64), torch.randn(3, 5, 2, dtype=torch.float64) * 0.5
    log_weights = torch.full((3, 5), -math.log(3), dtype=torch.float64)
    u = torch.randn(4, 5, 2, dtype=torch.float64)  # 4 samples for each of 5 states
    ours = mazegrid.mixture_log_prob(u, mean, log_std, log_weights)  # (4, 5)
    for b in range(5):
        reference = squashed_mixture(mean[:, b], log_std[:, b]).log_prob(torch.tanh(u[:, b]))
        assert torch.allclose(ours[:, b], reference, atol=1e-8)


def test_sacm_actor_and_alpha_steps_follow_an_independent_computation():
    # After one update: the actor's gradient is that of sum_k w_k mean_s[alpha log pi(a_k|s) - min_k Q_k(s, a_k)],
    # with a_k = tanh(mu_k + sigma_k xi_k), built from torch.distributions; log alpha's is H + |A| (SB3's loss).
    args = small_args(n_components=3)
    torch.manual_seed(0)
    agent = mazegrid.SACM(args, 2, 2, torch.device("cpu"))
    with torch.no_grad():
        agent.log_alpha.fill_(math.log(0.5))  # alpha = 0.5: a loss on alpha itself would now show
        for weight, bias in zip(agent.qf.net.weights, agent.qf.net.biases):  # Q2 = Q1 but for its last layer,
            weight[1], bias[1] = weight[0], bias[0]  # so that the two critics cross and the min matters
        agent.qf.net.weights[-1][1] += 0.5 * torch.randn_like(agent.qf.net.weights[-1][1])
    reference = copy.deepcopy(agent.actor)
    batch = random_batch(16)
    torch.manual_seed(5)
    stats = agent.update(batch, step=0)

    torch.manual_seed(5)
    with torch.no_grad():
        copy.deepcopy(agent).sample(batch.next_obs)  # replay the target's draws to reach the actor's noise
    mean, log_std, _ = reference(batch.obs)  # (K, B, 2)
    xi = torch.randn_like(mean)  # the same layout as the actor's draw (mean is a transposed view)
    loss, entropy, lower = 0.0, 0.0, []
    for k in range(3):
        u = mean[k] + log_std[k].exp() * xi[k]
        log_prob = torch.stack(
            [squashed_mixture(mean[:, b], log_std[:, b]).log_prob(torch.tanh(u[b])) for b in range(16)]
        )
        q1, q2 = agent.qf(batch.obs, torch.tanh(u))  # the critics after their own step, as in update
        lower.append(q1 < q2)
        loss = loss + ((0.5 * log_prob - torch.minimum(q1, q2)).mean()) / 3  # w_k = 1/3
        entropy = entropy - log_prob.mean().detach() / 3
    lower = torch.stack(lower)
    assert lower.any() and not lower.all()  # each critic is the smaller one somewhere: the min matters
    assert stats["losses/actor_loss"].item() == pytest.approx(loss.item(), rel=1e-4)
    loss.backward()
    for p, hand in zip(agent.actor.parameters(), reference.parameters()):
        assert torch.allclose(p.grad, hand.grad, atol=1e-5)
    assert stats["charts/entropy"].item() == pytest.approx(entropy.item(), rel=1e-4)
    assert agent.log_alpha.grad.item() == pytest.approx(entropy.item() + 2, rel=1e-4)
    # Adam's first step on log alpha: -lr * sign(H + |A|); alpha falls while the entropy is above -|A|
    step = -args.learning_rate * math.copysign(1, entropy.item() + 2)
    assert agent.log_alpha.item() == pytest.approx(math.log(0.5) + step, abs=1e-7)


@pytest.mark.parametrize("algo", ["gamid", "sacm"])
def test_greedy_action_is_the_mean_with_the_highest_q1(algo):
    torch.manual_seed(0)
    args = small_args(n_actors=4, n_components=4)
    agent = {"gamid": mazegrid.Gamid, "sacm": mazegrid.SACM}[algo](args, 2, 2, torch.device("cpu"))
    for obs in torch.rand(10, 2) * 2 - 1:
        with torch.no_grad():
            if algo == "gamid":
                means = [agent.actor(obs[None])[i, 0] for i in range(4)]
            else:
                means = [torch.tanh(agent.actor(obs[None])[0][k, 0]) for k in range(4)]
            q1 = [agent.qf(obs[None], m[None])[0].item() for m in means]
        expected = means[max(range(4), key=lambda i: q1[i])]
        assert torch.equal(agent.greedy(obs), expected)


def test_short_run_of_both_learners_writes_events_curves_visits_and_figure(tmp_path):
    args = small_args(
        num_seeds=1, runs_dir=str(tmp_path), total_timesteps=300, learning_starts=100, batch_size=32, eval_freq=100
    )
    curves = mazegrid.main(args)
    (run_dir,) = tmp_path.iterdir()
    assert (run_dir / "mazegrid.png").exists() and (run_dir / "curves.json").exists()
    for algo in ("gamid", "sacm"):
        assert curves[algo][0][:, 0].tolist() == [100, 200, 300]
        assert np.load(run_dir / "visits.npz")[algo].sum() == 300  # one visit per environment step
        logged = scalars(str(run_dir / f"{algo}__1"))
        assert {"eval/success_rate", "eval/episodic_return", "charts/episodic_return", "losses/qf_loss"} <= set(logged)
        assert [step for step, _ in logged["losses/qf_loss"]] == [250]  # every 250 steps once learning has started


@pytest.mark.parametrize("algo", ["gamid", "sacm"])
def test_runs_are_seeded_and_evaluation_draws_nothing_from_the_training_streams(algo, tmp_path):
    # runs that differ only in how often they evaluate visit the same states and learn the same values, whatever
    # the global random state before them (run_one_seed seeds torch only: numpy's and Python's streams go unused)
    runs = []
    for eval_freq in (50, 300):
        torch.manual_seed(eval_freq)
        np.random.seed(eval_freq)
        random.seed(eval_freq)
        args = small_args(total_timesteps=300, learning_starts=100, batch_size=16, eval_freq=eval_freq)
        runs.append(mazegrid.run_one_seed(args, algo, 3, str(tmp_path / str(eval_freq)), torch.device("cpu")))
    assert np.array_equal(runs[0][1], runs[1][1]) and runs[0][1].sum() == 300
    assert np.array_equal(runs[0][0][-1], runs[1][0][-1])  # the final evaluation, at step 300


def test_cli_rejects_unknown_algo_with_one_sentence(tmp_path):
    result = run_script("mazegrid.py", "--algo", "ppo", "--runs-dir", tmp_path, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "--algo must be gamid, sacm or both, not 'ppo'."
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "field, value, sentence",
    [
        ("num_seeds", 0, "--num-seeds must be at least 1."),
        ("n_actors", 0, "--n-actors must be at least 1."),
        ("epsilon_final", -0.1, "Epsilons must lie in [0, 1]."),
        ("epsilon_fraction", 1.5, "Fractions must lie in [0, 1]."),
        ("temperature_final", -1.0, "Temperatures must not be negative."),
        ("learning_starts", 20000, "--total-timesteps must exceed --learning-starts."),
        ("batch_size", 200_000, "--batch-size must lie between 1 and --buffer-size."),
    ],
)
def test_bad_arguments_are_rejected_before_training(field, value, sentence, tmp_path):
    with pytest.raises(SystemExit) as excinfo:
        mazegrid.main(mazegrid.Args(runs_dir=str(tmp_path), **{field: value}))
    assert excinfo.value.code == sentence
    assert not any(tmp_path.iterdir())
