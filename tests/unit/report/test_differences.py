"""The differences engine on simulated runs whose true differences are known.

Runs are simulated as the study's would behave: each test item has a difficulty shared by every
arm (a logistic item effect), each seed and each run a random shift, each arm a small item effect
of its own, and each run gets an item right at random from all of these. The true difference of
two arms is their expected accuracy over items, seeds and runs (Gauss–Hermite quadrature), so an
interval can be checked against it. The measured rates are printed (``pytest -s``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import expit

from lrdecay.report.difference_table import markdown_table
from lrdecay.report.differences import (
    UNDECIDED,
    Family,
    FamilyResult,
    compare,
    correctness_matrices,
    crossed_se,
    difference,
)
from lrdecay.report.factor_effects import FactorComparison, factor_effects
from lrdecay.report.forest_plot import forest_plot
from tests.helpers import table_rows

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(80)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


@dataclass(frozen=True)
class Regime:
    """How runs vary (logit scale): item difficulty, seed, run and arm-by-item spreads."""

    item_mean: float = 10.7  # with item_sd 8: accuracy ≈ 0.91, 4 % of items flip between runs
    item_sd: float = 8.0
    seed_sd: float = 0.05
    run_sd: float = 0.05
    arm_item_sd: float = 0.5

    @property
    def total_sd(self) -> float:
        return float(np.hypot.reduce([self.item_sd, self.seed_sd, self.run_sd, self.arm_item_sd]))

    def accuracy(self, theta: float) -> float:
        """The task's accuracy of an arm with logit shift ``theta``."""
        return float(_WEIGHTS @ expit(theta + self.item_mean + self.total_sd * _NODES))

    def theta(self, points: float) -> float:
        """The logit shift that puts an arm ``points`` above an arm with shift 0."""
        if points == 0:
            return 0.0
        base = self.accuracy(0.0)
        return brentq(lambda t: self.accuracy(t) - base - points / 100, -5, 5)


#: Run-to-run item noise dominates, as in real runs of one network (the default).
REALISTIC = Regime()
#: Run-level shifts dominate: the 10 seeds' few degrees of freedom matter most.
SEEDS = Regime(run_sd=0.3)
#: Arm-specific item effects dominate: the test set's sampling matters most.
ITEMS = Regime(arm_item_sd=4.0)


@cache
def _thetas(regime: Regime, truths: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(regime.theta(t) for t in truths)


def simulate(
    rng: np.random.Generator,
    truths: Mapping[str, float],
    regime: Regime = REALISTIC,
    seeds: int = 10,
    items: int = 2000,
) -> dict[str, np.ndarray]:
    """Correctness matrices of arms whose true accuracies lie ``truths`` points above arm 0's."""
    thetas = _thetas(regime, tuple(truths.values()))
    easy = rng.normal(regime.item_mean, regime.item_sd, items)
    seed_shift = rng.normal(0, regime.seed_sd, seeds)
    out = {}
    for arm, theta in zip(truths, thetas, strict=True):
        run = rng.normal(0, regime.run_sd, seeds)
        own = rng.normal(0, regime.arm_item_sd, items)
        logit = theta + easy + own + (seed_shift + run)[:, None]
        out[arm] = rng.random((seeds, items)) < expit(logit)
    return out


#: A control and five arms, by true difference from the control in points.
TRUTHS = {"control": 0.0, "zero": 0.0, "half": 0.5, "small": 0.2, "minus": -0.3, "big": 1.0}
ARMS = [a for a in TRUTHS if a != "control"]


@dataclass(frozen=True)
class Rates:
    """What repeated draws measured."""

    coverage: float  # single intervals covering the truth
    familywise: float  # draws where the family's five intervals all cover
    zero_decided: float  # single interval of a true zero excluding 0
    zero_decided_family: float  # the same in the family
    half_equivalent_below: float  # draws where some margin below 0.5 calls 0.5 equivalent
    half_equivalent_at_04: float  # draws calling it equivalent at a margin of 0.4
    half_equivalent_at_025: int  # draws calling it equivalent at a margin of 0.25


def measure(regime: Regime, draws: int, n_boot: int = 1000) -> Rates:
    """Simulate ``draws`` studies of :data:`TRUTHS` and read every verdict's error rates."""
    singles = [Family(a, "alone", ((a, "control"),), 0.25) for a in ARMS]
    family = Family.against("all", "any arm vs control", ARMS, "control", 0.25)
    cover = fam_cover = zero = zero_fam = below = at_04 = at_025 = 0
    for draw in range(draws):
        correct = simulate(np.random.default_rng(10_000 + draw), TRUTHS, regime)
        *alone, together = compare(correct, [*singles, family], n_boot=n_boot, seed=draw)
        one = {r.name: r.differences[0] for r in alone}
        cover += sum(one[a].lo < TRUTHS[a] < one[a].hi for a in ARMS)
        fam_cover += all(d.lo < TRUTHS[d.arm] < d.hi for d in together.differences)
        zero += one["zero"].decided
        zero_fam += together.differences[ARMS.index("zero")].decided
        widest = max(abs(one["half"].lo), abs(one["half"].hi))
        below += widest < 0.5
        at_04 += widest < 0.4
        at_025 += one["half"].equivalent
    rates = Rates(
        cover / (draws * len(ARMS)), fam_cover / draws, zero / draws, zero_fam / draws,
        below / draws, at_04 / draws, at_025,
    )  # fmt: skip
    print(f"\n{regime}: {draws} draws, B={n_boot}: {rates}")
    return rates


def check(rates: Rates) -> None:
    """The rates a 95 % family-wise procedure must show."""
    assert 0.92 <= rates.coverage <= 0.98
    assert rates.familywise >= 0.93
    assert rates.zero_decided <= 0.07
    assert rates.zero_decided_family <= 0.07
    # called equivalent below 0.5 only when the interval misses 0.5 from above (≤ 2.5 %)
    assert rates.half_equivalent_below <= 0.05
    assert rates.half_equivalent_at_025 == 0


def test_error_rates_with_ten_seeds() -> None:
    """Coverage, family-wise coverage, false decisions and false equivalence, 200 draws."""
    check(measure(REALISTIC, 200))


@pytest.mark.slow
@pytest.mark.parametrize("regime", [SEEDS, ITEMS], ids=["seeds", "items"])
def test_error_rates_where_seeds_or_items_dominate(regime: Regime) -> None:
    """The same rates where run-level shifts, or arm-specific item effects, dominate."""
    check(measure(regime, 400))


def test_reproducible_from_the_seed() -> None:
    """The same seed gives the same numbers exactly; another seed, other replicates."""
    correct = simulate(np.random.default_rng(1), TRUTHS)
    fam = [Family.against("all", "any", ARMS, "control", 0.5)]
    first = compare(correct, fam, n_boot=500, seed=7)
    assert compare(correct, fam, n_boot=500, seed=7) == first
    other = compare(correct, fam, n_boot=500, seed=8)
    assert [d.estimate for d in other[0].differences] == [d.estimate for d in first[0].differences]
    assert other[0].critical != first[0].critical


def test_pairing_keeps_shared_noise_out_of_the_difference() -> None:
    """Item difficulty and seed shifts shared by both arms leave the paired interval narrow;
    treating the arms as unpaired (their own standard errors added) would be far wider."""
    shared = Regime(item_sd=3.0, item_mean=4.0, seed_sd=0.3, run_sd=0.02, arm_item_sd=0.2)
    correct = simulate(np.random.default_rng(2), {"c": 0.0, "a": 0.3}, shared, items=4000)
    paired = difference(correct["a"], correct["c"], n_boot=1000)
    unpaired = np.hypot(crossed_se(correct["a"]), crossed_se(correct["c"]))
    assert paired.se < 0.5 * unpaired
    assert paired.lo < 0.3 < paired.hi


def test_crossed_se_includes_test_set_sampling() -> None:
    """One arm's standard error counts its test items: about the binomial SE even with many
    seeds whose runs agree, where the seed-only standard error would be near zero."""
    rng = np.random.default_rng(3)
    item_right = rng.random(10_000) < 0.91
    runs = np.tile(item_right, (10, 1))
    runs[:, :50] = rng.random((10, 50)) < 0.5  # a few items each run gets right by chance
    se = crossed_se(runs)
    binomial = 100 * np.sqrt(0.91 * 0.09 / 10_000)
    assert 0.8 * binomial < se < 1.2 * binomial
    assert 100 * runs.mean(axis=1).std(ddof=1) / np.sqrt(10) < 0.2 * se


def test_identical_arms_are_equivalent_and_undecided() -> None:
    """An arm identical to its control, run by run: a zero-width interval, never decided."""
    correct = simulate(np.random.default_rng(4), {"c": 0.0, "a": 0.5})
    d = difference(correct["c"], correct["c"].copy(), margin=0.1, n_boot=200)
    assert (d.estimate, d.lo, d.hi, d.decided, d.equivalent) == (0.0, 0.0, 0.0, False, True)
    assert d.verdict == UNDECIDED and d.p_adj == 1.0


def test_step_down_p_agrees_with_the_intervals() -> None:
    """Every decided comparison has an adjusted p-value at most 0.05; the family's smallest
    equivalence margin is its largest endpoint."""
    correct = simulate(np.random.default_rng(5), TRUTHS, items=3000)
    (res,) = compare(correct, [Family.against("all", "any", ARMS, "control", 0.5)], n_boot=1000)
    assert any(d.decided for d in res.differences)
    assert any(not d.decided for d in res.differences)
    for d in res.differences:
        if d.decided:
            assert d.p_adj <= 0.05
        assert d.equivalent == (max(abs(d.lo), abs(d.hi)) < 0.5)
    assert res.smallest_margin == max(max(abs(d.lo), abs(d.hi)) for d in res.differences)
    big = res.differences[ARMS.index("big")]
    assert big.verdict == "big ahead" and big.lo > 0


def test_factors_sequence_matters_more() -> None:
    """A grid where only the sequence moves accuracy (by up to 1 point): the sequence's range
    bounds hold its true range, the strategy's hold 0, and the sequence matters more."""
    seqs, strats = ["seq1", "seq2", "seq3", "seq4"], ["epoch", "cutoff", "oscillate"]
    shift = dict(zip(seqs, [0.0, 0.3, 1.0, 0.6], strict=True))
    grid = {f"{q}-{t}": (q, t) for q in seqs for t in strats}
    correct = simulate(np.random.default_rng(6), {a: shift[q] for a, (q, _) in grid.items()})
    result = factor_effects(correct, grid, margin=0.5, n_boot=1000)
    seq, strat = result.first, result.second
    assert (seq.factor, strat.factor) == ("sequence", "strategy")
    assert seq.levels == tuple(seqs) and strat.levels == tuple(strats)
    assert seq.lo <= 1.0 <= seq.hi and strat.lo == 0.0 <= strat.hi
    assert result.lo <= result.estimate <= result.hi
    assert result.verdict == "sequence matters more"
    assert len(result.pairs.differences) == 6 + 3


@pytest.mark.slow
def test_factor_bounds_cover() -> None:
    """Over 100 draws the two ranges' bounds hold both true ranges at least 95 % of the time."""
    seqs, strats = ["s1", "s2", "s3", "s4"], ["e", "c", "o"]
    shift = {"s1": 0.0, "s2": 0.2, "s3": 0.4, "s4": 0.1, "e": 0.0, "c": -0.2, "o": 0.1}
    grid = {f"{q}-{t}": (q, t) for q in seqs for t in strats}
    truths = {a: shift[q] + shift[t] for a, (q, t) in grid.items()}  # points: additive
    ranges = (0.4, 0.3)
    hits = 0
    for draw in range(100):
        correct = simulate(np.random.default_rng(20_000 + draw), truths)
        r = factor_effects(correct, grid, n_boot=1000, seed=draw)
        hits += r.first.lo <= ranges[0] <= r.first.hi and r.second.lo <= ranges[1] <= r.second.hi
    print(f"\nfactor ranges {ranges}: both bounds held in {hits} of 100 draws")
    assert hits >= 95


def test_correctness_matrices_pair_runs_by_seed() -> None:
    """Predicted labels become correctness rows in the same seed order for every arm, keeping
    only the seeds every arm ran."""
    labels = np.array([0, 1, 2, 1])
    predicted = {
        "a": {"1": [0, 1, 2, 0], "0": [0, 0, 2, 1], "10": [1, 1, 1, 1]},
        "b": {"0": [0, 1, 2, 1], "1": [2, 2, 2, 2]},
    }
    seeds, correct = correctness_matrices(predicted, labels)
    assert seeds == ["0", "1"]
    assert correct["a"].tolist() == [[True, False, True, True], [True, True, True, False]]
    assert correct["b"].tolist() == [[True, True, True, True], [False, False, True, False]]


def test_bad_input_is_refused() -> None:
    """Shapes that do not pair, non-binary values, unknown arms and empty families: one line."""
    a = np.ones((3, 5), bool)
    with pytest.raises(ValueError, match="seeds × items"):
        compare({"a": a, "b": np.ones((2, 5), bool)}, [Family("f", "q", (("a", "b"),), 1)])
    with pytest.raises(ValueError, match="boolean"):
        compare({"a": a, "b": np.full((3, 5), 2)}, [Family("f", "q", (("a", "b"),), 1)])
    with pytest.raises(ValueError, match="no correctness for c"):
        compare({"a": a, "b": a}, [Family("f", "q", (("a", "c"),), 1)])
    with pytest.raises(ValueError, match="no comparisons"):
        compare({"a": a, "b": a}, [Family("f", "q", (), 1)])
    with pytest.raises(ValueError, match="at least 2 seeds"):
        difference(np.ones((1, 5), bool), np.ones((1, 5), bool))
    with pytest.raises(ValueError, match="every combination"):
        factor_effects(
            {"x": a, "y": a, "z": a}, {"x": ("1", "e"), "y": ("2", "e"), "z": ("1", "c")}
        )


def _results() -> tuple[list[FamilyResult], FactorComparison]:
    grid = {f"seq{q}-{t}": (f"seq{q}", t) for q in range(1, 5) for t in ("epoch", "cutoff", "osc")}
    truths = {"sgd-fixed": 0.0, **{a: 0.1 * i for i, a in enumerate(grid)}, "cosine": 0.8}
    correct = simulate(np.random.default_rng(8), truths, items=3000)
    families = [
        Family.against("vs SGD", "Any decay beats fixed SGD?", list(truths), "sgd-fixed", 0.5),
        Family.against("vs cosine", "Any scheme beats cosine?", list(grid), "cosine", 0.5),
    ]
    return compare(correct, families, n_boot=500), factor_effects(correct, grid, n_boot=500)


def test_markdown_table_words_every_verdict() -> None:
    """One row per family and per comparison; undecided rows say "no difference shown", and no
    row calls anything equal."""
    results, factors = _results()
    text = markdown_table(results, factors)
    rows = table_rows(text)
    assert rows[0][:3] == ["Family", "Question", "Margin δ"]
    assert sum(row[0] == "vs SGD" for row in rows) == 1 + 13
    assert "95 % simultaneous interval" in text
    assert UNDECIDED in text and "equal" not in text.lower()
    assert {"sequence", "strategy"} <= {row[0] for row in rows}


def test_forest_plot_is_written(tmp_path: Path) -> None:
    """One panel per family, drawn to a PNG."""
    results, factors = _results()
    path = forest_plot([*results, factors.pairs], tmp_path / "forest.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 20_000


def test_an_interval_never_reaches_past_what_two_accuracies_can_differ() -> None:
    """Two seeds that disagree wildly: the interval is cut at ±100 points, not beyond."""
    arm = np.array([[1] * 50 + [0] * 50, [0] * 95 + [1] * 5], dtype=bool)
    control = np.array([[0] * 90 + [1] * 10, [1] * 100], dtype=bool)
    d = difference(arm, control, n_boot=500, seed=0)
    assert -100.0 <= d.lo <= d.estimate <= d.hi <= 100.0
    assert d.lo == -100.0 or d.hi == 100.0  # this one would reach past the bound uncut
