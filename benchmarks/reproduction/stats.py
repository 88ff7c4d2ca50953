"""The statistics of the summaries: Welch's t-test (paper §4.3: Gamid against TD3), the band of every curve (the
paper's Figure 4: a tolerance interval with alpha = 0.05 and beta = 0.7, Patterson et al., 2023), and moving
averages (Figure 2's 100k-step window at 1M steps)."""

import math

import numpy as np

TOLERANCE_ALPHA, TOLERANCE_BETA = 0.05, 0.7  # the paper's Figure 4 caption
SMOOTHING_AT_FULL_BUDGET = 100_000  # Figure 2's moving window at 1M steps


def welch_t_test(a, b) -> tuple[float, float, float]:
    """Welch's unequal-variance t-test (scipy.stats.ttest_ind, equal_var=False): (t, degrees of freedom,
    two-sided p). NaN when a group has fewer than 2 values or both have no variance."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2 or a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b) == 0:
        return (math.nan,) * 3
    from scipy import stats  # imported here: the harness starts runs without it

    result = stats.ttest_ind(a, b, equal_var=False)
    return float(result.statistic), float(result.df), float(result.pvalue)


def binomial_quantile(q: float, n: int, p: float) -> int:
    """The smallest k with P(Binomial(n, p) <= k) >= q (scipy.stats.binom.ppf)."""
    from scipy import stats

    return int(stats.binom.ppf(q, n, p))


def tolerance_interval(values: np.ndarray, alpha: float = TOLERANCE_ALPHA, beta: float = TOLERANCE_BETA):
    """Nonparametric tolerance interval of each column of `values` (runs x steps): (lower, upper) rows.

    The construction of Patterson et al. (2023), "Empirical Design in Reinforcement Learning", in their library
    (github.com/rlai-lab/rl-evaluation, rlevaluation/statistics.py, tolerance_interval_curve): of the n sorted
    runs, n - k are left outside the interval, k the (1 - alpha) quantile of Binomial(n, beta); half of them
    (rounded down) below it and as many above. With the paper's alpha = 0.05 and beta = 0.7 and five runs,
    k = 5 (P(Binomial(5, 0.7) <= 4) = 1 - 0.7^5 = 0.83 < 0.95): the interval is the runs' minimum and maximum.
    Beware: its confidence of covering beta is P(Binomial(n, beta) <= k - 1), not 1 - alpha (the coverage of
    the r-th to the s-th order statistic is Beta(s - r, n - s + r + 1)): 0.47 for five runs, 0.89 for 20.
    """
    values = np.sort(np.asarray(values, dtype=float), axis=0)
    n = len(values)
    outside = n - binomial_quantile(1 - alpha, n, beta)
    return values[outside // 2], values[n - 1 - outside // 2]


def mean_and_std(values: list, number: str) -> str:
    """ "mean ± sample std (ddof = 1)" of the values in the given format; the value alone if one; "–" if none."""
    if len(values) < 2:
        return number.format(values[0]) if values else "–"
    return f"{number.format(np.mean(values))} ± {number.format(np.std(values, ddof=1))}"


def trailing_mean(steps: np.ndarray, values: np.ndarray, window: int, end: int) -> float:
    """The mean of the values logged in the window (end - window, end]."""
    return float(values[(steps > end - window) & (steps <= end)].mean())


def moving_average(steps: np.ndarray, values: np.ndarray, window: int) -> np.ndarray:
    """At each logged step, the mean of the values logged in the trailing window (step - window, step]."""
    return np.array([trailing_mean(steps, values, window, step) for step in steps])


def smoothing_window(budget: int) -> int:
    """Figure 2's 100k-step window at 1M steps, scaled with the budget (10% of it)."""
    return max(1, round(SMOOTHING_AT_FULL_BUDGET * budget / 1_000_000))
