"""The validation loss after its minimum: at which epoch each arm's validation loss bottoms
out, how far it rises by the last epoch, the validation accuracy at both, and what a rise means
for the strategies that read that loss.

A validation loss that rises after an early minimum while training goes on is overfitting.
Cutoff and oscillate (and PyTorch's ReduceLROnPlateau) move the rate when the validation loss
stops falling, so a rise from overfitting moves their rate for a reason that is not optimisation
progress. Every number is computed from the runs' per-epoch history (means over seeds); the
paragraph that reads them is generated from them too, so it stays true when the runs change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from lrdecay.core.strategies import reads_val_loss
from lrdecay.report.runs import RunRecord, rate_change_epochs
from lrdecay.report.stats import SCORE_NAMES, SettingSummary, Stat, scored_by
from lrdecay.report.tables import ACC_DIGITS

#: The report's section on it (its heading, and the anchor the page links to).
TITLE = "Validation loss after its minimum"
ANCHOR = "validation-loss-after-its-minimum"
#: An arm's validation loss "rises after an early minimum" when, on average over seeds, its
#: last value is at least RISE above the run's minimum and that minimum comes within the first
#: EARLY share of the epochs run: well past the wobble of a loss that settles near the end.
RISE = 0.10
EARLY = 0.8
#: The PyTorch scheduler that steps on the validation loss, by the class name its runs' scheduler
#: tag ends with (the report reads tags and never imports torch).
PLATEAU_CLASS = "ReduceLROnPlateau"
#: An accuracy that moves less than this (half a point) over the rise "holds".
HOLDS = 0.005
#: Fewest arms whose rank correlation the paragraph quotes, and the least |ρ| it reads as an
#: ordering (below it: no clear order).
MIN_ARMS_FOR_RANKS = 4
WEAK_RHO = 0.3
LOSS_DIGITS = 4


@dataclass(frozen=True)
class RunLoss:
    """One run's validation loss at its minimum and at its last epoch, its validation accuracy
    at both, and its rate moves after the minimum."""

    min_epoch: int
    last_epoch: int
    min_loss: float
    last_loss: float
    acc_at_min: float | None
    acc_at_last: float | None
    moves: int | None  # rate moves over the run (None: no rate logged)
    moves_after: int | None  # of those, the moves into an epoch after the minimum
    late_rate: float | None  # median rate of the second half of the epochs run (None: no rate)

    @property
    def rise(self) -> float:
        return self.last_loss - self.min_loss

    @property
    def relative_rise(self) -> float:
        return self.rise / self.min_loss if self.min_loss > 0 else math.nan


def run_loss(run: RunRecord) -> RunLoss | None:
    """The :class:`RunLoss` of ``run``; None when it logged no finite validation loss."""
    points = [(e, v) for e, v in zip(*run.series("val_loss"), strict=True) if math.isfinite(v)]
    if not points:
        return None
    min_epoch, min_loss = min(points, key=lambda p: (p[1], p[0]))  # the first epoch at the min
    last_epoch, last_loss = points[-1]
    accs = run.history.get("val_acc", {})
    epochs, lrs = run.series("lr")
    moved = rate_change_epochs(epochs, lrs) if epochs else None
    late = [lr for e, lr in zip(epochs, lrs, strict=True) if e > last_epoch / 2 and lr > 0]
    return RunLoss(
        min_epoch=min_epoch,
        last_epoch=last_epoch,
        min_loss=min_loss,
        last_loss=last_loss,
        acc_at_min=accs.get(min_epoch),
        acc_at_last=accs.get(last_epoch),
        moves=len(moved) if moved is not None else None,
        moves_after=sum(e > min_epoch for e in moved) if moved is not None else None,
        late_rate=float(np.median(late)) if late else None,
    )


@dataclass(frozen=True)
class ArmLoss:
    """One arm's (setting's) :class:`RunLoss` numbers, as means over its non-diverged seeds."""

    row: SettingSummary
    runs: tuple[RunLoss, ...]

    def stat(self, value: str) -> Stat | None:
        """Mean over the runs of a :class:`RunLoss` field or property."""
        return Stat.of(getattr(r, value) for r in self.runs)

    def mean(self, value: str) -> float:
        """The mean of :meth:`stat`; NaN without values."""
        stat = self.stat(value)
        return stat.mean if stat is not None else math.nan

    @property
    def moving(self) -> bool:
        """Whether the arm's rate moved in any run (else it trained at a fixed rate)."""
        return any(r.moves for r in self.runs)

    @property
    def rises(self) -> bool:
        """Whether its last validation loss lies :data:`RISE` or more above a minimum in the
        first :data:`EARLY` of the epochs run (means over seeds)."""
        early = self.mean("min_epoch") <= EARLY * self.mean("last_epoch")
        return early and self.mean("relative_rise") >= RISE

    @property
    def reader(self) -> str | None:
        """What reads the validation loss to move this arm's rate: its strategy (``cutoff``,
        ``oscillate``), or its setting for a plateau scheduler; None when nothing does."""
        run = self.row.runs[0]
        if reads_val_loss(run.strategy):
            return run.strategy
        if run.scheduler.rsplit(".", 1)[-1] == PLATEAU_CLASS:
            return self.row.setting
        return None

    @property
    def late_rate(self) -> float | None:
        """Geometric mean over runs of the median rate of the second half of training."""
        rates = [r.late_rate for r in self.runs if r.late_rate is not None]
        return float(np.exp(np.mean(np.log(rates)))) if rates else None


def loss_rises(rows: Sequence[SettingSummary]) -> list[ArmLoss]:
    """The :class:`ArmLoss` of every arm in ``rows`` (table order) that logged a validation loss."""
    arms = []
    for row in rows:
        runs = tuple(r for run in row.ok_runs if (r := run_loss(run)) is not None)
        if runs:
            arms.append(ArmLoss(row, runs))
    return arms


def _epoch_cell(stat: Stat | None) -> str:
    if stat is None:
        return "n/a"
    if stat.n == 1 or stat.lo == stat.hi:
        return f"{stat.mean:.1f}"
    return f"{stat.mean:.1f} ({stat.lo:.0f}–{stat.hi:.0f})"


def _pair(before: Stat | None, after: Stat | None, digits: int) -> str:
    if before is None or after is None:
        return "n/a"
    return f"{before.mean:.{digits}f} → {after.mean:.{digits}f}"


def _moves_cell(arm: ArmLoss) -> str:
    after, total = arm.stat("moves_after"), arm.stat("moves")
    if not arm.moving or after is None or total is None:
        return "–"
    return f"{after.mean:.1f} of {total.mean:.1f}"


def table(arms: Sequence[ArmLoss]) -> list[str]:
    """The section's Markdown table: one row per arm."""
    lines = [
        "| Group | Setting | Reads validation loss | Minimum at epoch | Validation loss: "
        "minimum → last | Rise | Validation accuracy: at minimum → last | Rate moves after "
        "the minimum |",
        "|:--|:--|:--|--:|--:|--:|--:|--:|",
    ]
    group = None
    for arm in arms:
        row = arm.row
        shown = f"**{row.group}**" if row.group != group else ""
        group = row.group
        rise = arm.stat("rise")
        rise_cell = (
            f"{rise.mean:+.{LOSS_DIGITS}f} ({100 * arm.mean('relative_rise'):+.0f}%)"
            if rise is not None
            else "n/a"
        )
        lines.append(
            f"| {shown} | {row.setting} | {'yes' if arm.reader else 'no'} | "
            f"{_epoch_cell(arm.stat('min_epoch'))} | "
            f"{_pair(arm.stat('min_loss'), arm.stat('last_loss'), LOSS_DIGITS)} | {rise_cell} | "
            f"{_pair(arm.stat('acc_at_min'), arm.stat('acc_at_last'), ACC_DIGITS)} | "
            f"{_moves_cell(arm)} |"
        )
    return lines


def _span(values: Sequence[float], fmt: str) -> str:
    """``a–b`` of ``values`` in format ``fmt`` (one value alone when they agree)."""
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    return lo if lo == hi else f"{lo}–{hi}"


def _names(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def reading(arms: Sequence[ArmLoss]) -> str:
    """The section's paragraph, generated from the numbers: where the rise is, how the fixed
    rates compare, what happened to accuracy, and what it means for the strategies that read
    the validation loss."""
    if not arms:
        return ""
    moving = [a for a in arms if a.moving]
    rising = [a for a in moving if a.rises]
    parts = []
    if moving:
        text = (
            f"The validation loss rises after an early minimum in {len(rising)} of the "
            f"{len(moving)} arms whose rate moves (its last value {100 * RISE:.0f}% or more "
            f"above a minimum in the first {100 * EARLY:.0f}% of the epochs, on average over "
            "seeds)"
        )
        if rising:
            epochs = _span([a.mean("min_epoch") for a in rising], ".1f")
            above = _span([100 * a.mean("relative_rise") for a in rising], ".0f")
            text += f": their minimum comes at epoch {epochs}, their last loss {above}% above it"
        parts.append(text + ".")
    fixed = [a for a in arms if not a.moving]
    if fixed:
        parts.append(
            "At a fixed rate the minimum comes at epoch "
            + _names(
                [
                    f"{a.mean('min_epoch'):.1f} of {a.mean('last_epoch'):.0f} for "
                    f"{a.row.setting} ({100 * a.mean('relative_rise'):+.0f}% by the last)"
                    for a in fixed
                ]
            )
            + "."
        )
    changes = [
        100 * (a.mean("acc_at_last") - a.mean("acc_at_min"))
        for a in rising
        if not math.isnan(a.mean("acc_at_last") - a.mean("acc_at_min"))
    ]
    if changes:
        parts.append(
            "Over the same epochs the validation accuracy of those arms changes by "
            f"{_span(changes, '+.2f')} points (last epoch against the minimum's): "
            + (
                f"the loss rises while the accuracy holds (within {100 * HOLDS:g} point), the "
                "mark of growing confidence in wrong answers, which the loss punishes and the "
                "accuracy does not count."
                if max(abs(c) for c in changes) < 100 * HOLDS
                else "the rise in the loss comes with a change in accuracy."
            )
        )
    parts += _readers_text(arms)
    parts += _ranks_text(moving)
    return " ".join(parts)


def _readers_text(arms: Sequence[ArmLoss]) -> list[str]:
    """What follows for the arms whose rate moves on the validation loss, with the share of
    their moves that came after the run's minimum."""
    readers: dict[str, list[ArmLoss]] = {}
    for a in arms:
        if a.reader is not None:
            readers.setdefault(a.reader, []).append(a)
    if not readers:
        return []
    shares = []
    for name, group in readers.items():
        total = sum(a.mean("moves") for a in group)
        if total > 0:
            after = sum(a.mean("moves_after") for a in group)
            shares.append(f"{100 * after / total:.0f}% of {name}'s")
    risen = any(a.rises for group in readers.values() for a in group)
    names = _names(list(readers))
    text = (
        f"{names[:1].upper()}{names[1:]} move the rate when the validation loss stops falling "
        "(oscillate whenever it rose from one epoch to the next), so a validation loss that "
        f"rises from overfitting {'triggers' if risen else 'would trigger'} rate moves that "
        "are not about optimisation progress"
        + ("" if risen else " (in none of these arms did it rise)")
    )
    if shares:
        text += (
            f": {_names(shares)} rate moves came after the run's validation-loss minimum "
            "(mean over seeds)"
        )
    return [text + "."]


def _ranks_text(moving: Sequence[ArmLoss]) -> list[str]:
    """Across the arms whose rate moves: does the rise shrink with the rate of the second half
    of training, and does the scoring accuracy go with a smaller rise (Spearman, descriptive)?"""
    ranked = [a for a in moving if a.late_rate is not None]
    if len(ranked) < MIN_ARMS_FOR_RANKS:
        return []
    rises = [a.mean("relative_rise") for a in ranked]
    rho_rate = _spearman([a.late_rate or 0.0 for a in ranked], rises)
    if rho_rate is None:
        return []
    text = f"Across the {len(ranked)} arms whose rate moves, " + _order(
        rho_rate,
        "the lower an arm's rate in the second half of training, the smaller its rise",
        "the lower an arm's rate in the second half of training, the larger its rise",
        "the rise follows no clear order of the rate in the second half of training",
    )
    text += f" (Spearman ρ = {rho_rate:.2f} between that median rate and the relative rise)"
    column = scored_by([a.row for a in ranked])
    scores = [a.row.mean(column) for a in ranked]
    if all(math.isfinite(s) for s in scores):
        rho_acc = _spearman(rises, scores)
        if rho_acc is not None:
            score = SCORE_NAMES[column]
            text += ", and " + _order(
                rho_acc,
                f"the larger an arm's rise, the higher its {score}",
                f"the smaller an arm's rise, the higher its {score}",
                f"its {score} follows no clear order of the rise",
            )
            text += f" (ρ = {rho_acc:.2f})"
    return [text + "; rank correlations across arms, descriptive, not a test of cause."]


def _spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's ρ of two samples; None when either is constant (ρ is undefined)."""
    if len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    rho = float(stats.spearmanr(xs, ys).statistic)
    return rho if math.isfinite(rho) else None


def _order(rho: float, rising: str, falling: str, neither: str) -> str:
    """The words for a rank correlation ``rho``: ``rising`` when clearly positive, ``falling``
    when clearly negative, ``neither`` below :data:`WEAK_RHO`."""
    if abs(rho) < WEAK_RHO:
        return neither
    return rising if rho > 0 else falling


def markdown(rows: Sequence[SettingSummary]) -> list[str]:
    """The report's section: heading, what it measures, the table and the generated reading;
    empty when no run logged a validation loss."""
    arms = loss_rises(rows)
    if not arms:
        return []
    return [
        f"## {TITLE}",
        "",
        "Per arm, from each run's validation loss per epoch (the validation split): the epoch "
        "of its minimum, the loss there and at the last epoch, the rise between them (mean "
        "over seeds, relative to the minimum in brackets), the validation accuracy at both "
        "epochs, and how many of the run's rate moves came after the minimum. Means over "
        "seeds, the seeds' range in brackets.",
        "",
        *table(arms),
        "",
        reading(arms),
        "",
    ]
