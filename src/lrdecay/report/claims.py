"""Checks each claim of the reference study against the tracked runs, with how strongly they hold.

Every verdict reads corrected evidence (:mod:`lrdecay.report.inference`): a claim that a named
setting is best or fastest compares it with each rival, paired by seed and Holm-corrected over
the rivals; "matters little" is an equivalence test (TOST) against ``LITTLE``. When the
corrected evidence decides neither way the verdict is "cannot tell". A setting whose rate never
moved is named as such: it is the same experiment as a fixed-rate run at r0. The study's
claims are weighed among the study's own settings; the modern baselines raced with them (the
"Modern baselines" block: PyTorch schedulers, schedule-free and learning-rate-free optimizers)
get their own question (:mod:`lrdecay.report.modern_claims`): does any of the study's schemes
beat them? How a verdict is worded is :mod:`lrdecay.report.claim_wording`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations

from lrdecay.report.claim_wording import (
    LITTLE,
    Claim,
    diff_of,
    how_strong,
    least_certain,
    mean_score,
    p_or_inf,
    rank_of,
    score_name,
    setting_name,
    still_note,
    with_ci,
    with_seeds,
)
from lrdecay.report.inference import (
    ALPHA,
    Comparison,
    beyond_margin,
    compare_means,
    compare_times,
    equivalence,
    format_p,
    holm,
)
from lrdecay.report.stats import (
    MODERN_GROUP,
    STRATEGY_GROUP,
    SettingSummary,
    find,
)

#: "The rate rarely moves": it moved in at most this share of the epochs run.
RARELY = 0.25
#: The strategy the cutoff claim is about, and its row group.
CUTOFF = "cutoff"
CUTOFF_GROUP = STRATEGY_GROUP[CUTOFF]


def scheme_matters_little(rows: Sequence[SettingSummary], margin: float = LITTLE) -> Claim:
    """MNIST: every pair of the 12 decay schemes ends within ``margin`` of each other (TOST)."""
    text = "On MNIST the decay scheme matters little."
    grid = [s for s in rows if s.group.startswith("By ") and s.scored is not None]
    if len(grid) < 2:
        return Claim(
            "mnist_little", text, "mnist", "cannot tell", "Fewer than two decay schemes were run."
        )
    lo = min(grid, key=mean_score)
    hi = max(grid, key=mean_score)
    spread = mean_score(hi) - mean_score(lo)
    numbers = (
        f"Across {len(grid)} schemes the mean {score_name(grid)} spans {100 * spread:.2f} points "
        f"({with_ci(lo)} to {with_ci(hi)}); 'little' is taken as within ±{100 * margin:g} point."
    ) + still_note(grid)
    seeded = with_seeds(grid)
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
    numbers += _pairs_text(pairs, len(seeded), equiv, beyond)
    return Claim(
        "mnist_little", text, "mnist", _little_verdict(pairs, equiv, beyond, margin), numbers
    )


def _pairs_text(
    pairs: Sequence[tuple[SettingSummary, SettingSummary]],
    n_seeded: int,
    equiv: Sequence[Comparison],
    beyond: Sequence[Comparison],
) -> str:
    """The numbers of the pairwise tests: the least certain equivalence, the widest pair, and
    how many pairs differ at all (paired t, Holm)."""
    differ = holm([compare_means(a.finals_by_seed(), b.finals_by_seed()) for a, b in pairs])
    n_differ = sum(c.decided for c in differ)
    worst = max(range(len(pairs)), key=lambda i: p_or_inf(equiv[i].p))
    widest = max(range(len(pairs)), key=lambda i: abs(diff_of(beyond[i])))
    wa, wb = pairs[worst]
    return (
        f" Equivalence (TOST, paired by seed) of all {len(pairs)} pairs of the {n_seeded} "
        f"schemes with several seeds: the least certain pair is {wa.setting} vs {wb.setting}, "
        f"p={format_p(equiv[worst].p)}. The widest pair, {pairs[widest][0].setting} vs "
        f"{pairs[widest][1].setting}, differs by {100 * abs(diff_of(beyond[widest])):.2f} points; "
        f"beyond the margin: Holm p={format_p(beyond[widest].p_holm)} over the {len(pairs)} "
        f"pairs. {n_differ} of {len(pairs)} pairs differ at all (paired t, Holm)."
    )


def _little_verdict(
    pairs: Sequence[tuple[SettingSummary, SettingSummary]],
    equiv: Sequence[Comparison],
    beyond: Sequence[Comparison],
    margin: float,
) -> str:
    """Supported when every pair passes TOST, not supported when a pair is shown beyond the
    margin, else cannot tell."""
    if all(c.p is not None and c.p < ALPHA for c in equiv):
        return f"supported: every pair of schemes is within ±{100 * margin:g} point (TOST)"
    far = [i for i, c in enumerate(beyond) if c.decided]
    if far:
        i = min(far, key=lambda j: p_or_inf(beyond[j].p_holm))
        a, b = pairs[i]
        return (
            f"not supported: {a.setting} and {b.setting} differ by more than "
            f"{100 * margin:g} point ({how_strong(beyond[i], margin)})"
        )
    return (
        f"cannot tell: the runs neither confine every pair within ±{100 * margin:g} point nor "
        "show a pair beyond it"
    )


def seq3_epoch_most_accurate(rows: Sequence[SettingSummary]) -> Claim:
    """CIFAR-10: seq3 by epoch beats every other setting in final accuracy, after correction."""
    text = "On CIFAR-10, seq3 by epoch is the most accurate setting."
    ranked = sorted((s for s in rows if s.scored is not None), key=lambda s: -mean_score(s))
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
    rank = rank_of(mean_score(named), [mean_score(s) for s in ranked], True)
    numbers = (
        f"seq3-epoch ranks {rank} of {len(ranked)}: {with_ci(named)}; "
        f"best rival {with_ci(rivals[0])}."
    )
    if len(named.finals) < 2:
        return Claim("seq3_epoch", text, "cifar10", "cannot tell: n=1", numbers)
    tests = holm([compare_means(named.finals_by_seed(), r.finals_by_seed()) for r in rivals])
    ahead = [c for c in tests if c.decided and diff_of(c) > 0]
    behind = [(r, c) for r, c in zip(rivals, tests, strict=True) if c.decided and diff_of(c) < 0]
    numbers += (
        f" Paired tests against each of the {len(rivals)} rivals, Holm-corrected: ahead of "
        f"{len(ahead)}, behind {len(behind)}, "
        f"not separated from {len(rivals) - len(ahead) - len(behind)}."
    )
    if len(ahead) == len(rivals):
        weakest = least_certain(ahead)
        return Claim(
            "seq3_epoch",
            text,
            "cifar10",
            f"supported: ahead of every rival ({how_strong(weakest, LITTLE)} for the closest)",
            numbers,
        )
    if behind:
        rival, c = min(behind, key=lambda rc: diff_of(rc[1]))
        return Claim(
            "seq3_epoch",
            text,
            "cifar10",
            f"not supported: {setting_name(rival)} is more accurate ({how_strong(c, LITTLE)})",
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
    return f"{setting_name(s)}: {centre} epochs ({cens.k}/{cens.n} converged)"


def _time_strength(c: Comparison) -> str:
    gap = "" if not math.isfinite(diff_of(c)) else f", medians {abs(diff_of(c)):.0f} epochs apart"
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
            f"{_conv_text(s)}, rank {rank_of(s.median('convergence'), medians, False)} "
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
    verdict = _fastest_verdict(ours, family, tests)
    return Claim("seq1_fast", text, "cifar10", verdict, numbers)


def _fastest_verdict(
    ours: Sequence[SettingSummary],
    family: Sequence[tuple[SettingSummary, SettingSummary]],
    tests: Sequence[Comparison],
) -> str:
    """Not supported when a rival converges first, supported when both of ours are ahead of
    every rival, partly when one is, else cannot tell."""
    ahead = {
        s.setting: all(
            c.decided and diff_of(c) < 0 for (a, _), c in zip(family, tests, strict=True) if a is s
        )
        for s in ours
    }
    behind = [
        (a, r, c) for (a, r), c in zip(family, tests, strict=True) if c.decided and diff_of(c) > 0
    ]
    if behind:
        a, r, c = min(behind, key=lambda arc: p_or_inf(arc[2].p_holm))
        return (
            f"not supported: {setting_name(r)} converges before {a.setting} ({_time_strength(c)})"
        )
    if len(ours) == 2 and all(ahead.values()):
        return "supported: both converge before every rival"
    if any(ahead.values()):
        return (
            "partly supported: "
            + ", ".join(k for k, v in ahead.items() if v)
            + (" converges before every rival")
        )
    return "cannot tell: after correction neither is ahead of every rival nor behind any"


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
        f"moves in at most {100 * RARELY:.0f}% of epoch boundaries).{still_note(rows)}"
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
    lower = sum(mean_score(a) < mean_score(b) for a, b in pairs)
    sig_lower = sum(c.decided and diff_of(c) < 0 for c in tests)
    sig_higher = sum(c.decided and diff_of(c) > 0 for c in tests)
    untested = sum(c.p is None for c in tests)
    effect = (
        f"Cutoff has the lower mean than the same sequence by epoch/oscillate in {lower} of "
        f"{len(pairs)} comparisons; paired tests, Holm-corrected over the {len(pairs)}: lower in "
        f"{sig_lower}, higher in {sig_higher}"
        + (f", {untested} untested (too few seeds or identical runs)" if untested else "")
        + ". "
    )
    if sig_lower > len(pairs) / 2:
        worst = least_certain([c for c in tests if c.decided and diff_of(c) < 0])
        how = how_strong(worst, LITTLE)
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
