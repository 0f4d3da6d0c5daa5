"""The best-setting figure: the best setting of each strategy, chosen on the validation split,
against the fixed-rate baselines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt

from lrdecay.report.figure_common import (
    BAND,
    STRATEGY_LINES,
    STRATEGY_MARKERS,
    STRATEGY_PANELS,
    Style,
    budget,
    epoch_axis,
    legend_below,
    panels,
    plain_log_ticks,
    plot_mean,
    save_figure,
    styles,
)
from lrdecay.report.stats import (
    MODERN_GROUP,
    SettingSummary,
)
from lrdecay.report.tables import ACC_DIGITS

#: The column that picks each strategy's best setting: mean final validation accuracy (the
#: table's "Final accuracy"), so that the test split, which scores the settings, never chooses.
CHOSEN_BY = "final_acc"


def best_per_strategy(rows: Sequence[SettingSummary]) -> list[SettingSummary]:
    """The setting with the highest mean final validation accuracy (:data:`CHOSEN_BY`) in each
    strategy group, and among the modern baselines when they ran: chosen on the validation
    split, never on the test split that scores them."""
    best = []
    for _, name in panels(rows):
        group = [s for s in rows if s.group == name and getattr(s, CHOSEN_BY) is not None]
        if group:
            best.append(max(group, key=lambda s: s.mean(CHOSEN_BY)))
    return best


def _by_strategy(style: Style, row: SettingSummary) -> Style:
    """``style`` with the line and marker of the row's strategy: tells apart the same sequence
    under two strategies when they share a figure."""
    if row.group == MODERN_GROUP or row.strategy not in STRATEGY_LINES:
        return style
    return replace(style, line=STRATEGY_LINES[row.strategy], marker=STRATEGY_MARKERS[row.strategy])


def best_label(row: SettingSummary, style: Style) -> str:
    """A best-vs-baselines legend entry: the setting and its table cells, mean final
    validation accuracy and, when the test split scores, mean test accuracy."""
    parts = []
    if row.final_acc is not None:
        parts.append(f"final val {row.final_acc.mean:.{ACC_DIGITS}f}")
    if row.scored_by == "test_acc" and row.test_acc is not None:
        parts.append(f"test {row.test_acc.mean:.{ACC_DIGITS}f}")
    return style.label + (f" ({', '.join(parts)})" if parts else "")


def plot_best(rows: Sequence[SettingSummary], path: Path) -> Path:
    """Write :func:`best_figure` to ``path``."""
    return save_figure(best_figure(rows), path)


def best_figure(rows: Sequence[SettingSummary]) -> plt.Figure:
    """The best setting of each strategy (chosen on validation accuracy) against the
    baselines: validation accuracy and loss per epoch."""
    st = styles(rows)
    chosen = best_per_strategy(rows) + [s for s in rows if s.group == "Benchmark"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, (key, ylabel) in zip(
        axes, (("val_acc", "validation accuracy"), ("val_loss", "validation loss")), strict=True
    ):
        for i, s in enumerate(chosen):
            style = replace(_by_strategy(st[s.setting], s), phase=i)
            plot_mean(ax, s, key, style, best_label(s, st[s.setting]))
        epoch_axis(ax, budget(rows))
        ax.set_ylabel(ylabel, fontsize=11)
        ax.grid(alpha=0.3)
    plain_log_ticks(axes[1])
    modern = " and of the modern baselines" if len(panels(rows)) > len(STRATEGY_PANELS) else ""
    fig.suptitle(
        f"Best setting of each strategy{modern} by final validation accuracy, vs the baselines "
        f"(mean over seeds; {BAND})",
        fontsize=13,
    )
    fig.tight_layout()
    handles, labels = axes[0].get_legend_handles_labels()
    legend_below(fig, axes, handles, labels, ncol=max(1, min(3, len(labels))), fontsize=9)
    return fig
