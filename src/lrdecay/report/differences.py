"""Differences in test accuracy between arms, with both sources of noise: seeds and test items.

Every run keeps one correctness bit per test item, so an arm is a boolean ``seeds × items``
matrix, and all arms share their seeds (same initial weights and batch order) and their items.
The estimand is the difference the *task* would show: the expected accuracy over training seeds
and over test items drawn like these, not the accuracy on this particular test set. Its
estimate, arm minus control, is the mean over seeds of the per-seed accuracy difference.

**Intervals: a studentized two-way bootstrap of the crossed design.** A difference table (seeds
× items) splits into its mean, each seed's effect (that seed's accuracy difference minus the
mean; it carries the seed × item noise, which items a run happens to get right) and each item's
effect (its difference averaged over seeds, minus the mean) shrunk so that its spread is the
item variance component alone (ANOVA moments; as for random effects in Davison & Hinkley 1997,
§3.8); ``v_seed/S + v_item/N`` is then the unbiased variance of the mean. Each replicate
resamples seeds and items with replacement — the same seeds and the same items for every arm,
items as multinomial weights, one matrix product over the items for all replicates of a chunk —
and is studentized by its own standard error: a symmetric bootstrap-t. Measured on simulated
runs (``tests/test_differences.py``: item difficulty, seed and run shifts, per-run item noise;
10 seeds, 2,000 items, B = 1000, 3,100 draws per regime) it covered 0.946–0.955 whether per-run
item noise, run-level shifts or arm-specific item effects dominated (10,000 items, B = 4000, 400
draws: 0.93 and 0.965). Rejected after the same measurement: reweighting the raw table both ways
(the pigeonhole bootstrap) counts the seed × item term three times, as every resampling of a
crossed table must (McCullagh 2000), and that term dominates real runs: its percentile intervals
were up to 1.5 times too wide (coverage 0.988–0.997 there); studentized, its replicates
over-weight that well-estimated term and under-represent the seeds' few degrees of freedom
(coverage 0.925 where run-level shifts dominate); percentile intervals of this decomposition
lack the ``t`` tails of 10 seeds (0.89–0.93).

**Families.** A family is a set of comparisons read together (say every arm against one
control). Its intervals are simultaneous: ``estimate ± c·se`` with ``c`` the bootstrap's 95 %
quantile of ``max |T|`` over the family (single-step max-|T|, Romano–Wolf), which keeps the
family-wise coverage at 95 % while using the correlation of comparisons that share a control.
Adjusted p-values are Holm's step-down applied to the same max-|T| distribution (Romano–Wolf
step-down), so every comparison whose interval excludes 0 has ``p_adj ≤ 0.05``. A difference
is *decided* when its interval excludes 0, otherwise it reads "no difference shown"; it is
*equivalent* at a margin δ fixed before the runs when its interval lies inside (−δ, δ): TOST
at the family-wise level, conservative since the two-sided interval is used. Each family also
states the smallest margin at which all its comparisons would be equivalent.

Accuracies and differences are in points (×100). Nothing here knows MLflow or torch.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from lrdecay.report.markdown import pipe_table

#: Nominal level of every interval (and 1 − the family-wise error rate of every verdict).
LEVEL = 0.95
#: Bootstrap replicates by default.
N_BOOT = 4000
#: Replicates drawn and reduced at a time: bounds memory (two ``chunk × items`` arrays) and
#: fixes the order of random draws, so results depend on the seed and ``n_boot`` only.
CHUNK = 250
#: Accuracy points per unit of accuracy.
POINTS = 100.0
#: How a comparison that is not decided reads (never "equal", never "none beats").
UNDECIDED = "no difference shown"


# --------------------------------------------------------------------------- inputs


def correctness_matrices(
    predicted: Mapping[str, Mapping[str, ArrayLike]], labels: ArrayLike
) -> tuple[list[str], dict[str, np.ndarray]]:
    """Each arm's ``seeds × items`` correctness from its runs' predicted labels ``{seed: labels}``.

    Only seeds that every arm ran are kept (the pairing), in a stable order; returns them and
    the matrices, row ``s`` being seed ``seeds[s]``.
    """
    truth = np.asarray(labels)
    if not predicted:
        raise ValueError("no arms to compare")
    common = set.intersection(*(set(runs) for runs in predicted.values()))
    seeds = sorted(common, key=lambda s: (len(s), s))
    out = {}
    for arm, runs in predicted.items():
        rows = [np.asarray(runs[s]) for s in seeds]
        if any(r.shape != truth.shape for r in rows):
            raise ValueError(f"{arm}: a run's predictions do not match the {truth.size} labels")
        out[arm] = np.array([r == truth for r in rows], dtype=bool).reshape(len(seeds), -1)
    return seeds, out


def _stack(correct: Mapping[str, ArrayLike]) -> tuple[list[str], np.ndarray]:
    """Arm names and their matrices as one float ``arms × seeds × items`` array, checked."""
    arms = list(correct)
    if not arms:
        raise ValueError("no arms to compare")
    mats = [np.asarray(correct[a]) for a in arms]
    shape = mats[0].shape
    for arm, m in zip(arms, mats, strict=True):
        if m.ndim != 2 or m.shape != shape:
            raise ValueError(f"{arm}: correctness must be seeds × items {shape}, got {m.shape}")
        if m.dtype != bool and not np.isin(m, (0, 1)).all():
            raise ValueError(f"{arm}: correctness must be boolean (or 0/1)")
    if shape[0] < 2 or shape[1] < 2:
        raise ValueError(f"need at least 2 seeds and 2 items, got {shape[0]} × {shape[1]}")
    return arms, np.array(mats, dtype=np.float64)


# --------------------------------------------------------------------------- engine


def _counts(rng: np.random.Generator, rows: int, size: int) -> np.ndarray:
    """``rows`` multinomial weight vectors: how often each of ``size`` units is drawn when
    ``size`` are drawn with replacement."""
    kind = np.int32 if rows * size < 2**31 else np.int64
    idx = rng.integers(0, size, size=(rows, size), dtype=kind)
    idx += (np.arange(rows, dtype=idx.dtype) * size)[:, None]
    return np.bincount(idx.ravel(), minlength=rows * size).reshape(rows, size).astype(np.float64)


@dataclass(frozen=True)
class _Effects:
    """The crossed-design decomposition of contrast tables (seeds × items): the mean, each seed's
    effect and each item's effect, shrunk so that its spread is the item component alone."""

    mean: np.ndarray  # C
    seed: np.ndarray  # S × 2C: per-seed difference minus the mean (with seed × item noise), ²
    item: np.ndarray  # N × 2C: per-item difference minus the mean, shrunk, and its square

    @classmethod
    def of(cls, x: np.ndarray, coef: np.ndarray) -> _Effects:
        """Decompose the contrasts ``coef`` (``C × arms``) of ``x`` (``arms × S × N``) without
        forming their tables: ``v_seed/S + v_item/N`` is the unbiased variance of the mean."""
        a, s, n = x.shape
        flat = x.reshape(a, s * n)
        gram = flat @ flat.T  # Σ x_a x_b over seeds and items: each contrast's Σ d²
        mean = coef @ flat.mean(axis=1)
        seed = (coef @ x.mean(axis=2) - mean[:, None]).T
        item = (coef @ x.mean(axis=1) - mean[:, None]).T
        total = np.einsum("ca,ab,cb->c", coef, gram, coef) - s * n * mean * mean
        ss_seed = n * np.einsum("sc,sc->c", seed, seed)
        ss_item = s * np.einsum("nc,nc->c", item, item)
        v_res = np.maximum(total - ss_seed - ss_item, 0.0) / ((s - 1) * (n - 1))
        v_item = ss_item / (s * (n - 1))  # its expectation: σ²_item + σ²_res/S
        with np.errstate(divide="ignore", invalid="ignore"):
            shrink = np.where(v_item > 0, np.sqrt(np.maximum(1 - v_res / (s * v_item), 0)), 0)
        item = item * shrink
        return cls(mean, np.hstack([seed, seed * seed]), np.hstack([item, item * item]))

    def replicate(self, k: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Means and standard errors (``b × C``) under seed counts ``k`` (``b × S``) and item
        counts ``w`` (``b × N``): one matrix product over the items for all replicates."""
        (s, c), n = self.seed.shape, self.item.shape[0]
        c //= 2
        seeds, items = k @ self.seed, w @ self.item
        seed_mean, item_mean = seeds[:, :c] / s, items[:, :c] / n
        v_seed = (seeds[:, c:] - s * seed_mean * seed_mean) / (s - 1)
        v_item = (items[:, c:] - n * item_mean * item_mean) / (n - 1)
        var = np.maximum(v_seed, 0.0) / s + np.maximum(v_item, 0.0) / n
        return self.mean + seed_mean + item_mean, np.sqrt(var)


@dataclass(frozen=True)
class _Replicates:
    """Estimates and standard errors of contrasts, observed and in each bootstrap replicate."""

    est: np.ndarray  # C
    se: np.ndarray  # C
    boot_est: np.ndarray  # B × C
    boot_se: np.ndarray  # B × C

    def t(self) -> np.ndarray:
        """Each replicate's studentized deviation ``|est* − est| / se*`` (B × C)."""
        dev = np.abs(self.boot_est - self.est)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.boot_se > 0, dev / self.boot_se, np.where(dev == 0, 0.0, np.inf))


def _bootstrap(x: np.ndarray, coef: np.ndarray, n_boot: int, seed: int) -> _Replicates:
    """Two-way (seeds × items) bootstrap of the contrasts ``coef`` (``C × arms``) of ``x``.

    The replicates' random draws depend only on ``seed``, ``n_boot`` and the table's shape, so
    every call with them resamples the same seeds and items.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    _, s, n = x.shape
    effects = _Effects.of(x, coef)
    est, se = effects.replicate(np.ones((1, s)), np.ones((1, n)))
    rng = np.random.default_rng(seed)
    means, ses = [], []
    for start in range(0, n_boot, CHUNK):
        b = min(CHUNK, n_boot - start)
        k = _counts(rng, b, s)
        w = _counts(rng, b, n)
        m, e = effects.replicate(k, w)
        means.append(m)
        ses.append(e)
    return _Replicates(est[0], se[0], np.concatenate(means), np.concatenate(ses))


def _critical(max_t: np.ndarray, level: float) -> float:
    """The bootstrap quantile of ``max |T|``: its ⌈level·(B+1)⌉-th smallest replicate."""
    ordered = np.sort(max_t)
    rank = min(math.ceil(level * (len(ordered) + 1)), len(ordered))
    return float(ordered[rank - 1])


def _step_down(t_obs: np.ndarray, t_boot: np.ndarray) -> np.ndarray:
    """Romano–Wolf step-down adjusted p-values (Holm's principle on the max-|T| distribution)."""
    order = np.argsort(-t_obs, kind="stable")
    b = t_boot.shape[0]
    p = np.empty(len(t_obs))
    running = 0.0
    for rank, j in enumerate(order):
        rest = order[rank:]
        hits = np.count_nonzero(t_boot[:, rest].max(axis=1) >= t_obs[j])
        running = max(running, (1 + hits) / (b + 1))
        p[j] = running
    return p


# --------------------------------------------------------------------------- differences


@dataclass(frozen=True)
class Family:
    """Comparisons read together: one question, one margin, one family-wise error rate.

    ``pairs`` are ``(arm, control)``; ``margin`` is the equivalence margin δ in accuracy points,
    fixed before the runs.
    """

    name: str
    question: str
    pairs: tuple[tuple[str, str], ...]
    margin: float

    @classmethod
    def against(
        cls, name: str, question: str, arms: Sequence[str], control: str, margin: float
    ) -> Family:
        """Every arm of ``arms`` (but the control) against ``control``."""
        return cls(name, question, tuple((a, control) for a in arms if a != control), margin)


@dataclass(frozen=True)
class Difference:
    """One comparison, arm − control in accuracy points, with its simultaneous interval
    (family-wise level), step-down adjusted p-value and the two verdicts they give."""

    arm: str
    control: str
    family: str
    estimate: float
    se: float
    lo: float
    hi: float
    p_adj: float
    decided: bool
    equivalent: bool

    @property
    def verdict(self) -> str:
        """The comparison in words: who is ahead, or that no difference is shown."""
        if self.lo > 0:
            return f"{self.arm} ahead"
        if self.hi < 0:
            return f"{self.control} ahead"
        return UNDECIDED


@dataclass(frozen=True)
class FamilyResult:
    """A family's comparisons and what bounds them all: the margin, and the smallest margin at
    which every comparison would be called equivalent (``max |endpoint|``)."""

    name: str
    question: str
    margin: float
    smallest_margin: float
    critical: float
    differences: tuple[Difference, ...]
    level: float
    n_seeds: int
    n_items: int
    n_boot: int


def _family_result(
    family: Family,
    rep: _Replicates,
    cols: list[int],
    t_boot: np.ndarray,
    level: float,
    shape: tuple[int, int],
) -> FamilyResult:
    """One family from the shared replicates: simultaneous intervals, step-down p-values."""
    est, se = rep.est[cols], rep.se[cols]
    fam_t = t_boot[:, cols]
    crit = _critical(fam_t.max(axis=1), level)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_obs = np.where(se > 0, np.abs(est) / se, np.where(est == 0, 0.0, np.inf))
    p = _step_down(t_obs, fam_t)
    diffs = []
    for (arm, control), e, h, pj in zip(family.pairs, est, se, p, strict=True):
        # a difference of two accuracies lies in [-100, 100] points: an interval reaching past
        # that (few seeds) is cut there, which keeps its coverage
        lo = max(float(POINTS * (e - crit * h)), -POINTS)
        hi = min(float(POINTS * (e + crit * h)), POINTS)
        diffs.append(
            Difference(
                arm=arm,
                control=control,
                family=family.name,
                estimate=float(POINTS * e),
                se=float(POINTS * h),
                lo=lo,
                hi=hi,
                p_adj=float(pj),
                decided=lo > 0 or hi < 0,
                equivalent=-family.margin < lo and hi < family.margin,
            )
        )
    return FamilyResult(
        name=family.name,
        question=family.question,
        margin=family.margin,
        smallest_margin=max(max(abs(d.lo), abs(d.hi)) for d in diffs),
        critical=crit,
        differences=tuple(diffs),
        level=level,
        n_seeds=shape[0],
        n_items=shape[1],
        n_boot=t_boot.shape[0],
    )


def _families(
    x: np.ndarray,
    coef: np.ndarray,
    families: Sequence[Family],
    cols: Sequence[list[int]],
    n_boot: int,
    seed: int,
    level: float,
) -> list[FamilyResult]:
    """Families whose comparisons are the contrasts ``coef`` (rows indexed by ``cols``)."""
    rep = _bootstrap(x, coef, n_boot, seed)
    t_boot = rep.t()
    shape = (x.shape[1], x.shape[2])
    return [
        _family_result(fam, rep, c, t_boot, level, shape)
        for fam, c in zip(families, cols, strict=True)
    ]


def compare(
    correct: Mapping[str, ArrayLike],
    families: Sequence[Family],
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = LEVEL,
) -> list[FamilyResult]:
    """Every family's differences with simultaneous intervals and step-down p-values.

    ``correct`` maps each arm to its boolean ``seeds × items`` matrix (rows paired by seed,
    columns by item across arms). All families share one set of replicates.
    """
    arms, x = _stack(correct)
    index = {a: i for i, a in enumerate(arms)}
    pairs: list[tuple[str, str]] = []
    for fam in families:
        if not fam.pairs:
            raise ValueError(f"family {fam.name!r} has no comparisons")
        if len(set(fam.pairs)) != len(fam.pairs):
            raise ValueError(f"family {fam.name!r} holds a comparison twice")
        for arm, control in fam.pairs:
            missing = [a for a in (arm, control) if a not in index]
            if missing:
                raise ValueError(f"family {fam.name!r}: no correctness for {', '.join(missing)}")
            if arm == control:
                raise ValueError(f"family {fam.name!r}: {arm} compared with itself")
            if (arm, control) not in pairs:
                pairs.append((arm, control))
    coef = np.zeros((len(pairs), len(arms)))
    for j, (arm, control) in enumerate(pairs):
        coef[j, index[arm]] = 1.0
        coef[j, index[control]] = -1.0
    cols = [[pairs.index(p) for p in fam.pairs] for fam in families]
    return _families(x, coef, families, cols, n_boot, seed, level)


def difference(
    arm: ArrayLike,
    control: ArrayLike,
    *,
    margin: float = 0.0,
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = LEVEL,
) -> Difference:
    """One comparison alone (a family of one): arm − control with its 95 % interval."""
    fam = Family("single", "arm − control", (("arm", "control"),), margin)
    result = compare({"arm": arm, "control": control}, [fam], n_boot=n_boot, seed=seed, level=level)
    return result[0].differences[0]


def crossed_se(correct: ArrayLike) -> float:
    """Standard error (points) of one arm's accuracy with seeds and test items both sampled."""
    x = np.asarray(correct, dtype=np.float64)[None]
    _, se = _Effects.of(x, np.ones((1, 1))).replicate(
        np.ones((1, x.shape[1])), np.ones((1, x.shape[2]))
    )
    return POINTS * float(se[0, 0])


# --------------------------------------------------------------------------- the two factors


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
    cells = {tuple(v) for v in grid.values()}
    if len(cells) != len(grid) or len(cells) != len(first) * len(second):
        raise ValueError("the grid must hold every combination of the two factors exactly once")
    if len(first) < 2 or len(second) < 2:
        raise ValueError("each factor needs at least two levels")
    missing = [a for a in arms if a not in correct]
    if missing:
        raise ValueError(f"no correctness for {', '.join(missing)}")
    _, x = _stack({a: correct[a] for a in arms})
    rows, labels, split = [], [], []
    for axis, levels in enumerate((first, second)):
        member = np.array([[grid[a][axis] == lv for a in arms] for lv in levels], dtype=float)
        member /= member.sum(axis=1, keepdims=True)  # marginal mean of each level
        for i, j in combinations(range(len(levels)), 2):
            rows.append(member[i] - member[j])
            labels.append((levels[i], levels[j]))
        split.append(len(rows))
    fam = Family(
        f"{names[0]} and {names[1]} levels",
        f"which levels of the {names[0]} and of the {names[1]} differ (marginal means)",
        tuple(labels),
        margin,
    )
    coef = np.array(rows)
    result = _families(x, coef, [fam], [list(range(len(rows)))], n_boot, seed, level)[0]
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


# --------------------------------------------------------------------------- tables and figure


def _signed(x: float) -> str:
    return f"{x:+.2f}"


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _levels_text(results: Sequence[FamilyResult]) -> str:
    """The families' level as a percentage ("95 %"), or "family-level" when they differ."""
    levels = {r.level for r in results}
    return f"{100 * levels.pop():g} %" if len(levels) == 1 else "family-level"


def markdown_table(results: Sequence[FamilyResult], factors: FactorComparison | None = None) -> str:
    """The families (question, margin, smallest equivalence margin), then every comparison,
    then the two factors when given, as Markdown tables; differences in accuracy points."""
    out = pipe_table(
        ["Family", "Question", "Margin δ", "All equivalent for margins above", "Decided"],
        [
            [
                r.name,
                r.question,
                f"±{r.margin:.2f}",
                f"±{r.smallest_margin:.2f}",
                f"{sum(d.decided for d in r.differences)} of {len(r.differences)}",
            ]
            for r in results
        ],
    )
    out += [
        "",
        *pipe_table(
            [
                "Family",
                "Arm − control",
                "Difference",
                f"{_levels_text(results)} simultaneous interval",
                "Adjusted p",
                "Verdict",
                "Within ±δ",
            ],
            [
                [
                    r.name,
                    f"{d.arm} − {d.control}",
                    _signed(d.estimate),
                    f"[{_signed(d.lo)}, {_signed(d.hi)}]",
                    _p(d.p_adj),
                    d.verdict,
                    "yes" if d.equivalent else "not shown",
                ]
                for r in results
                for d in r.differences
            ],
        ),
    ]
    if factors is not None:
        out += [
            "",
            *pipe_table(
                [
                    "Factor",
                    "Marginal mean accuracy by level",
                    "Range",
                    f"{_levels_text([factors.pairs])} bounds",
                ],
                [
                    [
                        f.factor,
                        ", ".join(f"{lv} {m:.2f}" for lv, m in zip(f.levels, f.means, strict=True)),
                        f"{f.range:.2f}",
                        f"[{f.lo:.2f}, {f.hi:.2f}]",
                    ]
                    for f in (factors.first, factors.second)
                ],
            ),
        ]
        first, second = factors.first.factor, factors.second.factor
        out += [
            "",
            f"{first.capitalize()} − {second} (difference of the ranges): "
            f"{_signed(factors.estimate)} points, bounds [{_signed(factors.lo)}, "
            f"{_signed(factors.hi)}]: {factors.verdict}.",
        ]
    return "\n".join(out) + "\n"


#: Colours of the forest plot: arm ahead, control ahead, no difference shown.
AHEAD, BEHIND, OPEN = "#2b8a3e", "#c92a2a", "#495057"
#: Vertical space per comparison and per panel title, inches.
ROW_IN, TITLE_IN = 0.3, 0.75


def _label(d: Difference, one_control: bool) -> str:
    return d.arm if one_control else f"{d.arm} − {d.control}"


def forest_plot(results: Sequence[FamilyResult], path: Path, *, dpi: int = 110) -> Path:
    """Each comparison's difference (points) with its simultaneous interval, one panel per
    family, the zero line and the ±δ band; written as a PNG to ``path``."""
    from matplotlib.figure import Figure  # no pyplot: no global backend, no figure registry
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if not results:
        raise ValueError("no families to plot")
    heights = [len(r.differences) * ROW_IN + TITLE_IN for r in results]
    fig = Figure(figsize=(8.5, sum(heights) + 0.8), layout="constrained")
    axes = fig.subplots(len(results), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, r in zip(axes, results, strict=True):
        diffs = r.differences
        one_control = len({d.control for d in diffs}) == 1
        ys = np.arange(len(diffs))[::-1]
        for y, d in zip(ys, diffs, strict=True):
            color = AHEAD if d.lo > 0 else BEHIND if d.hi < 0 else OPEN
            ax.plot([d.lo, d.hi], [y, y], color=color, lw=2, solid_capstyle="butt")
            ax.plot(
                d.estimate, y, "o", ms=6, color=color, mfc=color if d.decided else "white", mew=1.5
            )
        if r.margin > 0:
            ax.axvspan(-r.margin, r.margin, color="#74c0fc", alpha=0.2, lw=0)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(ys, [_label(d, one_control) for d in diffs])
        ax.set_ylim(-0.7, len(diffs) - 0.3)
        span = max(r.smallest_margin, r.margin) * 1.08 or 1.0
        ax.set_xlim(-span, span)
        ax.grid(axis="x", color="#dee2e6", lw=0.6)
        what = f"arm − {diffs[0].control}" if one_control else "first − second"
        title = textwrap.wrap(f"{r.name}: {r.question}", 90)
        declared = f"margin δ = ±{r.margin:g} points" if r.margin > 0 else "no margin declared"
        title.append(f"{what}; {declared}")
        ax.set_title("\n".join(title), loc="left", fontsize=10)
    axes[-1].set_xlabel(
        "difference in test accuracy (points)\n"
        f"{_levels_text(results)} simultaneous intervals per family, seeds and test items resampled"
    )
    handles = [
        Line2D([], [], color=AHEAD, marker="o", lw=2, label="arm (first) ahead"),
        Line2D([], [], color=BEHIND, marker="o", lw=2, label="control (second) ahead"),
        Line2D([], [], color=OPEN, marker="o", mfc="white", lw=2, label=UNDECIDED),
        Patch(color="#74c0fc", alpha=0.2, label="±δ (equivalence margin)"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=9, frameon=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
