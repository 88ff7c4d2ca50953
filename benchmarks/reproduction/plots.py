"""What every figure shares: the mean over seeds with the paper's band (Figure 4: a tolerance interval with alpha =
0.05 and beta = 0.7, Patterson et al., 2023), a CSV of every plotted number, and a caption under the axes."""

import csv
import textwrap
from typing import Optional

import numpy as np

from .stats import tolerance_interval

BAND_TEXT = "band: tolerance interval, alpha = 0.05, beta = 0.7 (Patterson et al., 2023; min-max of the runs up to 13)"


def align(series: list) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values: runs x steps) of (run id, steps, values) runs: their common steps, else the union of steps
    with each run interpolated there."""
    steps = sorted(set.intersection(*(set(s.tolist()) for _, s, _ in series)))
    if not steps:  # evaluations at different steps: put every run on the union of steps
        steps = sorted(set.union(*(set(s.tolist()) for _, s, _ in series)))
    values = np.array([np.interp(steps, s, v) for _, s, v in series])
    return np.array(steps), values


def plot_band(ax, steps: np.ndarray, values: np.ndarray, label: str, color: Optional[str] = None) -> None:
    """The mean over runs, and the tolerance interval as a band."""
    lower, upper = tolerance_interval(values)
    (line,) = ax.plot(steps, values.mean(0), label=f"{label} (n={len(values)})", color=color)
    ax.fill_between(steps, lower, upper, alpha=0.25, color=line.get_color())


def band_rows(task: str, panel: str, curve: str, steps: np.ndarray, values: np.ndarray) -> list[dict]:
    """The plotted numbers of one curve: one row per step with its mean and tolerance interval."""
    lower, upper = tolerance_interval(values)
    mean = values.mean(0)
    return [
        {
            "task": task,
            "panel": panel,
            "curve": curve,
            "n_runs": len(values),
            "step": int(step),
            "mean": float(mean[i]),
            "lower": float(lower[i]),
            "upper": float(upper[i]),
        }
        for i, step in enumerate(steps)
    ]


def caption_figure(fig, caption: str, fontsize: float, least_room: float) -> None:
    """Write the caption under the axes, wrapped to the figure's width, and lay the axes out above it: at least
    `least_room` of the height below them, more if the caption needs it (a character about 0.53 of the font
    size wide, a line 1.3 of it high)."""
    fig.text(0.01, 0.01, caption, fontsize=fontsize, wrap=True)
    characters_per_line = int(0.98 * fig.get_figwidth() * 72 / (0.53 * fontsize))
    lines = len(textwrap.wrap(caption, characters_per_line))
    room = (lines * 1.3 * fontsize + 0.01 * fig.get_figheight() * 72 + 4) / 72 / fig.get_figheight()
    fig.tight_layout(rect=(0, max(least_room, room), 1, 1))


def write_rows(path: str, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["task"])
        writer.writeheader()
        writer.writerows(rows)
