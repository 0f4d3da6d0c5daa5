"""The report's figures: learning curves, realised rates, best settings, accuracy vs speed.

Every figure uses one colour, line style and marker per sequence (seq1..seq4) and per baseline
(SGD, Adam), so the four sequences of a strategy panel stay apart even where their curves
coincide; the accuracy-vs-speed scatter marks the strategy by marker. Curves are means over seeds
with a band from the lowest to the highest seed; diverged runs are left out. Axes stop at the
data's range and the epoch budget, and legends sit outside the plotting area. The modern
baselines raced with the study (PyTorch schedulers, schedule-free and learning-rate-free
optimizers) get a panel of their own, drawn dashed with stars.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import cycle
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: reports are written on headless machines and in callbacks
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator

from lrdecay.core.strategies import FIXED_STRATEGY
from lrdecay.palette import (
    BASELINE_ADAM,
    BASELINE_COLORS,
    BASELINE_SGD,
    CONTROL_SGD_R0,
    MODERN_COLORS,
    SEQUENCE_COLORS,
    modern_arm,
)
from lrdecay.report.stats import (
    MODERN_GROUP,
    SEQUENCES,
    STRATEGY_GROUP,
    Censored,
    SettingSummary,
    rate_change_epochs,
    required,
    scored_by,
)

OTHER_COLORS = ("#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
#: One line style and marker per sequence of the study's grid, in its order (seq1..seq4).
SEQUENCE_LINES = dict(zip(SEQUENCES, cycle(("-", "--", "-.", (0, (5, 1, 1, 1, 1, 1))))))
SEQUENCE_MARKERS = dict(zip(SEQUENCES, cycle("os^v")))
BASELINE_MARKERS = {BASELINE_SGD: "D", CONTROL_SGD_R0: "h", BASELINE_ADAM: "X"}
#: Both baselines at 0.001 dotted, Adam's dots in the gaps of SGD's: where their curves coincide
#: (one fixed rate, one accuracy), both still show. The control at r0 dash-dotted.
BASELINE_LINES = {
    BASELINE_SGD: (0, (1, 1.5)),
    CONTROL_SGD_R0: (0, (3, 1.5, 1, 1.5)),
    BASELINE_ADAM: (1.25, (1, 1.5)),
}
#: One line style and marker per strategy of the grid (epoch, cutoff, oscillate); fixed: "D".
STRATEGY_LINES = dict(zip(STRATEGY_GROUP, cycle(("-", "--", "-."))))
STRATEGY_MARKERS = {**dict(zip(STRATEGY_GROUP, cycle("os^"))), FIXED_STRATEGY: "D"}
#: About this many markers per curve, so curves stay readable at any epoch count; curves of one
#: panel put theirs on different epochs, so coinciding curves still show every marker.
MARKERS_PER_CURVE = 10
#: Horizontal offset between the sequences of one strategy in the scatter, in epochs, so that
#: settings with identical results (a rate that never moved) do not hide one another.
DODGE = 0.15
#: How the scatter's bars are drawn: the accuracy bar on each marker and the seeds' epoch bar.
SCATTER_BAR = {"capsize": 3, "elinewidth": 1, "alpha": 0.9}
#: Opacity of the realised-rate lines and their ▼ markers.
RATE_ALPHA = 0.8
#: One panel per strategy of the grid: (strategy, its row group's name).
STRATEGY_PANELS = tuple(STRATEGY_GROUP.items())
#: The panel of the modern baselines raced with the study, shown when they ran; their style.
MODERN_PANEL = ("modern", MODERN_GROUP)
MODERN_LINE = (0, (4, 1.5))
MODERN_MARKER = "*"
BAND = "band: lowest to highest seed"
DPI = 110


@dataclass(frozen=True)
class Figure:
    """A written figure and the caption report.md shows under it."""

    path: Path
    title: str
    caption: str


@dataclass(frozen=True)
class Style:
    """How one setting is drawn in every figure."""

    color: str
    line: str | tuple
    marker: str
    label: str
    phase: int = 0  # which epochs carry this curve's markers (see MARKERS_PER_CURVE)


def styles(rows: Sequence[SettingSummary]) -> dict[str, Style]:
    """A fixed style per setting: colour, line style and marker from its sequence or baseline."""
    out: dict[str, Style] = {}
    others = iter(OTHER_COLORS * (1 + len(rows) // len(OTHER_COLORS)))
    for s in rows:
        if s.setting in BASELINE_COLORS:
            out[s.setting] = Style(
                BASELINE_COLORS[s.setting],
                BASELINE_LINES[s.setting],
                BASELINE_MARKERS[s.setting],
                f"{s.label} (fixed)",
                phase=len(SEQUENCE_COLORS) + s.order,
            )
        elif s.group == MODERN_GROUP:
            arm = modern_arm(s.setting, s.runs[0].sequence)
            color = MODERN_COLORS[arm] if arm is not None else next(others)
            out[s.setting] = Style(color, MODERN_LINE, MODERN_MARKER, s.setting, phase=s.order)
        elif s.group != "Other":
            out[s.setting] = Style(
                SEQUENCE_COLORS[s.label],
                SEQUENCE_LINES[s.label],
                SEQUENCE_MARKERS[s.label],
                s.setting,
                phase=s.order,
            )
        else:
            out[s.setting] = Style(next(others), ":", "P", s.setting)
    return out


def budget(rows: Sequence[SettingSummary]) -> int:
    """The longest epoch budget (or, unrecorded, the longest history) among the runs."""
    limits = [r.max_epochs() or r.epochs_seen() or 1 for s in rows for r in s.ok_runs]
    return max(limits, default=1)


def mean_curve(row: SettingSummary, key: str) -> tuple[np.ndarray, ...] | None:
    """Epochs, mean, min and max of metric ``key`` over the setting's non-diverged runs."""
    per_epoch: dict[int, list[float]] = {}
    for run in row.ok_runs:
        for epoch, value in zip(*run.series(key), strict=True):
            if np.isfinite(value):
                per_epoch.setdefault(epoch, []).append(value)
    if not per_epoch:
        return None
    epochs = np.array(sorted(per_epoch))
    values = [np.array(per_epoch[e]) for e in epochs]
    return (
        epochs,
        np.array([v.mean() for v in values]),
        np.array([v.min() for v in values]),
        np.array([v.max() for v in values]),
    )


def _plot_mean(ax: Axes, row: SettingSummary, key: str, style: Style, label: str) -> bool:
    """Draw the seed-mean curve of ``key`` with its min–max band; False if nothing to draw."""
    curve = mean_curve(row, key)
    if curve is None:
        return False
    epochs, mean, lo, hi = curve
    lw = 2.2 if row.group == "Benchmark" else 1.8
    ax.plot(
        epochs,
        mean,
        color=style.color,
        linestyle=style.line,
        linewidth=lw,
        label=label,
        marker=style.marker,
        markersize=5,
        markevery=_markevery(len(epochs), style.phase),
    )
    if sum(bool(r.series(key)[0]) for r in row.ok_runs) > 1:  # a band needs two seeds
        ax.fill_between(epochs, lo, hi, color=style.color, alpha=0.15, linewidth=0)
    return True


def _markevery(n_points: int, phase: int) -> tuple[int, int]:
    """(start, step) of a curve's markers: about :data:`MARKERS_PER_CURVE` of them, and curves
    of different ``phase`` on different epochs while the step allows."""
    step = max(len(SEQUENCE_COLORS) + len(BASELINE_COLORS), n_points // MARKERS_PER_CURVE)
    return phase % step, step


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


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
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="upper center",  # hangs below the figure; savefig's tight box takes it in
        ncol=min(len(handles), 8),
        frameon=False,
        fontsize=11,
        bbox_to_anchor=(0.5, 0.0),
        handlelength=3.5,
    )


def _plain_log_ticks(ax: Axes) -> None:
    """Log-scaled y with tick labels written 0.2, 0.5, 1 rather than 2×10⁻¹; on an axis that
    spans less than a decade (where 2× and 5× alone would leave one label) every minor tick is
    labelled."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: _minor_label(v, _decades(ax))))
    ax.tick_params(axis="y", which="minor", labelsize=8)


def _decades(ax: Axes) -> float:
    """How many decades the (log-scaled) y axis spans as drawn."""
    low, high = ax.get_ylim()
    return float(np.log10(high / low)) if low > 0 and high > low else 0.0


def _epoch_axis(ax: Axes, last: int) -> None:
    """Epochs on x, 1 to the budget ``last``: labelled, whole numbers only."""
    ax.set_xlabel("epoch", fontsize=11)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(1 - 0.3, last + 0.3)


def _minor_label(value: float, decades: float) -> str:
    """Label the 2× and 5× ticks of each decade only, so minor labels never crowd; all of them
    when the axis spans less than one decade."""
    if value <= 0:
        return ""
    mantissa = round(value / 10 ** np.floor(np.log10(value)), 6)
    return f"{value:g}" if decades < 1 or mantissa in (2.0, 5.0) else ""


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


def panels(rows: Sequence[SettingSummary]) -> list[tuple[str, str]]:
    """The strategy panels, and the modern one when modern baselines were raced."""
    modern = any(s.group == MODERN_GROUP for s in rows)
    return [*STRATEGY_PANELS, *([MODERN_PANEL] if modern else [])]


def zoom_range(rows: Sequence[SettingSummary], key: str) -> tuple[float, float] | None:
    """The top of a metric's range where the decay schemes among ``rows`` end: from a little
    below their lowest final seed-mean to the highest value any band reaches."""
    finals, tops = [], []
    for s in rows:
        curve = mean_curve(s, key)
        if curve is None:
            continue
        tops.append(float(curve[3].max()))
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
    drawn = [_plot_mean(ax, s, key, st[s.setting], st[s.setting].label) for s in chosen]
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
    return _save(curves_figure(rows, key, ylabel, title, log_y, zoom), path)


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
            if r == 0 and i:
                ax.sharey(row_axes[0])  # the full view compares panels on one scale
            _draw_panel(ax, rows, strategy, key, st)
            ax.set_title(name if r == 0 else f"{name}: top of the range", fontsize=13)
            _epoch_axis(ax, last)
            ax.grid(alpha=0.3)
            if log_y:
                _plain_log_ticks(ax)
            if r == 1 and window:
                ax.set_ylim(*window)
        row_axes[0].set_ylabel(ylabel + (" (zoom)" if r else ""), fontsize=11)
    fig.suptitle(f"{title} (mean over seeds; {BAND})", fontsize=14)
    fig.tight_layout()
    _sequence_legend(fig, rows, st)  # below the panels, whatever its number of lines
    return fig


def plot_rates(rows: Sequence[SettingSummary], path: Path) -> Path:
    """Write :func:`rates_figure` to ``path``."""
    return _save(rates_figure(rows), path)


def rates_figure(rows: Sequence[SettingSummary]) -> plt.Figure:
    """The learning rate each run actually used per epoch, ▼ where it moved."""
    st = styles(rows)
    shown = [*panels(rows), (FIXED_STRATEGY, "Benchmark and other")]
    fig, axes = plt.subplots(1, len(shown), figsize=(4.5 * len(shown), 5.4), sharey=True)
    last = budget(rows)
    logged = any(r.series("lr")[0] for s in rows for r in s.ok_runs)
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
            _plot_rate_runs(ax, s, st[s.setting])
        ax.plot([], [], "v", color="0.3", label="first epoch at a new rate")
        ax.set_title(name, fontsize=13)
        _epoch_axis(ax, last)
        if logged:  # a log axis without data has no range to draw
            _plain_log_ticks(ax)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    axes[0].set_ylabel("learning rate used in the epoch", fontsize=11)
    fig.suptitle("Realised learning rate per run (rate moves listed per seed)", fontsize=14)
    fig.tight_layout()
    return fig


def _plot_rate_runs(ax: Axes, s: SettingSummary, style: Style) -> None:
    """Each run's rate per epoch as steps, ▼ where it moved; one legend entry with the counts."""
    counts = []
    for run in s.ok_runs:
        epochs, lrs = run.series("lr")
        if not epochs:
            continue
        moved = rate_change_epochs(epochs, lrs)
        counts.append(str(len(moved)))
        ax.plot(
            epochs,
            lrs,
            color=style.color,
            linestyle=style.line,
            linewidth=1.6,
            alpha=RATE_ALPHA,
            drawstyle="steps-mid",
        )
        ys = [lrs[epochs.index(e)] for e in moved]
        ax.plot(moved, ys, "v", color=style.color, markersize=6, alpha=RATE_ALPHA)
    if counts:
        still = " (never moved)" if s.never_moved else ""
        ax.plot(
            [],
            [],
            color=style.color,
            linestyle=style.line,
            label=f"{style.label}: moves {', '.join(counts)}{still}",
        )


def best_per_strategy(rows: Sequence[SettingSummary]) -> list[SettingSummary]:
    """The setting with the highest mean scoring accuracy in each strategy group (and among
    the modern baselines, when they ran)."""
    best = []
    for _, name in panels(rows):
        group = [s for s in rows if s.group == name and s.scored is not None]
        if group:
            best.append(max(group, key=lambda s: s.mean(s.scored_by)))
    return best


def _by_strategy(style: Style, row: SettingSummary) -> Style:
    """``style`` with the line and marker of the row's strategy: tells apart the same sequence
    under two strategies when they share a figure."""
    if row.group == MODERN_GROUP or row.strategy not in STRATEGY_LINES:
        return style
    return replace(style, line=STRATEGY_LINES[row.strategy], marker=STRATEGY_MARKERS[row.strategy])


def plot_best(rows: Sequence[SettingSummary], path: Path) -> Path:
    """The best setting of each strategy against the baselines: accuracy and loss per epoch."""
    st = styles(rows)
    chosen = best_per_strategy(rows) + [s for s in rows if s.group == "Benchmark"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, (key, ylabel) in zip(
        axes, (("val_acc", "validation accuracy"), ("val_loss", "validation loss")), strict=True
    ):
        for i, s in enumerate(chosen):
            final = f" (final {s.mean('final_acc'):.4f})" if s.final_acc else ""
            style = replace(_by_strategy(st[s.setting], s), phase=i)
            _plot_mean(ax, s, key, style, st[s.setting].label + final)
        _epoch_axis(ax, budget(rows))
        ax.set_ylabel(ylabel, fontsize=11)
        ax.grid(alpha=0.3)
    _plain_log_ticks(axes[1])
    axes[0].legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    modern = " and of the modern baselines" if len(panels(rows)) > len(STRATEGY_PANELS) else ""
    fig.suptitle(
        f"Best setting of each strategy{modern} vs the baselines (mean over seeds; {BAND})",
        fontsize=14,
    )
    fig.tight_layout()
    return _save(fig, path)


def plot_scatter(rows: Sequence[SettingSummary], path: Path) -> Path:
    """Write :func:`scatter_figure` to ``path``."""
    return _save(scatter_figure(rows), path)


def scatter_figure(rows: Sequence[SettingSummary]) -> plt.Figure:
    """Mean scoring accuracy (final validation, or test when held out) against median
    convergence epoch, bars from lowest to highest seed; a setting whose median was not
    reached sits at the budget as a hollow marker."""
    st = styles(rows)
    fig, ax = plt.subplots(figsize=(11, 6.5))
    shown = [s for s in rows if s.scored is not None and s.convergence is not None]
    last = budget(rows)
    for s in shown:
        style, conv, acc = st[s.setting], required_censored(s), required(s.scored)
        x = conv.median if conv.median is not None else float(last)
        x += (s.order - 1.5) * DODGE if s.group.startswith("By ") else 0.0
        if conv.horizon > conv.lo:  # the seeds' epochs, where they are: not moved by the dodge
            half = (conv.horizon - conv.lo) / 2
            ax.errorbar(
                conv.lo + half, acc.mean, xerr=half, fmt="none", ecolor=style.color, **SCATTER_BAR
            )
        ax.errorbar(
            x,
            acc.mean,
            yerr=[[acc.mean - acc.lo], [acc.hi - acc.mean]],
            fmt=MODERN_MARKER if s.group == MODERN_GROUP else STRATEGY_MARKERS.get(s.strategy, "P"),
            color=style.color,
            markerfacecolor=style.color if conv.median is not None else "none",
            markersize=8,
            label=f"{s.setting} ({conv.k}/{conv.n} converged)",
            **SCATTER_BAR,
        )
    first = min((required_censored(s).lo for s in shown), default=1.0)
    ax.set_xlim(max(0.5, first - 1), last + 0.5)
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
        "Accuracy vs convergence speed per setting (bars: lowest to highest seed)", fontsize=13
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def required_censored(row: SettingSummary) -> Censored:
    """The convergence of a row the caller kept for having one."""
    if row.convergence is None:
        raise ValueError("convergence missing for a setting expected to have it")
    return row.convergence


def write_figures(rows: Sequence[SettingSummary], out_dir: Path) -> list[Figure]:
    """Write every figure of the report into ``out_dir``; returns them with their captions."""
    excluded = " Diverged runs are left out." if any(s.n_diverged for s in rows) else ""
    control = any(s.setting == CONTROL_SGD_R0 for s in rows)
    baselines = "both fixed-rate baselines (dotted)" + (
        " and the control, SGD fixed at r0 (dash-dotted)" if control else ""
    )
    modern = (
        f" A fourth panel, {MODERN_GROUP}, holds the PyTorch schedulers and the schedule-free "
        "and learning-rate-free optimizers raced with the study (dashed, stars), with the "
        "baselines."
        if len(panels(rows)) > len(STRATEGY_PANELS)
        else ""
    )
    return [
        Figure(
            plot_curves(
                rows,
                "val_acc",
                "validation accuracy",
                "Validation accuracy",
                out_dir / "val_acc.png",
                zoom=True,
            ),
            "Validation accuracy per epoch",
            "Validation accuracy per epoch, one panel per strategy, each with the four "
            f"sequences (colour, line style and marker) and {baselines}; the second row "
            f"zooms on the top of the range, where the settings differ.{modern}{excluded}",
        ),
        Figure(
            plot_curves(
                rows,
                "val_loss",
                "validation loss (log scale)",
                "Validation loss",
                out_dir / "val_loss.png",
                log_y=True,
            ),
            "Validation loss per epoch",
            f"Validation loss per epoch, same layout.{excluded}",
        ),
        Figure(
            plot_rates(rows, out_dir / "learning_rate.png"),
            "Realised learning rate",
            "The learning rate each run used in each epoch; ▼ marks the first epoch at a new "
            "rate. The legend lists each seed's number of rate moves. A per-batch scheduler "
            "(one-cycle, warm-up) shows the rate each epoch started with.",
        ),
        Figure(
            plot_best(rows, out_dir / "best_vs_baselines.png"),
            "Best setting per strategy vs baselines",
            "The most accurate setting of each strategy (by mean final accuracy) against "
            "the SGD and Adam baselines" + (" and the control at r0." if control else "."),
        ),
        Figure(
            plot_scatter(rows, out_dir / "accuracy_vs_convergence.png"),
            "Accuracy vs convergence epoch",
            "Final accuracy against median convergence epoch for every setting; up and to "
            "the left is better. Bars span the seeds; hollow markers never reached a median.",
        ),
    ]
