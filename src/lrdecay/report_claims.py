"""Checks each claim of the reference study against the tracked runs, with how strongly they hold.

Each verdict leans on the seeds: means with confidence intervals, Welch's t-tests, and the
counted rate advances. With one seed per setting the answer is "cannot tell: n=1" plus what the
single runs show; a claim made about another data set says so before anything else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

from lrdecay.report_stats import ALPHA, Comparison, SettingSummary, compare, find, required

#: "Matters little": the grid's mean final accuracies span at most this much (1 point).
LITTLE = 0.01
#: "The rate rarely moves": advances in at most this share of the epochs run.
RARELY = 0.25


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
        if self.dataset in datasets:
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


def _p(c: Comparison) -> str:
    if c.p is None:
        return f"no test ({c.note})"
    return "p<0.001" if c.p < 0.001 else f"p={c.p:.3f}"


def _strength(p: float) -> str:
    return "strong evidence, p<0.01" if p < 0.01 else "moderate evidence, p<0.05"


def _rank(value: float, values: Sequence[float], higher_is_better: bool) -> str:
    """Competition rank of ``value`` ("1", or "3=" when tied) among ``values``."""
    better = sum((v > value) if higher_is_better else (v < value) for v in values)
    tied = sum(v == value for v in values) > 1
    return f"{better + 1}{'=' if tied else ''}"


def _ci(s: SettingSummary) -> str:
    st = s.final_acc
    assert st is not None
    if st.half is None:
        return f"{s.setting} {_acc(st.mean)} (n=1)"
    return f"{s.setting} {_acc(st.mean)} ± {_acc(st.half)} (n={st.n})"


def _conv_values(s: SettingSummary) -> list[float]:
    return [v for r in s.ok_runs if (v := r.metric("convergence_epoch")) is not None]


def scheme_matters_little(rows: Sequence[SettingSummary]) -> Claim:
    """MNIST: the 12 decay schemes end within about a point of one another."""
    text = "On MNIST the decay scheme matters little."
    grid = [s for s in rows if s.group.startswith("By ") and s.final_acc is not None]
    if len(grid) < 2:
        return Claim(
            "mnist_little", text, "mnist", "cannot tell", "Fewer than two decay schemes were run."
        )
    lo = min(grid, key=lambda s: s.mean("final_acc"))
    hi = max(grid, key=lambda s: s.mean("final_acc"))
    spread = hi.mean("final_acc") - lo.mean("final_acc")
    numbers = (
        f"Across {len(grid)} schemes the mean final accuracy spans "
        f"{100 * spread:.2f} points ({_ci(lo)} to {_ci(hi)}); 'little' is taken as "
        f"at most {100 * LITTLE:.0f} point."
    )
    seeded = [s for s in grid if len(s.finals) >= 2]
    if len(seeded) < 2:
        return Claim(
            "mnist_little",
            text,
            "mnist",
            "cannot tell: n=1",
            numbers + " With single runs, seed noise of this size cannot be ruled out.",
        )
    p = float(stats.f_oneway(*[s.finals for s in seeded]).pvalue)
    left_out = len(grid) - len(seeded)
    test = f" One-way ANOVA across the {len(seeded)} schemes with several seeds: p={p:.3g}" + (
        f" ({left_out} single-run scheme(s) left out)." if left_out else "."
    )
    if spread <= LITTLE:
        verdict = (
            "supported"
            if not p < ALPHA
            else "partly supported: the schemes differ detectably, but by little"
        )
    else:
        verdict = (
            f"not supported ({_strength(p)})"
            if p < ALPHA
            else "cannot tell: the spread is large but within seed noise"
        )
    return Claim("mnist_little", text, "mnist", verdict, numbers + test)


def seq3_epoch_most_accurate(rows: Sequence[SettingSummary]) -> Claim:
    """CIFAR-10: seq3 advanced every epoch has the highest final accuracy of all settings."""
    text = "On CIFAR-10, seq3 by epoch is the most accurate setting."
    ranked = sorted(
        (s for s in rows if s.final_acc is not None), key=lambda s: -s.mean("final_acc")
    )
    target = find(ranked, "seq3-epoch")
    if target is None:
        return Claim(
            "seq3_epoch",
            text,
            "cifar10",
            "cannot tell",
            "These runs have no seq3-epoch setting (with a final accuracy).",
        )
    means = [r.mean("final_acc") for r in ranked]
    if len(ranked) < 2:
        return Claim(
            "seq3_epoch",
            text,
            "cifar10",
            "cannot tell",
            "seq3-epoch is the only setting with a final accuracy.",
        )
    other = next(r for r in ranked if r is not target)  # the best of the rest
    is_best = target.mean("final_acc") >= other.mean("final_acc")
    c = compare(target.finals, other.finals)
    shown_rank = _rank(target.mean("final_acc"), means, True)
    numbers = f"seq3-epoch ranks {shown_rank} of {len(ranked)}: {_ci(target)} vs {_ci(other)}"
    if c.p is None:
        return Claim(
            "seq3_epoch",
            text,
            "cifar10",
            f"cannot tell: {c.note}",
            numbers + "; the runs cannot separate the two from seed noise.",
        )
    numbers += f", Welch's t-test {_p(c)}."
    if is_best:
        verdict = (
            f"supported ({_strength(c.p)})"
            if c.p < ALPHA
            else "weakly supported: highest mean, but not separable from the runner-up"
        )
    else:
        verdict = (
            f"not supported ({_strength(c.p)}): {other.setting} is more accurate"
            if c.p < ALPHA
            else f"not supported as stated: {other.setting} has the higher mean, though "
            "within seed noise"
        )
    return Claim("seq3_epoch", text, "cifar10", verdict, numbers)


def seq1_fastest(rows: Sequence[SettingSummary]) -> Claim:
    """CIFAR-10: seq1 by epoch and by oscillate reach the convergence rule first."""
    text = "On CIFAR-10, seq1 by epoch and seq1 by oscillate converge fastest."
    ranked = sorted(
        (s for s in rows if s.convergence is not None), key=lambda s: s.mean("convergence")
    )
    ours = [s for s in ranked if s.setting in ("seq1-epoch", "seq1-oscillate")]
    others = [s for s in ranked if s not in ours]
    if not ours or not others:
        return Claim(
            "seq1_fast",
            text,
            "cifar10",
            "cannot tell",
            "These runs lack seq1-epoch/seq1-oscillate or anything to compare with.",
        )
    fastest = others[0]
    means = [r.mean("convergence") for r in ranked]
    parts = []
    for s in ours:
        st = s.convergence
        assert st is not None
        ci = f" ± {st.half:.1f}" if st.half is not None else ""
        parts.append(
            f"{s.setting} ranks {_rank(st.mean, means, False)} of {len(ranked)} "
            f"({st.mean:.1f}{ci} epochs, n={st.n})"
        )
    fast_st = fastest.convergence
    assert fast_st is not None
    numbers = "; ".join(parts) + (
        f"; the fastest other setting is {fastest.setting} ({fast_st.mean:.1f} epochs)."
    )
    hits = sum(s.budget_hits for s in ranked)
    total = sum(len(_conv_values(s)) for s in ranked)
    if total and hits / total > 0.5:
        return Claim(
            "seq1_fast",
            text,
            "cifar10",
            "cannot tell: most runs never met the convergence rule",
            numbers + f" In {hits} of {total} runs the convergence epoch is the epoch "
            "budget, so the ranking says little; run more epochs.",
        )
    if any(required(s.convergence).n < 2 for s in [*ours, fastest]):
        return Claim("seq1_fast", text, "cifar10", "cannot tell: n=1", numbers)
    tests = [compare(_conv_values(s), _conv_values(fastest)) for s in ours]
    numbers += (
        " Against it: "
        + ", ".join(f"{s.setting} {_p(c)}" for s, c in zip(ours, tests, strict=True))
        + "."
    )
    ahead = [s.mean("convergence") <= fast_st.mean for s in ours]
    significant = [c.p is not None and c.p < ALPHA for c in tests]
    if all(ahead) and len(ours) == 2 and all(significant):
        verdict = "supported"
    elif all(ahead):
        verdict = (
            "weakly supported: fastest means, but not separable from seed noise"
            if not all(significant)
            else "partly supported: only one of the two was run"
        )
    elif any(ahead):
        verdict = "partly supported: only one of the two is among the fastest"
    else:
        verdict = (
            "not supported"
            if any(significant)
            else "not supported as stated: other settings converge sooner, within seed noise"
        )
    return Claim("seq1_fast", text, "cifar10", verdict, numbers)


def cutoff_hurts(rows: Sequence[SettingSummary]) -> Claim:
    """CIFAR-10: by cutoff ends less accurate because its rate rarely advances."""
    text = "On CIFAR-10, 'by cutoff' hurts accuracy because the rate rarely moves."
    cut = [s for s in rows if s.group == "By Cutoff" and s.final_acc is not None]
    if not cut:
        return Claim("cutoff", text, "cifar10", "cannot tell", "No cutoff runs.")
    # the mechanism: how often the rate advanced, per strategy
    moves = []
    share: dict[str, float] = {}
    for group in ("By Epoch", "By Cutoff", "By Oscillate"):
        members = [s for s in rows if s.group == group and s.advances and s.epochs_run]
        if members:
            adv = sum(s.mean("advances") for s in members) / len(members)
            ep = sum(s.mean("epochs_run") for s in members) / len(members)
            share[group] = adv / ep if ep else 0.0
            moves.append(f"{group.lower()} {adv:.1f} advances in {ep:.1f} epochs")
    rarely = share.get("By Cutoff", 1.0) <= RARELY
    mechanism = (
        "Rate advances per run (mean): "
        + "; ".join(moves)
        + ". "
        + ("The cutoff rate rarely moves" if rarely else "The cutoff rate does move")
        + f" (threshold: advances in at most {100 * RARELY:.0f}% of epochs)."
    )
    # the effect: each cutoff setting against the same sequence by epoch and by oscillate
    pairs = []
    for s in cut:
        for strategy in ("epoch", "oscillate"):
            other = find(rows, f"{s.label}-{strategy}")
            if other is not None and other.final_acc is not None:
                pairs.append((s, other, compare(s.finals, other.finals)))
    if not pairs:
        return Claim(
            "cutoff",
            text,
            "cifar10",
            "cannot tell",
            "No by-epoch or by-oscillate run of the same sequence to compare with. " + mechanism,
        )
    lower = [a.mean("final_acc") < b.mean("final_acc") for a, b, _ in pairs]
    effect = (
        f"Cutoff is less accurate than the same sequence by epoch/oscillate in "
        f"{sum(lower)} of {len(pairs)} comparisons"
    )
    untested = [c.note for _, _, c in pairs if c.p is None]
    if len(untested) == len(pairs):
        why = "n=1" if all(n.startswith("n=") for n in untested) else "; ".join(set(untested))
        return Claim(
            "cutoff", text, "cifar10", f"cannot tell: {why}", effect + " (untested). " + mechanism
        )
    if untested:
        effect += f" ({len(untested)} untested: too few seeds)"
    sig_lower = sum(
        lo and c.p is not None and c.p < ALPHA for lo, (_, _, c) in zip(lower, pairs, strict=True)
    )
    sig_higher = sum(
        not lo and c.p is not None and c.p < ALPHA
        for lo, (_, _, c) in zip(lower, pairs, strict=True)
    )
    effect += (
        f"; significantly lower (Welch, p<{ALPHA}) in {sig_lower}, significantly higher "
        f"in {sig_higher}. "
    )
    hurts = sig_lower > len(pairs) / 2
    if hurts and rarely:
        verdict = "supported: cutoff is less accurate and its rate rarely moves"
    elif hurts:
        verdict = "partly supported: cutoff is less accurate, but its rate does move"
    elif sum(lower) > len(pairs) / 2 and not sig_higher:
        verdict = "cannot tell: cutoff tends lower but within seed noise" + (
            "; its rate rarely moves" if rarely else ""
        )
    else:
        verdict = "not supported: cutoff does not hurt accuracy here" + (
            " even though its rate rarely moves" if rarely else ""
        )
    return Claim("cutoff", text, "cifar10", verdict, effect + mechanism)


def check_claims(rows: Sequence[SettingSummary]) -> list[Claim]:
    """Every claim of the study, in the order STUDY.md lists them."""
    return [
        scheme_matters_little(rows),
        seq3_epoch_most_accurate(rows),
        seq1_fastest(rows),
        cutoff_hurts(rows),
    ]
