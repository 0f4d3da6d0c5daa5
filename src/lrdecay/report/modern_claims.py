"""The modern baselines' questions: does any of the study's decay schemes end more accurate than
each scheduler or optimizer raced with the study (the "Modern baselines" block)?
"""

from __future__ import annotations

from collections.abc import Sequence

from lrdecay.report.claim_wording import (
    LITTLE,
    Claim,
    diff_of,
    how_strong,
    least_certain,
    mean_score,
    rank_of,
    setting_name,
    with_ci,
    with_seeds,
)
from lrdecay.report.inference import (
    compare_means,
    holm,
)
from lrdecay.report.stats import (
    MODERN_GROUP,
    SettingSummary,
    is_modern,
)

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
    best = max(schemes, key=mean_score)
    means = [mean_score(s) for s in [*schemes, modern]]
    numbers = (
        f"{with_ci(modern)} ranks {rank_of(mean_score(modern), means, True)} of {len(means)} "
        f"among the {len(schemes)} schemes and itself; best scheme {with_ci(best)}."
    )
    seeded = with_seeds(schemes)
    if len(modern.finals) < 2 or not seeded:
        return Claim(key, text, "", "cannot tell: n=1", numbers)
    tests = holm([compare_means(s.finals_by_seed(), modern.finals_by_seed()) for s in seeded])
    ahead = [(s, c) for s, c in zip(seeded, tests, strict=True) if c.decided and diff_of(c) > 0]
    behind = [c for c in tests if c.decided and diff_of(c) < 0]
    numbers += (
        f" Paired tests of each of the {len(seeded)} schemes against {modern.setting}, "
        f"Holm-corrected: ahead {len(ahead)}, behind {len(behind)}, not separated "
        f"{len(seeded) - len(ahead) - len(behind)}."
    )
    if ahead:
        scheme, c = max(ahead, key=lambda sc: diff_of(sc[1]))  # the scheme furthest ahead
        more = f" and {len(ahead) - 1} more" if len(ahead) > 1 else ""
        verdict = f"yes: {setting_name(scheme)}{more} ({how_strong(c, LITTLE)})"
    elif len(behind) == len(seeded):
        verdict = (
            f"no: {modern.setting} beats every scheme ({how_strong(least_certain(behind), LITTLE)})"
        )
    else:
        verdict = (
            f"no scheme is ahead after correction; {modern.setting} is ahead of "
            f"{len(behind)} of {len(seeded)}"
        )
    return Claim(key, text, "", verdict, numbers)


def check_modern(rows: Sequence[SettingSummary]) -> list[Claim]:
    """One question per modern baseline raced with the study (none without them)."""
    return [beats_modern(rows, s) for s in rows if s.group == MODERN_GROUP]
