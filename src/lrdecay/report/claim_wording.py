"""How a verdict on a claim is worded: the :class:`Claim` itself, and the phrases every
verdict shares (a setting's name and mean with its interval, ranks, the strength of a decided
comparison against the :data:`LITTLE` margin).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from lrdecay.report.inference import (
    Comparison,
    strength,
)
from lrdecay.report.stats import (
    SCORE_NAMES,
    SettingSummary,
    scored_by,
)

#: "Matters little" / the effect-size yardstick: one point of accuracy.
LITTLE = 0.01
#: How a setting whose rate never moved is named in a verdict.
STILL = "rate never moved: same as a fixed r0 run"


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


def acc_text(v: float) -> str:
    return f"{v:.4f}"


def setting_name(s: SettingSummary) -> str:
    """The setting's name, with the never-moved flag when its rate never moved."""
    return f"{s.setting} ({STILL})" if s.never_moved else s.setting


def mean_score(s: SettingSummary) -> float:
    """The setting's mean scoring accuracy (final validation, or test when held out)."""
    return s.mean(s.scored_by)


def score_name(rows: Sequence[SettingSummary]) -> str:
    """How the scoring accuracy of ``rows`` is named in a verdict's numbers."""
    return SCORE_NAMES[scored_by(rows)]


def with_ci(s: SettingSummary) -> str:
    st = s.scored
    assert st is not None
    if st.half is None:
        return f"{setting_name(s)} {acc_text(st.mean)} (n=1)"
    return f"{setting_name(s)} {acc_text(st.mean)} ± {acc_text(st.half)} (n={st.n})"


def rank_of(value: float, values: Sequence[float], higher_is_better: bool) -> str:
    """Competition rank of ``value`` ("1", or "3=" when tied) among ``values``."""
    better = sum((v > value) if higher_is_better else (v < value) for v in values)
    tied = sum(v == value for v in values) > 1
    return f"{better + 1}{'=' if tied else ''}"


def still_note(rows: Sequence[SettingSummary]) -> str:
    """A sentence naming the settings among ``rows`` whose rate never moved (or nothing)."""
    still = [s.setting for s in rows if s.never_moved]
    if not still:
        return ""
    return (
        f" The rate never moved in any run of {', '.join(still)}: "
        f"{'it is' if len(still) == 1 else 'they are'} the same experiment as a fixed r0 run."
    )


def with_seeds(rows: Sequence[SettingSummary]) -> list[SettingSummary]:
    """Rows with at least two seeds of scoring accuracy (a test needs them)."""
    return [s for s in rows if len(s.finals) >= 2]


def least_certain(tests: Sequence[Comparison]) -> Comparison:
    """The least certain of decided comparisons (largest corrected p)."""
    return max(tests, key=lambda c: c.p_holm if c.p_holm is not None else math.inf)


def p_or_inf(p: float | None) -> float:
    return p if p is not None else math.inf


def how_strong(c: Comparison, margin: float) -> str:
    """How strong a decided comparison is, in words (corrected p, effect against ``margin``)."""
    assert c.p_holm is not None
    return strength(c.p_holm, diff_of(c), margin)


def diff_of(c: Comparison) -> float:
    return c.diff if c.diff is not None else 0.0
