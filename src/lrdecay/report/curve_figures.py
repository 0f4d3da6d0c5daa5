"""The learning-curve figures: validation accuracy and validation loss per epoch, one panel per
strategy (and one for the modern baselines), with a zoom on the top of the accuracy range.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from lrdecay.report.figure_common import (
    BAND,
    MODERN_PANEL,
    Style,
    budget,
    epoch_axis,
    legend_below,
    mean_curve,
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


def _style_handle(style: Style) -> Line2D:
    """A legend entry drawn exactly as the setting's curves are."""
    return Line2D([], [], color=style.color, linestyle=style.line, marker=style.marker, lw=1.8)


def _sequence_legend(fig: plt.Figure, rows: Sequence[SettingSummary], st: dict[str, Style]) -> None:
    """One entry per sequence, baseline and other setting, below the panels (panels name the
    strategy)."""
    handles: dict[str, Line2D] = {}
    for s in sorted(rows, key=lambda s: (s.group == "Benchmark", s.group == "Other", s.label)):
        key = s.label if s.group.startswith("By ") else st[s.setting].label
        handles.setdefault(key, _style_handle(st[s.setting]))
    legend_below(
        fig,
        fig.axes,
        list(handles.values()),
        list(handles),
        ncol=max(1, min(len(handles), 8)),
        fontsize=11,
        handlelength=3.5,
    )


def _panel_rows(rows: Sequence[SettingSummary], strategy: str) -> list[SettingSummary]:
    """The settings drawn in a strategy's panel: its sequences, other settings, then baselines;
    the modern panel's: the modern baselines, then the study's SGD and Adam."""
    if strategy == MODERN_PANEL[0]:
        own = [s for s in rows if s.group == MODERN_GROUP]
    else:
        own = [
            s
            for s in rows
            if s.group not in ("Benchmark", MODERN_GROUP) and s.runs[0].strategy == strategy
        ]
    return own + [s for s in rows if s.group == "Benchmark"]


def zoom_range(rows: Sequence[SettingSummary], key: str) -> tuple[float, float] | None:
    """The top of a metric's range where the decay schemes among ``rows`` end: from a little
    below their lowest final seed-mean to the highest value any band reaches."""
    finals, tops = [], []
    for s in rows:
        curve = mean_curve(s, key)
        if curve is None:
            continue
        tops.append(float(np.fmax(curve[1], curve[3]).max()))  # a bound where there is one
        if s.group != "Benchmark":
            finals.append(float(curve[1][-1]))
    if not finals:
        return None
    lo, hi = min(finals), max(tops)
    pad = max(0.25 * (hi - lo), 0.002)
    return lo - pad, hi + 0.2 * pad


def _draw_panel(
    ax: Axes, rows: Sequence[SettingSummary], strategy: str, key: str, st: dict[str, Style]
) -> None:
    """One strategy's sequences and the baselines; says so when the strategy has no runs."""
    chosen = _panel_rows(rows, strategy)
    drawn = [plot_mean(ax, s, key, st[s.setting], st[s.setting].label) for s in chosen]
    if not any(s.group != "Benchmark" for s, d in zip(chosen, drawn, strict=True) if d):
        ax.text(0.5, 0.5, f"no {strategy} runs", transform=ax.transAxes, ha="center", color="0.4")


def plot_curves(
    rows: Sequence[SettingSummary],
    key: str,
    ylabel: str,
    title: str,
    path: Path,
    log_y: bool = False,
    zoom: bool = False,
) -> Path:
    """Write :func:`curves_figure` to ``path``."""
    return save_figure(curves_figure(rows, key, ylabel, title, log_y, zoom), path)


def curves_figure(
    rows: Sequence[SettingSummary],
    key: str,
    ylabel: str,
    title: str,
    log_y: bool = False,
    zoom: bool = False,
) -> plt.Figure:
    """One panel per strategy: its sequences and both baselines, ``key`` against epoch; with
    ``zoom``, a second row showing only the top of the range, where the settings differ. The
    modern baselines raced with the study get a fourth panel, with the study's baselines too."""
    st = styles(rows)
    shown = panels(rows)
    # one zoom window for every panel (the union of theirs), so zoomed panels compare too
    found = [w for w in (zoom_range(_panel_rows(rows, s), key) for s, _ in shown) if w]
    window = (min(w[0] for w in found), max(w[1] for w in found)) if found else None
    n_rows = 2 if zoom and window else 1
    fig, axes = plt.subplots(
        n_rows, len(shown), figsize=(5 * len(shown), 4.6 * n_rows), squeeze=False
    )
    last = budget(rows)
    for r, row_axes in enumerate(axes):
        for i, (ax, (strategy, name)) in enumerate(zip(row_axes, shown, strict=True)):
            if i:  # each row compares its panels on one scale, the zoomed row included
                ax.sharey(row_axes[0])
            _draw_panel(ax, rows, strategy, key, st)
            ax.set_title(name if r == 0 else f"{name}: top of the range", fontsize=13)
            epoch_axis(ax, last)
            ax.grid(alpha=0.3)
            if log_y:
                plain_log_ticks(ax)
            if r == 1 and window:
                ax.set_ylim(*window)
        row_axes[0].set_ylabel(ylabel + (" (zoom)" if r else ""), fontsize=11)
    fig.suptitle(f"{title} (mean over seeds; {BAND})", fontsize=14)
    fig.tight_layout()
    _sequence_legend(fig, rows, st)  # below the panels, whatever its number of lines
    return fig
