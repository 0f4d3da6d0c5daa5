"""The realised-rate figure: the learning rate each run used per epoch, ▼ where a rarely moving
rate moved, arrows where a rate leaves the axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from lrdecay.core.strategies import FIXED_STRATEGY
from lrdecay.report.claims import RARELY
from lrdecay.report.figure_common import (
    MODERN_PANEL,
    Style,
    budget,
    epoch_axis,
    legend_below,
    panels,
    plain_log_ticks,
    save_figure,
    styles,
)
from lrdecay.report.runs import rate_change_epochs
from lrdecay.report.stats import (
    MODERN_GROUP,
    SettingSummary,
)

#: Opacity of the realised-rate lines and their ▼ markers.
RATE_ALPHA = 0.8
#: The realised-rate figure shows this many decades below the highest rate of the arms whose
#: rate moves (r0/1000 from r0); a rate outside is marked by an arrow at the edge and named.
RATE_DECADES = 3
#: Arrows of settings that leave the rate axis at one epoch sit this many epochs apart, in
#: this many slots.
ARROW_SHIFT = 0.4
ARROW_SLOTS = 4


def plot_rates(rows: Sequence[SettingSummary], path: Path) -> Path:
    """Write :func:`rates_figure` to ``path``."""
    return save_figure(rates_figure(rows), path)


def rates_figure(rows: Sequence[SettingSummary]) -> plt.Figure:
    """The learning rate each run actually used per epoch, ▼ where a rarely moving rate moved.

    The panels share one rate axis, from the highest rate of the arms whose rate moves down
    :data:`RATE_DECADES` decades: a rate beyond it (plateau's last cuts, an optimizer's own
    step-size multiplier) is marked by an arrow at the edge and named in the legend."""
    st = styles(rows)
    shown = [*panels(rows), (FIXED_STRATEGY, "Benchmark and other")]
    fig, axes = plt.subplots(1, len(shown), figsize=(4.5 * len(shown), 5.4), sharey=True)
    last = budget(rows)
    window = rate_window(rows)
    for ax, (strategy, name) in zip(axes, shown, strict=True):
        if strategy == FIXED_STRATEGY:
            chosen = [s for s in rows if s.group in ("Benchmark", "Other")]
        elif strategy == MODERN_PANEL[0]:
            chosen = [s for s in rows if s.group == MODERN_GROUP]
        else:
            chosen = [
                s
                for s in rows
                if s.group not in ("Benchmark", "Other", MODERN_GROUP) and s.strategy == strategy
            ]
        for s in chosen:
            _plot_rate_runs(ax, s, st[s.setting], window)
        ax.set_title(name, fontsize=13)
        epoch_axis(ax, last)
        if window is not None:  # a log axis without data has no range to draw
            plain_log_ticks(ax)
            ax.set_ylim(*window)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("learning rate used in the epoch", fontsize=11)
    fig.suptitle("Realised learning rate per run (rate moves per seed)", fontsize=14)
    fig.tight_layout()
    for ax in axes:
        handles, labels = ax.get_legend_handles_labels()
        if labels:
            legend_below(fig, [ax], handles, labels, fontsize=8)
    return fig


def rate_window(rows: Sequence[SettingSummary]) -> tuple[float, float] | None:
    """The rate axis (low, high), with a little room: from the highest rate of the arms whose
    rate moves (of every arm if none moves) down to the lowest rate drawn, but no more than
    :data:`RATE_DECADES` decades; None when no rate was logged."""
    rates = {s.setting: [v for r in s.ok_runs for v in r.series("lr")[1] if v > 0] for s in rows}
    moving = [v for s in rows if not _fixed_rate(s) for v in rates[s.setting]]
    drawn = [v for vs in rates.values() for v in vs]
    if not drawn:
        return None
    top = max(moving or drawn)
    low = min(v for v in drawn if top / 10**RATE_DECADES <= v <= top)
    return low / 1.4, top * 1.4


def _fixed_rate(row: SettingSummary) -> bool:
    """Whether no run of ``row`` ever moved its rate (a fixed-rate arm, or a still strategy)."""
    return not any(r.rate_moves() for r in row.ok_runs)


def _moves_text(counts: Sequence[int]) -> str:
    """The rate moves of a setting's seeds: ``49 moves each``, or their range and mean."""
    if len(set(counts)) == 1:
        return f"{counts[0]} moves" + (" each" if len(counts) > 1 else "")
    return f"{min(counts)}–{max(counts)} moves (mean {np.mean(counts):.1f})"


def _plot_rate_runs(
    ax: Axes, s: SettingSummary, style: Style, window: tuple[float, float] | None
) -> None:
    """Each run's rate per epoch as steps, ▼ where a rarely moving rate moved (a rate that
    moves nearly every epoch would draw a band of them); one legend entry with the moves and,
    for a rate beyond ``window``, an arrow at the edge and where it went."""
    counts, beyond, marked = [], [], False
    for run in s.ok_runs:
        epochs, lrs = run.series("lr")
        if not epochs:
            continue
        moved = rate_change_epochs(epochs, lrs)
        counts.append(len(moved))
        ax.plot(
            epochs,
            lrs,
            color=style.color,
            linestyle=style.line,
            linewidth=1.6,
            alpha=RATE_ALPHA,
            drawstyle="steps-mid",
        )
        if moved and len(moved) <= RARELY * (len(epochs) - 1):
            ys = [lrs[epochs.index(e)] for e in moved]
            ax.plot(moved, ys, "v", color=style.color, markersize=6, alpha=RATE_ALPHA)
            marked = True
        if window is not None:
            beyond.extend(_off_axis(epochs, lrs, window))
    if not counts:
        return
    note = _mark_off_axis(ax, beyond, window, style) if window is not None else ""
    still = " (never moved)" if s.never_moved else ""
    moves = "" if s.strategy == FIXED_STRATEGY else f": {_moves_text(counts)}{still}"
    ax.plot(
        [],
        [],
        color=style.color,
        linestyle=style.line,
        marker="v" if marked else "",
        label=f"{style.label}{moves}{note}",
    )


def _off_axis(
    epochs: Sequence[int], lrs: Sequence[float], window: tuple[float, float]
) -> list[tuple[int, float, bool]]:
    """(first epoch beyond the window, the farthest rate there, above?) of one run's rates."""
    out = []
    for above in (False, True):
        outside = [
            (e, v)
            for e, v in zip(epochs, lrs, strict=True)
            if (v > window[1] if above else v < window[0])
        ]
        if outside:
            far = max(v for _, v in outside) if above else min(v for _, v in outside)
            out.append((outside[0][0], far, above))
    return out


def _mark_off_axis(
    ax: Axes,
    beyond: Sequence[tuple[int, float, bool]],
    window: tuple[float, float],
    style: Style,
) -> str:
    """Arrows at the edge where a setting's rates leave the axis (shifted a little by the
    setting's phase, so that the arrows of settings leaving at one epoch stay apart); the
    legend's note on them."""
    notes = []
    for above in (False, True):
        mine = [(e, v) for e, v, up in beyond if up is above]
        if not mine:
            continue
        first = min(e for e, _ in mine)
        far = max(v for _, v in mine) if above else min(v for _, v in mine)
        edge = window[1] if above else window[0]
        x = first + ARROW_SHIFT * (style.phase % ARROW_SLOTS)
        ax.annotate(
            "",
            xy=(x, edge),
            xytext=(x, edge / 3 if above else edge * 3),
            arrowprops={"arrowstyle": "-|>", "color": style.color, "lw": 1.5},
            annotation_clip=False,
        )
        where = "above" if above else "below"
        since = "" if first <= 1 else f" from epoch {first}"
        notes.append(f"{where} the axis{since}, to {far:g}")
    return f" ({'; '.join(notes)})" if notes else ""


#: The column that picks each strategy's best setting: mean final validation accuracy (the
#: table's "Final accuracy"), so that the test split, which scores the settings, never chooses.
