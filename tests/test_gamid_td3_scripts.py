"""gamid_continuous_action.py and td3_baseline.py as a user runs them: equivalence, real MuJoCo runs, bad input."""

import copy
import glob
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ENV, run_script, scalars

import gamid_continuous_action as gamid
import td3_baseline as td3

# A few thousand steps of Hopper (terminating episodes) with small nets: seconds, not minutes.
TINY = dict(
    env_id="Hopper-v4",
    total_timesteps=1500,
    learning_starts=500,
    batch_size=32,
    net_arch=(32, 32),
    eval_freq=750,
    eval_episodes=2,
    log_freq=250,
    save_model=True,
)
# What TD3 logs; Gamid adds its diversity (paper §4.1.1, Fig. 2), schedules and per-Gaussian selection.
TD3_TAGS = {"charts/episodic_return", "charts/episodic_length", "charts/SPS", "eval/episodic_return"}
TD3_TAGS |= {"losses/qf_loss", "losses/qf1_values", "losses/qf2_values", "losses/actor_loss"}
GAMID_TAGS = {"charts/sum_d_var", "charts/temperature", "charts/epsilon"}
GAMID_TAGS |= {"charts/selected_fraction/gaussian_0", "charts/selected_fraction/gaussian_1"}


def saved_model(run_dir, module):
    return torch.load(os.path.join(run_dir, f"{module.__name__}.model"))


def assert_same_model(run_dir, reference_dir, module, reference_module=None):
    model, reference = saved_model(run_dir, module), saved_model(reference_dir, reference_module or module)
    for network in ("actor", "qf"):
        assert model[network].keys() == reference[network].keys()
        for name, tensor in model[network].items():
            assert torch.equal(tensor, reference[network][name]), f"{network}.{name}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """TINY runs shared by the tests below, each started on first use: {"td3" | "gamid" | "gamid_n1": run dir}.
    gamid_n1 also asks for --temperature auto --epsilon auto: with one Gaussian they change nothing."""
    made = {}

    def get(name):
        if name not in made:
            n1 = {"n_actors": 1, "temperature": "auto", "epsilon": "auto"}
            module, extra = {"td3": (td3, {}), "gamid": (gamid, {}), "gamid_n1": (gamid, n1)}[name]
            runs_dir = str(tmp_path_factory.mktemp(name))
            made[name] = module.main(module.Args(runs_dir=runs_dir, **TINY, **extra))
        return made[name]

    return get


def test_gamid_with_one_gaussian_computes_td3_updates():
    """From identical weights, batches and noise, Gamid N = 1 and TD3 end with identical parameters."""
    torch.manual_seed(0)
    obs_dim, act_dim, hidden = 5, 2, (16, 16)
    args = gamid.Args(gamma=0.99, n_actors=1)
    g_actor = gamid.GaussianMeans(1, obs_dim, act_dim, hidden).double()
    g_qf = gamid.TwinQ(obs_dim, act_dim, hidden).double()
    t_actor = td3.Actor(obs_dim, act_dim, hidden).double()
    t_qf = td3.TwinQ(obs_dim, act_dim, hidden).double()
    t_qf.load_state_dict(g_qf.state_dict())
    t_actor.load_state_dict(g_actor.state_dict())
    nets = {}
    for name, actor, qf in (("gamid", g_actor, g_qf), ("td3", t_actor, t_qf)):
        nets[name] = dict(
            actor=actor,
            actor_target=copy.deepcopy(actor),
            qf=qf,
            qf_target=copy.deepcopy(qf),
            actor_optimizer=torch.optim.Adam(actor.parameters(), lr=1e-3, fused=True),
            q_optimizer=torch.optim.Adam(qf.parameters(), lr=1e-3, fused=True),
        )

    for step in range(1, 7):
        batch = gamid.Batch(
            obs=torch.randn(64, obs_dim, dtype=torch.float64),
            actions=torch.rand(64, act_dim, dtype=torch.float64) * 2 - 1,
            rewards=torch.randn(64, dtype=torch.float64),
            next_obs=torch.randn(64, obs_dim, dtype=torch.float64),
            terminated=(torch.rand(64) < 0.2).double(),
        )
        rng = torch.get_rng_state()
        gamid.train_step(**nets["gamid"], batch=batch, update_actor=step % 2 == 0, temperature=0.1, args=args)
        torch.set_rng_state(rng)  # the same target-smoothing noise for both
        td3.train_step(**nets["td3"], batch=batch, update_actor=step % 2 == 0, args=args)

    for key in ("actor", "actor_target", "qf", "qf_target"):
        for p, q in zip(nets["gamid"][key].parameters(), nets["td3"][key].parameters()):
            assert torch.equal(p, q), key
    g_actor, g_actor_t = nets["gamid"]["actor"], nets["gamid"]["actor_target"]
    assert not torch.allclose(g_actor.net.weights[0], g_actor_t.net.weights[0])  # the updates did move something


def test_gamid_with_one_gaussian_is_td3_seed_for_seed(runs):
    """Same seed, same settings: the same initial weights, the same draws, so the same whole run, bit for bit (with
    --temperature auto --epsilon auto too: N = 1 has no D_var to hold and nothing to choose)."""
    gamid_logged, td3_logged = scalars(runs("gamid_n1")), scalars(runs("td3"))
    for tag in TD3_TAGS - {"charts/SPS"}:
        assert gamid_logged[tag] == td3_logged[tag], tag
    assert_same_model(runs("gamid_n1"), runs("td3"), gamid, td3)
    assert len(set(v for _, v in td3_logged["eval/episodic_return"])) > 1  # training moved the policy


@pytest.mark.parametrize("module", [gamid, td3], ids=["gamid", "td3"])
def test_same_seed_evaluating_more_often_trains_the_same_run(module, runs, tmp_path):
    """Evaluations draw nothing the training draws: the same seed gives the same training, however often one
    evaluates (TINY evaluates at 750 and 1500)."""
    reference = runs(module.__name__.split("_")[0])
    often = module.main(module.Args(runs_dir=str(tmp_path), **{**TINY, "eval_freq": 250}))
    logged, reference_logged = scalars(often), scalars(reference)
    assert [step for step, _ in logged["eval/episodic_return"]] == [250, 500, 750, 1000, 1250, 1500]
    for tag in {tag for tag in reference_logged if tag != "charts/SPS" and not tag.startswith("eval/")}:
        assert logged[tag] == reference_logged[tag], tag
    assert_same_model(often, reference, module)


def test_another_seed_gives_another_run(runs, tmp_path):
    other = gamid.main(gamid.Args(runs_dir=str(tmp_path), **{**TINY, "seed": 2, "total_timesteps": 600}))
    first = [(step, value) for step, value in scalars(runs("gamid"))["charts/episodic_return"] if step <= 600]
    assert scalars(other)["charts/episodic_return"] != first


@pytest.mark.parametrize("module", [gamid, td3], ids=["gamid", "td3"])
def test_short_run_logs_evaluates_and_saves_a_model_that_loads_back(module, runs):
    run_dir = runs(module.__name__.split("_")[0])
    logged = scalars(run_dir)
    assert TD3_TAGS | (GAMID_TAGS if module is gamid else set()) <= set(logged)
    assert [step for step, _ in logged["eval/episodic_return"]] == [750, 1500]
    assert os.path.exists(os.path.join(run_dir, "hyperparameters.json"))

    checkpoint = saved_model(run_dir, module)
    saved = module.Args(**checkpoint["args"])
    env = module.make_env(saved.env_id, seed=0)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    if module is gamid:
        actor = gamid.GaussianMeans(saved.n_actors, obs_dim, act_dim, saved.net_arch)
        qf = gamid.TwinQ(obs_dim, act_dim, saved.net_arch)
        actor.load_state_dict(checkpoint["actor"])
        qf.load_state_dict(checkpoint["qf"])
        returns, _ = gamid.evaluate(actor, qf, env, 2, torch.device("cpu"), seed=saved.seed + 10_000)
    else:
        actor = td3.Actor(obs_dim, act_dim, saved.net_arch)
        actor.load_state_dict(checkpoint["actor"])
        returns = td3.evaluate(actor, env, 2, torch.device("cpu"), seed=saved.seed + 10_000)
    assert len(returns) == 2 and all(np.isfinite(returns))
    # The loaded greedy policy on the same evaluation seeds reproduces the final evaluation of the run.
    assert np.mean(returns) == pytest.approx(logged["eval/episodic_return"][-1][1], rel=1e-5)


# The paper's Table 3 (shared TD3 hyperparameters, MuJoCo) and the MuJoCo columns of Table 5 (Gamid-specific),
# transcribed cell by cell from the paper's text, independently of the scripts' PRESETS. Row names as printed.
TASKS = ("Swimmer", "HalfCheetah", "Hopper", "Ant", "Walker2d", "Humanoid")
TABLE_3 = {
    "n_timesteps": (1000000, 1000000, 1000000, 1000000, 1000000, 2000000),
    "learning_rate": (0.001, 0.001, 0.0003, 0.001, 0.001, 0.0003),
    "learning_starts": (10000, 10000, 10000, 10000, 10000, 10000),
    "batch_size": (100, 100, 256, 100, 100, 256),
    "gamma": (0.9999, 0.99, 0.99, 0.99, 0.99, 0.99),
    "train_freq": (1, (1, "episode"), 1, (1, "episode"), (1, "episode"), 1),
    "gradient_steps": (1, -1, 1, -1, -1, 1),
    "noise_type": ("normal",) * 6,
    "noise_std": (0.1,) * 6,
    "net_arch": ([256, 256],) * 6,
    "activation_fn": ("nn.ReLU",) * 6,
}
TABLE_5 = {
    "n_actors": (3, 5, 2, 2, 3, 4),
    "temperature_initial": (0.1, 0.1, 0.1, 0.1, 0.1, 0.3),
    "temperature_final": (0.1, 0.1, 0.01, 0.1, 0.1, 0.1),
    "temperature_fraction": (1.0, 1.0, 1.0, 1.0, 1.0, 0.3),
    "epsilon_initial": (0.3, 0.2, 0.1, 0.1, 0.3, 0.3),
    "epsilon_final": (0.03, 0.02, 0.1, 0.1, 0.03, 0.1),
    "epsilon_fraction": (0.5, 0.5, 1.0, 1.0, 1.0, 0.3),
}
# How the scripts spell Table 3's SB3 values: train_freq 1 is a round after every env step, (1, "episode") one
# at the end of every episode; noise_type "normal" is the Gaussian noise of gmm_action and TD3's acting, and
# activation_fn nn.ReLU is EnsembleMLP's (test_gamid_math checks both against independent computations).
TRAIN_FREQ = {1: "step", (1, "episode"): "episode"}


def table_3_as_args(column: int) -> dict:
    cell = {row: values[column] for row, values in TABLE_3.items()}
    return dict(
        total_timesteps=cell["n_timesteps"],
        learning_rate=cell["learning_rate"],
        learning_starts=cell["learning_starts"],
        batch_size=cell["batch_size"],
        gamma=cell["gamma"],
        train_freq=TRAIN_FREQ[cell["train_freq"]],
        gradient_steps=cell["gradient_steps"],
        noise_std=cell["noise_std"],
        net_arch=tuple(cell["net_arch"]),
    )


def test_presets_match_every_cell_of_tables_3_and_5():
    for column, task in enumerate(TASKS):
        expected_td3 = table_3_as_args(column)
        expected_gamid = {**expected_td3, **{row: values[column] for row, values in TABLE_5.items()}}
        for module, expected in ((td3, expected_td3), (gamid, expected_gamid)):
            args = module.resolve_args(module.Args(env_id=f"{task}-v4"))
            resolved = {field: getattr(args, field) for field in expected}
            assert resolved == expected, f"{module.__name__}, {task}"


@pytest.mark.parametrize("module", [gamid, td3], ids=["gamid", "td3"])
def test_paper_preset_fills_unset_fields_and_flags_override(module, capsys):
    args = module.resolve_args(module.Args(env_id="Walker2d-v3", batch_size=64))
    assert "Walker2d-v3 needs mujoco-py" in capsys.readouterr().out
    assert args.env_id == "Walker2d-v4"
    assert args.batch_size == 64  # an explicit flag beats the preset (Table 3 says 100)
    assert args.learning_rate == 1e-3  # the rest of the column still fills in
    other = module.resolve_args(module.Args(env_id="InvertedPendulum-v4"))
    assert "not one of the paper's tasks" in capsys.readouterr().out
    assert (other.learning_rate, other.batch_size, other.train_freq) == (3e-4, 256, "step")  # Hopper's column
    assert module is td3 or other.n_actors == 2


@pytest.mark.parametrize("env_id", ["Swimmer-v4", "Hopper-v4"])
def test_buffer_bootstraps_through_time_limits_and_the_episode_schedule_trains_at_episode_ends(
    env_id, tmp_path, monkeypatch
):
    """Every transition stored, and every train_step call, of a short run with train_freq "episode"."""
    stored, calls = [], []

    class RecordingBuffer(gamid.ReplayBuffer):
        def add(self, obs, action, reward, next_obs, terminated):
            stored.append((np.array(obs), np.array(next_obs), bool(terminated)))
            super().add(obs, action, reward, next_obs, terminated)

    real = gamid.train_step
    monkeypatch.setattr(gamid, "ReplayBuffer", RecordingBuffer)
    monkeypatch.setattr(gamid, "train_step", lambda **kw: calls.append(kw["update_actor"]) or real(**kw))
    swimmer = env_id == "Swimmer-v4"
    config = dict(env_id=env_id, total_timesteps=1200 if swimmer else 1100, learning_starts=500 if swimmer else 1050)
    config |= dict(train_freq="episode", gradient_steps=-1, eval_freq=1200, eval_episodes=1, save_model=False)
    gamid.main(gamid.Args(runs_dir=str(tmp_path), **{**TINY, **config}))
    ends = [not np.array_equal(next_obs, following[0]) for (_, next_obs, _), following in zip(stored, stored[1:])]
    flags = [terminated for *_, terminated in stored[:-1]]
    if swimmer:  # never terminates; the 1000-step time limit truncates: d = 0, so y bootstraps
        assert ends.index(True) == 999 and sum(ends) == 1 and not any(flags)
        # Nothing is trained until the first episode ends at step 1000, which brings 1000 gradient steps; the
        # unfinished second episode brings none.
        assert len(calls) == 1000
        assert calls[:4] == [False, True, False, True]  # actor every policy_delay = 2 gradient steps
    else:  # Hopper falls within the first 1000 steps, always by termination: d = 1 exactly at each episode end
        assert sum(ends) > 5 and flags == ends


BAD_MIXTURE = [
    (dict(n_actors=0), "--n-actors must be at least 1"),
    (dict(epsilon_initial=1.5), "must lie in [0, 1]"),
    (dict(temperature_fraction=-0.1), "must lie in [0, 1]"),
    (dict(temperature_final=-1.0), "must not be negative"),
    (dict(log_freq=0), "--policy-delay, --eval-freq and --log-freq must be positive."),
]
BAD = [
    (dict(batch_size=2000, buffer_size=1000), "larger than --buffer-size"),
    (dict(total_timesteps=500, learning_starts=500), "must exceed --learning-starts"),
    (dict(env_id="NoSuchEnv-v0"), "Unknown env id 'NoSuchEnv-v0'; supported paper tasks are Swimmer"),
    (dict(env_id="CartPole-v1"), "CartPole-v1 has a Discrete action space"),
]


CASES = [(gamid, *case) for case in BAD_MIXTURE + BAD] + [(td3, *case) for case in BAD]


@pytest.mark.parametrize("module,override,sentence", CASES, ids=[f"{m.__name__}: {s}" for m, _, s in CASES])
def test_bad_input_is_refused_before_training(module, override, sentence, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        module.main(module.Args(runs_dir=str(tmp_path), **{**TINY, **override}))
    message = str(exit_info.value.code)
    assert sentence in message and message.count(". ") == 0 and "\n" not in message
    assert not os.listdir(tmp_path)  # nothing was trained or logged


@pytest.mark.parametrize("script", ["gamid_continuous_action.py", "td3_baseline.py"])
def test_bad_input_from_the_command_line_exits_nonzero_without_traceback(script, tmp_path):
    result = run_script(script, "--env-id", "CartPole-v1", "--runs-dir", tmp_path, timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("CartPole-v1 has a Discrete action space")


@pytest.mark.parametrize("module", [gamid, td3], ids=["gamid", "td3"])
def test_nan_loss_stops_the_run_naming_step_and_loss_after_saving_logs(module, tmp_path, monkeypatch):
    real = module.train_step

    def poisoned(**kwargs):
        stats = real(**kwargs)
        stats["losses/qf_loss"] = stats["losses/qf_loss"] * float("nan")
        return stats

    monkeypatch.setattr(module, "train_step", poisoned)
    with pytest.raises(SystemExit) as exit_info:
        module.main(module.Args(runs_dir=str(tmp_path), **{**TINY, "total_timesteps": 800, "eval_freq": 800}))
    assert str(exit_info.value.code).startswith("losses/qf_loss is nan at step 750")
    run_dir = glob.glob(str(tmp_path / "*"))[0]
    assert "charts/episodic_return" in scalars(run_dir)  # what was logged before the stop is on disk


def test_capture_video_records_evaluation_episodes(tmp_path):
    env = {**ENV, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "osmesa")}
    probe = (
        "import gymnasium as gym; e = gym.make('InvertedPendulum-v4', render_mode='rgb_array'); e.reset(); e.render()"
    )
    if subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, timeout=120).returncode != 0:
        pytest.skip("no offscreen OpenGL here (apt-get install libosmesa6, or MUJOCO_GL=egl with a GPU)")
    flags = ["--env-id", "InvertedPendulum-v4", "--total-timesteps", "400", "--learning-starts", "300"]
    flags += ["--batch-size", "32", "--net-arch", "16", "16", "--eval-freq", "200", "--eval-episodes", "1"]
    result = run_script("gamid_continuous_action.py", *flags, "--runs-dir", tmp_path, "--capture-video", env=env)
    assert result.returncode == 0, result.stderr
    videos = sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "*" / "videos" / "*.mp4")))
    assert videos == ["step200-episode-0.mp4", "step400-episode-1.mp4"]  # named by the global step
