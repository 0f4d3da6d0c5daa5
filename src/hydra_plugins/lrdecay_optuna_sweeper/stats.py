"""A mean with the half-width of its 95 % t-interval: the confirm stage's statistic, and the
one the app's report builds its per-setting cells on (one definition of the arithmetic)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np


class Stat(NamedTuple):
    """Mean of ``n`` values with the half-width of its 95 % t-interval (None when n < 2)."""

    mean: float
    half: float | None
    n: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Stat | None:
        """The statistic of the finite values given; None when there are none."""
        xs = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
        if xs.size == 0:
            return None
        half = None
        if xs.size >= 2:
            from scipy import stats  # only with two values or more: a slow import

            half = float(stats.t.ppf(0.975, xs.size - 1) * stats.sem(xs))
        return cls(float(xs.mean()), half, int(xs.size))

    def bound(self, maximize: bool) -> float | None:
        """The pessimistic end of the 95 % t-interval: ``mean - half`` when larger is better,
        ``mean + half`` when smaller is; None with one value (no interval)."""
        if self.half is None:
            return None
        return self.mean - self.half if maximize else self.mean + self.half
