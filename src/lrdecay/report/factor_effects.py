"""How much each of two crossed factors (sequence and strategy) matters, and which matters
more: the ranges of their levels' marginal mean accuracies, with simultaneous bounds from one
family of :mod:`lrdecay.report.differences` comparisons.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from numpy.typing import ArrayLike

from lrdecay.report.differences import (
    LEVEL,
    N_BOOT,
    POINTS,
    UNDECIDED,
    Difference,
    Family,
    FamilyResult,
    family_results,
    stack_arms,
)


@dataclass(frozen=True)
class FactorEffect:
    """How much one factor matters: the range of its levels' marginal mean accuracies (points),
    with simultaneous 95 % bounds on the true range."""

    factor: str
    levels: tuple[str, ...]
    means: tuple[float, ...]
    range: float
    lo: float
    hi: float


@dataclass(frozen=True)
class FactorComparison:
    """Both factors' effects, their difference (first − second, points) with its 95 % bounds,
    and the family of all level-pair differences the bounds come from."""

    first: FactorEffect
    second: FactorEffect
    estimate: float
    lo: float
    hi: float
    pairs: FamilyResult

    @property
    def verdict(self) -> str:
        """Which factor matters more, or that no difference is shown."""
        if self.lo > 0:
            return f"{self.first.factor} matters more"
        if self.hi < 0:
            return f"{self.second.factor} matters more"
        return UNDECIDED


def _levels(grid: Mapping[str, tuple[str, str]], axis: int) -> list[str]:
    """A factor's levels in order of first appearance."""
    return list(dict.fromkeys(cell[axis] for cell in grid.values()))


def _effect(
    factor: str, levels: list[str], means: np.ndarray, pairs: list[Difference]
) -> FactorEffect:
    """The range and its bounds: every pair's interval holds its true difference, so the true
    range lies between the largest distance from 0 of any interval and the largest endpoint."""
    floor = max(max(d.lo, -d.hi, 0.0) for d in pairs)
    ceiling = max(max(abs(d.lo), abs(d.hi)) for d in pairs)
    pts = POINTS * means
    return FactorEffect(
        factor, tuple(levels), tuple(float(m) for m in pts), float(np.ptp(pts)), floor, ceiling
    )


def factor_effects(
    correct: Mapping[str, ArrayLike],
    grid: Mapping[str, tuple[str, str]],
    *,
    names: tuple[str, str] = ("sequence", "strategy"),
    margin: float = 0.0,
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = LEVEL,
) -> FactorComparison:
    """How much each of two crossed factors matters, and which matters more, blocked by seed.

    ``grid`` maps each arm to its (first, second) factor levels; every combination must occur
    exactly once. A factor's *marginal mean* at a level is the accuracy averaged over the other
    factor's levels (and over seeds and test items); its effect is the range of those marginal
    means — how many points separate its best level from its worst, on the task. Estimate: the
    observed range (biased upward by noise, most where effects are small). Bounds: all pairwise
    differences of marginal means, of both factors, form one family with simultaneous 95 %
    bootstrap-t intervals (as in :func:`compare`); when they all cover, the true range lies
    between the largest distance from 0 of any pair's interval and the largest endpoint, for
    both factors at once, so the difference of ranges lies between ``lo₁ − hi₂`` and
    ``hi₁ − lo₂``. These bounds are conservative, and hold jointly at 95 %.
    """
    arms = list(grid)
    first, second = _levels(grid, 0), _levels(grid, 1)
    _check_grid(correct, grid, first, second)
    _, x = stack_arms({a: correct[a] for a in arms})
    rows, labels, split = _level_pairs(arms, grid, (first, second))
    fam = Family(
        f"{names[0]} and {names[1]} levels",
        f"which levels of the {names[0]} and of the {names[1]} differ (marginal means)",
        tuple(labels),
        margin,
    )
    coef = np.array(rows)
    result = family_results(x, coef, [fam], [list(range(len(rows)))], n_boot, seed, level)[0]
    grand = x.mean(axis=(1, 2))
    effects = []
    for axis, (levels, (start, stop)) in enumerate(
        zip((first, second), ((0, split[0]), (split[0], split[1])), strict=True)
    ):
        lv_means = np.array(
            [
                np.mean([grand[k] for k, a in enumerate(arms) if grid[a][axis] == lv])
                for lv in levels
            ]
        )
        effects.append(_effect(names[axis], levels, lv_means, list(result.differences[start:stop])))
    a, b = effects
    return FactorComparison(a, b, a.range - b.range, a.lo - b.hi, a.hi - b.lo, result)


def _check_grid(
    correct: Mapping[str, ArrayLike],
    grid: Mapping[str, tuple[str, str]],
    first: list[str],
    second: list[str],
) -> None:
    """Refuse a grid that is not every combination once, a factor with one level, or an arm
    without correctness."""
    cells = {tuple(v) for v in grid.values()}
    if len(cells) != len(grid) or len(cells) != len(first) * len(second):
        raise ValueError("the grid must hold every combination of the two factors exactly once")
    if len(first) < 2 or len(second) < 2:
        raise ValueError("each factor needs at least two levels")
    missing = [a for a in grid if a not in correct]
    if missing:
        raise ValueError(f"no correctness for {', '.join(missing)}")


def _level_pairs(
    arms: list[str], grid: Mapping[str, tuple[str, str]], factors: tuple[list[str], list[str]]
) -> tuple[list[np.ndarray], list[tuple[str, str]], list[int]]:
    """The contrast of every pair of levels of each factor (over the arms' marginal means),
    the pairs' labels, and where each factor's pairs end."""
    rows, labels, split = [], [], []
    for axis, levels in enumerate(factors):
        member = np.array([[grid[a][axis] == lv for a in arms] for lv in levels], dtype=float)
        member /= member.sum(axis=1, keepdims=True)  # marginal mean of each level
        for i, j in combinations(range(len(levels)), 2):
            rows.append(member[i] - member[j])
            labels.append((levels[i], levels[j]))
        split.append(len(rows))
    return rows, labels, split
