"""Runs reduced to per-setting statistics for the report (the runs are read by
:mod:`lrdecay.report.runs`). Each setting's accuracies are means with t-distribution 95%
confidence intervals over seeds; its convergence and epochs-to-target are censored (k of n runs
got there, Kaplan–Meier median); its rate moves are counted from the logged rate; its final
accuracy is tested against the SGD baseline by :mod:`lrdecay.report.inference`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from hydra_plugins.lrdecay_optuna_sweeper.stats import Stat as MeanInterval
from lrdecay.core.registry import study_names
from lrdecay.core.sequences import SEQUENCES as SEQUENCE_REGISTRY
from lrdecay.core.strategies import FIXED_STRATEGY
from lrdecay.core.strategies import STRATEGIES as STRATEGY_REGISTRY
from lrdecay.palette import (
    BASELINE_SGD,
    BASELINES,
    MODERN_COLORS,
    STUDY_OPTIMIZERS,
    modern_arm,
)
from lrdecay.report.inference import Comparison, compare_means, holm, km_median
from lrdecay.report.runs import UNKNOWN, RunRecord

#: The run metric behind each scoring column, and how the report names it.
SCORE_METRICS = {"final_acc": "final_val_acc", "test_acc": "test_acc"}
SCORE_NAMES = {"final_acc": "final accuracy", "test_acc": "test accuracy"}

#: The study's grid, from the registries: its sequences in order, and each strategy that moves
#: them with the name of its row group in the study's Tables 1 and 2.
SEQUENCES = study_names(SEQUENCE_REGISTRY)
STRATEGY_GROUP = {name: STRATEGY_REGISTRY[name].label for name in study_names(STRATEGY_REGISTRY)}
#: Row groups of the study's Tables 1 and 2, in order.
#: The modern baselines raced with the study (PyTorch schedulers, optimizers other than the
#: study's) form a block of their own after them.
MODERN_GROUP = "Modern baselines"
GROUPS = ("Benchmark", *STRATEGY_GROUP.values(), MODERN_GROUP, "Other")
#: How the Benchmark block labels its fixed-rate baselines, in :data:`BASELINES`' order: the
#: study's two at 0.001, and the control at the decayed arms' r0.
BASELINE_LABELS = dict(zip(BASELINES, ("SGD", "SGD at r0", "Adam"), strict=True))
#: Params that must agree across the seeds of one setting for their mean to mean anything.
CONSISTENCY_PARAMS = (
    "dataset.name",
    "optimizer.lr",
    "trainer.max_epochs",
    "dataset.val_fraction",
    "model.name",
)


@dataclass(frozen=True)
class Stat:
    """Mean of ``n`` values with the half-width of its 95% t-interval (None when n < 2), and the
    lowest and highest value (``lo``, ``hi``)."""

    mean: float
    half: float | None
    n: int
    lo: float
    hi: float

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Stat | None:
        """The statistic of the finite values given; None when there are none."""
        xs = [float(v) for v in values if v is not None and math.isfinite(v)]
        base = MeanInterval.of(xs)
        if base is None:
            return None
        return cls(base.mean, base.half, base.n, min(xs), max(xs))

    @property
    def interval(self) -> tuple[float, float] | None:
        """The bounds of the 95 % t-interval of the mean (``mean ∓ half``); None when n < 2.
        The one the table's cells, the figures' bands and the summary runs all show."""
        if self.half is None:
            return None
        return self.mean - self.half, self.mean + self.half


@dataclass(frozen=True)
class Censored:
    """Censored times of ``n`` runs (epoch, got there?): ``k`` got there, Kaplan–Meier median.

    ``median`` is None while fewer than half the runs got there; ``horizon`` is then the longest
    a run was watched, so the cell reads ``≥ horizon``. No mean: a run that never got there has
    no time to average.
    """

    times: tuple[float, ...]
    reached: tuple[bool, ...]

    @classmethod
    def of(cls, values: Iterable[tuple[float, bool] | None]) -> Censored | None:
        """The censored sample of the values given; None when there are none."""
        pairs = [v for v in values if v is not None]
        if not pairs:
            return None
        return cls(tuple(t for t, _ in pairs), tuple(r for _, r in pairs))

    @property
    def n(self) -> int:
        return len(self.times)

    @property
    def k(self) -> int:
        return sum(self.reached)

    @property
    def median(self) -> float | None:
        return km_median(self.times, self.reached)

    @property
    def horizon(self) -> float:
        return max(self.times)

    @property
    def lo(self) -> float:
        return min(self.times)


def required(stat: Stat | None) -> Stat:
    """``stat`` where the caller has already kept only settings that have values."""
    if stat is None:
        raise ValueError("statistic missing for a setting expected to have it")
    return stat


@dataclass
class SettingSummary:
    """One table row: a setting's runs and the statistics of each column."""

    setting: str
    group: str
    label: str
    order: int
    runs: list[RunRecord]
    target: float | None
    final_acc: Stat | None = None
    convergence: Censored | None = None
    best_acc: Stat | None = None
    to_target: Censored | None = None
    test_acc: Stat | None = None
    moves: Stat | None = None
    epochs_run: Stat | None = None
    comparison: Comparison | None = None
    #: The column that scores the setting: ``final_acc`` (final validation accuracy), or
    #: ``test_acc`` when every run held its validation split out of training, so the split
    #: that steered the schedule is not the one that scores it.
    scored_by: str = "final_acc"

    @property
    def scored(self) -> Stat | None:
        """The statistics of the scoring accuracy (see :attr:`scored_by`)."""
        stat: Stat | None = getattr(self, self.scored_by)
        return stat

    def mean(self, column: str) -> float:
        """Mean of a :class:`Stat` column (``final_acc``, ``moves``…); NaN without values."""
        stat: Stat | None = getattr(self, column)
        return stat.mean if stat is not None else math.nan

    def median(self, column: str) -> float:
        """Kaplan–Meier median of a censored column; infinite when not reached, NaN when empty."""
        cens: Censored | None = getattr(self, column)
        if cens is None:
            return math.nan
        median = cens.median
        return median if median is not None else math.inf

    @property
    def strategy(self) -> str:
        return self.runs[0].strategy

    @property
    def ok_runs(self) -> list[RunRecord]:
        """The runs whose numbers enter the means: every included run that did not diverge."""
        return [r for r in self.runs if not r.diverged]

    @property
    def n_runs(self) -> int:
        return len(self.runs)

    @property
    def n_diverged(self) -> int:
        return sum(r.diverged for r in self.runs)

    @property
    def finals(self) -> list[float]:
        """Scoring accuracy of each seed's non-diverged runs that recorded it."""
        return list(self.finals_by_seed().values())

    def finals_by_seed(self) -> dict[str, float]:
        """Scoring accuracy per seed (the mean when a seed ran twice): pairs settings."""
        metric = SCORE_METRICS[self.scored_by]
        return _by_seed((r.seed, r.metric(metric)) for r in self.ok_runs)

    def convergence_by_seed(self) -> dict[str, tuple[float, bool]]:
        """Censored convergence epoch per seed (the first run of a seed that ran twice)."""
        out: dict[str, tuple[float, bool]] = {}
        for r in self.ok_runs:
            if (value := r.convergence_time()) is not None:
                out.setdefault(r.seed, value)
        return out

    @property
    def with_history(self) -> int:
        return sum(bool(r.history.get("val_acc")) for r in self.ok_runs)

    @property
    def never_moved(self) -> bool:
        """True when the strategy may move the rate but no run's rate ever moved."""
        counts = [m for r in self.ok_runs if (m := r.rate_moves()) is not None]
        return self.strategy != FIXED_STRATEGY and bool(counts) and not any(counts)

    @property
    def still_runs(self) -> int:
        """Runs whose rate never moved, of a strategy that may move it."""
        if self.strategy == FIXED_STRATEGY:
            return 0
        return sum(r.rate_moves() == 0 for r in self.ok_runs)

    @property
    def mixed_params(self) -> list[str]:
        """Params that differ between this setting's runs (their mean would mix configs)."""
        return [k for k in CONSISTENCY_PARAMS if len({r.params.get(k) for r in self.runs}) > 1]


def _by_seed(pairs: Iterable[tuple[str, float | None]]) -> dict[str, float]:
    """``{seed: mean value}`` of the finite values given."""
    grouped: dict[str, list[float]] = {}
    for seed, value in pairs:
        if value is not None and math.isfinite(value):
            grouped.setdefault(seed, []).append(value)
    return {seed: float(np.mean(vs)) for seed, vs in grouped.items()}


def is_modern(optimizer: str, scheduler: str) -> bool:
    """Whether a run is a modern baseline: a PyTorch scheduler (its ``scheduler`` tag), or an
    optimizer other than the study's SGD and Adam (schedule-free, learning-rate-free, AdamW).
    A run without an optimizer tag (``?``) is not."""
    return bool(scheduler) or optimizer not in (*STUDY_OPTIMIZERS, UNKNOWN)


def classify(
    optimizer: str, sequence: str, strategy: str, setting: str, scheduler: str = ""
) -> tuple[str, str, int]:
    """(group, row label, order within group) of a setting, as in the study's tables; the
    fixed-rate baselines and the control at r0 (:data:`BASELINES`) form the Benchmark block,
    modern baselines (:func:`is_modern`) the "Modern baselines" block (ready options first)."""
    if is_modern(optimizer, scheduler):
        ready, arm = list(MODERN_COLORS), modern_arm(setting, sequence)
        return MODERN_GROUP, setting, ready.index(arm) if arm is not None else len(ready)
    if strategy == FIXED_STRATEGY and setting in BASELINE_LABELS:
        return "Benchmark", BASELINE_LABELS[setting], BASELINES.index(setting)
    if optimizer == "sgd" and sequence in SEQUENCES and strategy in STRATEGY_GROUP:
        return STRATEGY_GROUP[strategy], sequence, SEQUENCES.index(sequence)
    return "Other", setting, 0


def default_target(runs: Sequence[RunRecord]) -> float | None:
    """The runs' ``dataset.target_accuracy`` (the most common value if they disagree)."""
    values = Counter(
        r.params["dataset.target_accuracy"]
        for r in runs
        if r.params.get("dataset.target_accuracy") not in (None, "None")
    )
    for value, _ in values.most_common():
        try:
            return float(value)
        except ValueError:
            continue
    return None


def summarise(runs: Sequence[RunRecord], target: float | None) -> list[SettingSummary]:
    """One :class:`SettingSummary` per setting, in table order (group, then sequence)."""
    by_setting: dict[str, list[RunRecord]] = {}
    for run in runs:
        by_setting.setdefault(run.setting, []).append(run)
    rows: list[SettingSummary] = []
    for setting, members in by_setting.items():
        first = members[0]
        group, label, order = classify(
            first.optimizer, first.sequence, first.strategy, setting, first.scheduler
        )
        row = SettingSummary(setting, group, label, order, members, target)
        ok = row.ok_runs
        row.final_acc = Stat.of(r.metric("final_val_acc") for r in ok)
        row.convergence = Censored.of(r.convergence_time() for r in ok)
        row.best_acc = Stat.of(r.metric("best_val_acc") for r in ok)
        row.to_target = Censored.of(r.target_time(target) for r in ok)
        row.test_acc = Stat.of(r.metric("test_acc") for r in ok)
        row.moves = Stat.of(r.rate_moves() for r in ok)
        row.epochs_run = Stat.of(r.metric("epochs_run") for r in ok)
        rows.append(row)
    rows.sort(key=lambda s: (GROUPS.index(s.group), s.order, s.setting))
    scored_by = scoring_column(runs)
    for row in rows:
        row.scored_by = scored_by
    compare_with_baseline(rows)
    return rows


def scoring_column(runs: Sequence[RunRecord]) -> str:
    """``test_acc`` when every non-diverged run held out its validation split and recorded a
    test accuracy; else ``final_acc``, the study's own score (its validation split is the test
    split)."""
    ok = [r for r in runs if not r.diverged]
    held_out = bool(ok) and all(
        (v := r.metric("test_acc")) is not None and math.isfinite(v) for r in ok
    )
    return "test_acc" if held_out else "final_acc"


def scored_by(rows: Sequence[SettingSummary]) -> str:
    """The scoring column of a table's rows (they share one; ``final_acc`` when empty)."""
    return rows[0].scored_by if rows else "final_acc"


def compare_with_baseline(rows: Sequence[SettingSummary]) -> None:
    """Set each row's final-accuracy test against the SGD baseline, Holm-corrected together."""
    baseline = find(rows, BASELINE_SGD)
    if baseline is None:
        return
    others = [s for s in rows if s is not baseline]
    tests = holm([compare_means(s.finals_by_seed(), baseline.finals_by_seed()) for s in others])
    for row, test in zip(others, tests, strict=True):
        row.comparison = test


def find(rows: Sequence[SettingSummary], setting: str) -> SettingSummary | None:
    """The row of ``setting``, if these runs have it."""
    return next((s for s in rows if s.setting == setting), None)


def best_rows(rows: Sequence[SettingSummary], column: str, highest: bool, digits: int) -> set[str]:
    """Settings whose centre in ``column`` (mean, or censored median) is best, compared at the
    displayed precision. Empty when every setting ties: marking them all would single nothing out.
    """
    centres = {
        s.setting: round(centre, digits)
        for s in rows
        if (centre := _centre(getattr(s, column))) is not None
    }
    if not centres or (len(centres) > 1 and len(set(centres.values())) == 1):
        return set()
    best = max(centres.values()) if highest else min(centres.values())
    return {k for k, v in centres.items() if v == best}


def _centre(value: Stat | Censored | None) -> float | None:
    """The number a column is ranked by: a mean, or a median that was reached."""
    if isinstance(value, Censored):
        return value.median
    return value.mean if value is not None else None
