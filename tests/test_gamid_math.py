"""The pieces of Algorithm 1 against hand computations (gamid_continuous_action.py)."""

import math
from types import SimpleNamespace

import pytest
import torch

import gamid_continuous_action as gamid


def test_d_var_matches_hand_computation():
    # Three 2-D means at one state: mu0 = (0, 0), mu1 = (1, 0), mu2 = (0, 2).
    means = torch.tensor([[[0.0, 0.0]], [[1.0, 0.0]], [[0.0, 2.0]]])
    expected = [
        -math.log(math.exp(-1) + math.exp(-4)),  # ||mu0-mu1||^2 = 1, ||mu0-mu2||^2 = 4
        -math.log(math.exp(-1) + math.exp(-5)),  # ||mu1-mu0||^2 = 1, ||mu1-mu2||^2 = 5
        -math.log(math.exp(-4) + math.exp(-5)),
    ]
    assert gamid.d_var(means)[:, 0].tolist() == pytest.approx(expected, rel=1e-6)


def test_d_var_is_zero_for_a_single_gaussian():
    assert torch.equal(gamid.d_var(torch.randn(1, 7, 3)), torch.zeros(1, 7))


def test_d_var_gradient_pushes_gaussian_away_and_leaves_others_untouched():
    means = torch.tensor([[[0.0, 0.0]], [[1.0, 0.0]], [[0.0, 2.0]]], requires_grad=True)
    gamid.d_var(means)[0].sum().backward()
    grad = means.grad[0, 0]
    # d D_var(0) / d mu0 = sum_j softmax_j(-d_0j) * 2 (mu0 - mu_j);
    # ascent moves mu0 away from its nearest neighbour mu1.
    w1, w2 = math.exp(-1) / (math.exp(-1) + math.exp(-4)), math.exp(-4) / (math.exp(-1) + math.exp(-4))
    assert grad.tolist() == pytest.approx([2 * w1 * (0 - 1), 2 * w2 * (0 - 2)], rel=1e-6)
    assert torch.dot(grad, means[0, 0] - means[1, 0]).item() > 0
    assert torch.count_nonzero(means.grad[1:]) == 0  # the other Gaussians are constants for Gaussian 0


def test_each_mean_network_only_gets_gradient_from_its_own_loss():
    torch.manual_seed(0)
    actor, qf = gamid.GaussianMeans(3, 5, 2, (16,)), gamid.TwinQ(5, 2, (16,))
    obs = torch.randn(32, 5)

    def grads(select):
        actor.zero_grad()
        losses, _ = gamid.actor_losses(actor, qf, obs, temperature=0.7)
        select(losses).backward()
        return [w.grad.clone() for w in actor.net.weights]

    total = grads(lambda losses: losses.sum())
    for i in range(3):
        own = grads(lambda losses: losses[i])
        for g_total, g_own in zip(total, own):
            assert torch.allclose(g_total[i], g_own[i], atol=1e-7)  # sum over i gives theta[i] exactly grad loss_i
            assert torch.count_nonzero(torch.cat([g_own[:i], g_own[i + 1 :]])) == 0
    assert all(p.grad is None for p in qf.parameters())  # the critic is not trained by the actor loss


def test_actor_loss_is_q1_plus_temperature_times_d_var():
    torch.manual_seed(1)
    actor, qf = gamid.GaussianMeans(4, 3, 2, (8,)), gamid.TwinQ(3, 2, (8,))
    obs = torch.randn(16, 3)
    losses, diversity = gamid.actor_losses(actor, qf, obs, temperature=0.3)
    means = actor(obs)
    q1 = torch.stack([qf.net(torch.cat([obs, means[i]], -1)[None])[0, :, 0] for i in range(4)])  # Q1 = member 0
    assert torch.allclose(losses, -(q1.mean(1) + 0.3 * gamid.d_var(means).mean(1)), atol=1e-6)
    assert torch.allclose(diversity, gamid.d_var(means).mean(1))


@pytest.mark.parametrize("epsilon", [0.0, 0.3, 1.0])
def test_epsilon_greedy_weights(epsilon):
    q = torch.tensor([[0.1, 5.0, -1.0], [0.3, 1.0, -2.0], [0.2, 2.0, 0.0], [-1.0, 0.0, -0.5]])  # (N=4, B=3)
    p = gamid.epsilon_greedy_weights(q, epsilon)
    assert p.shape == (3, 4)
    assert torch.allclose(p.sum(1), torch.ones(3))
    for b, best in enumerate([1, 0, 2]):
        assert p[b, best].item() == pytest.approx(1 - epsilon + epsilon / 4)
        assert [p[b, j].item() for j in range(4) if j != best] == pytest.approx([epsilon / 4] * 3)


def test_greedy_action_is_argmax_gaussian_without_noise():
    torch.manual_seed(2)
    actor, qf = gamid.GaussianMeans(3, 4, 2, (8,)), gamid.TwinQ(4, 2, (8,))
    obs = torch.randn(10, 4)
    action, _ = gamid.greedy_action(actor, qf, obs)
    means = actor(obs).detach()
    best = qf(obs, means, members=1)[0].argmax(0)
    assert len(set(best.tolist())) > 1  # the states disagree on the best Gaussian, so the choice is tested
    assert torch.equal(action, means[best, torch.arange(10)])


def test_greedy_action_draws_from_no_random_stream():
    torch.manual_seed(2)
    actor, qf = gamid.GaussianMeans(3, 4, 2, (8,)), gamid.TwinQ(4, 2, (8,))
    obs = torch.randn(10, 4)
    before = torch.get_rng_state()
    gamid.greedy_action(actor, qf, obs)
    assert torch.equal(torch.get_rng_state(), before)


def test_sampled_gaussians_follow_epsilon_greedy_weights():
    torch.manual_seed(3)
    actor, qf = gamid.GaussianMeans(4, 4, 2, (8,)), gamid.TwinQ(4, 2, (8,))
    obs = torch.randn(1, 4).expand(20000, 4)
    _, n = gamid.gmm_action(actor, qf, obs, epsilon=0.4, noise_std=0.1)
    best = qf(obs[:1], actor(obs[:1]), members=1)[0].argmax().item()
    freq = torch.bincount(n, minlength=4).float() / len(n)
    expected = torch.full((4,), 0.1)
    expected[best] = 0.7
    assert torch.allclose(freq, expected, atol=0.015)


def test_linear_schedule_endpoints():
    s = gamid.linear_schedule
    assert s(0.3, 0.1, 0.3, 1000, 0) == pytest.approx(0.3)
    assert s(0.3, 0.1, 0.3, 1000, 150) == pytest.approx(0.2)
    assert s(0.3, 0.1, 0.3, 1000, 300) == pytest.approx(0.1)
    assert s(0.3, 0.1, 0.3, 1000, 1000) == pytest.approx(0.1)
    assert s(0.3, 0.1, 0.0, 1000, 0) == pytest.approx(0.1)  # fraction 0: the final value from the start
    assert s(0.1, 0.1, 1.0, 1000, 500) == pytest.approx(0.1)


class FixedMeans(torch.nn.Module):
    """A stand-in target actor with hand-chosen means (N=3, B=2, act=1), whatever the state."""

    def forward(self, obs):
        return torch.tensor([[[-0.5], [0.2]], [[0.0], [0.9]], [[0.5], [-0.9]]])


class TableQ(torch.nn.Module):
    """A stand-in target critic: Q1(s, a) = 10 a, Q2(s, a) = 4 - 10 a^2 (per Gaussian and state)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, obs, actions, members=2):
        self.seen.append(actions.clone())
        a = actions[..., 0]
        return torch.stack([10 * a, 4 - 10 * a**2])[:members]


def test_critic_target_is_max_over_gaussians_of_min_over_critics():
    batch = gamid.Batch(
        obs=torch.zeros(2, 1),
        actions=torch.zeros(2, 1),
        rewards=torch.tensor([1.0, -1.0]),
        next_obs=torch.zeros(2, 1),
        terminated=torch.tensor([0.0, 1.0]),
    )
    args = SimpleNamespace(gamma=0.9, policy_noise=0.0, noise_clip=0.5)
    y = gamid.td_target(FixedMeans(), TableQ(), batch, args)
    # State 0: a' = -0.5, 0.0, 0.5 -> min(Q1, Q2) = min(-5, 1.5), min(0, 4), min(5, 1.5) = -5, 0, 1.5 -> max 1.5.
    # State 1 is terminal: y = r.
    assert y.tolist() == pytest.approx([1.0 + 0.9 * 1.5, -1.0])


def test_critic_target_chooses_the_gaussian_before_the_smoothing_noise(monkeypatch):
    """i* is chosen on the noise-free target means; the smoothing noise goes on mu'_i*(s') only."""
    monkeypatch.setattr(torch, "randn_like", torch.ones_like)  # every noise draw is +1: noise = +policy_noise
    batch = gamid.Batch(
        obs=torch.zeros(2, 1),
        actions=torch.zeros(2, 1),
        rewards=torch.tensor([1.0, -1.0]),
        next_obs=torch.zeros(2, 1),
        terminated=torch.zeros(2),
    )
    critic = TableQ()
    y = gamid.td_target(FixedMeans(), critic, batch, SimpleNamespace(gamma=0.9, policy_noise=0.3, noise_clip=0.5))
    # State 0, noise-free: min(Q1, Q2) at a = -0.5, 0.0, 0.5 is -5, 0, 1.5 -> i* = 2; a' = 0.5 + 0.3 = 0.8,
    # min(Q1, Q2)(0.8) = min(8, -2.4) = -2.4 -> y = 1 + 0.9 * (-2.4) = -1.16.
    # The old rule (noise on all three, then the max) saw a' = -0.2, 0.3, 0.8 -> min = -2, 3, -2.4 -> max 3,
    # y = 1 + 0.9 * 3 = 3.7: the noise, not the critic, chose the Gaussian.
    # State 1, noise-free: a = 0.2, 0.9, -0.9 -> min = 2, -4.1, -9 -> i* = 0; a' = 0.5 -> min(5, 1.5) = 1.5,
    # y = -1 + 0.9 * 1.5 = 0.35 (the old rule agrees here: noisy 0.5, 1.0, -0.6 -> min = 1.5, -6, -6).
    assert y.tolist() == pytest.approx([1.0 + 0.9 * -2.4, -1.0 + 0.9 * 1.5])
    assert y[0].item() != pytest.approx(1.0 + 0.9 * 3.0)  # the old rule's y
    assert torch.equal(critic.seen[0], FixedMeans()(None))  # the choice sees the noise-free means
    assert critic.seen[1][:, 0].tolist() == pytest.approx([0.8, 0.5])  # the noise only on the chosen actions


def test_critic_target_smoothing_noise_is_clipped_and_actions_bounded():
    torch.manual_seed(4)
    batch = gamid.Batch(*(torch.zeros(2, 1),) * 2, torch.zeros(2), torch.zeros(2, 1), torch.zeros(2))
    critic = TableQ()
    gamid.td_target(FixedMeans(), critic, batch, SimpleNamespace(gamma=0.9, policy_noise=10.0, noise_clip=0.05))
    chosen = FixedMeans()(None)[[2, 0], [0, 1]]  # i* = 2 for state 0 and 0 for state 1 (see the test above)
    smoothed = critic.seen[1]
    assert smoothed.shape == chosen.shape
    assert torch.all((smoothed - chosen).abs() <= 0.05 + 1e-7)
    assert torch.all((smoothed - chosen).abs() > 0.05 - 1e-7)  # policy_noise 10: nearly every draw is clipped
    assert torch.all(smoothed.abs() <= 1)


def test_ensemble_members_are_independent_mlps():
    torch.manual_seed(5)
    net = gamid.EnsembleMLP(3, 4, 2, (8, 8))
    x = torch.randn(5, 4)
    out = net(x[None])
    for i in range(3):
        h = x
        for k, (w, b) in enumerate(zip(net.weights, net.biases)):
            h = h @ w[i] + b[i, 0]
            h = torch.relu(h) if k < 2 else h
        assert torch.allclose(out[i], h, atol=1e-6)
    assert torch.allclose(net(x[None], members=1)[0], out[0])


class FixedPoints(torch.nn.Module):
    """An actor whose N means are the same fixed (N, act) points at every state."""

    def __init__(self, points):
        super().__init__()
        self.points = torch.tensor(points)

    def forward(self, obs):
        return self.points.unsqueeze(1).expand(-1, obs.shape[0], -1)


class LinearQ(torch.nn.Module):
    """Q1(s, a) = s[0] * (w . a): its action gradient is s[0] * w, by hand."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(w))

    def forward(self, obs, actions, members=2):
        return (obs[..., :1] * (actions @ self.w).unsqueeze(-1)).squeeze(-1).expand(members, *actions.shape[:-1])


def test_diagnostics_match_hand_computation():
    # Means mu0 = (0.995, 0), mu1 = (0, 0), mu2 = (0, -0.5); Q1 = 2 (a0 + a1), so Q1 = 1.99, 0, -1 at every state.
    actor, qf = FixedPoints([[0.995, 0.0], [0.0, 0.0], [0.0, -0.5]]), LinearQ([1.0, 1.0])
    stats = gamid.diagnostics(actor, qf, torch.full((4, 3), 2.0), temperature=0.3)
    assert stats["diagnostics/saturated_fraction"].item() == pytest.approx(1 / 6)  # one coordinate of six
    assert stats["diagnostics/q_gap"].item() == pytest.approx(1.99, rel=1e-6)  # best 1.99, second 0
    # grad_mu_i D_var(i) = sum_j softmax_j(-d_ij) 2 (mu_i - mu_j); ||grad_a Q1|| = 2 sqrt(2) everywhere.
    mu = [(0.995, 0.0), (0.0, 0.0), (0.0, -0.5)]
    norms = []
    for i in range(3):
        others = [j for j in range(3) if j != i]
        d = {j: sum((mu[i][k] - mu[j][k]) ** 2 for k in range(2)) for j in others}
        z = sum(math.exp(-d[j]) for j in others)
        grad = [sum(math.exp(-d[j]) / z * 2 * (mu[i][k] - mu[j][k]) for j in others) for k in range(2)]
        norms.append(math.hypot(*grad))
    expected = 0.3 * (sum(norms) / 3) / (2 * math.sqrt(2))
    assert stats["diagnostics/diversity_to_q_grad"].item() == pytest.approx(expected, rel=1e-5)
    assert qf.w.grad is None  # the diagnostics train nothing


def test_switch_rate_counts_changes_of_the_greedy_gaussian():
    import gymnasium as gym
    import numpy as np

    class Signs(gym.Env):
        """Observation s[0] = +1, +1, -1, +1, +1 over five steps; then the episode ends."""

        observation_space = gym.spaces.Box(-1, 1, (1,))
        action_space = gym.spaces.Box(-1, 1, (1,))

        def reset(self, seed=None, options=None):
            self.t = 0
            return np.array([1.0], dtype=np.float32), {}

        def step(self, action):
            self.t += 1
            sign = [1.0, 1.0, -1.0, 1.0, 1.0][min(self.t, 4)]
            return np.array([sign], dtype=np.float32), 0.0, False, self.t == 5, {}

    # Q1 = s0 * a: the mean +1 is greedy where s0 > 0, the mean -1 where s0 < 0. Greedy indices over the five
    # steps: 0, 0, 1, 0, 0 (the observations before each step) -> 2 switches in 4 comparisons per episode.
    actor, qf = FixedPoints([[1.0], [-1.0]]), LinearQ([1.0])
    returns, switch_rate = gamid.evaluate(actor, qf, Signs(), episodes=2, device=torch.device("cpu"), seed=0)
    assert returns == [0.0, 0.0] and switch_rate == pytest.approx(2 / 4)


def test_preactivation_penalty_adds_the_mean_squared_preactivation_to_each_loss():
    torch.manual_seed(2)
    actor, qf = gamid.GaussianMeans(3, 5, 2, (16,)), gamid.TwinQ(5, 2, (16,))
    obs = torch.randn(8, 5)
    plain, _ = gamid.actor_losses(actor, qf, obs, temperature=0.2)
    penalized, _ = gamid.actor_losses(actor, qf, obs, temperature=0.2, penalty=0.01)
    preactivations = torch.atanh(actor(obs).detach().double())  # u_i(s) = atanh(mu_i(s)), (N, B, act)
    by_hand = 0.01 * (preactivations**2).sum(-1).mean(1)
    torch.testing.assert_close((penalized - plain).detach().double(), by_hand, rtol=1e-4, atol=1e-7)
