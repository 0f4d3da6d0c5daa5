"""The figures of an Optuna search's section: the trials over time with the best so far and
the confirmation, and the parameter importances. matplotlib is imported only once a figure is
drawn, so the report command starts without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lrdecay.report.search_section import Search

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from lrdecay.report.figure_common import Figure


def history_figure(search: Search, path: Path) -> Path | None:
    """The first objective of every finished trial by trial number, the best so far as a
    step line, pruned trials marked along the bottom, and the confirmation's mean ± 95 % CI
    (objective and held-out measure) drawn right of the last trial. None without values."""
    values = search.values()
    done = [(n, v) for n, s, v in values if s == "COMPLETE" and v is not None]
    if not done:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from lrdecay.report.figure_common import DPI

    fig, ax = plt.subplots(figsize=(8, 4.2))
    xs, ys = zip(*done, strict=True)
    ax.scatter(xs, ys, s=22, color="#1f77b4", label=f"trial {search.objective}", zorder=3)
    last = max(n for n, _, _ in values)
    steps_x, steps_y = _best_so_far(done, last, search.maximize)
    ax.step(steps_x, steps_y, where="post", color="#d62728", lw=1.8, label="best so far")
    pruned = [n for n, s, _ in values if s == "PRUNED"]
    gap = max(0.75, 0.12 * (last + 1))  # room per confirmation marker, whatever the trials
    confirm_x = last + 0.75 + gap
    ticks = [t for t in MaxNLocator(integer=True).tick_values(0, last) if 0 <= t <= last]
    labels = [f"{t:.0f}" for t in ticks]
    shown, more_ticks, more_labels = _draw_confirmation(ax, search, last + 0.75, confirm_x, gap)
    shown = [*ys, *shown]
    bottom = min(shown)
    span = max(shown) - bottom or 0.05
    if pruned:
        low = bottom - 0.06 * span
        ax.scatter(
            pruned,
            [low] * len(pruned),
            marker="x",
            color="#7f7f7f",
            s=22,
            label="pruned trial (no final value)",
            zorder=3,
        )
    ax.set_xticks([*ticks, *more_ticks], [*labels, *more_labels], fontsize=8)
    ax.set_xlabel("trial (in the order the study asked for them)")
    ax.set_ylabel(search.objective)
    ax.set_ylim(bottom - 0.1 * span, max(shown) + 0.08 * span)
    ax.set_xlim(-0.7, confirm_x + (2 * gap if search.points() else 0.0))
    ax.grid(alpha=0.3)
    ax.set_title(f"Search: {search.objective} per trial, best so far, confirmation")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _best_so_far(
    done: list[tuple[int, float]], last: int, maximize: bool
) -> tuple[list[float], list[float]]:
    """The best value so far as a step line: trial numbers, then the search's end a little
    beyond the last trial, where the best so far still holds."""
    best: float | None = None
    steps_x: list[float] = []
    steps_y: list[float] = []
    for x, y in done:
        if best is None or (y > best if maximize else y < best):
            best = y
        steps_x.append(x)
        steps_y.append(best)
    steps_x.append(last + 0.75)
    steps_y.append(steps_y[-1])
    return steps_x, steps_y


def _draw_confirmation(
    ax: Axes, search: Search, end: float, confirm_x: float, gap: float
) -> tuple[list[float], list[float], list[str]]:
    """The confirmation's mean ± 95 % CI of the objective and the held-out measure, right of
    a dotted line at ``end`` (after the last trial); returns the values drawn and the ticks
    they add."""
    points = search.points()
    shown: list[float] = []
    ticks: list[float] = []
    labels: list[str] = []
    if not points:
        return shown, ticks, labels
    first = points[0]
    held = search.held_out()
    for offset, (name, colour) in enumerate(
        [(search.objective, "#2ca02c"), *([(held, "#9467bd")] if held else [])]
    ):
        stat = first.stats.get(name)
        if stat is None:
            continue
        ax.errorbar(
            confirm_x + gap * offset,
            stat.mean,
            yerr=stat.half or 0.0,
            fmt="D",
            color=colour,
            capsize=4,
            label=f"confirmation {name}: mean ± 95% CI (trial {first.trial}, "
            f"{first.runs - first.failed} seeds)",
            zorder=4,
        )
        shown += [stat.mean - (stat.half or 0.0), stat.mean + (stat.half or 0.0)]
        ticks.append(confirm_x + gap * offset)
        labels.append(f"confirm\n{name}")
    ax.axvline(end, color="#999999", lw=0.8, ls=":")
    return shown, ticks, labels


def importance_figure(search: Search, path: Path) -> Path | None:
    """Optuna's parameter importances as horizontal bars, most important on top."""
    if not search.importances:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lrdecay.report.figure_common import DPI

    names = [n for n, _ in reversed(search.importances)]
    values = [v for _, v in reversed(search.importances)]
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(names) + 1.2))
    bars = ax.barh(names, values, color="#1f77b4")
    for bar, value in zip(bars, values, strict=True):
        ax.text(
            bar.get_width() + 0.01,
            bar.get_y() + bar.get_height() / 2,
            f"{value:.2f}",
            va="center",
            fontsize=8,
        )
    ax.set_xlim(0, max(1.0, max(values) * 1.15))
    ax.set_xlabel(f"importance for {search.objective} (fANOVA; the importances sum to 1)")
    ax.set_title("Parameter importances (Optuna)")
    ax.grid(axis="x", alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def search_figures(search: Search, out_dir: Path) -> list[Figure]:
    """The search's figures, written into ``out_dir``."""
    from lrdecay.report.figure_common import Figure

    figures = []
    history = history_figure(search, out_dir / "search_history.png")
    if history is not None:
        confirm = (
            " Right of the dotted line: the confirmation of the best trial, mean ± 95% CI "
            "over its fresh seeds; its distance below the best-so-far line is the selection "
            "optimism."
            if search.points()
            else ""
        )
        figures.append(
            Figure(
                history,
                "Search history",
                f"{search.objective} of each complete trial (dots), in the order the study "
                "asked for them, with the best value so far (red steps); pruned trials are "
                f"crosses along the bottom.{confirm}",
            )
        )
    importance = importance_figure(search, out_dir / "param_importances.png")
    if importance is not None:
        figures.append(
            Figure(
                importance,
                "Parameter importances",
                f"How much of the variance of {search.objective} across the complete trials "
                "each searched parameter explains (Optuna's fANOVA evaluator, seeded); "
                "parameters sampled only in some trials are left out.",
            )
        )
    return figures
