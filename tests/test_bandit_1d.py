"""Tests for bandit_1d.py (SPEC §9.1) and the D_var / mixture pieces shared in spirit with mazegrid.py."""

import math
import pathlib
import subprocess
import sys

import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, Normal

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bandit_1d  # noqa: E402
import mazegrid  # noqa: E402

# bandit_1d.py and mazegrid.py each hold their own copy of these pieces (SPEC §2): check both.
PIECES = pytest.mark.parametrize("module", [bandit_1d, mazegrid], ids=["bandit_1d", "mazegrid"])


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead on a shared machine
    yield
    torch.set_num_threads(threads)


def test_reward_optima_and_values():
    a = torch.linspace(-1, 1, 400001, dtype=torch.float64)
    r = bandit_1d.reward(a)
    assert r.max().item() == pytest.approx(1.1, abs=1e-9)  # global optimum R(-0.6) = 1.1
    assert a[r.argmax()].item() == pytest.approx(-0.6, abs=1e-5)
    right = a > -0.2
    assert r[right].max().item() == pytest.approx(0.5, abs=1e-4)  # local optimum: R -> 0.5 as a -> 0.875 from below
    assert a[right][r[right].argmax()].item() == pytest.approx(0.875, abs=1e-4)
    hand = {-0.6: 1.1, -0.55: 1.1 - 18 * 0.1**2, 0.0: 0.5 - 0.125 * 1.75**2, 0.5: 0.5 - 0.125 * 0.75**2,
            -0.3: 0.0, 0.875: 0.0, 0.95: 0.0}  # between the peaks, at and past the cliff: nothing
    for action, value in hand.items():
        assert bandit_1d.reward(torch.tensor(action, dtype=torch.float64)).item() == pytest.approx(value, abs=1e-12)
    # the narrow peak is zero outside |a + 0.6| < sqrt(1.1 / 18) / 2
    half_width = math.sqrt(1.1 / 18) / 2
    assert bandit_1d.reward(torch.tensor([-0.6 - half_width - 1e-3, -0.6 + half_width + 1e-3])).tolist() == [0.0, 0.0]


@PIECES
def test_d_var_matches_hand_computation(module):
    means = torch.tensor([[0.0, 0.0], [1.0, 1.0], [3.0, 0.0]]).view(3, 1, 2)  # (N, B, A)
    sq = {(0, 1): 2.0, (0, 2): 9.0, (1, 2): 5.0}
    d = lambda i, j: sq[(min(i, j), max(i, j))]  # noqa: E731
    expected = [-math.log(sum(math.exp(-d(i, j)) for j in range(3) if j != i)) for i in range(3)]
    assert module.d_var(means).view(3).tolist() == pytest.approx(expected, rel=1e-6)
    assert module.d_var(means[:1]).abs().sum().item() == 0.0  # N = 1: the term vanishes (Gamid is TD3)


@PIECES
@pytest.mark.parametrize("i", [0, 1, 2])
def test_d_var_gradient_pushes_only_gaussian_i_away_from_its_neighbour(module, i):
    positions = [0.0, 0.5, 2.0]
    means = torch.tensor(positions).view(3, 1, 1).requires_grad_()
    module.d_var(means)[i].sum().backward()
    grad = means.grad.view(3)
    others = [j for j in range(3) if j != i]
    weights = torch.softmax(torch.tensor([-(positions[i] - positions[j]) ** 2 for j in others]), 0)
    hand = sum(2 * w.item() * (positions[i] - positions[j]) for w, j in zip(weights, others))
    assert grad[i].item() == pytest.approx(hand, rel=1e-5)
    nearest = min(others, key=lambda j: abs(positions[i] - positions[j]))
    assert math.copysign(1, grad[i].item()) == math.copysign(1, positions[i] - positions[nearest])  # ascent moves away
    assert grad[others].abs().sum().item() == 0.0  # the other Gaussians are constants for Gaussian i


@PIECES
def test_mixture_log_density_integrates_to_one_and_matches_torch(module):
    torch.manual_seed(0)
    mean = torch.tensor([[-0.8], [0.1], [0.9]], dtype=torch.float64)
    log_std = torch.tensor([[-0.7], [-1.2], [-0.4]], dtype=torch.float64)
    log_w = torch.log(torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64))
    u = torch.linspace(-12, 12, 200001, dtype=torch.float64)
    ours = module.mixture_log_prob(u.unsqueeze(-1), mean, log_std, log_w)
    reference = MixtureSameFamily(Categorical(logits=log_w), Normal(mean.squeeze(-1), log_std.exp().squeeze(-1)))
    assert torch.allclose(ours, reference.log_prob(u), atol=1e-10)
    assert torch.trapezoid(ours.exp(), u).item() == pytest.approx(1.0, abs=1e-6)
    # after squashing a = tanh(u): subtract log|da/du|; the density of a integrates to 1 on (-1, 1)
    a = torch.linspace(-1 + 1e-9, 1 - 1e-9, 400001, dtype=torch.float64)
    u_of_a = torch.atanh(a).unsqueeze(-1)
    squashed = module.mixture_log_prob(u_of_a, mean, log_std, log_w) - module.tanh_log_det(u_of_a)
    assert torch.trapezoid(squashed.exp(), a).item() == pytest.approx(1.0, abs=1e-4)
    jacobian = module.tanh_log_det(u_of_a[::1000]).exp().squeeze()
    assert jacobian.tolist() == pytest.approx((1 - a[::1000] ** 2).tolist(), rel=1e-6, abs=1e-12)


@PIECES
def test_epsilon_greedy_weights(module):
    w = module.epsilon_greedy_weights(torch.tensor([[1.0, 3.0, 2.0, 0.0]]), 0.2)
    assert w.view(-1).tolist() == pytest.approx([0.05, 0.85, 0.05, 0.05])  # 1 - eps + eps/N for the argmax


def expected_reward(learner, step):
    """E_pi[R] by quadrature on a fine grid: noise-free, unlike a sampled mean."""
    x = torch.linspace(-0.999, 0.999, 4001)
    density = learner.component_densities(x, step).sum(1)
    return ((density * bandit_1d.reward(x)).sum(-1) * (x[1] - x[0])).mean().item()


def test_each_learner_improves_its_mean_reward_on_a_short_run():
    args = bandit_1d.Args(num_seeds=4, total_steps=400)
    torch.manual_seed(0)
    for name, learner in bandit_1d.make_learners(args).items():
        optimizer = torch.optim.Adam(learner.parameters(), lr=args.learning_rate)
        with torch.no_grad():
            before = expected_reward(learner, 0)
        for step in range(args.total_steps):
            loss = learner.loss(step)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            after = expected_reward(learner, args.total_steps)
        assert after > before + 0.01, f"{name}: {before:.3f} -> {after:.3f}"


def test_gamid_reaches_the_global_optimum_where_td3_does_not():
    # a reduced G1 run: a few seeds and a shorter schedule, the documented defaults otherwise
    args = bandit_1d.Args(num_seeds=4, seed=7, total_steps=2000)
    torch.manual_seed(args.seed)
    learners = bandit_1d.make_learners(args)
    for name in ("TD3", f"Gamid (N={args.n_actors})"):
        learner = learners[name]
        optimizer = torch.optim.Adam(learner.parameters(), lr=args.learning_rate)
        for step in range(args.total_steps):
            loss = learner.loss(step)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        hits = ((learner.greedy() - bandit_1d.GLOBAL_OPTIMUM).abs() <= 0.1).float().mean().item()
        assert hits == (1.0 if name.startswith("Gamid") else 0.0), name


def test_main_writes_figure_events_and_repeats_with_the_same_seed(tmp_path, capsys):
    args = bandit_1d.Args(num_seeds=3, total_steps=60, log_every=20, runs_dir=str(tmp_path))
    first = bandit_1d.main(args)
    second = bandit_1d.main(args)
    for name in first:
        assert torch.equal(first[name]["greedy"], second[name]["greedy"])
    out = capsys.readouterr().out
    assert "greedy within 0.1 of -0.6" in out and "Gamid (N=5)" in out
    assert list(tmp_path.glob("*/bandit_1d.png")) and list(tmp_path.glob("*/events.out.tfevents.*"))


@pytest.mark.parametrize(
    "field, value", [("num_seeds", 0), ("n_actors", 0), ("epsilon_initial", 1.5), ("temperature_initial", -1.0)]
)
def test_bad_input_is_rejected_before_training(field, value, tmp_path):
    args = bandit_1d.Args(runs_dir=str(tmp_path), **{field: value})
    with pytest.raises(SystemExit) as excinfo:
        bandit_1d.main(args)
    assert isinstance(excinfo.value.code, str) and excinfo.value.code.endswith(".")
    assert not any(tmp_path.iterdir())  # nothing written


def test_cli_rejects_bad_input_with_one_sentence(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "bandit_1d.py"), "--num-seeds", "0", "--runs-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == "--num-seeds must be at least 1."
