"""The study's Tables 1 and 2 rebuilt from tracked runs, as Markdown, CSV and LaTeX.

Rows are grouped Benchmark / By Epoch / By Cutoff / By Oscillate (/ Other); the best final
accuracy and the fastest convergence are bold. With several seeds an accuracy cell is
``mean ± 95% CI half-width (n=…)``; convergence and epochs-to-target cells are censored:
``median (k/n got there)``, ``≥ budget`` while fewer than half did. The CSV carries the same
numbers unformatted.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

from lrdecay.report.inference import ALPHA, format_p
from lrdecay.report.markdown import Align, pipe_table
from lrdecay.report.stats import (
    BASELINE_SGD,
    MODERN_GROUP,
    SCORE_NAMES,
    Censored,
    SettingSummary,
    Stat,
    best_rows,
    scored_by,
)

ACC_DIGITS = 4
EPOCH_DIGITS = 1
MISSING = "n/a"
ALL_DIVERGED = "– (all diverged)"
#: Marks a setting whose rate never moved in any run (it trained at a fixed r0).
NEVER_MOVED = "§"


@dataclass(frozen=True)
class Cell:
    """One table cell: its text (Unicode, Markdown-neutral) and whether it is the column's best."""

    text: str
    bold: bool = False


@dataclass
class Table:
    """Header, grouped rows of cells and the footnotes that explain them."""

    header: list[str]
    rows: list[tuple[str, list[Cell]]]  # (group, cells)
    footnotes: list[str]


def fmt_stat(stat: Stat | None, digits: int, show_n: bool, integer_single: bool = False) -> str:
    """``mean ± half (n=k)``; a single value alone (``(n=1)`` only when ``show_n``)."""
    if stat is None:
        return MISSING
    if stat.n == 1:
        value = f"{stat.mean:.0f}" if integer_single else f"{stat.mean:.{digits}f}"
        return f"{value} (n=1)" if show_n else value
    assert stat.half is not None
    return f"{stat.mean:.{digits}f} ± {stat.half:.{digits}f} (n={stat.n})"


def fmt_censored(cens: Censored | None) -> str:
    """``median (k/n)``, or ``≥ horizon (k/n)`` while fewer than half the runs got there."""
    if cens is None:
        return MISSING
    median = cens.median
    centre = f"{median:.0f}" if median is not None else f"≥ {cens.horizon:.0f}"
    return f"{centre} ({cens.k}/{cens.n})"


def fmt_p(row: SettingSummary) -> str:
    """The p-value cell of a row: final accuracy against the SGD baseline, Holm-adjusted."""
    if row.setting == BASELINE_SGD:
        return "baseline"
    c = row.comparison
    if c is None:
        return MISSING
    if c.p is None:
        return f"{MISSING} ({c.note})"
    return format_p(c.p_holm) + ("" if c.test == "paired t" else f" ({c.test})")


def fmt_moves(row: SettingSummary) -> str:
    """Rate moves per run (from the logged rate), flagged when the rate never moved."""
    if row.never_moved:
        return f"0 {NEVER_MOVED}"
    moves = row.moves
    if moves is None:
        return MISSING
    if moves.n == 1 or moves.lo == moves.hi:
        text = f"{moves.mean:.{EPOCH_DIGITS}f}"
    else:  # counts: the seeds' range says more than an interval that may dip below 0
        text = f"{moves.mean:.{EPOCH_DIGITS}f} ({moves.lo:.0f}–{moves.hi:.0f})"
    still = row.still_runs
    return text + (f"; {still}/{moves.n} never moved" if still else "")


def _target_cell(row: SettingSummary) -> str:
    if row.target is None or row.with_history == 0:
        return MISSING
    return fmt_censored(row.to_target)


def build_table(rows: Sequence[SettingSummary], target: float | None) -> Table:
    """The report table of ``rows`` (already in table order) with its footnotes."""
    multi = any(s.final_acc is not None and s.final_acc.n >= 2 for s in rows)
    has_test = any(s.test_acc is not None for s in rows)
    has_baseline = any(s.setting == BASELINE_SGD for s in rows)
    show_p = multi and has_baseline
    column = scored_by(rows)
    best_acc = best_rows(rows, column, highest=True, digits=ACC_DIGITS)
    best_conv = best_rows(rows, "convergence", highest=False, digits=EPOCH_DIGITS)
    target_text = f"{target:g}" if target is not None else "target"

    header = [
        "Group",
        "Setting",
        "Final accuracy",
        "Convergence epoch",
        "Best accuracy",
        f"Epochs to {target_text}",
        "Rate moves",
        "Diverged",
    ]
    if has_test:
        header.append("Test accuracy")
    if show_p:
        header.append("p vs SGD (Holm)")

    body: list[tuple[str, list[Cell]]] = []
    for s in rows:
        label = (
            s.label + (" ‡" if s.n_diverged else "") + (f" {NEVER_MOVED}" if s.never_moved else "")
        )
        cells = [
            Cell(label),
            Cell(
                fmt_stat(s.final_acc, ACC_DIGITS, multi),
                column == "final_acc" and s.setting in best_acc,
            ),
            Cell(fmt_censored(s.convergence), s.setting in best_conv),
            Cell(fmt_stat(s.best_acc, ACC_DIGITS, multi)),
            Cell(_target_cell(s)),
            Cell(fmt_moves(s)),
            Cell(f"{s.n_diverged}/{s.n_runs}"),
        ]
        if has_test:
            cells.append(
                Cell(
                    fmt_stat(s.test_acc, ACC_DIGITS, multi),
                    column == "test_acc" and s.setting in best_acc,
                )
            )
        if show_p:
            cells.append(Cell(fmt_p(s)))
        if not s.ok_runs:  # nothing to average: say why instead of a bare n/a
            cells = [c if c.text != MISSING else Cell(ALL_DIVERGED) for c in cells]
        body.append((s.group, cells))
    return Table(header, body, footnotes(rows, target, multi, has_baseline))


def footnotes(
    rows: Sequence[SettingSummary], target: float | None, multi: bool, has_baseline: bool
) -> list[str]:
    """What a reader needs to read the table right: statistics, tests, exclusions."""
    column = scored_by(rows)
    score = SCORE_NAMES[column]
    notes = [
        "Final accuracy: validation accuracy at the last epoch run. Convergence epoch: the "
        "study's rule (first epoch after which accuracy moves less than the threshold over "
        "the window), shown as the Kaplan–Meier median over seeds with k/n the runs that met "
        "the rule; ≥ N when fewer than half met it within the N epochs run (no mean: a run "
        f"that never converged has no epoch to average). Bold: best mean {score}, "
        "lowest median convergence epoch (descriptive, not a test)."
    ]
    if column == "test_acc":
        notes.append(
            "Scored on the test split: every run held part of its training split out as the "
            "validation split that steered its schedule (cutoff, oscillate, plateau) and that "
            "the convergence and target epochs read; the untouched test split, scored once "
            "after the last epoch, is what the p-values and the claims compare."
        )
    notes += _precision_notes(rows, score, multi, has_baseline)
    if target is not None:
        notes.append(
            f"Epochs to {target:g}: first epoch whose validation accuracy reaches {target:g}, "
            "censored like the convergence epoch (median, k/n reached, ≥ N if fewer than half)."
        )
    notes.append(
        "Rate moves: how often the training rate changed between epochs, read from the logged "
        "rate (an advance after the last epoch trains nothing and is not counted); mean over "
        "seeds with their range."
    )
    return notes + _row_notes(rows)


def _precision_notes(
    rows: Sequence[SettingSummary], score: str, multi: bool, has_baseline: bool
) -> list[str]:
    """How the accuracy cells and the p-values are made: intervals over seeds, paired tests
    against SGD with Holm's correction; or single runs."""
    if not multi:
        return ["One run per setting: single values, no confidence intervals or tests."]
    notes = [
        "Accuracy cells: mean ± half-width of the 95% confidence interval of the mean "
        "(t-distribution, n−1 degrees of freedom) over seeds, with n runs."
    ]
    if not has_baseline:
        return [*notes, "No SGD baseline runs: no p-values."]
    tested = sum(1 for s in rows if s.comparison is not None and s.comparison.p is not None)
    notes.append(
        f"p vs SGD (Holm): two-sided paired t-test of {score} against the SGD "
        "baseline on the per-seed differences (runs with the same seed share initial "
        "weights and batch order), Welch's unpaired test where fewer than 2 seeds pair "
        f"(named in the cell); Holm-adjusted over the {tested} tests, so a cell below "
        f"{ALPHA} is a difference after correction. Raw p-values are in the CSV."
    )
    return notes


def _row_notes(rows: Sequence[SettingSummary]) -> list[str]:
    """Notes on some rows: the modern block, rates that never moved, diverged runs, and
    settings whose runs mix configurations."""
    notes: list[str] = []
    if any(s.group == MODERN_GROUP for s in rows):
        notes.append(
            f"{MODERN_GROUP}: PyTorch LR schedulers (conf/sequence/<name>.yaml), from the "
            "study's r0, and optimizers beyond its SGD and Adam (conf/optimizer/<name>.yaml), "
            "each at its own rate: schedule-free ones (scored on their averaged weights) and "
            "learning-rate-free ones (Prodigy: its lr scales the rate it estimates), raced "
            "with the study's settings. A per-batch scheduler (one-cycle, warm-up) "
            "moves the rate within every epoch: its rate moves count the epochs that started "
            "at a new rate, and its per-batch rates are logged in each run as per_batch/lr."
        )
    still = [s.setting for s in rows if s.never_moved]
    if still:
        notes.append(
            f"{NEVER_MOVED} The rate never moved in any run of {', '.join(still)}: each is the "
            "same experiment as a fixed-rate SGD run at r0, whatever its sequence."
        )
    if any(s.n_diverged for s in rows):
        notes.append(
            "‡ Some runs of this setting diverged (non-finite loss): they are counted "
            "under Diverged and left out of every mean."
        )
    for s in rows:
        if s.mixed_params:
            notes.append(
                f"{s.setting}: its runs differ in {', '.join(s.mixed_params)}; "
                "the mean mixes configurations."
            )
    return notes


def to_markdown(table: Table) -> str:
    """A GitHub-flavoured Markdown table, group named on its first row, footnotes below."""
    rows = []
    previous = None
    for group, cells in table.rows:
        shown = f"**{group}**" if group != previous else ""
        previous = group
        rows.append([shown, *(f"**{c.text}**" if c.bold else c.text for c in cells)])
    # group and setting read as text, the numbers line up on the right
    align: list[Align] = ["left" if i < 2 else "right" for i in range(len(table.header))]
    lines = pipe_table(table.header, rows, align)
    lines.append("")
    lines += [f"- {note}" for note in table.footnotes]
    return "\n".join(lines) + "\n"


_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "−": "-",
    "–": "--",
    "≥": r"$\geq$",
    "†": r"$^\dagger$",
    "<": r"$<$",
    "‡": r"$^\ddagger$",
    "§": r"\S{}",
}
_TEX_RE = re.compile("|".join(re.escape(k) for k in _TEX))


def tex_escape(text: str) -> str:
    """``text`` safe inside a LaTeX tabular (special characters escaped, symbols as math)."""
    return _TEX_RE.sub(lambda m: _TEX[m.group(0)], text)


def to_latex(table: Table) -> str:
    """A booktabs ``tabular`` with a spanning row per group and the footnotes after it.
    Written by hand: tabulate's LaTeX formats have no row that spans the table."""
    ncols = len(table.header) - 1  # the group becomes a spanning row, not a column
    lines = [
        r"% requires \usepackage{booktabs}",
        r"\begin{tabular}{l" + "r" * (ncols - 1) + "}",
        r"\toprule",
        " & ".join(tex_escape(h) for h in table.header[1:]) + r" \\",
        r"\midrule",
    ]
    previous = None
    for group, cells in table.rows:
        if group != previous:
            if previous is not None:
                lines.append(r"\midrule")
            lines.append(rf"\multicolumn{{{ncols}}}{{l}}{{\emph{{{tex_escape(group)}}}}} \\")
            previous = group
        texts = [
            rf"\textbf{{{tex_escape(c.text)}}}" if c.bold else tex_escape(c.text) for c in cells
        ]
        lines.append(" & ".join(texts) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    lines += [rf"\par\footnotesize {tex_escape(note)}" for note in table.footnotes]
    return "\n".join(lines) + "\n"


def _num(value: float | None, digits: int = 6) -> str:
    return "" if value is None else f"{value:.{digits}g}"


def _stat_fields(prefix: str, stat: Stat | None) -> dict[str, str]:
    return {
        f"{prefix}_mean": _num(stat.mean if stat else None),
        f"{prefix}_ci95": _num(stat.half if stat else None),
        f"{prefix}_n": str(stat.n) if stat else "0",
    }


def _censored_fields(prefix: str, cens: Censored | None) -> dict[str, str]:
    return {
        f"{prefix}_median": _num(cens.median if cens else None),
        f"{prefix}_reached": str(cens.k) if cens else "0",
        f"{prefix}_n": str(cens.n) if cens else "0",
    }


def to_csv(rows: Sequence[SettingSummary], target: float | None) -> str:
    """One line per setting with every number unformatted (empty when missing)."""
    best_acc = best_rows(rows, "final_acc", highest=True, digits=ACC_DIGITS)
    column = scored_by(rows)
    best_scored = best_rows(rows, column, highest=True, digits=ACC_DIGITS)
    best_conv = best_rows(rows, "convergence", highest=False, digits=EPOCH_DIGITS)
    records = []
    for s in rows:
        record = {
            "group": s.group,
            "setting": s.setting,
            "label": s.label,
            "optimizer": s.runs[0].optimizer,
            "sequence": s.runs[0].sequence,
            "strategy": s.runs[0].strategy,
            "runs": str(s.n_runs),
            "diverged": str(s.n_diverged),
        }
        record |= _stat_fields("final_acc", s.final_acc)
        record |= _censored_fields("convergence_epoch", s.convergence)
        record |= _stat_fields("best_acc", s.best_acc)
        record |= _censored_fields("epochs_to_target", s.to_target)
        record["target"] = _num(target)
        record |= _stat_fields("test_acc", s.test_acc)
        record |= _stat_fields("rate_moves", s.moves)
        record["never_moved"] = str(s.never_moved).lower()
        c = s.comparison
        record["p_vs_sgd"] = _num(c.p if c else None)
        record["p_vs_sgd_holm"] = _num(c.p_holm if c else None)
        record["test"] = c.test if c and c.p is not None else ""
        record["best_final_acc"] = str(s.setting in best_acc).lower()
        record["scored_by"] = s.scored_by
        record["best_scored"] = str(s.setting in best_scored).lower()
        record["best_convergence"] = str(s.setting in best_conv).lower()
        records.append(record)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()
