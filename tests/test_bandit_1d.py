"""Tests for bandit_1d.py and the D_var / mixture helpers it shares with the other scripts."""

import json
import math

import pytest
import torch
from conftest import run_script
from torch.distributions import Categorical, MixtureSameFamily, Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

import bandit_1d

# d_var, epsilon_greedy_weights and mixture_log_prob are checked here on bandit_1d's copies; tests/test_drift.py keeps
# every other script's copy (mazegrid.py's, the main scripts') identical to them.


def test_reward_optima_and_values():
    a = torch.linspace(-1, 1, 400001, dtype=torch.float64)
    r = bandit_1d.reward(a)
    assert r.max().item() == pytest.approx(1.1, abs=1e-9)  # global optimum R(-0.6) = 1.1
    assert a[r.argmax()].item() == pytest.approx(-0.6, abs=1e-5)
    right = a > -0.2
    assert r[right].max().item() == pytest.approx(0.5, abs=1e-4)  # local optimum: R -> 0.5 as a -> 0.875 from below
    assert a[right][r[right].argmax()].item() == pytest.approx(0.875, abs=1e-4)
    hand = {
        -0.6: 1.1,
        -0.55: 1.1 - 18 * 0.1**2,
        0.0: 0.5 - 0.125 * 1.75**2,
        0.5: 0.5 - 0.125 * 0.75**2,
        -0.3: 0.0,
        0.875: 0.0,
        0.95: 0.0,
    }  # between the peaks, at and past the cliff: nothing
    for action, value in hand.items():
        assert bandit_1d.reward(torch.tensor(action, dtype=torch.float64)).item() == pytest.approx(value, abs=1e-12)
    # the narrow peak is zero outside |a + 0.6| < sqrt(1.1 / 18) / 2
    half_width = math.sqrt(1.1 / 18) / 2
    assert bandit_1d.reward(torch.tensor([-0.6 - half_width - 1e-3, -0.6 + half_width + 1e-3])).tolist() == [0.0, 0.0]


def test_d_var_matches_hand_computation():
    means = torch.tensor([[0.0, 0.0], [1.0, 1.0], [3.0, 0.0]]).view(3, 1, 2)  # (N, B, A)
    sq = {(0, 1): 2.0, (0, 2): 9.0, (1, 2): 5.0}
    d = lambda i, j: sq[(min(i, j), max(i, j))]  # noqa: E731
    expected = [-math.log(sum(math.exp(-d(i, j)) for j in range(3) if j != i)) for i in range(3)]
    assert bandit_1d.d_var(means).view(3).tolist() == pytest.approx(expected, rel=1e-6)
    assert bandit_1d.d_var(means[:1]).abs().sum().item() == 0.0  # N = 1: the term vanishes (Gamid is TD3)


@pytest.mark.parametrize("i", [0, 1, 2])
def test_d_var_gradient_pushes_only_gaussian_i_away_from_its_neighbour(i):
    positions = [0.0, 0.5, 2.0]
    means = torch.tensor(positions).view(3, 1, 1).requires_grad_()
    bandit_1d.d_var(means)[i].sum().backward()
    grad = means.grad.view(3)
    others = [j for j in range(3) if j != i]
    weights = torch.softmax(torch.tensor([-((positions[i] - positions[j]) ** 2) for j in others]), 0)
    hand = sum(2 * w.item() * (positions[i] - positions[j]) for w, j in zip(weights, others))
    assert grad[i].item() == pytest.approx(hand, rel=1e-5)
    nearest = min(others, key=lambda j: abs(positions[i] - positions[j]))
    assert math.copysign(1, grad[i].item()) == math.copysign(1, positions[i] - positions[nearest])  # ascent moves away
    assert grad[others].abs().sum().item() == 0.0  # the other Gaussians are constants for Gaussian i


def squashed_mixture(mean, log_std, log_weights):
    """torch.distributions' tanh-squashed Gaussian mixture for one state: mean, log_std (K, act), log_weights (K,)."""
    components = torch.distributions.Independent(Normal(mean, log_std.exp()), 1)
    return TransformedDistribution(MixtureSameFamily(Categorical(logits=log_weights), components), [TanhTransform()])


def test_mixture_log_prob_matches_torch_and_integrates_to_one():
    torch.manual_seed(0)
    mean = torch.tensor([[[-0.8]], [[0.1]], [[0.9]]], dtype=torch.float64).expand(3, 2, 1)  # (K, B, act), B = 2 states
    log_std = torch.tensor([[[-0.7]], [[-1.2]], [[-0.4]]], dtype=torch.float64).expand(3, 2, 1)
    log_w = torch.log(torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]], dtype=torch.float64)).T  # (K, B)
    u = torch.randn(50, 2, 1, dtype=torch.float64) * 1.5
    ours = bandit_1d.mixture_log_prob(u, mean, log_std, log_w)  # (50, B)
    for b in range(2):
        reference = squashed_mixture(mean[:, b], log_std[:, b], log_w[:, b]).log_prob(torch.tanh(u[:, b]))
        assert torch.allclose(ours[:, b], reference, atol=1e-9)
    # the density of a = tanh(u) integrates to 1 on (-1, 1)
    a = torch.linspace(-1 + 1e-9, 1 - 1e-9, 400001, dtype=torch.float64)
    density = bandit_1d.mixture_log_prob(torch.atanh(a).view(-1, 1, 1), mean[:, :1], log_std[:, :1], log_w[:, :1]).exp()
    assert torch.trapezoid(density.squeeze(1), a).item() == pytest.approx(1.0, abs=1e-4)


def test_epsilon_greedy_weights():
    q = torch.tensor([[1.0, 5.0], [3.0, 0.0], [2.0, 1.0], [0.0, 2.0]])  # (N = 4, B = 2)
    w = bandit_1d.epsilon_greedy_weights(q, 0.2)  # (B, N)
    assert w.tolist()[0] == pytest.approx([0.05, 0.85, 0.05, 0.05])  # 1 - eps + eps/N for the argmax
    assert w.tolist()[1] == pytest.approx([0.85, 0.05, 0.05, 0.05])


@pytest.mark.parametrize("name", ["SAC", "SACM"])
def test_component_densities_integrate_to_one(name):
    args = bandit_1d.Args(num_seeds=2, n_components=3, init_spread=0.5)
    learner = bandit_1d.SoftMixture(args, name, 1 if name == "SAC" else 3)
    x = torch.linspace(-0.9999, 0.9999, 20001)
    with torch.no_grad():
        total = learner.component_densities(x, 0).sum(1)  # (seeds, len(x))
    assert torch.trapezoid(total, x).tolist() == pytest.approx([1.0, 1.0], abs=2e-3)


def test_soft_learner_loss_gradient_matches_torch_distributions():
    # The score-function reward term with a batch-mean baseline, plus the reparameterised entropy term, built per
    # seed from torch.distributions on the same draws: grad of sum_k w_k mean_b[alpha log pi(a) - (r - b) log pi(a)].
    args = bandit_1d.Args(num_seeds=2, n_components=3, batch_size=64, init_spread=0.5, init_log_std=-0.5)
    learner = bandit_1d.SoftMixture(args, "SACM", 3)
    states = [stream.get_state() for stream in learner.streams]
    step = 100
    learner.loss(step).backward()

    alpha = args.alpha * args.alpha_decay**step
    mean = learner.mean.detach().clone().requires_grad_()  # (K, seeds, 1)
    log_std = learner.log_std.detach().clone().requires_grad_()
    total = 0.0
    for s, (stream, state) in enumerate(zip(learner.streams, states)):
        stream.set_state(state)
        xi = torch.randn((64, 3, 1), generator=stream)  # the seed's own draws, in the learner's order
        policy = squashed_mixture(mean[:, s], log_std[:, s], torch.full((3,), -math.log(3)))
        actions = torch.tanh(mean[:, s] + log_std[:, s].exp() * xi)  # (64, K, 1): a batch from each component
        r = 0.1 * bandit_1d.reward(actions).squeeze(-1)
        advantage = (r - r.mean()).detach()  # a weight on the score, not differentiated
        log_prob = policy.log_prob(actions.unsqueeze(-2)).squeeze(-1)  # (64, K), reparameterised
        log_prob_fixed = policy.log_prob(actions.detach().unsqueeze(-2)).squeeze(-1)
        total = total + (alpha * log_prob - advantage * log_prob_fixed).mean(0).mean()  # uniform w_k = 1/3
    total.backward()
    assert torch.allclose(learner.mean.grad, mean.grad, rtol=1e-4, atol=1e-7)
    assert torch.allclose(learner.log_std.grad, log_std.grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("estimator", ["score", "pathwise"])
def test_only_the_score_function_gradient_sees_the_cliff(estimator):
    # A tanh-Gaussian straddling the drop at a = 0.875 (alpha = 0: the reward term alone). Moving the mean right
    # pushes mass over the cliff, so d E[R] / d mean < 0. The score function estimates it without bias; the
    # path-wise gradient only sees the slope left of the cliff, positive.
    args = bandit_1d.Args(num_seeds=1, batch_size=200_000, alpha=0.0, sac_estimator=estimator)
    learner = bandit_1d.SoftMixture(args, "SAC", 1)
    with torch.no_grad():
        learner.mean.fill_(math.atanh(0.85))
        learner.log_std.fill_(math.log(0.1))
    learner.loss(0).backward()
    estimate = -learner.mean.grad.item()  # loss = -scale E[R]
    with torch.no_grad():  # the true gradient of scale E[R], by central differences of the quadrature
        h = 1e-3
        learner.mean += h
        up = bandit_1d.expected_reward(learner, 0).item()
        learner.mean -= 2 * h
        down = bandit_1d.expected_reward(learner, 0).item()
    truth = args.reward_scale * (up - down) / (2 * h)
    assert truth < -0.01
    if estimator == "score":
        assert estimate == pytest.approx(truth, rel=0.15)
    else:
        assert estimate > 0


def test_greedy_action_is_the_mean_with_the_highest_reward():
    # as Gamid evaluates (argmax_i Q(mu_i), here Q = R), for the deterministic means and for the mixtures' components
    args = bandit_1d.Args(num_seeds=2, n_actors=3, n_components=3)
    means = torch.tensor([[0.5, -0.55, 0.8], [0.7, 0.2, -0.9]])  # (seeds, 3): best are -0.55 and 0.7
    gamid = bandit_1d.DeterministicMixture(args, "Gamid", 3)
    sacm = bandit_1d.SoftMixture(args, "SACM", 3)
    with torch.no_grad():
        gamid.theta.copy_(torch.atanh(means))
        sacm.mean.copy_(torch.atanh(means).T.unsqueeze(-1))  # (K, seeds, 1)
    for learner in (gamid, sacm):
        assert learner.greedy().tolist() == pytest.approx([-0.55, 0.7])


def final_greedy_actions(args, names):
    learners = bandit_1d.make_learners(args)
    out = {}
    for name in names:
        learner = next(learner for learner in learners.values() if learner.name == name)
        bandit_1d.train_learner(learner, args)
        out[name] = learner.greedy().detach()
    return out


def test_learners_and_seeds_draw_from_their_own_streams():
    short = dict(total_steps=30, batch_size=16)
    names = ("TD3", "SAC", "SACM", "Gamid")
    base = final_greedy_actions(bandit_1d.Args(num_seeds=3, **short), names)
    other_sac = final_greedy_actions(bandit_1d.Args(num_seeds=3, sac_estimator="pathwise", **short), names)
    other_gamid = final_greedy_actions(bandit_1d.Args(num_seeds=3, n_actors=3, **short), names)
    other_sacm = final_greedy_actions(bandit_1d.Args(num_seeds=3, n_components=3, **short), names)
    more_seeds = final_greedy_actions(bandit_1d.Args(num_seeds=5, **short), names)
    for name in names:
        assert torch.equal(more_seeds[name][:3], base[name])  # seed k's run does not depend on how many run
        assert torch.equal(other_sac[name], base[name]) == (name in ("TD3", "Gamid"))
        assert torch.equal(other_gamid[name], base[name]) == (name != "Gamid")
        assert torch.equal(other_sacm[name], base[name]) == (name != "SACM")


def test_where_each_learner_ends():
    # The default settings on 4 seeds: Gamid at the global optimum; TD3's path-wise gradient slides just past the
    # cliff (a >= 0.875, R = 0; 20 seeds: 0.891 to 0.902); SAC and SACM, with the score function, stay on the local
    # mode, left of the cliff.
    args = bandit_1d.Args(num_seeds=4, seed=7)
    ends = final_greedy_actions(args, ("TD3", "SAC", "SACM", "Gamid"))
    assert ((ends["Gamid"] - bandit_1d.GLOBAL_OPTIMUM).abs() <= 0.1).all()
    assert ((ends["TD3"] >= bandit_1d.CLIFF) & (ends["TD3"] <= 0.95)).all()
    for name in ("SAC", "SACM"):
        on_local_mode = (ends[name] > 0) & (ends[name] < bandit_1d.CLIFF)
        assert on_local_mode.sum() >= 3, (name, ends[name])


def test_main_prints_the_table_and_writes_figure_events_and_hyperparameters(tmp_path, capsys):
    # main trains what train_learner trains (seeded per learner and seed: the same greedy actions) and reports it
    args = bandit_1d.Args(num_seeds=3, total_steps=60, log_every=20, runs_dir=str(tmp_path))
    results = bandit_1d.main(args)
    assert torch.equal(results["Gamid (N=5)"]["greedy"], final_greedy_actions(args, ["Gamid"])["Gamid"])
    out = capsys.readouterr().out
    assert "at -0.6" in out and "a>=0.875" in out and "Gamid (N=5)" in out
    (run_dir,) = tmp_path.iterdir()
    assert (run_dir / "bandit_1d.png").exists() and list(run_dir.glob("events.out.tfevents.*"))
    assert json.loads((run_dir / "hyperparameters.json").read_text())["total_steps"] == 60


@pytest.mark.parametrize(
    "field, value, sentence",
    [
        ("num_seeds", 0, "--num-seeds must be at least 1."),
        ("n_actors", 0, "--n-actors must be at least 1."),
        ("epsilon_initial", 1.5, "Epsilons must lie in [0, 1]."),
        ("temperature_initial", -1.0, "Temperatures must not be negative."),
        ("noise_std", 0.0, "--noise-std must be positive."),
    ],
)
def test_bad_input_is_rejected_before_training(field, value, sentence, tmp_path):
    args = bandit_1d.Args(runs_dir=str(tmp_path), **{field: value})
    with pytest.raises(SystemExit) as excinfo:
        bandit_1d.main(args)
    assert excinfo.value.code == sentence
    assert not any(tmp_path.iterdir())  # nothing written


def test_cli_rejects_bad_input_with_one_sentence(tmp_path):
    result = run_script("bandit_1d.py", "--num-seeds", "0", "--runs-dir", tmp_path, timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == "--num-seeds must be at least 1."
