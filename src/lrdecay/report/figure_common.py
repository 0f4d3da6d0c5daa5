"""What every figure of the report shares: the written :class:`Figure` and its caption, one
style per setting (colour, line style and marker per sequence, strategy and baseline), mean
curves over seeds with their bands, epoch and log axes, legends below the panels, and saving.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import cycle
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only: reports are written on headless machines and in callbacks
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.legend import Legend
from matplotlib.ticker import LogFormatter, MaxNLocator, StrMethodFormatter

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
from lrdecay.report.bands import epoch_stats
from lrdecay.report.stats import (
    MODERN_GROUP,
    SEQUENCES,
    STRATEGY_GROUP,
    SettingSummary,
    scored_by,
)

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
#: One panel per strategy of the grid: (strategy, its row group's name).
STRATEGY_PANELS = tuple(STRATEGY_GROUP.items())
#: The panel of the modern baselines raced with the study, shown when they ran; their style.
MODERN_PANEL = ("modern", MODERN_GROUP)
MODERN_LINE: LineStyleType = (0, (4, 1.5))
MODERN_MARKER = "*"
#: The modern optimizers at a fixed rate (no scheduler): dotted, as the study's baselines.
MODERN_FIXED_LINE: LineStyleType = (0, (1, 1.5))
MODERN_FIXED_MARKER = "P"
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


def plot_mean(ax: Axes, row: SettingSummary, key: str, style: Style, label: str) -> bool:
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


def save_figure(fig: plt.Figure, path: Path) -> Path:
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


class _PlainLogFormatter(LogFormatter):
    """matplotlib's choice of the log ticks to label, written 0.2 rather than 2×10⁻¹."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return self.fix_minus(f"{x:g}") if super().__call__(x, pos) else ""


def plain_log_ticks(ax: Axes) -> None:
    """Log-scaled y with tick labels written 0.2, 1, 2; minor ticks labelled by matplotlib's
    rule: all within a decade, 2, 3, 4 and 6 up to two decade ticks, beyond those none."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    ax.yaxis.set_minor_formatter(_PlainLogFormatter(minor_thresholds=(2, 1)))
    ax.tick_params(axis="y", which="minor", labelsize=8)


def epoch_axis(ax: Axes, last: int) -> None:
    """Epochs on x, 1 to the budget ``last``: labelled, whole numbers only."""
    ax.set_xlabel("epoch", fontsize=11)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(1 - 0.3, last + 0.3)


def panels(rows: Sequence[SettingSummary]) -> list[tuple[str, str]]:
    """The strategy panels, and the modern one when modern baselines were raced."""
    modern = any(s.group == MODERN_GROUP for s in rows)
    return [*STRATEGY_PANELS, *([MODERN_PANEL] if modern else [])]
