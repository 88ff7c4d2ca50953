"""sacm_baseline.py: the mixture density against torch.distributions, one whole SAC(M) update against an
independent computation, the paper's Tables 6 and 7 cell by cell, real MuJoCo runs, and bad input."""

import ast
import copy
import math
import os
import random

import numpy as np
import pytest
import torch
import torch.distributions as D
import torch.nn.functional as F
from conftest import scalars

import sacm_baseline as sacm

# Hopper (random actions end episodes within ~50 steps) with small nets: seconds per run.
# learn_weights: that path end to end (uniform weights are the default).
TINY = dict(env_id="Hopper-v4", n_components=3, learn_weights=True, total_timesteps=500, learning_starts=300,
            batch_size=32, net_arch=(16, 16), eval_freq=200, eval_episodes=2, log_freq=50, save_model=True,
            checkpoint_freq=0, cuda=False)  # fmt: skip


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


def reference_log_prob(u, mean, log_std, log_weights):
    """log pi(tanh(u)|s) by torch.distributions and the textbook tanh correction log(1 - tanh(u)^2)."""
    return reference_mixture(mean, log_std, log_weights).log_prob(u) - torch.log1p(-torch.tanh(u).pow(2)).sum(-1)


def test_mixture_log_density_matches_mixture_same_family_before_squashing():
    mean, log_std, log_weights = random_mixture(4, 16, 3)
    u = torch.randn(5, 16, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2  # sample axis
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
    grid = u[:, None, None].expand(-1, 4, 1)
    density = sacm.mixture_log_prob(grid, mean, log_std, log_weights).exp()  # (grid, 4 states)
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
    ours = sacm.mixture_log_prob(u, mean, log_std, log_weights)
    assert torch.allclose(ours, sac.log_prob(torch.tanh(u)), rtol=0, atol=1e-8)


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
    log_prob = reference_log_prob(u, mean, log_std, log_weights)
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
    obs_dim, act_dim, n = 4, 2, 8
    actor = sacm.MixtureActor(1, obs_dim, act_dim, (16, 16)).double()
    qf_target = sacm.TwinQ(obs_dim, act_dim, (16, 16)).double()
    batch = sacm.Batch(
        obs=torch.randn(n, obs_dim, dtype=torch.float64),
        actions=torch.zeros(n, act_dim, dtype=torch.float64),
        rewards=torch.randn(n, dtype=torch.float64),
        next_obs=torch.randn(n, obs_dim, dtype=torch.float64),
        terminated=torch.tensor([0, 1] * 4, dtype=torch.float64),
    )
    alpha = torch.tensor(0.2, dtype=torch.float64)
    monkeypatch.setattr(torch, "randn_like", torch.zeros_like)  # eps = 0: the sample is the mean
    y = sacm.soft_td_target(actor, qf_target, batch, alpha, 0.9)

    mean, log_std, _ = actor(batch.next_obs)
    sac = D.TransformedDistribution(D.Independent(D.Normal(mean[0], log_std[0].exp()), 1), [D.TanhTransform()])
    a = torch.tanh(mean[0])
    soft_v = torch.minimum(*qf_target(batch.next_obs, a)) - alpha * sac.log_prob(a)
    expected = batch.rewards + 0.9 * (1 - batch.terminated) * soft_v
    assert torch.allclose(y, expected, rtol=0, atol=1e-8)
    assert torch.equal(y[1::2], batch.rewards[1::2])  # terminated: no bootstrap


def adam_first_step(param: torch.Tensor, grad: torch.Tensor, lr: float) -> torch.Tensor:
    """Adam's first update by hand: bias-corrected m = g and v = g^2, so the step is lr g / (|g| + eps)."""
    return param - lr * grad / (grad.abs() + 1e-8)


def test_train_step_is_one_sac_update_of_critics_actor_alpha_and_targets_computed_independently():
    """A whole train_step against the same update written out with torch.distributions and Adam by hand."""
    torch.manual_seed(0)
    k, obs_dim, act_dim, n = 3, 4, 2, 16
    args = sacm.Args(gamma=0.9, tau=0.05, learning_rate=1e-3)
    actor = sacm.MixtureActor(k, obs_dim, act_dim, (16, 16), learn_weights=True).double()
    qf = sacm.TwinQ(obs_dim, act_dim, (16, 16)).double()
    qf_target = sacm.TwinQ(obs_dim, act_dim, (16, 16)).double()  # not a copy of qf, so Polyak averaging shows
    log_alpha = torch.tensor(math.log(0.5), dtype=torch.float64, requires_grad=True)
    batch = sacm.Batch(
        obs=torch.randn(n, obs_dim, dtype=torch.float64),
        actions=torch.rand(n, act_dim, dtype=torch.float64) * 2 - 1,
        rewards=torch.randn(n, dtype=torch.float64),
        next_obs=torch.randn(n, obs_dim, dtype=torch.float64),
        terminated=(torch.rand(n) < 0.3).double(),
    )
    before = copy.deepcopy((actor, qf, qf_target))

    torch.manual_seed(1)
    stats = sacm.train_step(
        actor=actor,
        qf=qf,
        qf_target=qf_target,
        log_alpha=log_alpha,
        actor_optimizer=torch.optim.Adam(actor.parameters(), lr=args.learning_rate, fused=True),
        q_optimizer=torch.optim.Adam(qf.parameters(), lr=args.learning_rate, fused=True),
        alpha_optimizer=torch.optim.Adam([log_alpha], lr=args.learning_rate, fused=True),
        batch=batch,
        args=args,
    )

    # The same random numbers, drawn in the order and the memory layout train_step draws them: the target's
    # component (Gumbel noise) and Gaussian noise, then the actor loss's Gaussian noise.
    ref_actor, ref_qf, ref_qf_target = before
    with torch.no_grad():
        next_mean, next_log_std, next_log_weights = ref_actor(batch.next_obs)
    torch.manual_seed(1)
    exponential = torch.empty_like(next_log_weights).exponential_()
    eps_target = torch.randn_like(next_mean)
    eps_actor = torch.randn_like(next_mean)
    alpha = 0.5
    rows = torch.arange(n)

    # Critics: a' from the component c ~ Categorical(w) that the Gumbel-max trick picks, soft target, MSE.
    with torch.no_grad():
        c = (next_log_weights - exponential.log()).argmax(0)
        u_next = next_mean[c, rows] + next_log_std.exp()[c, rows] * eps_target[c, rows]
        q_next = torch.minimum(*ref_qf_target(batch.next_obs, torch.tanh(u_next)))
        v_next = q_next - alpha * reference_log_prob(u_next, next_mean, next_log_std, next_log_weights)
        y = batch.rewards + args.gamma * (1 - batch.terminated) * v_next
    q1, q2 = ref_qf(batch.obs, batch.actions)
    qf_loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
    grads = torch.autograd.grad(qf_loss, list(ref_qf.parameters()))
    with torch.no_grad():
        for p, g in zip(ref_qf.parameters(), grads):
            p.copy_(adam_first_step(p, g, args.learning_rate))

    # Actor: one reparameterized sample per component, valued by the updated critics, weighted by w_i.
    mean, log_std, log_weights = ref_actor(batch.obs)
    u = mean + log_std.exp() * eps_actor
    log_prob = reference_log_prob(u, mean, log_std, log_weights)  # (K, B)
    q = torch.minimum(*ref_qf(batch.obs, torch.tanh(u)))
    w = log_weights.exp()
    loss = (w * (alpha * log_prob - q)).sum(0).mean()
    grads = torch.autograd.grad(loss, list(ref_actor.parameters()))
    with torch.no_grad():
        for p, g in zip(ref_actor.parameters(), grads):
            p.copy_(adam_first_step(p, g, args.learning_rate))

    # Alpha: SAC's loss -log(alpha) (log pi + target entropy) with target -|A|; its gradient is H - (-|A|).
    entropy = -(w * log_prob).sum(0).mean().detach()
    expected_log_alpha = adam_first_step(
        torch.tensor(math.log(alpha), dtype=torch.float64), entropy + act_dim, args.learning_rate
    )

    for ours, expected in ((actor, ref_actor), (qf, ref_qf)):
        for p, e in zip(ours.parameters(), expected.parameters()):
            assert torch.allclose(p, e, rtol=0, atol=1e-12)
    for p, old, new in zip(qf_target.parameters(), ref_qf_target.parameters(), ref_qf.parameters()):
        assert torch.allclose(p, (1 - args.tau) * old + args.tau * new, rtol=0, atol=1e-12)
    assert torch.allclose(log_alpha.detach(), expected_log_alpha, rtol=0, atol=1e-12)
    assert stats["losses/qf_loss"].item() == pytest.approx(qf_loss.item(), abs=1e-12)
    assert stats["losses/actor_loss"].item() == pytest.approx(loss.item(), abs=1e-12)
    assert stats["charts/entropy"].item() == pytest.approx(entropy.item(), abs=1e-12)
    assert stats["losses/alpha"].item() == pytest.approx(alpha)  # the value before this step's update
    assert stats["losses/alpha_loss"].item() == pytest.approx(math.log(alpha) * (entropy.item() + act_dim))
    components = {f"charts/component_{i}/{s}" for i in range(k) for s in ("weight", "std")}
    expected_tags = {"losses/qf_loss", "losses/qf1_values", "losses/qf2_values", "losses/actor_loss"}
    assert set(stats) == expected_tags | {"losses/alpha", "losses/alpha_loss", "charts/entropy"} | components
    assert all(v.ndim == 0 and not v.requires_grad for v in stats.values())


def test_sac_bootstraps_through_time_limits_and_gradient_steps_minus_one_is_one_update_per_env_step_collected(
    tmp_path, monkeypatch
):
    """Table 7's -1 under SB3 SAC's train_freq of one step: an update after every env step; Pendulum only truncates,
    so no transition is stored as terminal. --train-freq episode: at an episode's end, one per step it lasted."""
    stored, updated_at = [], []
    real_add, real_train_step = sacm.ReplayBuffer.add, sacm.train_step
    monkeypatch.setattr(sacm.ReplayBuffer, "add", lambda self, *a: stored.append(bool(a[4])) or real_add(self, *a))
    monkeypatch.setattr(
        sacm, "train_step", lambda **kwargs: updated_at.append(len(stored)) or real_train_step(**kwargs)
    )
    config = dict(env_id="Pendulum-v1", n_components=1, total_timesteps=450, learning_starts=400, batch_size=32)
    config |= dict(net_arch=(32, 32), gradient_steps=-1, eval_episodes=1, log_freq=50, checkpoint_freq=0, cuda=False)
    logged = scalars(sacm.main(sacm.Args(runs_dir=str(tmp_path), **config)))
    assert [step for step, _ in logged["charts/episodic_length"]] == [200, 400]
    assert len(stored) == 450 and not any(stored)
    assert updated_at == list(range(401, 451))
    # K = 1 is SAC: one component's diagnostics, alpha tuned down from 1.
    assert {"charts/component_0/weight", "charts/component_0/std", "losses/alpha_loss"} <= set(logged)
    assert "charts/component_1/weight" not in logged and logged["losses/alpha"][-1][1] < 1

    # --train-freq episode (SB3's train_freq=(1, "episode")): after each episode, one update per step it lasted.
    stored.clear()
    updated_at.clear()
    config |= dict(env_id="Hopper-v4", total_timesteps=300, learning_starts=100, train_freq="episode")
    logged = scalars(sacm.main(sacm.Args(runs_dir=str(tmp_path / "episode"), **config)))
    ends = [(step, int(length)) for step, length in logged["charts/episodic_length"]]
    assert len(ends) > 3 and updated_at == [step for step, length in ends if step > 100 for _ in range(length)]


def test_greedy_action_is_the_mean_with_the_highest_q1_not_the_most_probable_component():
    means = torch.tensor([[[0.1], [0.5]], [[0.9], [-0.2]], [[-0.7], [0.3]]])  # pre-tanh (K=3, B=2, act=1)

    def actor(obs):  # uniform weights: "the most probable component" would always be component 0
        return means, torch.zeros_like(means), torch.full((3, 2), -math.log(3))

    def qf(obs, actions, members=2):  # Q1(s0, a) = -(a - 0.8)^2 prefers component 1; Q1(s1, a) = a prefers 0
        q1 = torch.stack([-((actions[:, 0, 0] - 0.8) ** 2), actions[:, 1, 0]], dim=1)  # (K, B)
        return q1[None].expand(members, -1, -1)

    greedy = sacm.greedy_mixture_action(actor, qf, torch.zeros(2, 5))
    assert torch.equal(greedy, torch.tanh(torch.tensor([[0.9], [0.5]])))


def test_sampling_draws_each_component_with_its_weight():
    log_weights = torch.tensor([0.3, 0.7]).log()[:, None].expand(2, 4000)
    means = torch.tensor([0.0, 1.0]).view(2, 1, 1).expand(2, 4000, 1)
    torch.manual_seed(0)
    picks = sacm.sample_mixture(means, torch.full((2, 4000, 1), -20.0), log_weights)  # negligible stds
    assert abs(picks.mean().item() - 0.7) < 0.03


def test_evaluation_draws_from_no_training_random_stream():
    torch.manual_seed(0)
    env = sacm.make_env("Hopper-v4", seed=0)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    actor, qf = sacm.MixtureActor(3, obs_dim, act_dim, (16, 16)), sacm.TwinQ(obs_dim, act_dim, (16, 16))
    states = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    returns = sacm.evaluate(actor, qf, env, 2, torch.device("cpu"), seed=10)
    assert torch.equal(states[0], torch.get_rng_state())
    assert np.array_equal(states[1], np.random.get_state()[1]) and states[2] == random.getstate()
    assert returns == sacm.evaluate(actor, qf, env, 2, torch.device("cpu"), seed=10)


def test_a_short_mujoco_run_logs_evaluates_and_saves_a_model_and_evaluating_less_often_changes_nothing(
    tmp_path, capsys
):
    often = sacm.main(sacm.Args(runs_dir=str(tmp_path / "often"), **TINY))
    logged = scalars(often)
    expected = {"charts/episodic_return", "charts/episodic_length", "charts/SPS", "eval/episodic_return"}
    expected |= {"losses/qf_loss", "losses/qf1_values", "losses/actor_loss", "losses/alpha", "losses/alpha_loss"}
    expected |= {"charts/entropy"} | {f"charts/component_{i}/{s}" for i in range(3) for s in ("weight", "std")}
    assert expected <= set(logged) and "charts/component_3/weight" not in logged
    assert [step for step, _ in logged["eval/episodic_return"]] == [200, 400, 500]  # every eval_freq and at the end
    assert logged["losses/alpha"][-1][1] < 1  # auto-tuned down from 1 by the entropy target
    model = torch.load(os.path.join(often, "sacm_baseline.model"), weights_only=False)
    saved = sacm.Args(**model["args"])
    assert (saved.n_components, saved.learn_weights, saved.tau, saved.gradient_steps) == (3, True, 0.05, 1)
    assert 0 < model["log_alpha"].exp().item() < logged["losses/alpha"][-1][1]  # still falling after the last log

    # Greedy and on the run's evaluation seeds, the saved model reproduces the run's last evaluation.
    capsys.readouterr()
    sacm.main(sacm.Args(evaluate=os.path.join(often, "sacm_baseline.model"), eval_episodes=2))
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed.endswith(" over 2 episodes")
    assert float(printed.split(" +- ")[0]) == pytest.approx(logged["eval/episodic_return"][-1][1], abs=0.05)

    # Evaluation draws no random number: evaluating only at the end trains the same run, bit for bit.
    rarely = sacm.main(sacm.Args(runs_dir=str(tmp_path / "rarely"), **{**TINY, "eval_freq": 500}))
    rarely_logged = scalars(rarely)
    assert [step for step, _ in rarely_logged["eval/episodic_return"]] == [500]
    for tag in set(logged) - {"charts/SPS", "eval/episodic_return"}:
        assert rarely_logged[tag] == logged[tag], tag
    other = torch.load(os.path.join(rarely, "sacm_baseline.model"), weights_only=False)
    for part in ("actor", "qf"):
        assert all(torch.equal(tensor, other[part][name]) for name, tensor in model[part].items()), part
    assert torch.equal(model["log_alpha"], other["log_alpha"])


# The paper's Tables 6 and 7 as printed (tab-separated, copied from the paper's text), to check every cell.
TABLE_6 = """\
Hyperparam.	Swimmer-v3	HalfCheetah-v3	Hopper-v3	Ant-v3	Walker2d-v3	Humanoid-v3
n_timesteps	1000000	1000000	1000000	1000000	1000000	2000000
learning_rate	0.0003	0.0003	0.0003	0.0003	0.0003	0.0003
learning_starts	10000	10000	10000	10000	10000	10000
gradient_steps	1	1	1	1	1	1
gamma	0.9999	0.99	0.99	0.99	0.99	0.99
tau	0.05	0.05	0.05	0.05	0.05	0.05
net_arch	[256, 256]	[256, 256]	[256, 256]	[256, 256]	[256, 256]	[256, 256]
activation_fn	nn.ReLU	nn.ReLU	nn.ReLU	nn.ReLU	nn.ReLU	nn.ReLU
"""
TABLE_7 = """\
Hyperparam.	Swimmer-v3	HalfCheetah-v3	Hopper-v3	Ant-v3	Walker2d-v3	Humanoid-v3
n_components	3	3	3	3	3	3
learning_rate	0.0006	0.0003	0.0003	0.0003	0.0003	0.0003
learning_starts	10000	10000	10000	10000	10000	10000
gradient_steps	1	-1	1	-1	-1	1
tau	0.05	0.05	0.05	0.05	0.05	0.05
net_arch	[256, 256]	[256, 256]	[256, 256]	[256, 256]	[256, 256]	[256, 256]
activation_fn	nn.ReLU	nn.ReLU	nn.ReLU	nn.ReLU	nn.ReLU	nn.ReLU
"""
FIELD = {"n_timesteps": "total_timesteps"}  # the tables' (SB3 zoo) names that differ from ours


def columns(table: str) -> dict:
    """{env id: {row name: value}} from a table as printed."""
    rows = [line.split("\t") for line in table.splitlines()]
    cells = {name: values for name, *values in rows[1:]}
    return {env_id: {name: values[i] for name, values in cells.items()} for i, env_id in enumerate(rows[0][1:])}


def check_cell(args: sacm.Args, name: str, printed: str) -> None:
    if name == "activation_fn":  # ReLU hidden units in the actor's trunk and (functional) in the critics
        actor = sacm.MixtureActor(args.n_components, 3, 2, args.net_arch)
        assert [type(m) for m in actor.trunk][1::2] == [torch.nn.ReLU] * len(args.net_arch)
        net = sacm.EnsembleMLP(2, 3, 1, args.net_arch)
        x = torch.randn(1, 5, 3)
        h = x.expand(2, -1, -1)
        for i, (w, b) in enumerate(zip(net.weights, net.biases)):
            h = h @ w + b
            h = h.clamp(min=0) if i < len(args.net_arch) else h
        assert torch.allclose(net(x), h, atol=1e-5)
    else:
        expected = ast.literal_eval(printed)  # net_arch: a list in the table, a tuple in Args
        assert getattr(args, FIELD.get(name, name)) == (tuple(expected) if isinstance(expected, list) else expected)


@pytest.mark.parametrize("env_id", list(columns(TABLE_6)))
def test_sac_preset_is_table_6_in_every_cell_but_the_polyak_rate_the_authors_ran(env_id, capsys):
    args = sacm.resolve_args(sacm.Args(env_id=env_id, n_components=1))
    assert f"{env_id} needs mujoco-py" in capsys.readouterr().out
    for name, printed in columns(TABLE_6)[env_id].items():
        if name == "tau":  # the one departure: SB3's default ran (the zoo's SAC config sets none)
            assert (printed, args.tau) == ("0.05", 0.005)
            assert sacm.resolve_args(sacm.Args(env_id=env_id, n_components=1, tau=0.05)).tau == 0.05
        else:
            check_cell(args, name, printed)
    # Not printed: SB3 SAC's defaults ran. One update per env step.
    assert (args.batch_size, args.train_freq, args.buffer_size, args.autotune) == (256, "step", 1_000_000, True)


@pytest.mark.parametrize("env_id", list(columns(TABLE_7)))
def test_sacm_preset_is_table_7_in_every_cell(env_id):
    args = sacm.resolve_args(sacm.Args(env_id=env_id))
    for name, printed in columns(TABLE_7)[env_id].items():
        check_cell(args, name, printed)
    # Not printed in Table 7: Table 6's budget and discount; SB3 SAC's batch and per-step training.
    assert args.total_timesteps == int(columns(TABLE_6)[env_id]["n_timesteps"])
    assert args.gamma == float(columns(TABLE_6)[env_id]["gamma"])
    assert (args.batch_size, args.train_freq) == (256, "step")


def test_flags_override_the_preset_and_other_envs_take_halfcheetahs_column(capsys):
    swimmer = sacm.resolve_args(sacm.Args(env_id="Swimmer-v4", batch_size=100, learning_rate=1e-4))
    assert (swimmer.learning_rate, swimmer.gamma, swimmer.batch_size, swimmer.tau) == (1e-4, 0.9999, 100, 0.05)
    generic = sacm.resolve_args(sacm.Args(env_id="Pendulum-v1", learning_starts=100, n_components=1))
    assert "Pendulum-v1 is not one of the paper's tasks; unset hyperparameters take HalfCheetah's row." in (
        capsys.readouterr().out
    )
    assert (generic.total_timesteps, generic.learning_rate, generic.gamma, generic.tau) == (
        1_000_000,
        3e-4,
        0.99,
        0.005,
    )
    assert generic.gradient_steps == 1 and sacm.resolve_args(sacm.Args(env_id="Pendulum-v1")).gradient_steps == -1


BAD = [
    (dict(n_components=0), "--n-components must be at least 1, got 0."),
    (dict(batch_size=2000, buffer_size=1000), "--batch-size 2000 exceeds --buffer-size."),
    (dict(total_timesteps=300), "--total-timesteps must exceed --learning-starts."),
    (dict(gradient_steps=0), "--gradient-steps must be positive, or -1."),
    (dict(tau=1.5), "--tau must lie in (0, 1], got 1.5."),
    (dict(eval_episodes=0), "--batch-size, --eval-freq, --eval-episodes and --log-freq must be positive."),
    (dict(autotune=False, ent_coef=-0.1), "--ent-coef must be positive, got -0.1."),
    (dict(env_id="NoSuchEnv-v0"), "Unknown env id 'NoSuchEnv-v0'; supported paper tasks are Swimmer"),
    (dict(env_id="CartPole-v1"), "CartPole-v1 has a Discrete action space; this script needs a continuous (Box) one."),
]


def test_bad_input_is_refused_before_training_in_one_sentence(tmp_path):
    for override, sentence in BAD:
        with pytest.raises(SystemExit) as exit_info:
            sacm.main(sacm.Args(runs_dir=str(tmp_path), **{**TINY, **override}))
        message = str(exit_info.value.code)
        assert message.startswith(sentence) and message.count(". ") == 0 and "\n" not in message, message
        assert not os.listdir(tmp_path)  # nothing was trained or logged


def test_nan_loss_stops_the_run_naming_step_and_loss_after_saving_logs(tmp_path, monkeypatch):
    real = sacm.train_step

    def poisoned(**kwargs):
        stats = real(**kwargs)
        stats["losses/qf_loss"] = stats["losses/qf_loss"] * float("nan")
        return stats

    monkeypatch.setattr(sacm, "train_step", poisoned)
    with pytest.raises(SystemExit) as exit_info:
        sacm.main(sacm.Args(runs_dir=str(tmp_path), **{**TINY, "total_timesteps": 350, "save_model": False}))
    assert str(exit_info.value.code).startswith("losses/qf_loss is nan at step 350; stopping")
    (run_dir,) = tmp_path.iterdir()
    assert "charts/episodic_return" in scalars(str(run_dir))
