"""The report's figures: learning curves, realised rates, best settings, accuracy vs speed.

Every figure uses one colour, line style and marker per sequence (seq1..seq4) and per baseline
(SGD, Adam), so the four sequences of a strategy panel stay apart even where their curves
coincide; the accuracy-vs-speed scatter marks the strategy by marker. Curves are means over seeds
with the band of their 95 % t-interval (:mod:`lrdecay.report.bands`, the numbers a setting's
summary run holds in MLflow); diverged runs are left out. Axes stop at the data's range and the
epoch budget, and legends sit below the panels and their axis labels. The modern baselines raced
with the study get a panel of their own: the PyTorch schedulers drawn dashed with stars, the
optimizers that need no schedule (schedule-free, learning-rate-free, AdamW at a fixed rate)
dotted with plus signs, like the study's fixed-rate baselines. Every caption names the split its
numbers come from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import cycle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # files only: reports are written on headless machines and in callbacks
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatter, MaxNLocator, StrMethodFormatter

from lrdecay.core.schedules import FIXED_STRATEGY
from lrdecay.palette import (
    BASELINE_ADAM,
    BASELINE_COLORS,
    BASELINE_SGD,
    CONTROL_SGD_R0,
    MODERN_COLORS,
    SEQUENCE_COLORS,
    modern_arm,
)
from lrdecay.report.bands import epoch_stats
from lrdecay.report.claims import RARELY
from lrdecay.report.overfitting import ANCHOR as OVERFIT_ANCHOR
from lrdecay.report.overfitting import TITLE as OVERFIT_TITLE
from lrdecay.report.runs import rate_change_epochs
from lrdecay.report.stats import (
    MODERN_GROUP,
    SEQUENCES,
    STRATEGY_GROUP,
    Censored,
    SettingSummary,
    required,
    scored_by,
)
from lrdecay.report.tables import ACC_DIGITS

if TYPE_CHECKING:  # matplotlib.typing is from matplotlib 3.8 on
    from matplotlib.typing import LineStyleType

OTHER_COLORS = ("#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
#: One line style and marker per sequence of the study's grid, in its order (seq1..seq4).
SEQUENCE_LINES: dict[str, LineStyleType] = dict(
    zip(SEQUENCES, cycle(("-", "--", "-.", (0, (5, 1, 1, 1, 1, 1)))))
)
SEQUENCE_MARKERS = dict(zip(SEQUENCES, cycle("os^v")))
BASELINE_MARKERS = {BASELINE_SGD: "D", CONTROL_SGD_R0: "h", BASELINE_ADAM: "X"}
#: Both baselines at 0.001 dotted, Adam's dots in the gaps of SGD's: where their curves coincide
#: (one fixed rate, one accuracy), both still show. The control at r0 dash-dotted.
BASELINE_LINES: dict[str, LineStyleType] = {
    BASELINE_SGD: (0, (1, 1.5)),
    CONTROL_SGD_R0: (0, (3, 1.5, 1, 1.5)),
    BASELINE_ADAM: (1.25, (1, 1.5)),
}
#: One line style and marker per strategy of the grid (epoch, cutoff, oscillate); fixed: "D".
STRATEGY_LINES: dict[str, LineStyleType] = dict(zip(STRATEGY_GROUP, cycle(("-", "--", "-."))))
STRATEGY_MARKERS = {**dict(zip(STRATEGY_GROUP, cycle("os^"))), FIXED_STRATEGY: "D"}
#: About this many markers per curve, so curves stay readable at any epoch count; curves of one
#: panel put theirs on different epochs, so coinciding curves still show every marker.
MARKERS_PER_CURVE = 10
#: Horizontal offset between the sequences of one strategy in the scatter, in epochs, so that
#: settings with identical results (a rate that never moved) do not hide one another.
DODGE = 0.15
#: How the scatter's bars are drawn: the accuracy bar on each marker and the seeds' epoch bar.
SCATTER_BAR: dict[str, Any] = {"capsize": 3, "elinewidth": 1, "alpha": 0.9}
#: Opacity of the realised-rate lines and their ▼ markers.
RATE_ALPHA = 0.8
#: One panel per strategy of the grid: (strategy, its row group's name).
STRATEGY_PANELS = tuple(STRATEGY_GROUP.items())
#: The panel of the modern baselines raced with the study, shown when they ran; their style.
MODERN_PANEL = ("modern", MODERN_GROUP)
MODERN_LINE: LineStyleType = (0, (4, 1.5))
MODERN_MARKER = "*"
#: The modern optimizers at a fixed rate (no scheduler): dotted, as the study's baselines.
MODERN_FIXED_LINE: LineStyleType = (0, (1, 1.5))
MODERN_FIXED_MARKER = "P"
#: The realised-rate figure shows this many decades below the highest rate of the arms whose
#: rate moves (r0/1000 from r0); a rate outside is marked by an arrow at the edge and named.
RATE_DECADES = 3
#: Arrows of settings that leave the rate axis at one epoch sit this many epochs apart, in
#: this many slots.
ARROW_SHIFT = 0.4
ARROW_SLOTS = 4
#: Space between the lowest axis label and a legend below it, in points.
LEGEND_GAP = 6
BAND = "band: 95 % interval of the mean"
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
    line: LineStyleType
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
            line, marker = _modern_look(s)
            out[s.setting] = Style(color, line, marker, s.setting, phase=s.order)
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


def _modern_look(row: SettingSummary) -> tuple[LineStyleType, str]:
    """Line and marker of a modern arm: a PyTorch scheduler's dashed with stars, a fixed-rate
    optimizer's dotted with plus signs."""
    if row.runs[0].scheduler:
        return MODERN_LINE, MODERN_MARKER
    return MODERN_FIXED_LINE, MODERN_FIXED_MARKER


def validation_split(rows: Sequence[SettingSummary]) -> str:
    """What the validation split of ``rows`` is, for a caption: held out of the training split
    (and steering the schedules that read it), or the test split itself."""
    if scored_by(rows) == "test_acc":
        return (
            "the validation split (held out of the training data; cutoff, oscillate and plateau "
            "steer by it)"
        )
    return "the validation split (these runs held none out: it is the test split)"


def budget(rows: Sequence[SettingSummary]) -> int:
    """The longest epoch budget (or, unrecorded, the longest history) among the runs."""
    limits = [r.max_epochs() or r.epochs_seen() or 1 for s in rows for r in s.ok_runs]
    return max(limits, default=1)


def mean_curve(row: SettingSummary, key: str) -> tuple[np.ndarray, ...] | None:
    """Epochs, mean and the bounds of its 95 % interval (NaN where one seed got there) of
    metric ``key`` over the setting's non-diverged runs."""
    stats = epoch_stats(row.ok_runs, key)
    if not stats:
        return None
    bounds = [s.interval or (np.nan, np.nan) for s in stats.values()]
    return (
        np.array(list(stats)),
        np.array([s.mean for s in stats.values()]),
        np.array([lo for lo, _ in bounds]),
        np.array([hi for _, hi in bounds]),
    )


def _plot_mean(ax: Axes, row: SettingSummary, key: str, style: Style, label: str) -> bool:
    """Draw the seed-mean curve of ``key`` with its interval's band; False if nothing to draw."""
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
    if np.isfinite(lo).any():  # a band needs two seeds
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


def legend_below(
    fig: plt.Figure, axes: Sequence[Axes], handles: list, labels: list[str], **kwargs: object
) -> Legend | None:
    """A legend centred under ``axes``, hanging below their lowest tick or axis label (placed
    after the layout, so nothing it covers moves afterwards); savefig's tight box takes it in.
    The legend of one panel belongs to it, of several to the figure; None with no entries."""
    if not labels:
        return None
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]  # Agg's canvas has it
    boxes = [ax.get_tightbbox(renderer) for ax in axes]
    bottom = min(b.y0 for b in boxes if b is not None) - LEGEND_GAP * fig.dpi / 72
    left = min(ax.get_position().x0 for ax in axes)
    right = max(ax.get_position().x1 for ax in axes)
    y = fig.transFigure.inverted().transform((0, bottom))[1]
    owner = axes[0] if len(axes) == 1 else fig  # one panel's legend is that panel's
    return owner.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=((left + right) / 2, y),
        bbox_transform=fig.transFigure,
        frameon=False,
        borderaxespad=0,
        **kwargs,
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


class _PlainLogFormatter(LogFormatter):
    """matplotlib's choice of the log ticks to label, written 0.2 rather than 2×10⁻¹."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return self.fix_minus(f"{x:g}") if super().__call__(x, pos) else ""


def _plain_log_ticks(ax: Axes) -> None:
    """Log-scaled y with tick labels written 0.2, 1, 2; minor ticks labelled by matplotlib's
    rule: all within a decade, 2, 3, 4 and 6 up to two decade ticks, beyond those none."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    ax.yaxis.set_minor_formatter(_PlainLogFormatter(minor_thresholds=(2, 1)))
    ax.tick_params(axis="y", which="minor", labelsize=8)


def _epoch_axis(ax: Axes, last: int) -> None:
    """Epochs on x, 1 to the budget ``last``: labelled, whole numbers only."""
    ax.set_xlabel("epoch", fontsize=11)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(1 - 0.3, last + 0.3)


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
            if i:  # each row compares its panels on one scale, the zoomed row included
                ax.sharey(row_axes[0])
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
        _epoch_axis(ax, last)
        if window is not None:  # a log axis without data has no range to draw
            _plain_log_ticks(ax)
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
    return _save(best_figure(rows), path)


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
            _plot_mean(ax, s, key, style, best_label(s, st[s.setting]))
        _epoch_axis(ax, budget(rows))
        ax.set_ylabel(ylabel, fontsize=11)
        ax.grid(alpha=0.3)
    _plain_log_ticks(axes[1])
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


def plot_scatter(rows: Sequence[SettingSummary], path: Path) -> Path:
    """Write :func:`scatter_figure` to ``path``."""
    return _save(scatter_figure(rows), path)


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


def write_figures(rows: Sequence[SettingSummary], out_dir: Path) -> list[Figure]:
    """Write every figure of the report into ``out_dir``; returns them with their captions,
    each naming what is plotted and from which split."""
    excluded = " Diverged runs are left out." if any(s.n_diverged for s in rows) else ""
    control = any(s.setting == CONTROL_SGD_R0 for s in rows)
    baselines = "both fixed-rate baselines (dotted)" + (
        " and the control, SGD fixed at r0 (dash-dotted)" if control else ""
    )
    modern = (
        f" A fourth panel, {MODERN_GROUP}, holds the arms raced with the study, with the "
        "baselines: the PyTorch schedulers dashed with stars, the schedule-free and "
        "learning-rate-free optimizers (and any other optimizer at a fixed rate) dotted with "
        "plus signs."
        if len(panels(rows)) > len(STRATEGY_PANELS)
        else ""
    )
    validation = validation_split(rows)
    held_out = scored_by(rows) == "test_acc"
    score = (
        "mean test accuracy (the test split, which no schedule saw)"
        if held_out
        else "mean final validation accuracy"
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
            f"Validation accuracy per epoch on {validation}, mean over seeds, one panel per "
            f"strategy, each with the four sequences (colour, line style and marker) and "
            f"{baselines}; the second row zooms on the top of the range, where the settings "
            f"differ, on one scale for every panel.{modern}{excluded}",
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
            f"Validation loss (cross-entropy) per epoch on {validation}, mean over seeds, same "
            "layout. Where each arm's minimum falls, how far the loss rises after it, and what "
            f"that means for the strategies that read it: [{OVERFIT_TITLE}](#{OVERFIT_ANCHOR})."
            f"{excluded}",
        ),
        Figure(
            plot_rates(rows, out_dir / "learning_rate.png"),
            "Realised learning rate",
            "The learning rate each run used in each epoch (read from the optimizer, no data "
            "split), one line per seed. ▼ marks the epochs where a rate moved, for the runs whose "
            f"rate moves at no more than {100 * RARELY:.0f}% of epoch boundaries (a rate that "
            "moves nearly every epoch would draw a band of them); each legend entry counts the "
            "seeds' rate moves. The rate axis spans the highest rate of the arms whose rate moves "
            f"down to at most {10**RATE_DECADES:g} times lower: an arrow at the edge marks a rate "
            "beyond it, and the legend says where it went. A per-batch scheduler (one-cycle, "
            "warm-up) shows the rate each epoch started with.",
        ),
        Figure(
            plot_best(rows, out_dir / "best_vs_baselines.png"),
            "Best setting per strategy vs baselines",
            "The best setting of each strategy by mean final validation accuracy (the table's "
            f"Final accuracy) on {validation}: the test split chooses nothing. Drawn with the SGD "
            "and Adam baselines"
            + (" and the control at r0" if control else "")
            + ": validation accuracy (left) and validation loss (right) per epoch, mean over "
            "seeds. The legend gives each setting's mean final validation accuracy"
            + (" and mean test accuracy" if held_out else "")
            + ", the table's numbers.",
        ),
        Figure(
            plot_scatter(rows, out_dir / "accuracy_vs_convergence.png"),
            "Accuracy vs convergence epoch",
            f"For every setting, {score} against its median convergence epoch (Kaplan–Meier "
            f"over seeds), the study's rule read on the validation accuracy of {validation}. Up "
            "and to the left is better. Vertical bars span the seeds' accuracies, horizontal "
            "bars their convergence epochs; a hollow marker did not converge in at least half "
            "its seeds and sits at the budget. Both axes fit the points, with a margin.",
        ),
    ]
