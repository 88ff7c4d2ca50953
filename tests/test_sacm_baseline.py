"""sacm_baseline.py: the mixture density against torch.distributions, the SAC(M) losses, real MuJoCo runs, bad input."""

import glob
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributions as D
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import sacm_baseline as sacm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Hopper (random actions end episodes within ~50 steps) with small nets: seconds per run.
TINY = dict(env_id="Hopper-v4", total_timesteps=800, learning_starts=500, batch_size=32, net_arch=(32, 32),
            eval_freq=300, eval_episodes=2, log_freq=250, save_model=True)


@pytest.fixture(autouse=True)
def one_thread():
    """Small nets run fastest on one intra-op thread, which also keeps a shared, busy CPU from oversubscription."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def scalars(run_dir):
    acc = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def random_mixture(k, batch, act_dim, seed=0):
    """Mixture parameters in float64 with non-uniform, state-dependent weights."""
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(k, batch, act_dim, generator=g, dtype=torch.float64)
    log_std = torch.rand(k, batch, act_dim, generator=g, dtype=torch.float64) * 1.5 - 1.2
    log_weights = torch.randn(k, batch, generator=g, dtype=torch.float64).log_softmax(0)
    return mean, log_std, log_weights


def reference_mixture(mean, log_std, log_weights):
    """The same mixture of diagonal Gaussians, built by torch.distributions (batch axis first)."""
    components = D.Independent(D.Normal(mean.transpose(0, 1), log_std.exp().transpose(0, 1)), 1)
    return D.MixtureSameFamily(D.Categorical(logits=log_weights.T), components)


def test_mixture_log_density_matches_mixture_same_family_before_squashing():
    mean, log_std, log_weights = random_mixture(4, 16, 3)
    u = torch.randn(5, 16, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2  # leading sample axis
    ours = sacm.mixture_log_prob(u, mean, log_std, log_weights)
    tanh_log_det = -2 * torch.log(torch.cosh(u)).sum(-1)  # log(1 - tanh(u)^2) = log sech(u)^2
    expected = reference_mixture(mean, log_std, log_weights).log_prob(u) - tanh_log_det
    assert ours.shape == (5, 16)
    assert torch.allclose(ours, expected, rtol=0, atol=1e-10)
    # Far in the tails, where 1 - tanh(u)^2 underflows, the stable form stays finite.
    far = torch.full((1, 16, 3), 40.0, dtype=torch.float64) * torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    assert torch.isfinite(sacm.mixture_log_prob(far, mean, log_std, log_weights)).all()


def test_squashed_mixture_density_integrates_to_one_over_a_1d_action():
    mean, log_std, log_weights = random_mixture(3, 4, 1, seed=1)
    u = torch.linspace(-12, 12, 200_001, dtype=torch.float64)
    density = sacm.mixture_log_prob(u[:, None, None].expand(-1, 4, 1), mean, log_std, log_weights).exp()  # (grid, 4 states)
    integral = torch.trapezoid(density.T, torch.tanh(u))  # over a = tanh(u) in (-1, 1)
    assert torch.allclose(integral, torch.ones(4, dtype=torch.float64), rtol=0, atol=1e-6)


def test_one_component_is_sacs_tanh_gaussian():
    torch.manual_seed(0)
    actor = sacm.MixtureActor(1, 5, 3, (16, 16)).double()
    obs = torch.randn(32, 5, dtype=torch.float64)
    mean, log_std, log_weights = actor(obs)
    assert torch.equal(log_weights, torch.zeros(1, 32, dtype=torch.float64))
    u = mean[0] + log_std[0].exp() * torch.randn_like(mean[0])
    sac = D.TransformedDistribution(D.Independent(D.Normal(mean[0], log_std[0].exp()), 1), [D.TanhTransform()])
    assert torch.allclose(sacm.mixture_log_prob(u, mean, log_std, log_weights), sac.log_prob(torch.tanh(u)), rtol=0, atol=1e-8)


@pytest.mark.parametrize("learn_weights", [False, True], ids=["uniform", "learned"])
def test_actor_loss_is_marginalized_reparameterization_and_reaches_every_component(learn_weights):
    torch.manual_seed(0)
    k, obs_dim, act_dim = 3, 4, 2
    actor = sacm.MixtureActor(k, obs_dim, act_dim, (16, 16), learn_weights).double()
    qf = sacm.TwinQ(obs_dim, act_dim, (16, 16)).double()
    obs = torch.randn(1, obs_dim, dtype=torch.float64)  # one state: a single mixture sample would reach one component
    alpha = torch.tensor(0.3, dtype=torch.float64)

    torch.manual_seed(1)
    loss, entropy, weights, stds = sacm.actor_loss(actor, qf, obs, alpha)
    # Independently: one reparameterized sample per component i, weighted by w_i, density by MixtureSameFamily.
    torch.manual_seed(1)
    mean, log_std, log_weights = actor(obs)
    u = mean + log_std.exp() * torch.randn_like(mean)
    log_prob = reference_mixture(mean, log_std, log_weights).log_prob(u) - torch.log1p(-torch.tanh(u).pow(2)).sum(-1)
    q = torch.minimum(*qf(obs, torch.tanh(u)))
    w = log_weights.exp()
    assert torch.allclose(loss, (w * (alpha * log_prob - q)).sum(0).mean(), rtol=0, atol=1e-10)
    assert torch.allclose(entropy, -(w * log_prob).sum(0).mean(), rtol=0, atol=1e-10)
    assert torch.allclose(weights, w) and torch.allclose(stds, log_std.exp())
    assert torch.allclose(w, torch.full_like(w, 1 / k)) != learn_weights  # learned logits start non-uniform

    # The same gradient as the reference; it reaches every component's mean, log-std (and logit) rows
    # of the head, and never the critics.
    names = [name for name, _ in actor.named_parameters()]
    grads = torch.autograd.grad(loss, list(actor.parameters()), retain_graph=True)
    expected = torch.autograd.grad((w * (alpha * log_prob - q)).sum(0).mean(), list(actor.parameters()))
    assert all(torch.allclose(g, e, rtol=0, atol=1e-10) for g, e in zip(grads, expected))
    head = grads[names.index("head.weight")]
    rows = head.view(k, -1, head.shape[1]).norm(dim=-1)  # (K, 2|A| [+1])
    assert (rows > 0).all(), rows
    loss.backward()
    assert all(p.grad is None for p in qf.parameters())
    assert all(p.requires_grad for p in qf.parameters())


def test_soft_target_bootstraps_from_a_mixture_sample_and_never_through_termination(monkeypatch):
    torch.manual_seed(0)
    obs_dim, act_dim, batch_size = 4, 2, 8
    actor = sacm.MixtureActor(1, obs_dim, act_dim, (16, 16)).double()
    qf_target = sacm.TwinQ(obs_dim, act_dim, (16, 16)).double()
    batch = sacm.Batch(torch.randn(batch_size, obs_dim, dtype=torch.float64), torch.zeros(batch_size, act_dim, dtype=torch.float64),
                       torch.randn(batch_size, dtype=torch.float64), torch.randn(batch_size, obs_dim, dtype=torch.float64),
                       torch.tensor([0, 1] * 4, dtype=torch.float64))
    alpha = torch.tensor(0.2, dtype=torch.float64)
    monkeypatch.setattr(torch, "randn_like", torch.zeros_like)  # eps = 0: the sample is the mean
    y = sacm.td_target(actor, qf_target, batch, alpha, 0.9)

    mean, log_std, _ = actor(batch.next_obs)
    sac = D.TransformedDistribution(D.Independent(D.Normal(mean[0], log_std[0].exp()), 1), [D.TanhTransform()])
    a = torch.tanh(mean[0])
    soft_v = torch.minimum(*qf_target(batch.next_obs, a)) - alpha * sac.log_prob(a)
    expected = batch.rewards + 0.9 * (1 - batch.terminated) * soft_v
    assert torch.allclose(y, expected, rtol=0, atol=1e-8)
    assert torch.equal(y[1::2], batch.rewards[1::2])  # terminated: no bootstrap


def test_time_limit_truncation_is_bootstrapped_not_stored_as_terminal(tmp_path, monkeypatch):
    stored = []
    real = sacm.ReplayBuffer.add
    monkeypatch.setattr(sacm.ReplayBuffer, "add", lambda self, *a: stored.append(bool(a[4])) or real(self, *a))
    run_dir = sacm.main(sacm.Args(runs_dir=str(tmp_path), env_id="Pendulum-v1", total_timesteps=450, learning_starts=400,
                                  batch_size=32, net_arch=(32, 32), eval_episodes=1, log_freq=250))
    assert [step for step, _ in scalars(run_dir)["charts/episodic_length"]] == [200, 400]  # Pendulum only truncates
    assert len(stored) == 450 and not any(stored)


def test_train_step_moves_alpha_toward_target_entropy_and_polyak_averages_the_critics():
    torch.manual_seed(0)
    obs_dim, act_dim = 4, 2
    args = sacm.Args(gamma=0.99, tau=0.05, learning_rate=1e-2)
    actor = sacm.MixtureActor(3, obs_dim, act_dim, (16, 16), learn_weights=True)
    qf, qf_target = sacm.TwinQ(obs_dim, act_dim, (16, 16)), sacm.TwinQ(obs_dim, act_dim, (16, 16))
    old_target = [p.detach().clone() for p in qf_target.parameters()]
    log_alpha = torch.zeros((), requires_grad=True)
    optimizers = [torch.optim.Adam(m.parameters(), lr=args.learning_rate, fused=True) for m in (actor, qf)]
    alpha_optimizer = torch.optim.Adam([log_alpha], lr=args.learning_rate, fused=True)
    batch = sacm.Batch(torch.randn(64, obs_dim), torch.rand(64, act_dim) * 2 - 1, torch.randn(64), torch.randn(64, obs_dim),
                       torch.zeros(64))
    stats = sacm.train_step(actor, qf, qf_target, log_alpha, *optimizers, alpha_optimizer, batch, args)

    # Adam's first step moves log alpha by lr against the sign of H - (-|A|): down while the policy is too random.
    assert stats["charts/entropy"] > -act_dim  # fresh actor: std about 1 per dimension
    assert torch.isclose(log_alpha.detach(), torch.tensor(-args.learning_rate), atol=1e-6)
    for p, old, new in zip(qf_target.parameters(), old_target, qf.parameters()):
        assert torch.allclose(p, (1 - args.tau) * old + args.tau * new.detach(), atol=1e-7)
    expected = {"losses/qf_loss", "losses/qf1_values", "losses/qf2_values", "losses/actor_loss", "losses/alpha",
                "losses/alpha_loss", "charts/entropy"} | {f"charts/component_{i}/{s}" for i in range(3) for s in ("weight", "std")}
    assert set(stats) == expected
    assert all(v.ndim == 0 and not v.requires_grad for v in stats.values())
    assert math.isclose(sum(stats[f"charts/component_{i}/weight"].item() for i in range(3)), 1, rel_tol=1e-5)


def test_greedy_action_is_the_mean_of_the_most_probable_component():
    mean = torch.tensor([[[0.1, 0.2], [0.3, 0.4]], [[-0.5, -0.6], [0.7, 0.8]]])  # (K=2, B=2, act=2)
    log_weights = torch.tensor([[0.3, 0.6], [0.7, 0.4]]).log()
    greedy = sacm.sample_mixture(mean, torch.zeros_like(mean), log_weights, greedy=True)
    assert torch.equal(greedy, torch.tensor([[-0.5, -0.6], [0.3, 0.4]]))
    # Sampling draws component i with probability w_i (here: means 0 and 1, negligible stds).
    torch.manual_seed(0)
    picks = sacm.sample_mixture(torch.tensor([0.0, 1.0]).view(2, 1, 1).expand(2, 4000, 1), torch.full((2, 4000, 1), -20.0),
                                log_weights[:, :1].expand(2, 4000))
    assert abs(picks.mean().item() - 0.7) < 0.03


def test_preset_follows_table_6_for_sac_and_table_7_for_sacm_and_flags_override(capsys):
    sac = sacm.resolve_args(sacm.Args(env_id="HalfCheetah-v3", n_components=1))
    assert "HalfCheetah-v3 needs mujoco-py" in capsys.readouterr().out
    assert sac.env_id == "HalfCheetah-v4"
    assert (sac.learning_rate, sac.batch_size, sac.gamma, sac.train_freq, sac.gradient_steps, sac.tau) == (3e-4, 256, 0.99, "step", 1, 0.05)
    mix = sacm.resolve_args(sacm.Args(env_id="HalfCheetah-v4"))
    assert "Table 7 (SACM)" in capsys.readouterr().out
    assert (mix.n_components, mix.learning_rate, mix.train_freq, mix.gradient_steps) == (3, 3e-4, "episode", -1)
    swimmer = sacm.resolve_args(sacm.Args(env_id="Swimmer-v3", batch_size=100))
    assert (swimmer.learning_rate, swimmer.gamma, swimmer.train_freq, swimmer.batch_size) == (6e-4, 0.9999, "step", 100)
    assert sacm.resolve_args(sacm.Args(env_id="Swimmer-v4", n_components=1)).learning_rate == 3e-4
    assert sacm.resolve_args(sacm.Args(env_id="Humanoid-v5", n_components=2)).total_timesteps == 2_000_000
    generic = sacm.resolve_args(sacm.Args(env_id="Pendulum-v1", learning_starts=100))
    assert (generic.total_timesteps, generic.learning_rate, generic.train_freq) == (1_000_000, 3e-4, "step")


@pytest.mark.parametrize("k", [1, 3], ids=["sac", "sacm"])
def test_short_mujoco_run_logs_evaluates_and_saves_a_model_that_loads_back(k, tmp_path):
    learn_weights = k > 1  # the learned-weights path end to end; uniform weights are the default
    run_dir = sacm.main(sacm.Args(runs_dir=str(tmp_path), n_components=k, learn_weights=learn_weights, **TINY))
    logged = scalars(run_dir)
    expected = {"charts/episodic_return", "charts/episodic_length", "charts/SPS", "eval/episodic_return", "losses/qf_loss",
                "losses/qf1_values", "losses/actor_loss", "losses/alpha", "losses/alpha_loss", "charts/entropy"}
    expected |= {f"charts/component_{i}/{s}" for i in range(k) for s in ("weight", "std")}
    assert expected <= set(logged)
    assert f"charts/component_{k}/weight" not in logged
    assert [step for step, _ in logged["eval/episodic_return"]] == [300, 600, 800]  # every eval_freq and at the end
    assert logged["losses/alpha"][-1][1] < 1  # auto-tuned down from 1 by the entropy target
    assert os.path.exists(os.path.join(run_dir, "hyperparameters.json"))

    checkpoint = torch.load(os.path.join(run_dir, "sacm_baseline.model"))
    saved = sacm.Args(**checkpoint["args"])
    assert (saved.n_components, saved.learn_weights, saved.gradient_steps) == (k, learn_weights, 1)
    env = sacm.make_env(saved.env_id, seed=0)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    actor = sacm.MixtureActor(saved.n_components, obs_dim, act_dim, saved.net_arch, saved.learn_weights)
    actor.load_state_dict(checkpoint["actor"])
    sacm.TwinQ(obs_dim, act_dim, saved.net_arch).load_state_dict(checkpoint["qf"])
    assert 0 < checkpoint["log_alpha"].exp().item() < logged["losses/alpha"][-1][1]  # still falling after the last log
    returns = sacm.evaluate(actor, env, 2, torch.device("cpu"), seed=saved.seed + 10_000)
    assert len(returns) == 2 and all(np.isfinite(returns))
    # Greedy and on the run's evaluation seeds, the loaded actor reproduces the run's last evaluation.
    assert np.mean(returns) == pytest.approx(logged["eval/episodic_return"][-1][1], rel=1e-5)


def test_same_seed_gives_identical_logged_numbers(tmp_path):
    config = {**TINY, "total_timesteps": 600, "log_freq": 50, "save_model": False}
    first = scalars(sacm.main(sacm.Args(runs_dir=str(tmp_path / "a"), **config)))
    second = scalars(sacm.main(sacm.Args(runs_dir=str(tmp_path / "b"), **config)))
    for tag in ("charts/episodic_return", "eval/episodic_return", "losses/qf_loss", "charts/entropy"):
        assert first[tag] == second[tag]


BAD = [
    (dict(n_components=0), "--n-components must be at least 1, got 0."),
    (dict(batch_size=2000, buffer_size=1000), "larger than --buffer-size"),
    (dict(total_timesteps=500, learning_starts=500), "must exceed --learning-starts"),
    (dict(gradient_steps=0), "--gradient-steps must be positive"),
    (dict(autotune=False, ent_coef=0.0), "--ent-coef must be positive"),
    (dict(env_id="NoSuchEnv-v0"), "Unknown env id 'NoSuchEnv-v0'; supported paper tasks are Swimmer"),
    (dict(env_id="CartPole-v1"), "CartPole-v1 has a Discrete action space"),
]


@pytest.mark.parametrize("override,sentence", BAD, ids=[s for _, s in BAD])
def test_bad_input_is_refused_before_training(override, sentence, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        sacm.main(sacm.Args(runs_dir=str(tmp_path), **{**TINY, **override}))
    message = str(exit_info.value.code)
    assert sentence in message and message.count(". ") == 0 and "\n" not in message
    assert not os.listdir(tmp_path)  # nothing was trained or logged


def test_bad_input_from_the_command_line_exits_nonzero_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "sacm_baseline.py"), "--n-components", "0", "--runs-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "--n-components must be at least 1, got 0."


def test_nan_loss_stops_the_run_naming_step_and_loss_after_saving_logs(tmp_path, monkeypatch):
    real = sacm.train_step

    def poisoned(*args):
        stats = real(*args)
        stats["losses/qf_loss"] = stats["losses/qf_loss"] * float("nan")
        return stats

    monkeypatch.setattr(sacm, "train_step", poisoned)
    with pytest.raises(SystemExit) as exit_info:
        sacm.main(sacm.Args(runs_dir=str(tmp_path), **{**TINY, "save_model": False}))
    assert str(exit_info.value.code).startswith("losses/qf_loss is nan at step 750")
    run_dir = glob.glob(str(tmp_path / "*"))[0]
    assert "charts/episodic_return" in scalars(run_dir)
