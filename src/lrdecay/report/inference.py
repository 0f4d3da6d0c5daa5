"""The report's hypothesis tests: paired by seed, Holm-corrected, equivalence against a margin.

Runs with the same seed share their initial weights and batch order across settings, so two
settings are compared through their per-seed differences (paired t-test) whenever at least two
seeds ran both; otherwise Welch's unpaired test. Convergence and epochs-to-target are censored
(a run may never get there): a log-rank test stratified by seed compares them, or the paired
t-test when no paired run is censored.
Every family of comparisons is corrected with Holm's method before a verdict reads it, and
"differ by little" is an equivalence test (TOST) against a stated margin, never a failed
difference test. Inputs are plain ``{seed: value}`` maps, so this module knows nothing of MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats
from statsmodels.duration.survfunc import SurvfuncRight, survdiff
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

#: Significance level of every test and verdict (after Holm's correction).
ALPHA = 0.05
#: Fewest values a side (or common seeds) a t-test is run on.
MIN_N_TEST = 2
#: Per-seed differences closer than this are float rounding, not a difference.
EXACT = 1e-12

#: Per-seed values of one setting: ``{seed: value}``.
BySeed = Mapping[str, float]
#: Per-seed censored times of one setting: ``{seed: (time, reached)}``.
TimesBySeed = Mapping[str, tuple[float, bool]]


@dataclass(frozen=True)
class Comparison:
    """One test of setting a against setting b: raw and Holm-adjusted p, the effect a − b."""

    p: float | None
    test: str
    n: int
    diff: float | None = None
    note: str = ""
    p_holm: float | None = None

    @property
    def decided(self) -> bool:
        """True when the corrected p-value is below :data:`ALPHA`."""
        return self.p_holm is not None and self.p_holm < ALPHA


def _untested(note: str, n: int = 0, diff: float | None = None) -> Comparison:
    return Comparison(None, "none", n, diff, note)


def _common(a: Mapping[str, object], b: Mapping[str, object]) -> list[str]:
    """Seeds both settings ran, in a stable order."""
    return sorted(set(a) & set(b), key=lambda s: (len(s), s))


def _constant(d: np.ndarray) -> bool:
    """True when per-seed differences do not vary (up to float rounding): no t-test applies."""
    return bool(np.ptp(d) <= EXACT)


def _finite(p: float) -> float | None:
    return float(p) if math.isfinite(p) else None


def compare_means(a: BySeed, b: BySeed) -> Comparison:
    """Two-sided test of mean(a) = mean(b): paired t-test on common seeds, else Welch's."""
    seeds = _common(a, b)
    if len(seeds) >= MIN_N_TEST:
        d = np.array([a[s] - b[s] for s in seeds])
        if _constant(d):  # the t statistic's limit: 0 when identical, certain when shifted
            if abs(d[0]) <= EXACT:
                return _untested("identical per seed", len(seeds), 0.0)
            return Comparison(0.0, "paired t", len(seeds), float(d[0]), "same shift every seed")
        p = stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue
        return Comparison(_finite(p), "paired t", len(seeds), float(d.mean()))
    xa, xb = np.array(list(a.values())), np.array(list(b.values()))
    diff = float(xa.mean() - xb.mean()) if xa.size and xb.size else None
    if min(xa.size, xb.size) < MIN_N_TEST:
        return _untested(f"n={min(xa.size, xb.size)}", min(xa.size, xb.size), diff)
    if np.var(xa) == 0 and np.var(xb) == 0:
        return _untested("no seed variance", min(xa.size, xb.size), diff)
    p = stats.ttest_ind(xa, xb, equal_var=False).pvalue
    return Comparison(_finite(p), "welch", min(xa.size, xb.size), diff)


def equivalence(a: BySeed, b: BySeed, margin: float) -> Comparison:
    """TOST of |mean(a) − mean(b)| < ``margin``: a small p shows the two are within it."""
    seeds = _common(a, b)
    if len(seeds) >= MIN_N_TEST:
        xa, xb = np.array([a[s] for s in seeds]), np.array([b[s] for s in seeds])
        d = xa - xb
        if _constant(d):  # the same shift on every seed: the difference is known exactly
            return Comparison(
                0.0 if abs(d[0]) < margin else 1.0,
                "exact",
                len(seeds),
                float(d[0]),
                "identical per seed",
            )
        p = ttost_paired(xa, xb, -margin, margin)[0]
        return Comparison(_finite(p), "paired TOST", len(seeds), float(d.mean()))
    xa, xb = np.array(list(a.values())), np.array(list(b.values()))
    if min(xa.size, xb.size) < MIN_N_TEST:
        return _untested(f"n={min(xa.size, xb.size)}", min(xa.size, xb.size))
    p = ttost_ind(xa, xb, -margin, margin, usevar="unequal")[0]
    return Comparison(_finite(p), "Welch TOST", min(xa.size, xb.size), float(xa.mean() - xb.mean()))


def beyond_margin(a: BySeed, b: BySeed, margin: float) -> Comparison:
    """One-sided test that a and b differ by more than ``margin`` in the direction observed."""
    seeds = _common(a, b)
    if len(seeds) >= MIN_N_TEST:
        d = np.array([a[s] - b[s] for s in seeds])
        if _constant(d):
            beyond = abs(d[0]) > margin
            return Comparison(0.0 if beyond else 1.0, "exact", len(seeds), float(d[0]))
        side = "greater" if d.mean() >= 0 else "less"
        shift = margin if side == "greater" else -margin
        p = stats.ttest_1samp(d, shift, alternative=side).pvalue
        return Comparison(_finite(p), "paired t", len(seeds), float(d.mean()))
    xa, xb = np.array(list(a.values())), np.array(list(b.values()))
    if min(xa.size, xb.size) < MIN_N_TEST:
        return _untested(f"n={min(xa.size, xb.size)}", min(xa.size, xb.size))
    diff = float(xa.mean() - xb.mean())
    side = "greater" if diff >= 0 else "less"
    shifted = xa - margin if side == "greater" else xa + margin
    p = stats.ttest_ind(shifted, xb, equal_var=False, alternative=side).pvalue
    return Comparison(_finite(p), "welch", min(xa.size, xb.size), diff)


def km_median(times: Sequence[float], reached: Sequence[bool]) -> float | None:
    """Kaplan–Meier median of censored times; None while half the runs have not got there."""
    if not times or not any(reached):
        return None
    median = SurvfuncRight(np.asarray(times, float), np.asarray(reached, int)).quantile(0.5)
    return float(median) if math.isfinite(median) else None


def compare_times(a: TimesBySeed, b: TimesBySeed) -> Comparison:
    """Two-sided test of censored times (convergence, epochs to target) a against b.

    When every paired run of both settings got there, nothing is censored and the paired
    t-test of :func:`compare_means` applies; otherwise a log-rank test, stratified by seed when
    seeds pair, which uses only which run got there first. ``diff`` is the difference of
    Kaplan–Meier medians (infinite when one is not reached): its sign says who is faster.
    """
    seeds = _common(a, b)
    paired = len(seeds) >= MIN_N_TEST
    ta = [a[s] for s in seeds] if paired else list(a.values())
    tb = [b[s] for s in seeds] if paired else list(b.values())
    if min(len(ta), len(tb)) < MIN_N_TEST:
        return _untested(f"n={min(len(ta), len(tb))}", min(len(ta), len(tb)))
    if paired and all(r for _, r in [*ta, *tb]):
        return compare_means({s: a[s][0] for s in seeds}, {s: b[s][0] for s in seeds})
    diff = _median_gap(ta, tb)
    if not any(r for _, r in [*ta, *tb]):
        return _untested("neither ever got there", len(ta), diff)
    time = [t for t, _ in [*ta, *tb]]
    status = [int(r) for _, r in [*ta, *tb]]
    group = [0] * len(ta) + [1] * len(tb)
    strata = [*range(len(ta)), *range(len(tb))] if paired else None
    try:
        _, p = survdiff(time, status, group, strata=strata)
    except np.linalg.LinAlgError:  # no run-to-run information at all (e.g. identical times)
        return _untested("identical per seed", len(ta), diff)
    return Comparison(_finite(p), "log-rank", len(ta), diff)


def _median_gap(ta: Sequence[tuple[float, bool]], tb: Sequence[tuple[float, bool]]) -> float:
    """Kaplan–Meier median of a minus that of b; ±inf when only one is reached, 0 when neither."""
    med_a = km_median([t for t, _ in ta], [r for _, r in ta])
    med_b = km_median([t for t, _ in tb], [r for _, r in tb])
    gap = (med_a if med_a is not None else math.inf) - (med_b if med_b is not None else math.inf)
    return 0.0 if math.isnan(gap) else gap


def holm(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """The same comparisons with ``p_holm`` set: Holm's correction over those with a p-value."""
    tested = [i for i, c in enumerate(comparisons) if c.p is not None]
    out = list(comparisons)
    if tested:
        adjusted = multipletests([comparisons[i].p for i in tested], alpha=ALPHA, method="holm")[1]
        for i, p in zip(tested, adjusted, strict=True):
            out[i] = replace(comparisons[i], p_holm=float(p))
    return out


def format_p(p: float | None) -> str:
    """A p-value as the report prints it."""
    if p is None:
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def strength(p_holm: float, effect: float, margin: float) -> str:
    """Words for a decided comparison: how sure (corrected p) and how large (effect vs margin)."""
    sure = "strong" if p_holm < 0.001 else "clear" if p_holm < 0.01 else "moderate"
    size = "large" if abs(effect) >= margin else "small"
    return (
        f"{sure} evidence (Holm p={format_p(p_holm)}), {size} effect "
        f"({100 * abs(effect):.2f} points vs the {100 * margin:g}-point margin)"
    )
