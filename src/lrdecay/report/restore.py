"""A study's exported files back into an MLflow store: the runs a fresh machine's sweep skips.

    python -m lrdecay.report.restore --data docs/results/fashion_mnist/data \\
        --experiment lrdecay-fashion_mnist-study

The store is the one the runs use (``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else
``mlruns/mlflow.db``, made if absent). Each run of ``runs.csv`` whose config fingerprint no
finished or diverged run of the experiment holds yet is recreated as it ended (FINISHED, or
FAILED and tagged diverged), with its start and end, run name, fingerprint, the tags and params
the report and a re-launch read, its per-epoch history (step = epoch) and run-level numbers
under the keys a run logs them, and its ``predictions.npz``; tagged
:data:`~lrdecay.tracking.resume.RESTORED_FROM_TAG` with the id it trained as. A re-launched
sweep then skips those jobs (:func:`~lrdecay.tracking.resume.find_prior`), and the report and
the next export read them as runs (the export names them by the id they trained as, so the
files do not change). The study's launches listed in ``export.json`` (its sweeps' parent runs)
come back too, as parent runs without jobs, so that the published page counts every launch and
its wall time. Running it again adds nothing; it never changes or deletes a run.

Not in the files, so not restored: each epoch's seconds, a per-batch scheduler's rates, the
run's ``config.yaml``, ``overrides.txt`` and ``curves.png``, and its other tags (device,
layout, which launch ran it). An export written before runs carried their fingerprint is
refused: its runs could not be matched, and a sweep would train them again beside them. A
folder that holds no export at all (a study never exported) restores nothing, and says so.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from lrdecay.core.outcome import SUMMARY_METRICS, RunStatus
from lrdecay.core.predictions import PREDICTIONS_FILE, Predictions
from lrdecay.core.records import epoch_key, summary_key
from lrdecay.errors import TrackingError
from lrdecay.report.export import (
    HISTORIES_FILE,
    HISTORY_COLUMNS,
    MANIFEST_FILE,
    PARAM_COLUMNS,
    RESTORE_COLUMNS,
    RUNS_FILE,
    STUDY_PREDICTIONS_FILE,
    load_predictions,
    origin_id,
    read_table,
)
from lrdecay.report.runs import ReportError, launches, search_all
from lrdecay.tracking.client import open_client
from lrdecay.tracking.environment import set_mlflow_defaults
from lrdecay.tracking.experiments import ensure_experiment
from lrdecay.tracking.redact import redact_uri
from lrdecay.tracking.resume import FINGERPRINT_TAG, RESTORED_FROM_TAG
from lrdecay.tracking.run_logger import DIVERGED_TAG, METRIC_BATCH, OUTCOME_TAG, outcome_from_run
from lrdecay.tracking.store import (
    DEFAULT_STORE_DIR,
    check_writable,
    default_artifact_root,
    resolve_uri,
)
from lrdecay.tracking.ui import (
    ROLE_TAG,
    RUN_COLOR_TAG,
    SWEEP_COLOUR,
    SWEEP_ROLE,
    setting_colour,
)

#: The tags a run carries that ``runs.csv`` holds, by column (set where the cell is not empty).
TAG_COLUMNS = {
    "setting": "setting",
    "seed": "seed",
    "optimizer": "optimizer",
    "sequence": "sequence",
    "strategy": "strategy",
    "scheduler": "scheduler",
    "dataset": "dataset",
    "model": "model",
    "threads": "threads",
    "mlflow.source.git.commit": "commit",
}
#: The MLflow statuses of a run that ended.
ENDED = ("FINISHED", "FAILED", "KILLED")
#: The run's description in MLflow's UI: where it came from.
NOTE_TAG = "mlflow.note.content"


@dataclass
class ExportedRun:
    """One run of an exported study, read and checked: its ``runs.csv`` row, how it ended, its
    start and end (ms, None when not recorded), run-level numbers, epochs' values by epoch and
    column, and its predictions (None when it kept none)."""

    row: dict[str, str]
    status: RunStatus
    start: int | None
    end: int | None
    summary: dict[str, float]
    history: dict[int, dict[str, float]] = field(default_factory=dict)
    predictions: Predictions | None = None

    @property
    def run_id(self) -> str:
        """The id the run trained as."""
        return self.row["run_id"]

    @property
    def fingerprint(self) -> str:
        """Its config fingerprint (empty for a run trained before runs carried one)."""
        return self.row["fingerprint"]


@dataclass(frozen=True)
class ExportedLaunch:
    """One launch of the study (a sweep's parent run) as ``export.json`` lists it: the id it ran
    as, its name, MLflow status, start and end (ms, None when not recorded)."""

    run_id: str
    run_name: str
    status: str
    start: int | None
    end: int | None


@dataclass(frozen=True)
class Export:
    """An exported study, read and checked: its experiment, runs and launches."""

    experiment: str
    runs: list[ExportedRun]
    launches: list[ExportedLaunch]


@dataclass
class Restored:
    """What a restore did: the runs it added (by the id they trained as), how many the store
    already held, the runs it could not match (no fingerprint), left to a sweep, and the
    launches it added."""

    added: list[str] = field(default_factory=list)
    present: int = 0
    unmatched: list[str] = field(default_factory=list)
    launches: list[str] = field(default_factory=list)


def _ms(text: str) -> int | None:
    """Milliseconds since the epoch of an exported time (``start_utc``), None when empty."""
    return round(datetime.fromisoformat(text).timestamp() * 1000) if text else None


def _run(row: dict[str, str]) -> ExportedRun:
    """The run of one ``runs.csv`` row; raises :class:`ValueError` on a cell that does not read,
    or a run the report would not count (neither finished nor diverged)."""
    status = RunStatus(row["status"])
    if not (status.ok or status == RunStatus.DIVERGED):
        raise ValueError(f"status '{status}' is neither finished nor diverged")
    summary = {name: float(row[name]) for name in SUMMARY_METRICS if row[name] != ""}
    return ExportedRun(row, status, _ms(row["start_utc"]), _ms(row["end_utc"]), summary)


def _histories(folder: Path, runs: dict[str, ExportedRun]) -> None:
    """Give each of ``runs`` its epochs from ``histories.csv.gz``."""
    for row in read_table(folder / HISTORIES_FILE):
        if row["run_id"] in runs:
            values = {c: float(row[c]) for c in HISTORY_COLUMNS if row.get(c, "") != ""}
            runs[row["run_id"]].history.setdefault(int(row["epoch"]), {}).update(values)


def _predictions(folder: Path, runs: dict[str, ExportedRun]) -> None:
    """Give each of ``runs`` its row of ``predictions.npz``; each must match its labels hash."""
    if any(run.row["labels_hash"] for run in runs.values()):
        study = load_predictions(folder)
        for arm in study.arms.values():
            for run_id, predicted in zip(arm.run_ids, arm.predicted, strict=True):
                if run_id in runs:
                    runs[run_id].predictions = Predictions.of(study.split, predicted, study.labels)
    for run in runs.values():
        kept = run.predictions.labels_hash if run.predictions is not None else ""
        if kept != run.row["labels_hash"]:
            raise ReportError(
                f"run {run.run_id}: {RUNS_FILE} gives labels hash '{run.row['labels_hash']}', "
                f"{STUDY_PREDICTIONS_FILE} {kept or 'no predictions'}: not one export"
            )


def _launch(entry: dict[str, str]) -> ExportedLaunch:
    """A launch of ``export.json``; raises :class:`KeyError` or :class:`ValueError` on one that
    does not read."""
    start, end = _ms(entry["start_utc"]), _ms(entry["end_utc"])
    return ExportedLaunch(entry["run_id"], entry["run_name"], entry["status"], start, end)


def read_export(folder: Path) -> Export:
    """The export in ``folder``: its runs, each with its history and predictions, and its
    launches, all read before anything is written; refuses an export written before runs could
    be restored (an export written before launches were listed has none)."""
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise ReportError(f"no {MANIFEST_FILE} in {folder}: not an exported study")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        experiment = str(manifest["experiment"])
        launched = [_launch(entry) for entry in manifest.get("launches", [])]
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"{path} does not read as an export's ({exc!r})") from exc
    rows = read_table(folder / RUNS_FILE)
    lacking = [c for c in RESTORE_COLUMNS if rows and c not in rows[0]]
    if lacking:
        raise ReportError(
            f"{folder / RUNS_FILE} has no {', '.join(lacking)} column (exported before runs "
            "could be restored): nothing restored. Fix: export it again from the store that "
            "holds its runs, or move the folder aside to train them afresh"
        )
    try:
        runs = {row["run_id"]: _run(row) for row in rows}
    except (KeyError, ValueError) as exc:
        raise ReportError(f"{folder / RUNS_FILE} does not read as an export ({exc})") from exc
    try:
        _histories(folder, runs)
    except (KeyError, ValueError) as exc:
        raise ReportError(f"{folder / HISTORIES_FILE} does not read as an export ({exc})") from exc
    _predictions(folder, runs)
    return Export(experiment, list(runs.values()), launched)


def _present(client: MlflowClient, experiment_id: str) -> set[str]:
    """The fingerprints of the experiment's active runs that ended as the report counts them
    (finished or diverged): a re-launch skips a finished one."""
    found = set()
    for run in search_all(client, experiment_id, f"tags.`{FINGERPRINT_TAG}` != ''"):
        outcome = outcome_from_run(run)
        if outcome.ok or outcome.diverged:
            found.add(run.data.tags[FINGERPRINT_TAG])
    return found


def _tags(run: ExportedRun) -> dict[str, str]:
    """The restored run's tags: the row's, how it ended, its fingerprint and origin."""
    row = run.row
    tags = {tag: row[column] for tag, column in TAG_COLUMNS.items() if row.get(column)}
    colour = setting_colour(row["setting"], row["sequence"], row["strategy"])
    if colour:
        tags[RUN_COLOR_TAG] = colour
    return tags | {
        OUTCOME_TAG: run.status.value,
        DIVERGED_TAG: str(run.status == RunStatus.DIVERGED).lower(),
        FINGERPRINT_TAG: run.fingerprint,
        RESTORED_FROM_TAG: run.run_id,
        NOTE_TAG: (
            f"Restored from a study's exported files ({RUNS_FILE}, {HISTORIES_FILE}, "
            f"{STUDY_PREDICTIONS_FILE}) by `python -m lrdecay.report.restore`; trained as run "
            f"{run.run_id}. The files hold no epoch times, config or curves figure."
        ),
    }


def _metrics(run: ExportedRun, stamp: int) -> list[Metric]:
    """Every epoch's values (step = epoch) and the run-level numbers (step = epochs run, as a
    run logs them), under a training run's keys."""
    metrics = [
        Metric(epoch_key(name), value, stamp, epoch)
        for epoch, values in sorted(run.history.items())
        for name, value in values.items()
    ]
    step = int(run.summary.get("epochs_run", 0))
    return metrics + [Metric(summary_key(k), v, stamp, step) for k, v in run.summary.items()]


def _restore_run(client: MlflowClient, experiment_id: str, run: ExportedRun) -> str:
    """Recreate ``run`` in the experiment; returns its new id. A restore stopped part-way
    deletes the part it made, so that no half run is left to be taken for it."""
    row = run.row
    name = row["run_name"] or f"{row['setting']} s{row['seed']}"
    created = client.create_run(experiment_id, start_time=run.start, tags=_tags(run), run_name=name)
    run_id = created.info.run_id
    try:
        params = [Param(key, row[column]) for key, column in PARAM_COLUMNS.items() if row[column]]
        metrics = _metrics(run, run.end or run.start or int(time.time() * 1000))
        first = METRIC_BATCH - len(params)  # the params ride with the first metrics: one call
        client.log_batch(run_id, params=params, metrics=metrics[:first])
        for i in range(first, len(metrics), METRIC_BATCH):
            client.log_batch(run_id, metrics=metrics[i : i + METRIC_BATCH])
        if run.predictions is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = run.predictions.save(Path(tmp) / PREDICTIONS_FILE)
                client.log_artifact(run_id, str(path))
        client.set_terminated(run_id, status=run.status.mlflow, end_time=run.end)
    except BaseException:
        client.delete_run(run_id)
        raise
    return run_id


def _restore_launch(client: MlflowClient, experiment_id: str, launch: ExportedLaunch) -> str:
    """Recreate ``launch`` as a sweep parent run with no jobs; returns its new id. One that was
    still running when exported ends KILLED: its launcher does not run here."""
    tags = {
        ROLE_TAG: SWEEP_ROLE,
        RUN_COLOR_TAG: SWEEP_COLOUR,
        RESTORED_FROM_TAG: launch.run_id,
        NOTE_TAG: f"A launch of the study, restored from {MANIFEST_FILE}; ran as run "
        f"{launch.run_id}.",
    }
    name = launch.run_name or None
    run_id = client.create_run(experiment_id, launch.start, tags, name).info.run_id
    status = launch.status if launch.status in ENDED else "KILLED"
    if launch.end is None:  # ended without an end time: keep it so (the page's wall time)
        client.update_run(run_id, status=status)
    else:
        client.set_terminated(run_id, status=status, end_time=launch.end)
    return run_id


def restore(
    client: MlflowClient,
    export: Export,
    experiment: str | None = None,
    artifact_root: str | None = None,
) -> Restored:
    """Recreate in ``experiment`` (default: the export's; made if absent, its artifacts under
    ``artifact_root``) each run of ``export`` (:func:`read_export`) whose fingerprint it does not
    hold yet, and each launch it does not hold yet (by the id it ran as)."""
    experiment_id = ensure_experiment(client, experiment or export.experiment, artifact_root)
    done = Restored()
    there = {origin_id(run) for run in launches(client, experiment_id)}
    for launch in export.launches:
        if launch.run_id not in there:
            _restore_launch(client, experiment_id, launch)
            done.launches.append(launch.run_id)
    present = _present(client, experiment_id)
    for run in export.runs:
        if not run.fingerprint:
            done.unmatched.append(run.run_id)
        elif run.fingerprint in present:
            done.present += 1
        else:
            _restore_run(client, experiment_id, run)
            done.added.append(run.run_id)
    return done


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: restore an exported study's runs into the tracking store."""
    parser = argparse.ArgumentParser(prog="lrdecay-restore", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the exported files' folder")
    parser.add_argument("--experiment", help="MLflow experiment (default: the export's own)")
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help=f"default: MLFLOW_TRACKING_URI, else {DEFAULT_STORE_DIR}/ as the runs use",
    )
    args = parser.parse_args(argv)
    set_mlflow_defaults()
    started = time.monotonic()
    uri = args.tracking_uri or ""
    if not any((args.data / name).exists() for name in (MANIFEST_FILE, RUNS_FILE)):
        print(f"nothing to restore: no {MANIFEST_FILE} or {RUNS_FILE} in {args.data}")
        return 0  # nothing exported yet: a study's first launch
    try:
        export = read_export(args.data)  # all of it read and checked before the store is opened
        experiment = args.experiment or export.experiment
        uri = resolve_uri(args.tracking_uri, Path(DEFAULT_STORE_DIR))
        check_writable(uri)
        client = open_client(uri)
        done = restore(client, export, experiment, default_artifact_root(uri))
    except (ReportError, TrackingError, MlflowException) as exc:
        where = f" (store {redact_uri(uri)})" if uri else ""
        print(f"lrdecay-restore: {str(exc).splitlines()[0]}{where}", file=sys.stderr)
        return 1
    print(
        f"restored {len(done.added)} of {len(export.runs)} runs ({done.present} already there) "
        f"and {len(done.launches)} of {len(export.launches)} launches into experiment "
        f"'{experiment}' at {redact_uri(uri)} in {time.monotonic() - started:.1f} s"
    )
    if done.unmatched:
        print(
            f"lrdecay-restore: {len(done.unmatched)} runs have no fingerprint (trained before "
            "runs carried one) and were not restored: a sweep trains them again",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
