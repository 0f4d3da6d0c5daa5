"""A study's report written as files: reads its runs back from MLflow (or from a study's
exported files) and writes ``table.md``, ``table.csv``, ``table.tex``, five PNG figures,
``report.md`` (which embeds them and checks the reference study's claims) and ``report.html``
into one folder, and logs the folder to the sweep's parent run under ``report/``.
The sweep of an Optuna search gets a section of its own (:mod:`lrdecay.report.search_section`):
the trials over time with the best so far, the parameter importances and the confirmation; its
trials stay out of the per-setting numbers, which its confirmation's runs make.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from lrdecay.report.html_page import render_html
from lrdecay.report.item_differences import (
    FIGURE,
    TITLE,
    Kept,
    analyse,
    from_store,
)
from lrdecay.report.item_differences import markdown as item_markdown
from lrdecay.report.runs import ReportError, RunSet, load_runs, store_client
from lrdecay.report.search_figures import search_figures
from lrdecay.report.search_section import Search, load_search
from lrdecay.report.stats import default_target, summarise
from lrdecay.report.tables import build_table, to_csv, to_latex, to_markdown

if TYPE_CHECKING:
    pass

from lrdecay.report.report_markdown import render_markdown

log = logging.getLogger("lrdecay")

ARTIFACT_DIR = "report"


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
