"""The report command: reads a study's runs back from MLflow and writes its tables and figures.

    lrdecay-report --experiment lrdecay-digits            # every run of the experiment
    lrdecay-report --parent-run-id <id>                   # the runs of one sweep

writes ``table.md``, ``table.csv``, ``table.tex``, five PNG figures and ``report.md`` (which embeds
them and checks the reference study's claims) into ``reports/<experiment>/``, and logs the folder
to the sweep's parent run under ``report/``. :func:`write_report` is the same as a library call.
The sweep of an Optuna search gets a section of its own (:mod:`lrdecay.report.search`): the
trials over time with the best so far, the parameter importances and the confirmation; its
trials stay out of the per-setting numbers, which its confirmation's runs make.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from lrdecay.errors import TrackingError
from lrdecay.report.claim_wording import LITTLE
from lrdecay.report.claims import RARELY, check_claims
from lrdecay.report.inference import ALPHA
from lrdecay.report.item_differences import (
    FIGURE,
    TITLE,
    Kept,
    analyse,
    from_files,
    from_store,
)
from lrdecay.report.item_differences import markdown as item_markdown
from lrdecay.report.modern_claims import check_modern
from lrdecay.report.overfitting import markdown as overfitting_markdown
from lrdecay.report.page import render_html
from lrdecay.report.runs import ReportError, RunSet, default_uri, load_runs, store_client
from lrdecay.report.search import Search, load_search, search_figures, search_markdown
from lrdecay.report.stats import SettingSummary, default_target, summarise
from lrdecay.report.tables import build_table, to_csv, to_latex, to_markdown
from lrdecay.tracking.environment import set_mlflow_defaults
from lrdecay.tracking.redact import redact_uri
from lrdecay.tracking.store import DEFAULT_STORE_DIR, STORE_FILE

if TYPE_CHECKING:
    from lrdecay.report.figure_common import Figure

log = logging.getLogger("lrdecay")

ARTIFACT_DIR = "report"


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
    seeds = sorted({r.seed for r in runset.runs}, key=lambda s: (len(s), s))
    source = (
        f"sweep `{runset.parent_run_id}` of experiment `{runset.experiment}`"
        if runset.parent_run_id
        else f"experiment `{runset.experiment}`"
    )
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
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
    lines += [
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
    return "\n".join(lines) + "\n"


def _noun(noun: str, n: int) -> str:
    """``noun`` for a count of ``n``: "setting" for 1, "settings" otherwise."""
    return noun if n == 1 else f"{noun}s"


def write_report(
    client_or_uri: MlflowClient | str,
    *,
    experiment: str | None = None,
    parent_run_id: str | None = None,
    out_dir: Path | str,
    target: float | None = None,
    log_to_parent: bool = True,
    margin: float | None = None,
) -> Path:
    """Write the report of ``experiment`` (or of the sweep ``parent_run_id``) into ``out_dir``.

    ``target`` is the epochs-to-target threshold (default: the runs' ``dataset.target_accuracy``).
    When ``parent_run_id`` is given and ``log_to_parent``, the folder is also logged to that run
    under ``report/``. ``margin`` is the equivalence margin the study declared (``report.margin``,
    an accuracy difference) for the section on differences over seeds and test items, which the
    report gains when its runs kept their predictions. Returns the path of ``report.md``; raises
    :class:`ReportError` when there is nothing to report on.
    """
    client = store_client(client_or_uri)
    runset = load_runs(client, experiment=experiment, parent_run_id=parent_run_id)
    search = load_search(client, parent_run_id) if parent_run_id is not None else None
    out = Path(out_dir)
    kept: Kept | str | None  # the kept predictions, or why they cannot be compared
    try:
        kept = from_store(client, runset.runs)
    except ReportError as exc:
        kept = str(exc)
    path = write_runset_report(runset, out, target, search, margin=margin, kept=kept)
    if parent_run_id is not None and log_to_parent:
        try:
            client.log_artifacts(parent_run_id, str(out), artifact_path=ARTIFACT_DIR)
        except (MlflowException, OSError) as exc:
            log.warning(
                "report written to %s but not logged to run %s: %s",
                out,
                parent_run_id,
                str(exc).splitlines()[0],
            )
    return path


def write_runset_report(
    runset: RunSet,
    out: Path,
    target: float | None = None,
    search: Search | None = None,
    *,
    margin: float | None = None,
    kept: Kept | str | None = None,
) -> Path:
    """Write the report of ``runset`` (read from a store, or from exported files) into ``out``;
    returns the path of ``report.md``. ``kept``: the runs' predictions, for the section on
    differences over seeds and test items (a string: why they cannot be compared)."""
    target = target if target is not None else default_target(runset.runs)
    rows = summarise(runset.runs, target)
    if not rows and search is None:
        raise ReportError(
            f"{runset.experiment} holds only the trials of Optuna searches ({runset.search_trials}"
            "), no seeds of a setting; report a search by its sweep: --parent-run-id ID"
        )
    out.mkdir(parents=True, exist_ok=True)

    table_md = ""
    if rows:
        table = build_table(rows, target)
        table_md = to_markdown(table)
        (out / "table.md").write_text(table_md, encoding="utf-8")
        (out / "table.csv").write_text(to_csv(rows, target), encoding="utf-8")
        (out / "table.tex").write_text(to_latex(table), encoding="utf-8")
    from lrdecay.report.figures import write_figures  # matplotlib: only once figures are due

    with warnings.catch_warnings():  # tight_layout/constant-input chatter is not the user's
        warnings.simplefilter("ignore")
        figures = write_figures(rows, out) if rows else []
        search_figs = search_figures(search, out) if search is not None else []
        report = render_markdown(runset, rows, table_md, figures, target, out, search, search_figs)
        (out / FIGURE).unlink(missing_ok=True)  # no stale figure of an earlier report
        if isinstance(kept, str):
            report += "\n".join(["", f"## {TITLE}", "", f"Absent: {kept}.", ""])
        elif kept is not None and rows:
            section = analyse(runset.runs, kept, margin)
            report += "\n".join(item_markdown(section, out)) + "\n"
    path = out / "report.md"
    path.write_text(report, encoding="utf-8")
    (out / "report.html").write_text(render_html(report, out), encoding="utf-8")
    return path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lrdecay-report",
        description="Tables, figures and a claim-by-claim report of a learning-rate decay "
        "study, read back from MLflow.",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--experiment", help="MLflow experiment name, e.g. lrdecay-digits")
    which.add_argument("--parent-run-id", help="the parent run of one sweep: report its runs")
    which.add_argument(
        "--data",
        type=Path,
        help="a study's exported files (python -m lrdecay.report.export): report them, no store",
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the SQLite store "
        f"{DEFAULT_STORE_DIR}/{STORE_FILE} of the current directory)",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="output folder (default: reports/<experiment>/)"
    )
    p.add_argument(
        "--target",
        type=float,
        default=None,
        help="accuracy for the epochs-to-target column "
        "(default: the runs' dataset.target_accuracy)",
    )
    p.add_argument(
        "--margin",
        type=float,
        default=None,
        help="the equivalence margin the study declared (report.margin: an accuracy difference, "
        "0.005 is half a point) for the differences over seeds and test items (default: none)",
    )
    p.add_argument(
        "--no-log", action="store_true", help="do not log the report to the sweep's parent run"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0, or 1 with one line on stderr)."""
    args = _parser().parse_args(argv)
    set_mlflow_defaults()
    uri = args.tracking_uri or default_uri()
    try:
        if args.target is not None and not 0 < args.target <= 1:
            raise ReportError(f"--target must be an accuracy in (0, 1], got {args.target}")
        from lrdecay.config import MAX_MARGIN

        if args.margin is not None and not 0 < args.margin <= MAX_MARGIN:
            raise ReportError(
                f"--margin must be an accuracy difference in (0, {MAX_MARGIN}] (0.005 is half "
                f"a point), got {args.margin}"
            )
        if args.data is not None:
            from lrdecay.report.export import load_exported

            runset = load_exported(args.data)
            out = args.out or Path("reports") / runset.experiment
            path = write_runset_report(
                runset, out, args.target, margin=args.margin, kept=from_files(args.data)
            )
            print(f"report written to {path}")
            return 0
        client = store_client(uri)
        out = args.out
        if out is None:
            name = args.experiment
            if name is None:
                try:
                    run = client.get_run(args.parent_run_id)
                    name = client.get_experiment(run.info.experiment_id).name
                except MlflowException as exc:
                    raise ReportError(
                        f"no run with id '{args.parent_run_id}' at "
                        f"{redact_uri(uri)}; check --parent-run-id"
                    ) from exc
            out = Path("reports") / name
        path = write_report(
            client,
            experiment=args.experiment,
            parent_run_id=args.parent_run_id,
            out_dir=out,
            target=args.target,
            log_to_parent=not args.no_log,
            margin=args.margin,
        )
    except (ReportError, TrackingError) as exc:
        print(f"lrdecay-report: {exc}", file=sys.stderr)
        return 1
    except MlflowException as exc:
        print(
            f"lrdecay-report: cannot read the MLflow store at {redact_uri(uri)}: "
            f"{str(exc).splitlines()[0]}",
            file=sys.stderr,
        )
        return 1
    print(f"report written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
