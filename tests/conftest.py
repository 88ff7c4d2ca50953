"""Helpers shared by the test files: one torch thread, the scripts as subprocesses, a run's logged scalars."""

import os
import subprocess
import sys

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


@pytest.fixture(autouse=True)
def one_thread():
    """Small nets run fastest on one intra-op thread, which also keeps a shared, busy CPU from oversubscription."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_script(script: str, *flags: str, env: dict = ENV, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a top-level script as a user would, from the repository root; stdout and stderr captured as text."""
    command = [sys.executable, os.path.join(ROOT, script), *map(str, flags)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def scalars(run_dir: str) -> dict:
    """Every scalar of a run as {tag: [(step, value), ...]}, as TensorBoard shows it (purged steps dropped)."""
    accumulator = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def logged_the_same(run_dir: str, reference_dir: str) -> None:
    """Two runs logged the same scalars at the same steps (wall-clock speed aside)."""
    run, reference = scalars(run_dir), scalars(reference_dir)
    run.pop("charts/SPS", None)
    reference.pop("charts/SPS", None)
    assert run.keys() == reference.keys()
    for tag in reference:
        assert run[tag] == reference[tag], tag
