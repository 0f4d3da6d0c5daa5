"""A setting's numbers over its seeds, epoch by epoch: the mean and the bounds of its 95 %
t-interval (:attr:`~lrdecay.report.stats.Stat.interval`, the table's interval), and how many
seeds reached each epoch. What the report's figures draw and a setting's summary run in MLflow
holds, computed once here so that both show the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

from lrdecay.report.runs import RunRecord
from lrdecay.report.stats import Stat


def epoch_stats(runs: Sequence[RunRecord], name: str) -> dict[int, Stat]:
    """Per epoch (sorted), the :class:`Stat` of per-epoch metric ``name`` over the finite values
    ``runs`` logged at it; epochs where none did are left out."""
    per_epoch: dict[int, list[float]] = {}
    for run in runs:
        for epoch, value in run.history.get(name, {}).items():
            per_epoch.setdefault(epoch, []).append(value)
    return {e: s for e in sorted(per_epoch) if (s := Stat.of(per_epoch[e])) is not None}


def seeds_per_epoch(runs: Sequence[RunRecord]) -> dict[int, int]:
    """Per epoch (sorted), how many of ``runs`` reached it (logged a per-epoch metric at it)."""
    counts: dict[int, int] = {}
    for run in runs:
        for epoch in set().union(*map(set, run.history.values())):
            counts[epoch] = counts.get(epoch, 0) + 1
    return dict(sorted(counts.items()))
