"""benchmarks/reproduce.py's figures: the tolerance interval of the curves' bands against a hand computation
from its definition, and each experiment (table1's curves, fig2, fig5) end to end at a tiny budget."""

import csv
import importlib.util
import math
import os

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("reproduce", os.path.join(REPO_ROOT, "benchmarks", "reproduce.py"))
reproduce = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reproduce)


def read_rows(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


# --- tolerance interval ----------------------------------------------------------------------------------


def binomial_cdf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def test_tolerance_interval_of_five_runs_is_their_range():
    # By hand: P(Binomial(5, 0.7) <= 4) = 1 - 0.7^5 = 0.83193 < 0.95, so k = 5 and no run is left outside.
    assert 1 - 0.7**5 == pytest.approx(0.83193, abs=1e-5)
    assert reproduce.binomial_quantile(0.95, 5, 0.7) == 5
    values = np.array([[3.0, 10.0], [1.0, 50.0], [4.0, 20.0], [1.5, 40.0], [9.0, 30.0]])
    lower, upper = reproduce.tolerance_interval(values, alpha=0.05, beta=0.7)
    assert lower.tolist() == [1.0, 10.0] and upper.tolist() == [9.0, 50.0]


def test_tolerance_interval_of_twenty_runs_leaves_one_run_out_on_each_side():
    # By hand: P(Binomial(20, 0.7) <= 16) = 0.8929 < 0.95 <= P(Binomial(20, 0.7) <= 17) = 0.9645, so k = 17:
    # 20 - 17 = 3 runs outside, 3 // 2 = 1 below and 1 above: the 2nd smallest and the 2nd largest run.
    assert binomial_cdf(16, 20, 0.7) == pytest.approx(0.8929, abs=1e-4)
    assert binomial_cdf(17, 20, 0.7) == pytest.approx(0.9645, abs=1e-4)
    assert reproduce.binomial_quantile(0.95, 20, 0.7) == 17
    runs = np.random.default_rng(0).permutation(20).astype(float)
    values = np.stack([runs, 100 - 2 * runs], axis=1)  # two steps, different orders
    lower, upper = reproduce.tolerance_interval(values, alpha=0.05, beta=0.7)
    assert lower.tolist() == [1.0, 100 - 2 * 18.0] and upper.tolist() == [18.0, 100 - 2 * 1.0]
    # Its actual confidence, by simulation: for a uniform population the coverage of the 2nd smallest to the 2nd
    # largest of 20 runs is Beta(17, 4), and P(Beta(17, 4) >= 0.7) = P(Binomial(20, 0.7) <= 16) = 0.893: the
    # library's rule is one order statistic short of the 0.95 its alpha asks for (we follow it, as the paper did).
    samples = np.random.default_rng(1).random((20, 20_000))
    lower, upper = reproduce.tolerance_interval(samples, alpha=0.05, beta=0.7)
    assert np.mean(upper - lower >= 0.7) == pytest.approx(binomial_cdf(16, 20, 0.7), abs=0.01)
