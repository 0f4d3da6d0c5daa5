"""The confirm stage's statistic: a mean with the half-width of its 95 % t-interval."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from typing import NamedTuple


class Stat(NamedTuple):
    """Mean of ``n`` values with the half-width of its 95 % t-interval (None when n < 2)."""

    mean: float
    half: float | None
    n: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Stat | None:
        """The statistic of the finite values given; None when there are none."""
        xs = [float(v) for v in values if v is not None and math.isfinite(v)]
        if not xs:
            return None
        half = None
        if len(xs) >= 2:
            from scipy import stats

            sem = statistics.stdev(xs) / math.sqrt(len(xs))
            half = float(stats.t.ppf(0.975, len(xs) - 1) * sem)
        return cls(statistics.fmean(xs), half, len(xs))
