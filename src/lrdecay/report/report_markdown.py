"""``report.md``, the text of a study's report: what was run, the search (for a search's sweep),
the table, the figures, the validation loss after its minimum, and the study's claims checked
under the statistical method it states (:data:`METHOD`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from lrdecay.report.claim_wording import LITTLE
from lrdecay.report.claims import RARELY, check_claims
from lrdecay.report.inference import ALPHA
from lrdecay.report.modern_claims import check_modern
from lrdecay.report.overfitting import markdown as overfitting_markdown
from lrdecay.report.runs import RunSet
from lrdecay.report.search_section import Search, search_markdown
from lrdecay.report.stats import SettingSummary

if TYPE_CHECKING:
    from lrdecay.report.figure_common import Figure


#: The statistical method, as report.md states it: tests, correction, margin, censoring.
METHOD = (
    "Runs with the same seed share their initial weights and batch order in every setting, so "
    "two settings are compared on their per-seed differences: a two-sided paired t-test of "
    "final accuracy over the seeds both ran (Welch's unpaired t-test only where fewer than two "
    "seeds pair); when every run held out its validation split, the accuracy compared is the "
    "test split's, which no run's schedule saw. A claim that a named setting is best compares "
    "it with every rival, not with one picked after the fact, and each family of comparisons "
    "(the rivals of a claim, the settings against SGD in the table) is corrected with Holm's "
    "method; a difference counts "
    f"when its corrected p is below {ALPHA}, and the wording of a verdict follows that p and "
    f"the size of the difference against a margin of {100 * LITTLE:g} accuracy point. "
    "'Matters little' is an equivalence test: two one-sided paired t-tests (TOST) that each "
    f"pair of schemes differs by less than ±{100 * LITTLE:g} point, supported only when every "
    "pair passes (an intersection-union test, which needs no correction), refuted when a pair "
    "is shown to differ by more than the margin (one-sided, Holm-corrected). Convergence epoch "
    "and epochs-to-target are censored: a run that never met the rule within its budget is "
    "counted as not converged (k/n), the centre is the Kaplan–Meier median (≥ budget when "
    "fewer than half converged), never a mean; two settings are compared with the paired "
    "t-test when every paired run converged, otherwise with a log-rank test stratified by seed, "
    "which only uses which run of a seed got there first (at 3 seeds no such comparison can "
    "reach p<0.05). Rate moves are counted from the logged "
    "rate; a setting whose rate never moved is flagged as the same experiment as a fixed r0 "
    f"run, and 'rarely moves' means moves at no more than {100 * RARELY:.0f}% of epoch "
    "boundaries. When the corrected evidence decides neither way, the verdict says "
    "'cannot tell'."
)


def _notes(runset: RunSet, rows: Sequence[SettingSummary], target: float | None) -> list[str]:
    notes = []
    if runset.excluded:
        parts = ", ".join(f"{n} {why}" for why, n in sorted(runset.excluded.items()))
        notes.append(f"Left out of every number: {parts}.")
    if runset.search_trials:
        notes.append(
            f"{runset.search_trials} trial run(s) of an Optuna search are left out of every "
            "per-setting number: each is a different configuration trained once, no seed of a "
            "setting (they are shown in 'The search and its confirmation')."
        )
    if runset.untagged:
        notes.append(
            f"Ignored {runset.untagged} run(s) without a `setting` tag (sweep parent runs)."
        )
    diverged = sum(s.n_diverged for s in rows)
    if diverged:
        names = ", ".join(f"{s.setting} ({s.n_diverged})" for s in rows if s.n_diverged)
        notes.append(f"{diverged} run(s) diverged and count only in the Diverged column: {names}.")
    still = [s.setting for s in rows if s.never_moved]
    if still:
        notes.append(
            f"The rate never moved in any run of {', '.join(still)} (marked §): each trained "
            "at a fixed r0 throughout, the same experiment whatever its sequence."
        )
    partly = [
        f"{s.still_runs} of {len(s.ok_runs)} runs of {s.setting}"
        for s in rows
        if s.still_runs and not s.never_moved
    ]
    if partly:
        notes.append(
            f"The rate never moved in {', '.join(partly)}: those runs trained at a fixed r0 "
            "throughout, and runs of the same seed among them are the same experiment."
        )
    missing = [s.setting for s in rows if s.ok_runs and s.final_acc is None]
    if missing:
        notes.append(f"No final accuracy recorded for: {', '.join(missing)} (cells n/a).")
    if len(runset.datasets) > 1:
        notes.append(f"These runs mix data sets ({', '.join(runset.datasets)}).")
    if target is None:
        notes.append("No target accuracy given or recorded: epochs-to-target is n/a.")
    return notes


def render_markdown(
    runset: RunSet,
    rows: Sequence[SettingSummary],
    table_md: str,
    figures: Sequence[Figure],
    target: float | None,
    out_dir: Path,
    search: Search | None = None,
    search_figs: Sequence[Figure] = (),
) -> str:
    """``report.md``: what was run, the search (for a search's sweep), the table, the figures,
    the validation loss after its minimum, and the study's claims checked."""
    lines = _heading(runset, rows, target)
    lines += [f"> {note}" for note in _notes(runset, rows, target)]
    if search is not None:
        lines += ["", *search_markdown(search, search_figs, out_dir)]
    if not rows:
        return "\n".join(lines) + "\n"
    lines += [
        "",
        "## Results",
        "",
        table_md,
        "Also as [CSV](table.csv) and [LaTeX](table.tex).",
        "",
        "## Figures",
        "",
    ]
    for fig in figures:
        rel = fig.path.relative_to(out_dir).as_posix()
        lines += [f"![{fig.title}]({rel})", "", f"*{fig.caption}*", ""]
    lines += overfitting_markdown(rows)
    lines += _claims(runset, rows)
    return "\n".join(lines) + "\n"


def _heading(runset: RunSet, rows: Sequence[SettingSummary], target: float | None) -> list[str]:
    """The title and what was run: source, data, runs, settings, seeds, target, when."""
    seeds = sorted({r.seed for r in runset.runs}, key=lambda s: (len(s), s))
    source = (
        f"sweep `{runset.parent_run_id}` of experiment `{runset.experiment}`"
        if runset.parent_run_id
        else f"experiment `{runset.experiment}`"
    )
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"# Learning-rate decay study: {runset.experiment}",
        "",
        f"Runs of {source} on {', '.join(runset.datasets)}"
        + (f" with {', '.join(runset.models)}" if runset.models else "")
        + f": {len(runset.runs)} "
        f"{_noun('run', len(runset.runs))} in {len(rows)} {_noun('setting', len(rows))}, "
        f"{_noun('seed', len(seeds))} {', '.join(seeds)}"
        + (f", target accuracy {target:g}" if target is not None else "")
        + f". Written {stamp}.",
        "",
    ]


def _claims(runset: RunSet, rows: Sequence[SettingSummary]) -> list[str]:
    """The study's claims checked under :data:`METHOD`, then the modern baselines' questions
    when they ran."""
    lines = [
        "## The study's claims, checked",
        "",
        "Yang & Huang (2019) report single runs; here each claim is weighed against the "
        "seeds above.",
        "",
        f"**Method.** {METHOD}",
        "",
    ]
    for claim in check_claims(rows, LITTLE):
        lines += [f"- {claim.markdown(runset.datasets)}"]
    modern = check_modern(rows)
    if modern:
        lines += [
            "",
            "## Modern baselines: the paper's schemes against today's schedules and optimizers",
            "",
            "Each arm of the Modern baselines block against each of the 12 decay schemes, "
            "with the same paired tests and Holm correction as above (over the schemes).",
            "",
        ]
        lines += [f"- {claim.markdown(runset.datasets)}" for claim in modern]
    return lines


def _noun(noun: str, n: int) -> str:
    """``noun`` for a count of ``n``: "setting" for 1, "settings" otherwise."""
    return noun if n == 1 else f"{noun}s"
