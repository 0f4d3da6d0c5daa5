"""The differences as Markdown tables: the families, every comparison, and the two factors;
differences in accuracy points.
"""

from __future__ import annotations

from collections.abc import Sequence

from lrdecay.report.differences import FamilyResult
from lrdecay.report.factor_effects import FactorComparison
from lrdecay.report.markdown import pipe_table


def _signed(x: float) -> str:
    return f"{x:+.2f}"


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def levels_text(results: Sequence[FamilyResult]) -> str:
    """The families' level as a percentage ("95 %"), or "family-level" when they differ."""
    levels = {r.level for r in results}
    return f"{100 * levels.pop():g} %" if len(levels) == 1 else "family-level"


def markdown_table(results: Sequence[FamilyResult], factors: FactorComparison | None = None) -> str:
    """The families (question, margin, smallest equivalence margin), then every comparison,
    then the two factors when given, as Markdown tables; differences in accuracy points."""
    out = [*_families_table(results), "", *_comparisons_table(results)]
    if factors is not None:
        out += ["", *_factors_table(factors)]
    return "\n".join(out) + "\n"


def _families_table(results: Sequence[FamilyResult]) -> list[str]:
    """One row per family: its question, margin, smallest equivalence margin, decided count."""
    return pipe_table(
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


def _comparisons_table(results: Sequence[FamilyResult]) -> list[str]:
    """One row per comparison of every family: difference, interval, adjusted p, verdicts."""
    return pipe_table(
        [
            "Family",
            "Arm − control",
            "Difference",
            f"{levels_text(results)} simultaneous interval",
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
    )


def _factors_table(factors: FactorComparison) -> list[str]:
    """Both factors' marginal means, ranges and bounds, then the difference of the ranges."""
    first, second = factors.first.factor, factors.second.factor
    return [
        *pipe_table(
            [
                "Factor",
                "Marginal mean accuracy by level",
                "Range",
                f"{levels_text([factors.pairs])} bounds",
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
        "",
        f"{first.capitalize()} − {second} (difference of the ranges): "
        f"{_signed(factors.estimate)} points, bounds [{_signed(factors.lo)}, "
        f"{_signed(factors.hi)}]: {factors.verdict}.",
    ]
