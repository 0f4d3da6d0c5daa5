"""Checks each claim of the reference study against the tracked runs, with how strongly they hold.

Every verdict reads corrected evidence (:mod:`lrdecay.report.inference`): a claim that a named
setting is best or fastest compares it with each rival, paired by seed and Holm-corrected over
the rivals; "matters little" is an equivalence test (TOST) against :data:`LITTLE`. When the
corrected evidence decides neither way the verdict is "cannot tell". A setting whose rate never
moved is named as such: it is the same experiment as a fixed-rate run at r0. The study's
claims are weighed among the study's own settings; the modern baselines raced with them (the
"Modern baselines" block: PyTorch schedulers, schedule-free and learning-rate-free optimizers)
get their own question: does any of the study's schemes beat them?
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from lrdecay.report.inference import (
    ALPHA,
    Comparison,
    beyond_margin,
    compare_means,
    compare_times,
    equivalence,
    format_p,
    holm,
    strength,
)
from lrdecay.report.stats import (
    MODERN_GROUP,
    SCORE_NAMES,
    STRATEGY_GROUP,
    SettingSummary,
    find,
    is_modern,
    scored_by,
)

#: "Matters little" / the effect-size yardstick: one point of accuracy.
LITTLE = 0.01
#: "The rate rarely moves": it moved in at most this share of the epochs run.
RARELY = 0.25
#: How a setting whose rate never moved is named in a verdict.
STILL = "rate never moved: same as a fixed r0 run"
#: The strategy the cutoff claim is about, and its row group.
CUTOFF = "cutoff"
CUTOFF_GROUP = STRATEGY_GROUP[CUTOFF]


@dataclass(frozen=True)
class Claim:
    """One claim of the study, the data set it was made on, and what these runs say."""

    key: str
    text: str
    dataset: str
    verdict: str
    detail: str

    def markdown(self, datasets: Sequence[str]) -> str:
        """A short paragraph: the claim, the verdict in bold, the numbers behind it."""
        ours = ", ".join(datasets) or "unknown data"
        if not self.dataset or self.dataset in datasets:  # no dataset: a claim about any
            return f"*{self.text}* — **{self.verdict}**. {self.detail}\n"
        theirs = DATASET_NAMES.get(self.dataset, self.dataset)
        return (
            f"*{self.text}* — the claim is about {theirs}; these runs are on {ours}, so "
            f"they cannot test it directly. By analogy on {ours}: **{self.verdict}**. "
            f"{self.detail}\n"
        )


DATASET_NAMES = {"mnist": "MNIST", "cifar10": "CIFAR-10"}


def _acc(v: float) -> str:
    return f"{v:.4f}"


def _name(s: SettingSummary) -> str:
    """The setting's name, with the never-moved flag when its rate never moved."""
    return f"{s.setting} ({STILL})" if s.never_moved else s.setting


def _score(s: SettingSummary) -> float:
    """The setting's mean scoring accuracy (final validation, or test when held out)."""
    return s.mean(s.scored_by)


def _what(rows: Sequence[SettingSummary]) -> str:
    """How the scoring accuracy of ``rows`` is named in a verdict's numbers."""
    return SCORE_NAMES[scored_by(rows)]


def _ci(s: SettingSummary) -> str:
    st = s.scored
    assert st is not None
    if st.half is None:
        return f"{_name(s)} {_acc(st.mean)} (n=1)"
    return f"{_name(s)} {_acc(st.mean)} ± {_acc(st.half)} (n={st.n})"


def _rank(value: float, values: Sequence[float], higher_is_better: bool) -> str:
    """Competition rank of ``value`` ("1", or "3=" when tied) among ``values``."""
    better = sum((v > value) if higher_is_better else (v < value) for v in values)
    tied = sum(v == value for v in values) > 1
    return f"{better + 1}{'=' if tied else ''}"


def _still_note(rows: Sequence[SettingSummary]) -> str:
    """A sentence naming the settings among ``rows`` whose rate never moved (or nothing)."""
    still = [s.setting for s in rows if s.never_moved]
    if not still:
        return ""
    return (
        f" The rate never moved in any run of {', '.join(still)}: "
        f"{'it is' if len(still) == 1 else 'they are'} the same experiment as a fixed r0 run."
    )


def _seeded(rows: Sequence[SettingSummary]) -> list[SettingSummary]:
    """Rows with at least two seeds of scoring accuracy (a test needs them)."""
    return [s for s in rows if len(s.finals) >= 2]


def _weakest(tests: Sequence[Comparison]) -> Comparison:
    """The least certain of decided comparisons (largest corrected p)."""
    return max(tests, key=lambda c: c.p_holm if c.p_holm is not None else math.inf)


def scheme_matters_little(rows: Sequence[SettingSummary], margin: float = LITTLE) -> Claim:
    """MNIST: every pair of the 12 decay schemes ends within ``margin`` of each other (TOST)."""
    text = "On MNIST the decay scheme matters little."
    grid = [s for s in rows if s.group.startswith("By ") and s.scored is not None]
    if len(grid) < 2:
        return Claim(
            "mnist_little", text, "mnist", "cannot tell", "Fewer than two decay schemes were run."
        )
    lo = min(grid, key=_score)
    hi = max(grid, key=_score)
    spread = _score(hi) - _score(lo)
    numbers = (
        f"Across {len(grid)} schemes the mean {_what(grid)} spans {100 * spread:.2f} points "
        f"({_ci(lo)} to {_ci(hi)}); 'little' is taken as within ±{100 * margin:g} point."
    ) + _still_note(grid)
    seeded = _seeded(grid)
    if len(seeded) < 2:
        return Claim(
            "mnist_little",
            text,
            "mnist",
            "cannot tell: n=1",
            numbers + " With single runs, seed noise of this size cannot be ruled out.",
        )
    pairs = list(combinations(seeded, 2))
    equiv = [equivalence(a.finals_by_seed(), b.finals_by_seed(), margin) for a, b in pairs]
    beyond = holm([beyond_margin(a.finals_by_seed(), b.finals_by_seed(), margin) for a, b in pairs])
    differ = holm([compare_means(a.finals_by_seed(), b.finals_by_seed()) for a, b in pairs])
    n_differ = sum(c.decided for c in differ)
    worst = max(range(len(pairs)), key=lambda i: _p_or_inf(equiv[i].p))
    widest = max(range(len(pairs)), key=lambda i: abs(_diff(beyond[i])))
    wa, wb = pairs[worst]
    numbers += (
        f" Equivalence (TOST, paired by seed) of all {len(pairs)} pairs of the {len(seeded)} "
        f"schemes with several seeds: the least certain pair is {wa.setting} vs {wb.setting}, "
        f"p={format_p(equiv[worst].p)}. The widest pair, {pairs[widest][0].setting} vs "
        f"{pairs[widest][1].setting}, differs by {100 * abs(_diff(beyond[widest])):.2f} points; "
        f"beyond the margin: Holm p={format_p(beyond[widest].p_holm)} over the {len(pairs)} "
        f"pairs. {n_differ} of {len(pairs)} pairs differ at all (paired t, Holm)."
    )
    if all(c.p is not None and c.p < ALPHA for c in equiv):
        return Claim(
            "mnist_little",
            text,
            "mnist",
            f"supported: every pair of schemes is within ±{100 * margin:g} point (TOST)",
            numbers,
        )
    far = [i for i, c in enumerate(beyond) if c.decided]
    if far:
        i = min(far, key=lambda j: _p_or_inf(beyond[j].p_holm))
        a, b = pairs[i]
        return Claim(
            "mnist_little",
            text,
            "mnist",
            f"not supported: {a.setting} and {b.setting} differ by more than "
            f"{100 * margin:g} point ({_how(beyond[i], margin)})",
            numbers,
        )
    return Claim(
        "mnist_little",
        text,
        "mnist",
        f"cannot tell: the runs neither confine every pair within ±{100 * margin:g} point nor "
        "show a pair beyond it",
        numbers,
    )


def _p_or_inf(p: float | None) -> float:
    return p if p is not None else math.inf


def _how(c: Comparison, margin: float) -> str:
    """How strong a decided comparison is, in words (corrected p, effect against ``margin``)."""
    assert c.p_holm is not None
    return strength(c.p_holm, _diff(c), margin)


def _diff(c: Comparison) -> float:
    return c.diff if c.diff is not None else 0.0


def seq3_epoch_most_accurate(rows: Sequence[SettingSummary]) -> Claim:
    """CIFAR-10: seq3 by epoch beats every other setting in final accuracy, after correction."""
    text = "On CIFAR-10, seq3 by epoch is the most accurate setting."
    ranked = sorted((s for s in rows if s.scored is not None), key=lambda s: -_score(s))
    named = find(ranked, "seq3-epoch")
    if named is None or len(ranked) < 2:
        return Claim(
            "seq3_epoch",
            text,
            "cifar10",
            "cannot tell",
            "These runs have no seq3-epoch setting with a final accuracy, or nothing to "
            "compare it with.",
        )
    rivals = [s for s in ranked if s is not named]
    rank = _rank(_score(named), [_score(s) for s in ranked], True)
    numbers = (
        f"seq3-epoch ranks {rank} of {len(ranked)}: {_ci(named)}; best rival {_ci(rivals[0])}."
    )
    if len(named.finals) < 2:
        return Claim("seq3_epoch", text, "cifar10", "cannot tell: n=1", numbers)
    tests = holm([compare_means(named.finals_by_seed(), r.finals_by_seed()) for r in rivals])
    ahead = [c for c in tests if c.decided and _diff(c) > 0]
    behind = [(r, c) for r, c in zip(rivals, tests, strict=True) if c.decided and _diff(c) < 0]
    numbers += (
        f" Paired tests against each of the {len(rivals)} rivals, Holm-corrected: ahead of "
        f"{len(ahead)}, behind {len(behind)}, "
        f"not separated from {len(rivals) - len(ahead) - len(behind)}."
    )
    if len(ahead) == len(rivals):
        weakest = _weakest(ahead)
        return Claim(
            "seq3_epoch",
            text,
            "cifar10",
            f"supported: ahead of every rival ({_how(weakest, LITTLE)} for the closest)",
            numbers,
        )
    if behind:
        rival, c = min(behind, key=lambda rc: _diff(rc[1]))
        return Claim(
            "seq3_epoch",
            text,
            "cifar10",
            f"not supported: {_name(rival)} is more accurate ({_how(c, LITTLE)})",
            numbers,
        )
    return Claim(
        "seq3_epoch",
        text,
        "cifar10",
        "cannot tell: after correction seq3-epoch is neither ahead of every rival nor behind any",
        numbers,
    )


def _conv_text(s: SettingSummary) -> str:
    """``name: median N epochs (k/n converged)`` or ``≥ N`` when the median was not reached."""
    cens = s.convergence
    assert cens is not None
    median = cens.median
    centre = f"median {median:.0f}" if median is not None else f"median ≥ {cens.horizon:.0f}"
    return f"{_name(s)}: {centre} epochs ({cens.k}/{cens.n} converged)"


def _time_strength(c: Comparison) -> str:
    gap = "" if not math.isfinite(_diff(c)) else f", medians {abs(_diff(c)):.0f} epochs apart"
    return f"Holm p={format_p(c.p_holm)}{gap}"


def seq1_fastest(rows: Sequence[SettingSummary]) -> Claim:
    """CIFAR-10: seq1 by epoch and by oscillate meet the convergence rule before every rival."""
    text = "On CIFAR-10, seq1 by epoch and seq1 by oscillate converge fastest."
    timed = [s for s in rows if s.convergence is not None]
    ours = [s for s in timed if s.setting in ("seq1-epoch", "seq1-oscillate")]
    rivals = [s for s in timed if s not in ours]
    if not ours or not rivals:
        return Claim(
            "seq1_fast",
            text,
            "cifar10",
            "cannot tell",
            "These runs lack seq1-epoch/seq1-oscillate or anything to compare with.",
        )
    medians = [s.median("convergence") for s in timed]
    fastest = min(rivals, key=lambda s: s.median("convergence"))
    numbers = (
        "; ".join(
            f"{_conv_text(s)}, rank {_rank(s.median('convergence'), medians, False)} "
            f"of {len(timed)}"
            for s in ours
        )
        + f"; fastest rival {_conv_text(fastest)}."
    )
    converged = sum(s.convergence.k for s in timed if s.convergence)
    total = sum(s.convergence.n for s in timed if s.convergence)
    if converged * 2 < total:
        return Claim(
            "seq1_fast",
            text,
            "cifar10",
            "cannot tell: most runs never met the convergence rule",
            numbers + f" Only {converged} of {total} runs converged; run more epochs.",
        )
    family = [(s, r) for s in ours for r in rivals]
    tests = holm(
        [compare_times(s.convergence_by_seed(), r.convergence_by_seed()) for s, r in family]
    )
    numbers += (
        f" Convergence tests against each of the {len(rivals)} rivals (paired t where no run "
        f"is censored, else log-rank by seed), Holm-corrected over all {len(family)}."
    )
    ahead = {
        s.setting: all(
            c.decided and _diff(c) < 0 for (a, _), c in zip(family, tests, strict=True) if a is s
        )
        for s in ours
    }
    behind = [
        (a, r, c) for (a, r), c in zip(family, tests, strict=True) if c.decided and _diff(c) > 0
    ]
    if behind:
        a, r, c = min(behind, key=lambda arc: _p_or_inf(arc[2].p_holm))
        verdict = f"not supported: {_name(r)} converges before {a.setting} ({_time_strength(c)})"
    elif len(ours) == 2 and all(ahead.values()):
        verdict = "supported: both converge before every rival"
    elif any(ahead.values()):
        verdict = (
            "partly supported: "
            + ", ".join(k for k, v in ahead.items() if v)
            + (" converges before every rival")
        )
    else:
        verdict = "cannot tell: after correction neither is ahead of every rival nor behind any"
    return Claim("seq1_fast", text, "cifar10", verdict, numbers)


def _moves_text(rows: Sequence[SettingSummary]) -> tuple[str, dict[str, float]]:
    """Per strategy: rate moves per run, runs that never moved, and the share of epochs moved."""
    parts, share = [], {}
    for group in STRATEGY_GROUP.values():
        members = [s for s in rows if s.group == group and s.moves and s.epochs_run]
        if not members:
            continue
        moves = sum(s.mean("moves") for s in members) / len(members)
        epochs = sum(s.mean("epochs_run") for s in members) / len(members)
        runs = sum(s.moves.n for s in members if s.moves)
        still = sum(s.still_runs for s in members)
        share[group] = moves / max(epochs - 1, 1)
        parts.append(
            f"{group.lower()} {moves:.1f} moves in {epochs:.0f} epochs ({still}/{runs} runs "
            "never moved)"
        )
    return "Rate moves per run (mean, from the logged rate): " + "; ".join(parts) + ".", share


def cutoff_hurts(rows: Sequence[SettingSummary]) -> Claim:
    """CIFAR-10: by cutoff ends less accurate because its rate rarely moves."""
    text = "On CIFAR-10, 'by cutoff' hurts accuracy because the rate rarely moves."
    cut = [s for s in rows if s.group == CUTOFF_GROUP and s.scored is not None]
    if not cut:
        return Claim("cutoff", text, "cifar10", "cannot tell", "No cutoff runs.")
    moves, share = _moves_text(rows)
    rarely = share.get(CUTOFF_GROUP, 1.0) <= RARELY
    mechanism = (
        f"{moves} The cutoff rate {'rarely moves' if rarely else 'does move'} (threshold: "
        f"moves in at most {100 * RARELY:.0f}% of epoch boundaries).{_still_note(rows)}"
    )
    pairs = [
        (s, other)
        for s in cut
        for strategy in STRATEGY_GROUP
        if strategy != CUTOFF
        if (other := find(rows, f"{s.label}-{strategy}")) is not None and other.scored
    ]
    if not pairs:
        return Claim(
            "cutoff",
            text,
            "cifar10",
            "cannot tell",
            "No by-epoch or by-oscillate run of the same sequence to compare with. " + mechanism,
        )
    tests = holm([compare_means(a.finals_by_seed(), b.finals_by_seed()) for a, b in pairs])
    lower = sum(_score(a) < _score(b) for a, b in pairs)
    sig_lower = sum(c.decided and _diff(c) < 0 for c in tests)
    sig_higher = sum(c.decided and _diff(c) > 0 for c in tests)
    untested = sum(c.p is None for c in tests)
    effect = (
        f"Cutoff has the lower mean than the same sequence by epoch/oscillate in {lower} of "
        f"{len(pairs)} comparisons; paired tests, Holm-corrected over the {len(pairs)}: lower in "
        f"{sig_lower}, higher in {sig_higher}"
        + (f", {untested} untested (too few seeds or identical runs)" if untested else "")
        + ". "
    )
    if sig_lower > len(pairs) / 2:
        worst = _weakest([c for c in tests if c.decided and _diff(c) < 0])
        how = _how(worst, LITTLE)
        verdict = (
            f"supported: cutoff is less accurate ({how}) and its rate rarely moves"
            if rarely
            else f"partly supported: cutoff is less accurate ({how}), but its rate does move"
        )
    elif sig_higher:
        verdict = "not supported: cutoff is more accurate in " + f"{sig_higher} comparison(s)"
    else:
        verdict = "cannot tell: after correction cutoff is not separated from the others" + (
            "; its rate rarely moves" if rarely else ""
        )
    return Claim("cutoff", text, "cifar10", verdict, effect + mechanism)


def check_claims(rows: Sequence[SettingSummary], margin: float = LITTLE) -> list[Claim]:
    """Every claim of the study, in the order STUDY.md lists them, weighed among the study's
    own settings (a modern baseline raced with them is no rival in its claims)."""
    study = [s for s in rows if s.group != MODERN_GROUP]
    return [
        scheme_matters_little(study, margin),
        seq3_epoch_most_accurate(study),
        seq1_fastest(study),
        cutoff_hurts(study),
    ]


#: How the modern questions name the ready PyTorch schedulers (by sequence) and the optimizers
#: beyond the study's (by optimizer).
MODERN_NAMES = {
    "cosine": "cosine annealing",
    "onecycle": "one-cycle",
    "warmup_cosine": "linear warm-up then cosine",
    "step": "step decay",
    "plateau": "ReduceLROnPlateau",
    "wsd": "warm-up–stable–decay",
    "adamw": "AdamW",
    "sgd_schedulefree": "schedule-free SGD",
    "prodigy": "Prodigy",
}


def modern_name(modern: SettingSummary) -> str:
    """What the modern questions call ``modern``: its scheduler, its optimizer, or both
    ("cosine annealing with AdamW"); its setting's name where neither is a ready one."""
    run = modern.runs[0]
    parts = []
    if run.scheduler:
        parts.append(MODERN_NAMES.get(run.sequence, modern.setting))
    if is_modern(run.optimizer, ""):
        parts.append(MODERN_NAMES.get(run.optimizer, run.optimizer))
    return " with ".join(parts) or modern.setting


def beats_modern(rows: Sequence[SettingSummary], modern: SettingSummary) -> Claim:
    """Does any of the study's 12 decay schemes end more accurate than the modern baseline
    ``modern``? Each scheme against it, paired by seed, Holm-corrected over the schemes."""
    name = modern_name(modern)
    text = f"Does any of the paper's decay schemes beat {name} ({modern.setting})?"
    key = f"beats_{modern.setting}"
    schemes = [s for s in rows if s.group.startswith("By ") and s.scored is not None]
    if modern.scored is None or not schemes:
        return Claim(
            key, text, "", "cannot tell", "No final accuracy of it, or no decay scheme, was run."
        )
    best = max(schemes, key=_score)
    means = [_score(s) for s in [*schemes, modern]]
    numbers = (
        f"{_ci(modern)} ranks {_rank(_score(modern), means, True)} of {len(means)} "
        f"among the {len(schemes)} schemes and itself; best scheme {_ci(best)}."
    )
    seeded = _seeded(schemes)
    if len(modern.finals) < 2 or not seeded:
        return Claim(key, text, "", "cannot tell: n=1", numbers)
    tests = holm([compare_means(s.finals_by_seed(), modern.finals_by_seed()) for s in seeded])
    ahead = [(s, c) for s, c in zip(seeded, tests, strict=True) if c.decided and _diff(c) > 0]
    behind = [c for c in tests if c.decided and _diff(c) < 0]
    numbers += (
        f" Paired tests of each of the {len(seeded)} schemes against {modern.setting}, "
        f"Holm-corrected: ahead {len(ahead)}, behind {len(behind)}, not separated "
        f"{len(seeded) - len(ahead) - len(behind)}."
    )
    if ahead:
        scheme, c = max(ahead, key=lambda sc: _diff(sc[1]))  # the scheme furthest ahead
        more = f" and {len(ahead) - 1} more" if len(ahead) > 1 else ""
        verdict = f"yes: {_name(scheme)}{more} ({_how(c, LITTLE)})"
    elif len(behind) == len(seeded):
        verdict = f"no: {modern.setting} beats every scheme ({_how(_weakest(behind), LITTLE)})"
    else:
        verdict = (
            f"no scheme is ahead after correction; {modern.setting} is ahead of "
            f"{len(behind)} of {len(seeded)}"
        )
    return Claim(key, text, "", verdict, numbers)


def check_modern(rows: Sequence[SettingSummary]) -> list[Claim]:
    """One question per modern baseline raced with the study (none without them)."""
    return [beats_modern(rows, s) for s in rows if s.group == MODERN_GROUP]
