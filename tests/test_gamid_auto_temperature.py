"""--temperature auto, --epsilon auto and --record-means of gamid_continuous_action.py (their checkpoint and resume:
test_gamid_td3_run_control.py)."""

import glob
import math
import os

import numpy as np
import pytest
import torch
from conftest import scalars
from test_gamid_td3_scripts import TINY

import gamid_continuous_action as gamid


def hand_d_var(means: torch.Tensor) -> torch.Tensor:
    """Eq. 4 with Sigma = I, one Gaussian and one state at a time: -log sum_{j != i} exp(-||mu_i - mu_j||^2)."""
    n, batch = means.shape[:2]
    out = torch.zeros(n, batch, dtype=means.dtype)
    for i in range(n):
        for b in range(batch):
            total = sum(math.exp(-float((means[i, b] - means[j, b]).pow(2).sum())) for j in range(n) if j != i)
            out[i, b] = -math.log(total)
    return out


def one_dual_step(means: torch.Tensor, target: float, temperature: float = 0.1, lr: float = 0.01):
    """One Adam step of the temperature's dual loss on the mean D_var of `means`: (gradient, new temperature)."""
    log_temperature = torch.tensor(math.log(temperature), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([log_temperature], lr=lr)
    gamid.temperature_loss(log_temperature, gamid.d_var(means).mean(), target).backward()
    gradient = log_temperature.grad.item()
    optimizer.step()
    return gradient, log_temperature.exp().item()


# Three Gaussians, two states, 2-D actions; by hand the mean D_var is about 0.47.
MEANS = torch.tensor(
    [[[0.0, 0.0], [0.5, -0.5]], [[0.6, 0.0], [0.5, 0.5]], [[0.0, 0.8], [-0.5, 0.0]]], dtype=torch.float64
)


def test_dual_gradient_is_mean_d_var_minus_the_target():
    mean_d_var = hand_d_var(MEANS).mean().item()
    for target in (-1.0, 0.0, 2.5):
        gradient, _ = one_dual_step(MEANS, target)
        assert gradient == pytest.approx(mean_d_var - target, abs=1e-12)


def test_temperature_rises_when_the_gaussians_are_closer_than_the_target_and_falls_when_farther():
    mean_d_var = hand_d_var(MEANS).mean().item()
    _, raised = one_dual_step(MEANS, target=mean_d_var + 1.0)
    _, lowered = one_dual_step(MEANS, target=mean_d_var - 1.0)
    # Adam's first step moves log(temperature) by lr against the gradient's sign.
    assert raised == pytest.approx(0.1 * math.exp(0.01), rel=1e-6)
    assert lowered == pytest.approx(0.1 * math.exp(-0.01), rel=1e-6)


def test_the_temperature_stays_positive_however_far_it_is_pushed_down():
    log_temperature = torch.tensor(math.log(0.1), requires_grad=True)
    optimizer = torch.optim.Adam([log_temperature], lr=1.0)
    far = torch.full((3, 4, 2), 0.9) * torch.tensor([1.0, -1.0, 0.0]).view(3, 1, 1)  # means far apart
    for _ in range(200):
        optimizer.zero_grad()
        gamid.temperature_loss(log_temperature, gamid.d_var(far).mean(), target=-5.0).backward()
        optimizer.step()
    assert log_temperature.item() < -100  # pushed down all the way, and yet:
    assert log_temperature.exp().item() >= 0.0 and torch.isfinite(log_temperature)


@pytest.mark.parametrize("n_actors,act_dim", [(2, 3), (3, 6), (5, 6), (4, 17)])
def test_default_target_is_the_d_var_of_means_pairwise_delta_apart(n_actors, act_dim):
    """N points pairwise delta apart: the vertices of a regular simplex, scaled; Eq. 4 computed by hand."""
    delta = gamid.TARGET_SPACING * math.sqrt(act_dim)
    vertices = torch.eye(n_actors, dtype=torch.float64) * delta / math.sqrt(2)  # pairwise distance delta
    means = torch.zeros(n_actors, 1, max(act_dim, n_actors), dtype=torch.float64)
    means[:, 0, :n_actors] = vertices
    assert hand_d_var(means)[:, 0].tolist() == pytest.approx([gamid.target_d_var(n_actors, act_dim)] * n_actors)


def short_run(tmp_path, name, **overrides):
    fast = dict(total_timesteps=700, eval_freq=700, eval_episodes=1, log_freq=50, net_arch=(16, 16), save_model=False)
    args = gamid.Args(runs_dir=str(tmp_path / name), **{**TINY, **fast, **overrides})
    return gamid.main(args)


def test_the_learned_temperature_follows_the_target_in_a_real_run(tmp_path):
    """The loop applies the dual step with the right sign: a target above reach raises the temperature every
    logged step, one below reach lowers it; the run logs its target and mean D_var."""
    auto = dict(n_actors=3, temperature="auto", temperature_lr=0.01)  # Adam: each dual step moves log(temperature) ~lr
    up = scalars(short_run(tmp_path, "up", **auto, temperature_target=50.0))
    down = scalars(short_run(tmp_path, "down", **auto, temperature_target=-50.0))
    rising = [value for _, value in up["charts/temperature"] if value != up["charts/temperature"][0][1]]
    falling = [value for _, value in down["charts/temperature"] if value != down["charts/temperature"][0][1]]
    assert rising and rising == sorted(rising) and rising[-1] > 0.1 * math.exp(0.01 * 10)
    assert falling and falling == sorted(falling, reverse=True) and falling[-1] < 0.1 * math.exp(-0.01 * 10)
    assert {value for _, value in up["charts/temperature_target"]} == {50.0}
    mean_d_var = dict(up["charts/mean_d_var"])
    for step, total in up["charts/sum_d_var"]:
        assert mean_d_var[step] == pytest.approx(total / 3, rel=1e-6)


BAD = [
    (dict(temperature_target=1.0), "--temperature-target is the target of --temperature auto; give both or neither."),
    (dict(temperature="auto", temperature_final=0.01), "--temperature auto learns the temperature; drop"),
    (dict(temperature="auto", temperature_initial=0.0), "--temperature-initial must be positive."),
    (dict(epsilon="auto", epsilon_initial=0.3), "--epsilon auto sets epsilon to 1/(10N); drop the --epsilon-*"),
    (dict(record_means=True, probe_states=800), "--probe-states must be at least 1 and at most --eval-freq and"),
]


@pytest.mark.parametrize("override,sentence", BAD, ids=[sentence for _, sentence in BAD])
def test_contradictory_flags_are_refused_with_one_sentence(override, sentence, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        gamid.main(gamid.Args(runs_dir=str(tmp_path), **{**TINY, **override}))
    message = str(exit_info.value.code)
    assert sentence in message and message.count(". ") == 0 and "\n" not in message
    assert not os.listdir(tmp_path)


def test_record_means_keeps_the_first_probe_states_and_replaces_records_from_a_step_on(tmp_path):
    torch.manual_seed(0)
    actor = gamid.GaussianMeans(n_actors=3, obs_dim=4, act_dim=2, hidden=(8,))
    path = str(tmp_path / "means.npz")
    first, other = torch.randn(5, 4), torch.randn(5, 4)
    gamid.record_means(path, 100, actor, first)
    gamid.record_means(path, 200, actor, other)  # the probe states stay the first ones
    with torch.no_grad():
        actor.net.biases[-1].add_(1.0)
    gamid.record_means(path, 300, actor, other)
    gamid.record_means(path, 200, actor, other)  # a resumed run re-records step 200: 200 and 300 are replaced
    saved = np.load(path)
    assert saved["steps"].tolist() == [100, 200]
    assert np.array_equal(saved["probe_obs"], first.numpy())
    assert saved["means"].shape == (2, 3, 5, 2)
    with torch.no_grad():
        assert np.allclose(saved["means"][1], actor(first).numpy())  # recorded after the change
        actor.net.biases[-1].sub_(1.0)
        assert np.allclose(saved["means"][0], actor(first).numpy())


def test_her_script_learns_the_temperature_the_same_way(tmp_path):
    """gamid_her_fetch.py: the same dual step (target above reach: the temperature rises), and N = 1 with auto
    trains exactly as N = 1 without it (TD3 + HER)."""
    from conftest import scalars as her_scalars
    from test_gamid_her_fetch import tiny_run

    import gamid_her_fetch as her

    fast = dict(total_timesteps=600, eval_freq=600, eval_episodes=1)
    up = her_scalars(tiny_run(tmp_path, "up", temperature="auto", temperature_target=50.0, **fast))
    values = [value for _, value in up["charts/temperature"]]
    assert values == sorted(values) and values[-1] > values[0]

    plain = tiny_run(tmp_path, "plain", n_actors=1, **fast)
    auto = tiny_run(tmp_path, "auto", n_actors=1, temperature="auto", epsilon="auto", **fast)
    plain_model = torch.load(glob.glob(os.path.join(plain, "*.model"))[0])
    auto_model = torch.load(glob.glob(os.path.join(auto, "*.model"))[0])
    for network in ("actor", "qf"):
        for name, tensor in plain_model[network].items():
            assert torch.equal(tensor, auto_model[network][name]), f"{network}.{name}"
    with pytest.raises(SystemExit, match=r"--epsilon auto sets epsilon to 1/\(10N\)"):
        her.main(her.Args(env_id="FetchReach-v4", epsilon="auto", epsilon_final=0.3, runs_dir=str(tmp_path / "bad")))
