"""The accuracy-vs-convergence scatter: every setting's score against its convergence epoch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from lrdecay.report.figure_common import STRATEGY_MARKERS, budget, save_figure, styles
from lrdecay.report.stats import (
    MODERN_GROUP,
    Censored,
    SettingSummary,
    required,
    scored_by,
)

#: Horizontal offset between the sequences of one strategy in the scatter, in epochs, so that
#: settings with identical results (a rate that never moved) do not hide one another.
DODGE = 0.15
#: How the scatter's bars are drawn: the accuracy bar on each marker and the seeds' epoch bar.
SCATTER_BAR: dict[str, Any] = {"capsize": 3, "elinewidth": 1, "alpha": 0.9}


def plot_scatter(rows: Sequence[SettingSummary], path: Path) -> Path:
    """Write :func:`scatter_figure` to ``path``."""
    return save_figure(scatter_figure(rows), path)


def scatter_figure(rows: Sequence[SettingSummary]) -> plt.Figure:
    """Mean scoring accuracy (final validation, or test when held out) with its 95 % interval
    against median convergence epoch with the seeds' lowest to highest epoch; a setting whose
    median was not reached sits at the budget as a hollow marker. The epoch axis spans the
    points and bars drawn, with a margin, not the whole budget."""
    st = styles(rows)
    fig, ax = plt.subplots(figsize=(11, 6.5))
    shown = [s for s in rows if s.scored is not None and s.convergence is not None]
    last = budget(rows)
    xs: list[float] = []
    for s in shown:
        style, conv, acc = st[s.setting], required_censored(s), required(s.scored)
        x = conv.median if conv.median is not None else float(last)
        x += (s.order - 1.5) * DODGE if s.group.startswith("By ") else 0.0
        xs += [x, conv.lo, conv.horizon]
        if conv.horizon > conv.lo:  # the seeds' epochs, where they are: not moved by the dodge
            half = (conv.horizon - conv.lo) / 2
            ax.errorbar(
                conv.lo + half, acc.mean, xerr=half, fmt="none", ecolor=style.color, **SCATTER_BAR
            )
        ax.errorbar(
            x,
            acc.mean,
            yerr=None if acc.half is None else acc.half,
            fmt=style.marker if s.group == MODERN_GROUP else STRATEGY_MARKERS.get(s.strategy, "P"),
            color=style.color,
            markerfacecolor=style.color if conv.median is not None else "none",
            markersize=8,
            label=f"{s.setting} ({conv.k}/{conv.n} converged)",
            **SCATTER_BAR,
        )
    ax.set_xlim(*epoch_span(xs))
    ax.legend(
        fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title="setting"
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel(
        "convergence epoch (Kaplan–Meier median over seeds; hollow: not reached, "
        f"at the budget {last})",
        fontsize=11,
    )
    held_out = scored_by(rows) == "test_acc"
    ax.set_ylabel(
        f"{'test' if held_out else 'final validation'} accuracy (mean over seeds)", fontsize=11
    )
    ax.set_title(
        "Accuracy vs convergence speed per setting (bars: the accuracy's 95 % interval, the "
        "seeds' epochs)",
        fontsize=13,
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def epoch_span(xs: Sequence[float]) -> tuple[float, float]:
    """An epoch axis that fits ``xs`` with a margin (half an epoch, or 4% of their span)."""
    if not xs:
        return 0.5, 1.5
    pad = max(0.5, 0.04 * (max(xs) - min(xs)))
    return max(0.0, min(xs) - pad), max(xs) + pad


def required_censored(row: SettingSummary) -> Censored:
    """The convergence of a row the caller kept for having one."""
    if row.convergence is None:
        raise ValueError("convergence missing for a setting expected to have it")
    return row.convergence
