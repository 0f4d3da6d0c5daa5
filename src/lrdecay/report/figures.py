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
from pathlib import Path

from lrdecay.palette import (
    CONTROL_SGD_R0,
)
from lrdecay.report.best_figure import plot_best
from lrdecay.report.claims import RARELY
from lrdecay.report.curve_figures import plot_curves
from lrdecay.report.figure_common import STRATEGY_PANELS, Figure, panels, validation_split
from lrdecay.report.overfitting import ANCHOR as OVERFIT_ANCHOR
from lrdecay.report.overfitting import TITLE as OVERFIT_TITLE
from lrdecay.report.rate_figure import RATE_DECADES, plot_rates
from lrdecay.report.scatter_figure import plot_scatter
from lrdecay.report.stats import (
    MODERN_GROUP,
    SettingSummary,
    scored_by,
)


def write_figures(rows: Sequence[SettingSummary], out_dir: Path) -> list[Figure]:
    """Write every figure of the report into ``out_dir``; returns them with their captions,
    each naming what is plotted and from which split."""
    excluded = " Diverged runs are left out." if any(s.n_diverged for s in rows) else ""
    validation = validation_split(rows)
    return [
        *_curve_figures(rows, out_dir, validation, excluded),
        _rate_figure(rows, out_dir),
        _best_figure(rows, out_dir, validation),
        _scatter_figure(rows, out_dir, validation),
    ]


def _has_control(rows: Sequence[SettingSummary]) -> bool:
    """Whether the control, SGD fixed at the decayed arms' r0, ran."""
    return any(s.setting == CONTROL_SGD_R0 for s in rows)


def _curve_figures(
    rows: Sequence[SettingSummary], out_dir: Path, validation: str, excluded: str
) -> list[Figure]:
    """The validation accuracy and validation loss per epoch, one panel per strategy."""
    baselines = "both fixed-rate baselines (dotted)" + (
        " and the control, SGD fixed at r0 (dash-dotted)" if _has_control(rows) else ""
    )
    modern = (
        f" A fourth panel, {MODERN_GROUP}, holds the arms raced with the study, with the "
        "baselines: the PyTorch schedulers dashed with stars, the schedule-free and "
        "learning-rate-free optimizers (and any other optimizer at a fixed rate) dotted with "
        "plus signs."
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
    ]


def _rate_figure(rows: Sequence[SettingSummary], out_dir: Path) -> Figure:
    """The learning rate each run used per epoch."""
    return Figure(
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
    )


def _best_figure(rows: Sequence[SettingSummary], out_dir: Path, validation: str) -> Figure:
    """The best setting of each strategy against the baselines."""
    return Figure(
        plot_best(rows, out_dir / "best_vs_baselines.png"),
        "Best setting per strategy vs baselines",
        "The best setting of each strategy by mean final validation accuracy (the table's "
        f"Final accuracy) on {validation}: the test split chooses nothing. Drawn with the SGD "
        "and Adam baselines"
        + (" and the control at r0" if _has_control(rows) else "")
        + ": validation accuracy (left) and validation loss (right) per epoch, mean over "
        "seeds. The legend gives each setting's mean final validation accuracy"
        + (" and mean test accuracy" if scored_by(rows) == "test_acc" else "")
        + ", the table's numbers.",
    )


def _scatter_figure(rows: Sequence[SettingSummary], out_dir: Path, validation: str) -> Figure:
    """Every setting's score against its convergence epoch."""
    score = (
        "mean test accuracy (the test split, which no schedule saw)"
        if scored_by(rows) == "test_acc"
        else "mean final validation accuracy"
    )
    return Figure(
        plot_scatter(rows, out_dir / "accuracy_vs_convergence.png"),
        "Accuracy vs convergence epoch",
        f"For every setting, {score} against its median convergence epoch (Kaplan–Meier "
        f"over seeds), the study's rule read on the validation accuracy of {validation}. Up "
        "and to the left is better. Vertical bars span the seeds' accuracies, horizontal "
        "bars their convergence epochs; a hollow marker did not converge in at least half "
        "its seeds and sits at the budget. Both axes fit the points, with a margin.",
    )
