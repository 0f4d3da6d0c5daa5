"""The report's figures: learning curves, realised rates, best settings, accuracy vs speed.

Every figure uses one colour per sequence (seq1..seq4) and per baseline (SGD, Adam), and one line
style / marker per strategy, so a setting looks the same wherever it appears. Curves are means
over seeds with a band from the lowest to the highest seed; diverged runs are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: reports are written on headless machines and in callbacks
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator

from lrdecay.report_stats import BASELINE_ADAM, BASELINE_SGD, SettingSummary, required

SEQUENCE_COLORS = {"seq1": "#1f77b4", "seq2": "#ff7f0e", "seq3": "#2ca02c", "seq4": "#d62728"}
BASELINE_COLORS = {BASELINE_SGD: "#111111", BASELINE_ADAM: "#9467bd"}
OTHER_COLORS = ("#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
STRATEGY_LINES = {"epoch": "-", "cutoff": "--", "oscillate": "-.", "fixed": ":"}
STRATEGY_MARKERS = {"epoch": "o", "cutoff": "s", "oscillate": "^", "fixed": "D"}
STRATEGY_PANELS = (("epoch", "By Epoch"), ("cutoff", "By Cutoff"), ("oscillate", "By Oscillate"))
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
    line: str
    marker: str
    label: str


def styles(rows: Sequence[SettingSummary]) -> dict[str, Style]:
    """A fixed style per setting: colour from its sequence or baseline, line from its strategy."""
    out: dict[str, Style] = {}
    others = iter(OTHER_COLORS * (1 + len(rows) // len(OTHER_COLORS)))
    for s in rows:
        strategy = s.runs[0].strategy
        line = STRATEGY_LINES.get(strategy, ":")
        marker = STRATEGY_MARKERS.get(strategy, "P")
        if s.setting in BASELINE_COLORS:
            out[s.setting] = Style(BASELINE_COLORS[s.setting], ":", "D", f"{s.label} (fixed)")
        elif s.group != "Other":
            out[s.setting] = Style(SEQUENCE_COLORS[s.label], line, marker, s.setting)
        else:
            out[s.setting] = Style(next(others), line, marker, s.setting)
    return out


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
    ax.plot(epochs, mean, color=style.color, linestyle=style.line, linewidth=lw, label=label)
    if sum(bool(r.series(key)[0]) for r in row.ok_runs) > 1:  # a band needs two seeds
        ax.fill_between(epochs, lo, hi, color=style.color, alpha=0.15, linewidth=0)
    return True


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _colour_legend(fig: plt.Figure, rows: Sequence[SettingSummary], st: dict[str, Style]) -> None:
    """One legend entry per colour (sequence, baseline, other setting): panels name the strategy."""
    handles: dict[str, Line2D] = {}
    for s in rows:
        style = st[s.setting]
        if s.group == "Benchmark":
            handles[style.label] = Line2D([], [], color=style.color, linestyle=":", linewidth=2.2)
        elif s.group == "Other":
            handles[s.setting] = Line2D([], [], color=style.color, linestyle=style.line)
        else:
            handles.setdefault(s.label, Line2D([], [], color=style.color, linewidth=2))
    kinds = {s.label: 1 for s in rows if s.group == "Benchmark"}
    kinds |= {f"{s.label} (fixed)": 1 for s in rows if s.group == "Benchmark"}
    kinds |= {s.setting: 2 for s in rows if s.group == "Other"}
    seq_order = list(SEQUENCE_COLORS)
    order = sorted(
        handles,
        key=lambda k: (
            kinds.get(k, 0),  # sequences, baselines, others
            seq_order.index(k) if k in seq_order else 0,
        ),
    )
    fig.legend(
        [handles[k] for k in order],
        order,
        loc="lower center",
        ncol=min(len(order), 8),
        frameon=False,
        fontsize=11,
        bbox_to_anchor=(0.5, 0.0),
    )


def _plain_log_ticks(ax: Axes) -> None:
    """Log-scaled y with tick labels written 0.2, 0.5, 1 rather than 2×10⁻¹."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(_minor_label))
    ax.tick_params(axis="y", which="minor", labelsize=8)


def _epoch_axis(ax: Axes) -> None:
    """Epochs on x: labelled, whole numbers only."""
    ax.set_xlabel("epoch", fontsize=11)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _minor_label(value: float, _: object) -> str:
    """Label the 2× and 5× ticks of each decade only, so minor labels never crowd."""
    if value <= 0:
        return ""
    mantissa = round(value / 10 ** np.floor(np.log10(value)), 6)
    return f"{value:g}" if mantissa in (2.0, 5.0) else ""


def _panel_rows(rows: Sequence[SettingSummary], strategy: str) -> list[SettingSummary]:
    """The settings drawn in a strategy's panel: its sequences, other settings, then baselines."""
    own = [s for s in rows if s.group != "Benchmark" and s.runs[0].strategy == strategy]
    return own + [s for s in rows if s.group == "Benchmark"]


def plot_curves(
    rows: Sequence[SettingSummary],
    key: str,
    ylabel: str,
    title: str,
    path: Path,
    log_y: bool = False,
) -> Path:
    """One panel per strategy: its sequences and both baselines, ``key`` against epoch."""
    st = styles(rows)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), sharey=True)
    for ax, (strategy, name) in zip(axes, STRATEGY_PANELS, strict=True):
        drawn = [
            _plot_mean(ax, s, key, st[s.setting], st[s.setting].label)
            for s in _panel_rows(rows, strategy)
        ]
        if not any(
            s.group != "Benchmark"
            for s, d in zip(_panel_rows(rows, strategy), drawn, strict=True)
            if d
        ):
            ax.text(
                0.5, 0.5, f"no {strategy} runs", transform=ax.transAxes, ha="center", color="0.4"
            )
        ax.set_title(name, fontsize=13)
        _epoch_axis(ax)
        ax.grid(alpha=0.3)
        if log_y:
            _plain_log_ticks(ax)
    axes[0].set_ylabel(ylabel, fontsize=11)
    fig.suptitle(f"{title} (mean over seeds; {BAND})", fontsize=14)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    _colour_legend(fig, rows, st)
    return _save(fig, path)


def _advance_epochs(epochs: Sequence[int], advances: Sequence[float]) -> list[int]:
    """Epochs t after which the rate moved (the cumulative count rose at t)."""
    out, before = [], 0.0
    for epoch, count in zip(epochs, advances, strict=True):
        if count > before:
            out.append(epoch)
        before = count
    return out


def plot_rates(rows: Sequence[SettingSummary], path: Path) -> Path:
    """The learning rate each run actually used per epoch, ▼ where the sequence advanced."""
    st = styles(rows)
    panels = [*STRATEGY_PANELS, ("fixed", "Benchmark and other")]
    fig, axes = plt.subplots(1, len(panels), figsize=(18, 4.6), sharey=True)
    for ax, (strategy, name) in zip(axes, panels, strict=True):
        if strategy == "fixed":
            chosen = [s for s in rows if s.group in ("Benchmark", "Other")]
        else:
            chosen = [
                s
                for s in rows
                if s.group not in ("Benchmark", "Other") and s.runs[0].strategy == strategy
            ]
        for s in chosen:
            style = st[s.setting]
            counts = []
            for run in s.ok_runs:
                epochs, lrs = run.series("lr")
                if not epochs:
                    continue
                _, adv = run.series("lr_advances")
                counts.append(str(int(adv[-1])) if adv else "?")
                ax.plot(
                    epochs,
                    lrs,
                    color=style.color,
                    linestyle=style.line,
                    linewidth=1.6,
                    alpha=0.8,
                    drawstyle="steps-mid",
                )
                if len(adv) == len(epochs):
                    moved = _advance_epochs(epochs, adv)
                    ys = [lrs[epochs.index(e)] for e in moved]
                    ax.plot(moved, ys, "v", color=style.color, markersize=6, alpha=0.8)
            if counts:
                ax.plot(
                    [],
                    [],
                    color=style.color,
                    linestyle=style.line,
                    label=f"{style.label}: advances {', '.join(counts)}",
                )
        ax.plot([], [], "v", color="0.3", label="▼ rate advanced after this epoch")
        ax.set_title(name, fontsize=13)
        _epoch_axis(ax)
        _plain_log_ticks(ax)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="lower left")
    axes[0].set_ylabel("learning rate used in the epoch", fontsize=11)
    fig.suptitle("Realised learning rate per run (advances per run listed per seed)", fontsize=14)
    fig.tight_layout()
    return _save(fig, path)


def best_per_strategy(rows: Sequence[SettingSummary]) -> list[SettingSummary]:
    """The setting with the highest mean final accuracy in each strategy group."""
    best = []
    for _, name in STRATEGY_PANELS:
        group = [s for s in rows if s.group == name and s.final_acc is not None]
        if group:
            best.append(max(group, key=lambda s: s.mean("final_acc")))
    return best


def plot_best(rows: Sequence[SettingSummary], path: Path) -> Path:
    """The best setting of each strategy against the baselines: accuracy and loss per epoch."""
    st = styles(rows)
    chosen = best_per_strategy(rows) + [s for s in rows if s.group == "Benchmark"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, (key, ylabel) in zip(
        axes, (("val_acc", "validation accuracy"), ("val_loss", "validation loss")), strict=True
    ):
        for s in chosen:
            final = f" (final {s.mean('final_acc'):.4f})" if s.final_acc else ""
            _plot_mean(ax, s, key, st[s.setting], st[s.setting].label + final)
        _epoch_axis(ax)
        ax.set_ylabel(ylabel, fontsize=11)
        ax.grid(alpha=0.3)
    _plain_log_ticks(axes[1])
    axes[0].legend(fontsize=9, loc="lower right")
    fig.suptitle(
        f"Best setting of each strategy vs the baselines (mean over seeds; {BAND})", fontsize=14
    )
    fig.tight_layout()
    return _save(fig, path)


def label_positions(
    xs: Sequence[float], ys: Sequence[float], x_span: float, y_span: float
) -> list[tuple[float, float]]:
    """Where to write each point's label so that labels of nearby points do not overlap.

    Points within 12% of the x-range of each other form a column; its labels go to the right of
    the column, in the points' vertical order, at least 4.5% of the y-range apart.
    """
    gap = 0.045 * y_span
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    clusters: list[list[int]] = []
    for i in order:
        if clusters and xs[i] - xs[clusters[-1][0]] <= 0.12 * x_span:
            clusters[-1].append(i)
        else:
            clusters.append([i])
    out: dict[int, tuple[float, float]] = {}
    for cluster in clusters:
        cluster.sort(key=lambda i: ys[i])
        placed: list[float] = []
        for i in cluster:
            placed.append(ys[i] if not placed else max(ys[i], placed[-1] + gap))
        shift = (sum(placed) - sum(ys[i] for i in cluster)) / len(cluster)
        lx = max(xs[i] for i in cluster) + 0.05 * x_span
        for i, ly in zip(cluster, placed, strict=True):
            out[i] = (lx, ly - shift)
    return [out[i] for i in range(len(xs))]


def plot_scatter(rows: Sequence[SettingSummary], path: Path) -> Path:
    """Mean final accuracy against mean convergence epoch, bars from lowest to highest seed."""
    st = styles(rows)
    fig, ax = plt.subplots(figsize=(10, 6.5))
    shown = [s for s in rows if s.final_acc is not None and s.convergence is not None]
    xs = [s.mean("convergence") for s in shown]
    ys = [s.mean("final_acc") for s in shown]
    for s, x, y in zip(shown, xs, ys, strict=True):
        style, conv, acc = st[s.setting], s.convergence, s.final_acc
        assert conv is not None and acc is not None
        ax.errorbar(
            x,
            y,
            xerr=[[x - conv.lo], [conv.hi - x]],
            yerr=[[y - acc.lo], [acc.hi - y]],
            fmt=style.marker,
            color=style.color,
            markersize=8,
            capsize=3,
            elinewidth=1,
            alpha=0.9,
        )
    if shown:
        lo_x = min(required(s.convergence).lo for s in shown)
        hi_x = max(required(s.convergence).hi for s in shown)
        lo_y = min(required(s.final_acc).lo for s in shown)
        hi_y = max(required(s.final_acc).hi for s in shown)
        x_span, y_span = max(hi_x - lo_x, 2.0), max(hi_y - lo_y, 0.01)
        spots = label_positions(xs, ys, x_span, y_span)
        for s, x, y, (lx, ly) in zip(shown, xs, ys, spots, strict=True):
            color = st[s.setting].color
            ax.annotate(
                s.setting,
                (x, y),
                xytext=(lx, ly),
                textcoords="data",
                fontsize=9,
                color=color,
                va="center",
                arrowprops={"arrowstyle": "-", "color": color, "lw": 0.6, "alpha": 0.6},
            )
        label_ys = [ly for _, ly in spots]
        ax.set_xlim(lo_x - max(0.05 * x_span, 0.5), hi_x + 0.45 * x_span)
        ax.set_ylim(min(lo_y, *label_ys) - 0.05 * y_span, max(hi_y, *label_ys) + 0.05 * y_span)
    handles = [
        Line2D([], [], linestyle="", marker=m, color="0.3", label=k)
        for k, m in STRATEGY_MARKERS.items()
        if any(s.runs[0].strategy == k for s in rows)
    ]
    ax.legend(handles=handles, title="strategy", fontsize=9, loc="lower left")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel("convergence epoch (mean over seeds; lower is faster)", fontsize=11)
    ax.set_ylabel("final validation accuracy (mean over seeds)", fontsize=11)
    ax.set_title(
        "Accuracy vs convergence speed per setting (bars: lowest to highest seed)", fontsize=13
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def write_figures(rows: Sequence[SettingSummary], out_dir: Path) -> list[Figure]:
    """Write every figure of the report into ``out_dir``; returns them with their captions."""
    excluded = " Diverged runs are left out." if any(s.n_diverged for s in rows) else ""
    return [
        Figure(
            plot_curves(
                rows,
                "val_acc",
                "validation accuracy",
                "Validation accuracy",
                out_dir / "val_acc.png",
            ),
            "Validation accuracy per epoch",
            "Validation accuracy per epoch, one panel per strategy, each with the four "
            f"sequences and both fixed-rate baselines (dotted).{excluded}",
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
            "The learning rate each run used in each epoch; ▼ marks an epoch after which "
            "the sequence advanced. The legend lists each seed's number of advances.",
        ),
        Figure(
            plot_best(rows, out_dir / "best_vs_baselines.png"),
            "Best setting per strategy vs baselines",
            "The most accurate setting of each strategy (by mean final accuracy) against "
            "the SGD and Adam baselines.",
        ),
        Figure(
            plot_scatter(rows, out_dir / "accuracy_vs_convergence.png"),
            "Accuracy vs convergence epoch",
            "Final accuracy against convergence epoch for every setting; up and to the "
            "left is better. Bars span the seeds.",
        ),
    ]
