"""benchmarks/sps.py: it times the real train_step, counts its FLOPs, and names what a fork is missing."""

import importlib.util
import json
import os
import re
import sys
import time

import pytest
import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("sps", os.path.join(REPO_ROOT, "benchmarks", "sps.py"))
sps = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sps)


def test_quick_benchmark_table(monkeypatch):
    ppo_row = next(row for row in sps.ROWS if row[1] == "ppo_baseline")
    rows = sps.ROWS[:3] + (ppo_row, ("not written yet", "no_such_script", sps.MUJOCO))
    monkeypatch.setattr(sps, "ROWS", rows)
    threads = torch.get_num_threads()
    try:
        results, peak, facts = sps.run(sps.Args(quick=True, threads=1, seconds=0.3, learning_starts=300))
    finally:
        torch.set_num_threads(threads)
    by_label = {r.label: r for r in results}
    assert list(by_label) == ["td3_baseline", "gamid N=1", "gamid N=5", "ppo", "not written yet"]
    for label in ("td3_baseline", "gamid N=1", "gamid N=5"):
        assert by_label[label].sps > 0 and by_label[label].note == ""
    # Gamid with N = 1 does TD3's arithmetic; N = 5 about 3x (5 target actions and 5 actor losses).
    assert by_label["gamid N=1"].flops == by_label["td3_baseline"].flops
    assert 2.5 < by_label["gamid N=5"].flops / by_label["td3_baseline"].flops < 3.5
    assert by_label["not written yet"].note == "missing: no_such_script.py not found" and peak > 0
    # PPO's train_step is one minibatch step: SPS counts env steps, n_steps x n_envs per n_epochs x minibatches.
    assert by_label["ppo"].sps > 0
    assert re.fullmatch(r"one call = one minibatch step; a \d+-step rollout takes \d+ calls", by_label["ppo"].note)
    table = sps.format_table(results, peak, facts)
    assert table.splitlines()[2].startswith("| td3_baseline | ") and "| 1.00 |" in table.splitlines()[2]
    assert table.splitlines()[6] == "| not written yet | – | – | – | – | – | – | missing: no_such_script.py not found |"


# --- the contract, on small stand-in scripts -----------------------------------------------------------

# A script with the shape the benchmark relies on. Its train_step logs every call, its buffer counts draws.
FAKE_SCRIPT = """
import json, os
from dataclasses import asdict, dataclass

CALLS = []


@dataclass
class Args:
    runs_dir: str = "runs"
    seed: int = 1
    batch_size: int = 4
    policy_delay: int = 3
    total_timesteps: int = 100


class Buffer:
    def __init__(self):
        self.draws = 0

    def sample(self, batch_size):
        self.draws += 1
        return {"size": batch_size, "draw": self.draws}


def train_step(model, batch, update_actor, args):
    CALLS.append((model, batch["draw"], update_actor))
    return {}


def main(args):
    os.makedirs(os.path.join(args.runs_dir, "run"), exist_ok=True)
    with open(os.path.join(args.runs_dir, "run", "hyperparameters.json"), "w") as f:
        json.dump(asdict(args), f)
    rb = Buffer()
    for step in range(1, args.total_timesteps + 1):
        TRAIN
"""
GOOD_CALL = 'train_step("model", rb.sample(args.batch_size), update_actor=step % args.policy_delay == 0, args=args)'


def load_fake(tmp_path, name="fake_script", source=FAKE_SCRIPT, train=GOOD_CALL):
    path = tmp_path / f"{name}.py"
    path.write_text(source.replace("TRAIN", train))
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_update_redraws_the_batch_and_alternates_the_actor_as_main_does(tmp_path):
    module = load_fake(tmp_path)
    original_step, original_sample = module.train_step, module.Buffer.sample
    update, note = sps.build_update(module, {"runs_dir": str(tmp_path), "batch_size": 8, "no_such_field": 1})
    assert note == "ignored no_such_field"
    assert module.train_step is original_step and module.Buffer.sample is original_sample  # put back
    assert module.CALLS == []  # main() was stopped at its first call, before train_step ran
    assert update.policy_delay == 3 and update.steps_per_call == 1  # read from hyperparameters.json
    for i in range(6):
        update(i)
    # A fresh batch per update (draw 1 was main()'s own), the actor on updates 3 and 6, as n_updates % 3 == 0.
    assert module.CALLS == [
        ("model", 2, False),
        ("model", 3, False),
        ("model", 4, True),
        ("model", 5, False),
        ("model", 6, False),
        ("model", 7, True),
    ]


@pytest.mark.parametrize(
    "source, train, message",
    [
        (
            FAKE_SCRIPT.replace("def train_step(", "def update_networks("),
            GOOD_CALL.replace("train_step(", "update_networks("),
            "missing: fake_script.py has no module-level function train_step (the benchmark times it)",
        ),
        (
            FAKE_SCRIPT.replace("(model, batch, update_actor, args)", "(model, minibatch, update_actor, args)"),
            GOOD_CALL,
            "missing: fake_script.py's train_step takes no argument named batch (drawn by Buffer.sample)",
        ),
        (
            FAKE_SCRIPT,
            GOOD_CALL.replace("rb.sample(args.batch_size)", "dict(rb.sample(args.batch_size))"),  # a copy
            "missing: fake_script.py's train_step got a batch not drawn by Buffer.sample just before",
        ),
        (
            FAKE_SCRIPT,
            "pass",
            "missing: fake_script.py's main() finished without calling train_step (the benchmark times it)",
        ),
        (
            FAKE_SCRIPT,
            "raise SystemExit('--batch-size must be positive.')",
            "failed: fake_script.py's main() stopped before train_step: SystemExit: --batch-size must be positive.",
        ),
        (
            FAKE_SCRIPT.replace("class Args:", "class Options:").replace("(args):", "(args: 'Options'):"),
            GOOD_CALL,
            "missing: fake_script.py has no dataclass Args (the benchmark builds one with its settings)",
        ),
    ],
    ids=["no-train_step", "batch-renamed", "batch-not-sampled", "never-called", "main-fails", "no-Args"],
)
def test_a_fork_that_breaks_the_contract_gets_a_sentence_naming_what_is_missing(tmp_path, source, train, message):
    module = load_fake(tmp_path, source=source, train=train)
    original_sample = module.Buffer.sample
    with pytest.raises(sps.ContractError) as error:
        sps.build_update(module, {"runs_dir": str(tmp_path)})
    assert str(error.value) == message
    assert module.Buffer.sample is original_sample
    if hasattr(module, "train_step"):
        assert module.train_step.__name__ == "train_step"  # the stand-in is gone


def test_prepare_reports_the_contract_message_as_the_row_note(tmp_path, monkeypatch):
    load_fake(tmp_path, name="forked_script", source=FAKE_SCRIPT.replace("def train_step(", "def learn("))
    monkeypatch.setattr(sps, "REPO_ROOT", str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    update, note = sps.prepare("forked_script", {"runs_dir": str(tmp_path)}, frozenset(), quick=True)
    assert update is None
    assert note == "missing: forked_script.py has no module-level function train_step (the benchmark times it)"
    sys.modules.pop("forked_script", None)


def test_on_policy_steps_per_call_by_hand():
    # PPO as SB3: a 512-step rollout, 20 epochs of 512 / 64 = 8 minibatch steps: 160 calls, 3.2 env steps each.
    settings = {"n_steps": 512, "n_envs": 1, "n_epochs": 20, "batch_size": 64}
    assert sps.on_policy_steps_per_call(settings)[0] == pytest.approx(3.2)
    # 2 envs x 100 steps in batches of 64: ceil(200 / 64) = 4 minibatches (the last one short), 3 epochs.
    settings = {"n_steps": 100, "n_envs": 2, "n_epochs": 3, "batch_size": 64}
    assert sps.on_policy_steps_per_call(settings) == (
        200 / 12,
        "one call = one minibatch step; a 200-step rollout takes 12 calls",
    )
    assert sps.on_policy_steps_per_call({"n_steps": 256}) == (256.0, "one call = one update on a 256-step rollout")
    assert sps.on_policy_steps_per_call({})[0] == 1.0


def test_on_policy_script_is_timed_per_env_step(tmp_path):
    # No buffer class: the same arguments every call, and SPS scaled by the env steps one call stands for.
    source = FAKE_SCRIPT.replace("    def sample(self, batch_size):", "    def minibatch(self, batch_size):")
    source = source.replace("policy_delay: int = 3", "n_steps: int = 64\n    n_epochs: int = 2")
    module = load_fake(tmp_path, source=source, train='train_step("model", rb.minibatch(16), False, args)')
    update, note = sps.build_update(module, {"runs_dir": str(tmp_path), "batch_size": 16})
    assert note == "one call = one minibatch step; a 64-step rollout takes 8 calls"
    assert update.steps_per_call == 8.0 and update.batch_source is None
    update(0)
    update(1)
    assert module.CALLS == [("model", 1, False), ("model", 1, True)]  # update_actor alternates (default delay 2)
    with open(os.path.join(str(tmp_path), "run", "hyperparameters.json")) as f:
        assert json.load(f)["n_epochs"] == 2


def test_sps_counts_env_steps_not_calls():
    class SleepingUpdate:  # 10 ms per call, each call standing for 10 env steps: about 1000 env steps per second
        steps_per_call = 10.0

        def __call__(self, i):
            time.sleep(0.01)

    rate, next_index = sps.time_updates(SleepingUpdate(), start=5, seconds=0.2, device="cpu")
    assert 300 < rate < 1000 and next_index > 5 + 5
