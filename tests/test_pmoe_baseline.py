"""pmoe_baseline.py: densities against torch.distributions, PMOE's gradients by hand, runs, run control, bad input."""

import math
import os
import random
import shutil
import signal
import sys
import types

import numpy as np
import pytest
import torch
import torch.distributions as D
import torch.nn as nn
import tyro
from conftest import logged_the_same, scalars

import pmoe_baseline as pmoe

# Hopper (random actions end episodes within ~50 steps) with small nets: seconds per run.
TINY = dict(
    env_id="Hopper-v4",
    n_experts=3,
    total_timesteps=600,
    learning_starts=200,
    batch_size=32,
    net_arch=(16, 16),
    eval_freq=300,
    eval_episodes=2,
    log_freq=100,
    checkpoint_freq=100,
    save_model=True,
    cuda=False,
)


def random_mixture(k, batch, act_dim, seed=0):
    """Mixture parameters in float64 with non-uniform, state-dependent weights."""
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(k, batch, act_dim, generator=g, dtype=torch.float64)
    log_std = torch.rand(k, batch, act_dim, generator=g, dtype=torch.float64) * 1.5 - 1.2
    log_weights = torch.randn(k, batch, generator=g, dtype=torch.float64).log_softmax(0)
    return mean, log_std, log_weights


def tanh_gaussian(mean, log_std):
    """SAC's squashed Gaussian, built by torch.distributions."""
    return D.TransformedDistribution(D.Independent(D.Normal(mean, log_std.exp()), 1), [D.TanhTransform()])


class GivenPolicy(nn.Module):
    """A stand-in actor whose means and log-stds are free parameters and whose routing function is linear."""

    def __init__(self, mean, log_std, router_weight, router_bias):
        super().__init__()
        self.k = mean.shape[0]
        self.mean, self.log_std = nn.Parameter(mean.clone()), nn.Parameter(log_std.clone())
        self.router = nn.Linear(router_weight.shape[1], self.k).double()
        with torch.no_grad():
            self.router.weight.copy_(router_weight)
            self.router.bias.copy_(router_bias)

    def forward(self, obs):
        return self.mean, self.log_std, self.router(obs).log_softmax(-1).T


def linear_twin_q(obs_dim, act_dim, weights, biases):
    """Q_k(s, a) = weights[k] . [s, a] + biases[k]: a TwinQ with no hidden layer is linear."""
    qf = pmoe.TwinQ(obs_dim, act_dim, ()).double()
    with torch.no_grad():
        qf.net.weights[0].copy_(weights[:, :, None])
        qf.net.biases[0].copy_(biases[:, None, None])
    return qf


# --- densities -------------------------------------------------------------------------------------------------


def test_mixture_density_matches_mixture_same_family_with_tanh():
    mean, log_std, log_weights = random_mixture(4, 16, 3)
    u = torch.randn(5, 16, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    components = D.Independent(D.Normal(mean.transpose(0, 1), log_std.exp().transpose(0, 1)), 1)
    mixture = D.MixtureSameFamily(D.Categorical(logits=log_weights.T), components)
    squashed = D.TransformedDistribution(mixture, [D.TanhTransform()])
    expected = squashed.log_prob(torch.tanh(u))
    ours = pmoe.mixture_log_prob(u, mean, log_std, log_weights)
    assert ours.shape == (5, 16)
    assert torch.allclose(ours, expected, rtol=0, atol=1e-8)


def test_squashed_mixture_density_integrates_to_one_over_a_1d_action():
    mean, log_std, log_weights = random_mixture(3, 4, 1, seed=1)
    u = torch.linspace(-12, 12, 200_001, dtype=torch.float64)
    density = pmoe.mixture_log_prob(u[:, None, None].expand(-1, 4, 1), mean, log_std, log_weights).exp()
    integral = torch.trapezoid(density.T, torch.tanh(u))  # over a = tanh(u) in (-1, 1), for each of 4 states
    assert torch.allclose(integral, torch.ones(4, dtype=torch.float64), rtol=0, atol=1e-6)


def test_each_expert_as_a_one_component_mixture_is_its_own_tanh_gaussian_and_stays_finite_in_the_tails():
    mean, log_std, _ = random_mixture(4, 16, 3, seed=2)
    u = mean + log_std.exp() * torch.randn_like(mean)
    expected = tanh_gaussian(mean, log_std).log_prob(torch.tanh(u))  # (K, B)
    alone = torch.zeros(4, 1, 16, dtype=torch.float64)  # as pmoe_actor_loss calls it
    assert torch.allclose(pmoe.mixture_log_prob(u, mean[:, None], log_std[:, None], alone), expected, rtol=0, atol=1e-8)
    far = torch.full_like(mean, 40.0)  # 1 - tanh(40)^2 underflows to 0 in float64
    assert torch.isfinite(pmoe.mixture_log_prob(far, mean[:, None], log_std[:, None], alone)).all()


# --- PMOE's gradients ------------------------------------------------------------------------------------------


def tiny_case(monkeypatch):
    """K = 3 experts, B = 2 states, |A| = 2, a linear twin critic, and fixed noise eps."""
    torch.manual_seed(0)
    k, batch, obs_dim, act_dim = 3, 2, 2, 2
    obs = torch.tensor([[0.5, -1.0], [1.5, 0.3]], dtype=torch.float64)
    mean = torch.tensor([[[0.2, -0.1], [0.9, 0.4]], [[-0.6, 0.3], [0.1, 0.1]], [[0.5, 0.8], [-0.4, -0.9]]])
    log_std = torch.tensor([[[-1.0, -0.5], [-0.2, -1.5]], [[-0.7, -0.9], [-1.1, -0.3]], [[-0.4, -1.2], [-0.8, -0.6]]])
    mean, log_std = mean.double(), log_std.double()
    actor = GivenPolicy(mean, log_std, torch.randn(k, obs_dim).double(), torch.randn(k).double())
    q_weights = torch.tensor([[0.3, -0.2, 1.0, 0.5], [0.1, 0.4, 0.7, 0.9]], dtype=torch.float64)
    qf = linear_twin_q(obs_dim, act_dim, q_weights, torch.tensor([0.2, -0.1], dtype=torch.float64))
    eps = torch.tensor([[[0.3, -1.2], [0.8, 0.1]], [[-0.5, 0.6], [1.1, -0.4]], [[0.0, 0.9], [-0.7, 0.2]]])
    monkeypatch.setattr(torch, "randn_like", lambda x: eps.to(x.dtype))
    return actor, qf, obs, q_weights, eps.double(), (k, batch)


def test_only_the_best_expert_is_trained_with_the_hand_computed_gradient(monkeypatch):
    actor, qf, obs, q_weights, eps, (k, batch) = tiny_case(monkeypatch)
    alpha = torch.tensor(0.3, dtype=torch.float64)
    loss, stats = pmoe.pmoe_actor_loss(actor, qf, obs, alpha)
    loss.backward()

    # By hand: u_i = mu_i + sigma_i eps_i, a_i = tanh(u_i), q_i = min_k Q_k(s, a_i), i* = argmax_i q_i.
    mean, std = actor.mean.detach(), actor.log_std.detach().exp()
    u = mean + std * eps
    a = torch.tanh(u)
    q_each = torch.stack(
        [(torch.cat([obs.expand(k, -1, -1), a], -1) * w).sum(-1) + b for w, b in zip(q_weights, [0.2, -0.1])]
    )
    q = q_each.min(0).values  # (K, B)
    best = q.argmax(0)
    assert best.tolist() == [2, 0]  # a different expert wins at each state
    # d/dmu of alpha log pi_i(a_i|s) - Q(s, a_i) with eps fixed: the Gaussian term does not move, the tanh
    # correction -sum log(1 - tanh(u)^2) gives 2 tanh(u); Q gives -dQ/da (1 - tanh(u)^2); averaged over B states.
    expected_mean = torch.zeros_like(mean)
    expected_log_std = torch.zeros_like(mean)
    for b in range(batch):
        i = best[b]
        critic = q_each[:, i, b].argmin()  # the critic that is the min at this action
        dq_da = q_weights[critic, obs.shape[1] :]
        d_du = alpha * 2 * a[i, b] - dq_da * (1 - a[i, b] ** 2)
        expected_mean[i, b] = d_du / batch
        # d/dlog sigma: u moves by sigma eps; the Gaussian term contributes -1 per dimension.
        expected_log_std[i, b] = (d_du * std[i, b] * eps[i, b] - alpha) / batch
    assert torch.allclose(actor.mean.grad, expected_mean, rtol=0, atol=1e-10)
    assert torch.allclose(actor.log_std.grad, expected_log_std, rtol=0, atol=1e-10)
    assert (actor.mean.grad[best, torch.arange(batch)] != 0).all()  # the best expert moves ...
    others = torch.ones(k, batch, dtype=torch.bool)
    others[best, torch.arange(batch)] = False
    assert (actor.mean.grad[others] == 0).all()  # ... and no other one does
    assert all(p.grad is None for p in qf.parameters())  # the critics are not trained by the actor loss


def test_routing_function_regresses_onto_the_best_expert_with_the_hand_computed_gradient(monkeypatch):
    actor, qf, obs, q_weights, eps, (k, batch) = tiny_case(monkeypatch)
    loss, stats = pmoe.pmoe_actor_loss(actor, qf, obs, torch.tensor(0.3, dtype=torch.float64))
    loss.backward()

    a = torch.tanh(actor.mean.detach() + actor.log_std.detach().exp() * eps)
    q = torch.minimum(*qf(obs, a)).detach()
    onehot = torch.zeros(k, batch, dtype=torch.float64)
    onehot[q.argmax(0), torch.arange(batch)] = 1
    psi = torch.softmax(obs @ actor.router.weight.detach().T + actor.router.bias.detach(), -1).T  # (K, B)
    # L = 1/(K B) sum_{i,b} (psi_ib - v_ib)^2;  dL/dz_jb = 2/(K B) sum_i (psi_ib - v_ib) psi_ib ([i = j] - psi_jb).
    d_logits = torch.zeros(k, batch, dtype=torch.float64)
    for j in range(k):
        for b in range(batch):
            for i in range(k):
                d_logits[j, b] += 2 / (k * batch) * (psi[i, b] - onehot[i, b]) * psi[i, b] * (float(i == j) - psi[j, b])
    assert torch.isclose(stats["losses/routing_loss"], ((psi - onehot) ** 2).mean(), rtol=0, atol=1e-12)
    assert torch.allclose(actor.router.weight.grad, d_logits @ obs, rtol=0, atol=1e-12)
    assert torch.allclose(actor.router.bias.grad, d_logits.sum(1), rtol=0, atol=1e-12)
    assert torch.allclose(stats["charts/expert_0/best_fraction"], onehot[0].mean())


def test_one_expert_is_sac():
    torch.manual_seed(0)
    actor = pmoe.MixtureOfExperts(1, 5, 3, (16, 16)).double()
    qf = pmoe.TwinQ(5, 3, (16, 16)).double()
    obs = torch.randn(32, 5, dtype=torch.float64)
    alpha = torch.tensor(0.2, dtype=torch.float64)
    torch.manual_seed(1)
    loss, stats = pmoe.pmoe_actor_loss(actor, qf, obs, alpha)
    torch.manual_seed(1)
    mean, log_std, log_weights = actor(obs)
    assert torch.equal(log_weights, torch.zeros(1, 32, dtype=torch.float64))
    u = mean[0] + log_std[0].exp() * torch.randn_like(mean[0])
    sac = alpha * tanh_gaussian(mean[0], log_std[0]).log_prob(torch.tanh(u)) - torch.minimum(*qf(obs, torch.tanh(u)))
    assert torch.allclose(loss, sac.mean(), rtol=0, atol=1e-10)
    assert stats["losses/routing_loss"] == 0
    assert torch.allclose(stats["charts/entropy"], stats["charts/expert_entropy"])  # one expert: one density


def test_soft_target_draws_the_expert_from_the_routing_function_and_never_bootstraps_through_termination(monkeypatch):
    torch.manual_seed(0)
    obs_dim, act_dim, batch_size = 3, 1, 4000
    mean = torch.tensor([-5.0, 5.0], dtype=torch.float64).view(2, 1, 1).expand(2, batch_size, 1)
    log_std = torch.full((2, batch_size, 1), -6.0, dtype=torch.float64)
    router_bias = torch.tensor([0.3, 0.7], dtype=torch.float64).log()  # psi = (0.3, 0.7) at every state
    actor = GivenPolicy(mean, log_std, torch.zeros(2, obs_dim, dtype=torch.float64), router_bias)
    q_weights = torch.tensor([[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 2.0]], dtype=torch.float64)
    qf_target = linear_twin_q(obs_dim, act_dim, q_weights, torch.zeros(2, dtype=torch.float64))
    terminated = torch.tensor([0.0, 1.0], dtype=torch.float64).repeat(batch_size // 2)
    batch = pmoe.Batch(
        obs=torch.zeros(batch_size, obs_dim, dtype=torch.float64),
        actions=torch.zeros(batch_size, act_dim, dtype=torch.float64),
        rewards=torch.randn(batch_size, dtype=torch.float64),
        next_obs=torch.randn(batch_size, obs_dim, dtype=torch.float64),
        terminated=terminated,
    )
    y = pmoe.pmoe_td_target(actor, qf_target, batch, torch.tensor(0.0, dtype=torch.float64), 0.9)
    assert torch.equal(y[1::2], batch.rewards[1::2])  # terminated: no bootstrap
    # alpha = 0: y = r + 0.9 min(a', 2a') with a' = tanh(-5) ~ -1 (expert 0) or tanh(5) ~ 1 (expert 1).
    chose_one = (y[::2] - batch.rewards[::2]) > 0
    assert abs(chose_one.double().mean().item() - 0.7) < 0.03

    # The entropy term uses the chosen expert's own density: route every state to expert 1, eps = 0.
    actor.router.bias.data = torch.tensor([-50.0, 50.0], dtype=torch.float64)
    monkeypatch.setattr(torch, "randn_like", torch.zeros_like)
    alpha = torch.tensor(0.2, dtype=torch.float64)
    y = pmoe.pmoe_td_target(actor, qf_target, batch, alpha, 0.9)
    a = torch.tanh(mean[1])
    soft_v = torch.minimum(*qf_target(batch.next_obs, a)) - alpha * tanh_gaussian(mean[1], log_std[1]).log_prob(a)
    assert torch.allclose(y, batch.rewards + 0.9 * (1 - terminated) * soft_v, rtol=1e-9, atol=0)


def test_train_step_moves_alpha_toward_target_entropy_and_polyak_averages_the_critics():
    torch.manual_seed(0)
    obs_dim, act_dim = 4, 2
    args = pmoe.Args(gamma=0.99, tau=0.05, learning_rate=1e-2)
    actor = pmoe.MixtureOfExperts(3, obs_dim, act_dim, (16, 16))
    qf, qf_target = pmoe.TwinQ(obs_dim, act_dim, (16, 16)), pmoe.TwinQ(obs_dim, act_dim, (16, 16))
    old_target = [p.detach().clone() for p in qf_target.parameters()]
    log_alpha = torch.zeros((), requires_grad=True)
    batch = pmoe.Batch(
        torch.randn(64, obs_dim),
        torch.rand(64, act_dim) * 2 - 1,
        torch.randn(64),
        torch.randn(64, obs_dim),
        torch.zeros(64),
    )
    stats = pmoe.train_step(
        actor=actor,
        qf=qf,
        qf_target=qf_target,
        log_alpha=log_alpha,
        actor_optimizer=torch.optim.Adam(actor.parameters(), lr=args.learning_rate),
        q_optimizer=torch.optim.Adam(qf.parameters(), lr=args.learning_rate),
        alpha_optimizer=torch.optim.Adam([log_alpha], lr=args.learning_rate),
        batch=batch,
        args=args,
    )
    # Adam's first step moves log alpha by lr against the sign of H - (-|A|): down while the experts are too random.
    assert stats["charts/expert_entropy"] > -act_dim
    assert torch.isclose(log_alpha.detach(), torch.tensor(-args.learning_rate), atol=1e-6)
    for p, old, new in zip(qf_target.parameters(), old_target, qf.parameters()):
        assert torch.allclose(p, (1 - args.tau) * old + args.tau * new.detach(), atol=1e-7)
    per_expert = {f"charts/expert_{i}/{s}" for i in range(3) for s in ("weight", "best_fraction", "std")}
    assert set(stats) == per_expert | {
        "losses/qf_loss",
        "losses/qf1_values",
        "losses/qf2_values",
        "losses/actor_loss",
        "losses/expert_loss",
        "losses/routing_loss",
        "losses/alpha",
        "losses/alpha_loss",
        "charts/entropy",
        "charts/expert_entropy",
    }
    assert all(v.ndim == 0 and not v.requires_grad for v in stats.values())
    assert math.isclose(sum(stats[f"charts/expert_{i}/best_fraction"].item() for i in range(3)), 1, rel_tol=1e-6)


def test_greedy_action_is_the_mean_of_the_expert_with_the_highest_q1():
    torch.manual_seed(0)
    actor = pmoe.MixtureOfExperts(3, 2, 1, (8,)).double()
    obs = torch.randn(5, 2, dtype=torch.float64)
    # Q1 = a (the action), Q2 = -a: the greedy rule must follow Q1 alone, to the largest tanh(mean).
    qf = linear_twin_q(2, 1, torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]], dtype=torch.float64), torch.zeros(2))
    expected = torch.tanh(actor(obs)[0]).max(0).values
    assert torch.equal(pmoe.greedy_expert_action(actor, qf, obs), expected)


def test_evaluation_draws_no_random_number():
    """Greedy evaluation (its own env, an argmax) leaves every random stream of training where it was."""
    torch.manual_seed(0)
    env = pmoe.make_env("Hopper-v4", 0)
    actor, qf = pmoe.MixtureOfExperts(3, 11, 3, (8,)), pmoe.TwinQ(11, 3, (8,))
    before = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    returns = pmoe.evaluate(actor, qf, env, 2, torch.device("cpu"), seed=5)
    assert len(returns) == 2 and returns == pmoe.evaluate(actor, qf, env, 2, torch.device("cpu"), seed=5)
    assert random.getstate() == before[0] and (np.random.get_state()[1] == before[1]).all()
    assert torch.equal(torch.get_rng_state(), before[2])


# --- whole runs ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run, the reference of every run and run-control test below."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run_dir = pmoe.main(pmoe.Args(runs_dir=str(tmp_path_factory.mktemp("reference")), **TINY))
    torch.set_num_threads(threads)
    return run_dir


def same_run(run_dir, reference_dir):
    """Same scalars at the same steps (none twice) and bit-identical saved networks and entropy coefficient."""
    logged_the_same(run_dir, reference_dir)
    ours, theirs = (
        torch.load(os.path.join(d, "pmoe_baseline.model"), weights_only=False) for d in (run_dir, reference_dir)
    )
    for part in ("actor", "qf"):
        for name, tensor in theirs[part].items():
            assert torch.equal(tensor, ours[part][name]), f"{part}.{name}"
    assert torch.equal(ours["log_alpha"], theirs["log_alpha"])


def test_short_mujoco_run_logs_evaluates_and_saves_a_model_that_reproduces_its_evaluation(reference, capsys):
    logged = scalars(reference)
    expected = {"charts/episodic_return", "charts/episodic_length", "charts/SPS", "eval/episodic_return"}
    expected |= {"losses/qf_loss", "losses/actor_loss", "losses/routing_loss", "losses/alpha", "charts/entropy"}
    expected |= {f"charts/expert_{i}/{s}" for i in range(3) for s in ("weight", "best_fraction", "std")}
    assert expected <= set(logged)
    assert [step for step, _ in logged["eval/episodic_return"]] == [300, 600]  # every eval_freq and at the end
    assert logged["losses/alpha"][-1][1] < 1  # auto-tuned down from 1 by the entropy target
    assert os.path.exists(os.path.join(reference, "hyperparameters.json"))
    # Greedy and on the run's evaluation seeds, the saved model and the final checkpoint reproduce the last evaluation.
    for path in (os.path.join(reference, "pmoe_baseline.model"), reference):
        capsys.readouterr()
        pmoe.main(pmoe.Args(evaluate=path, eval_episodes=2, cuda=False))
        printed = capsys.readouterr().out.strip().splitlines()[-1]
        assert printed.endswith("over 2 episodes")
        assert float(printed.split(" +- ")[0]) == pytest.approx(logged["eval/episodic_return"][-1][1], abs=0.05)


def test_a_killed_then_sigterm_interrupted_run_resumes_to_the_uninterrupted_runs_end_bit_for_bit(
    reference, tmp_path, monkeypatch, capsys
):
    """Killed (no checkpoint of its own) past a periodic checkpoint, resumed, stopped by SIGTERM, resumed to the end."""

    class Killed(Exception):
        """Stands in for SIGKILL: the loop stops at once."""

    writers, real, calls = [], pmoe.train_step, []

    class KeptWriter(pmoe.SummaryWriter):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            writers.append(self)

    def interrupted(**kwargs):
        calls.append(1)
        if len(calls) == 250:  # env step 450: killed
            raise Killed
        if len(calls) == 250 + 30:  # mid-episode in the resumed run: SIGTERM
            os.kill(os.getpid(), signal.SIGTERM)
        return real(**kwargs)

    monkeypatch.setattr(pmoe, "SummaryWriter", KeptWriter)
    monkeypatch.setattr(pmoe, "train_step", interrupted)
    with pytest.raises(Killed):
        pmoe.main(pmoe.Args(runs_dir=str(tmp_path), **TINY))
    writers[0].close()  # everything logged before the kill reaches the disk: the worst case for duplicates
    run_dir = str(next(tmp_path.iterdir()))
    killed_at = torch.load(os.path.join(run_dir, "checkpoint.pt"), weights_only=False)["step"]
    last_logged = max(steps[-1][0] for steps in scalars(run_dir).values())
    assert killed_at < last_logged <= 450  # the killed run had logged steps past its last checkpoint

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        pmoe.main(pmoe.Args(resume=run_dir))
    assert exit_info.value.code == pmoe.INTERRUPTED_EXIT_CODE
    out = capsys.readouterr().out
    step = int(out.split("interrupted at step ")[1].split(";")[0])
    assert killed_at + 30 <= step < 600 and f"--resume {run_dir}" in out
    assert not os.path.exists(os.path.join(run_dir, "pmoe_baseline.model"))
    monkeypatch.undo()

    pmoe.main(pmoe.Args(resume=run_dir))
    same_run(run_dir, reference)  # the purged steps were logged once, anew
    pmoe.main(pmoe.Args(resume=run_dir))  # resuming a finished run says so and trains nothing
    assert "already finished at step 600" in capsys.readouterr().out


def test_resume_refuses_a_missing_run_and_a_truncated_checkpoint(reference, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        pmoe.main(pmoe.Args(resume=str(tmp_path)))
    expected = f"{tmp_path}/checkpoint.pt cannot be read (FileNotFoundError); runs write one every --checkpoint-freq."
    assert str(exit_info.value.code) == expected
    run_dir = shutil.copytree(reference, tmp_path / "run")
    path = run_dir / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(SystemExit) as exit_info:
        pmoe.main(pmoe.Args(resume=str(run_dir)))
    message = str(exit_info.value.code)  # the error's type depends on where the file was cut
    assert message.startswith(f"{path} cannot be read (") and message.endswith(
        "); runs write one every --checkpoint-freq."
    )


BAD = [
    (dict(n_experts=0), "--n-experts must be at least 1, got 0."),
    (dict(batch_size=2000, buffer_size=1000), "--batch-size 2000 exceeds --buffer-size."),
    (dict(total_timesteps=200), "--total-timesteps must exceed --learning-starts."),
    (dict(tau=0.0), "--tau must lie in (0, 1], got 0.0."),
    (dict(eval_freq=0), "--batch-size, --eval-freq, --eval-episodes and --log-freq must be positive."),
    (dict(gamma=1.5), "--gamma must lie in [0, 1], got 1.5."),
    (dict(autotune=False, ent_coef=-0.1), "--ent-coef must be positive, got -0.1."),
    (dict(env_id="NoSuchEnv-v0"), "Unknown env id 'NoSuchEnv-v0'; supported paper tasks are Swimmer"),
    (dict(env_id="CartPole-v1"), "CartPole-v1 has a Discrete action space; this script needs a continuous (Box) one."),
]


def test_bad_input_is_refused_before_training_in_one_sentence(tmp_path):
    for override, sentence in BAD:
        with pytest.raises(SystemExit) as exit_info:  # a str code: printed to stderr, exit status 1, no traceback
            pmoe.main(pmoe.Args(runs_dir=str(tmp_path), **{**TINY, **override}))
        message = exit_info.value.code
        assert isinstance(message, str) and message.startswith(sentence), message
        assert message.count(". ") == 0 and "\n" not in message, message
        assert not os.listdir(tmp_path)  # nothing was trained or logged


def test_track_starts_weights_and_biases_before_the_summary_writer_it_syncs(tmp_path, monkeypatch):
    """--track, with a stand-in wandb module: W&B's own offline logging is tested with td3_baseline.py."""
    calls = []
    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=lambda **kwargs: calls.append(kwargs)))

    class Stop(Exception):
        pass

    def writer(*args, **kwargs):
        calls.append("SummaryWriter")
        raise Stop  # nothing more to see

    monkeypatch.setattr(pmoe, "SummaryWriter", writer)
    with pytest.raises(Stop):
        pmoe.main(pmoe.Args(runs_dir=str(tmp_path), track=True, wandb_project_name="p", **TINY))
    (init, later) = calls
    assert later == "SummaryWriter" and init["sync_tensorboard"] and init["project"] == "p"
    assert init["config"]["n_experts"] == 3 and init["config"]["env_id"] == "Hopper-v4"
    assert init["name"].startswith("Hopper-v4__pmoe_baseline__1__") and "." not in init["id"]


def test_help_states_the_sources_and_the_deviations(capsys):
    with pytest.raises(SystemExit):
        tyro.cli(pmoe.Args, args=["--help"], description=pmoe.__doc__)  # as the script's last line calls it
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("quantumiracle/Popular-RL-Algorithms", "Assumed", "Deviations from [C]", "highest Q1", "n-experts"):
        assert phrase in text, phrase
