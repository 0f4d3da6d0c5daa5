"""A study's runs as publishable files, written from an MLflow store and read back without one.

    python -m lrdecay.report.export --experiment lrdecay-fashion_mnist-study \\
        --out docs/results/fashion_mnist/data

writes into ``--out``:

- ``runs.csv``: one row per run the report counts (finished or diverged): its setting, seed,
  status, options, the params the report checks, its run-level numbers, final rate, rate moves,
  commit, start and end, the labels hash of its predictions, and what recreates it in a store
  (:mod:`lrdecay.report.restore`): its run id (the id it trained as, kept through restores), run
  name, config fingerprint and threads;
- ``histories.csv.gz``: one row per run and epoch: train and validation loss and accuracy, the
  rate and its advances;
- ``predictions.npz``: per setting, a seeds × items matrix of predicted classes on the split
  that scored the runs (``predicted/<setting>``, with ``seeds/<setting>`` and
  ``run_ids/<setting>`` naming its rows), the items' ``labels``, their ``labels_hash``,
  ``split`` and ``settings``; only arrays of numbers and text, read with ``allow_pickle=False``;
- ``export.json``: the experiment, the runs the report leaves out (counted), and its launches
  (the sweeps' parent runs: id it ran as, name, status, start and end), which a restore brings
  back for the page's launch count and wall time.

:func:`load_exported` reads them back into the report's :class:`~lrdecay.report.runs.RunSet`,
so ``lrdecay-report --data DIR`` rebuilds the table, figures and claims with no store;
:func:`load_predictions` reads the matrices. Floats are written exactly (shortest round-trip
text), so a report rebuilt from the files equals the one read from the store.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import gzip
import io
import json
import os
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from lrdecay.atomic import replacing
from lrdecay.core.outcome import SUMMARY_METRICS, RunOutcome, RunStatus
from lrdecay.core.predictions import PREDICTIONS_FILE, Predictions, class_dtype
from lrdecay.errors import TrackingError
from lrdecay.report.runs import (
    HISTORY_KEYS,
    ReportError,
    RunRecord,
    RunSet,
    default_uri,
    launches,
    load_runs,
    read_history,
    search_all,
    store_client,
)
from lrdecay.report.stats import CONSISTENCY_PARAMS
from lrdecay.tracking.environment import set_mlflow_defaults
from lrdecay.tracking.redact import redact_uri
from lrdecay.tracking.resume import FINGERPRINT_TAG, RESTORED_FROM_TAG

# MLflow draws a progress bar per downloaded artifact: one per run, hundreds of lines of noise.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

RUNS_FILE = "runs.csv"
HISTORIES_FILE = "histories.csv.gz"
MANIFEST_FILE = "export.json"
#: The published predictions (one file for the study; each run's own is ``PREDICTIONS_FILE``
#: too, as an MLflow artifact).
STUDY_PREDICTIONS_FILE = PREDICTIONS_FILE
#: The params the report reads (consistency across seeds, epoch budget, target), as columns.
PARAM_COLUMNS = {
    "dataset.name": "dataset",
    "model.name": "model",
    "optimizer.lr": "lr",
    "trainer.max_epochs": "max_epochs",
    "dataset.val_fraction": "val_fraction",
    "dataset.target_accuracy": "target_accuracy",
}
assert set(CONSISTENCY_PARAMS) <= set(PARAM_COLUMNS)
#: The timestamp of every member of an exported ``.npz`` (zip's earliest).
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
#: Run-level numbers stored as integers.
INTEGER_METRICS = ("convergence_epoch", "epochs_run")
RUN_COLUMNS = (
    "setting",
    "seed",
    "status",
    "optimizer",
    "sequence",
    "strategy",
    "scheduler",
    *PARAM_COLUMNS.values(),
    "test_acc",
    "final_val_acc",
    "best_val_acc",
    "convergence_epoch",
    "final_lr",
    "rate_moves",
    "epochs_run",
    "test_loss",
    "train_seconds",
    "samples_per_second",
    "labels_hash",
    "commit",
    "start_utc",
    "end_utc",
    "run_id",
    "run_name",
    "fingerprint",
    "threads",
)
#: The columns an export written before runs could be restored lacks (its runs read, but do
#: not restore).
RESTORE_COLUMNS = ("run_name", "fingerprint", "threads")
assert set(RESTORE_COLUMNS) <= set(RUN_COLUMNS)
#: Per-epoch columns: the report's (:data:`~lrdecay.report.runs.HISTORY_KEYS`) and the training
#: split's loss and accuracy.
HISTORY_COLUMNS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "lr_advances")
assert set(HISTORY_KEYS) <= set(HISTORY_COLUMNS)


def _text(value: float | int | str | None) -> str:
    """A cell: a float as its shortest exact text (it reads back bit for bit), empty for None."""
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def _utc(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat() if ms else ""


def _csv(header: Sequence[str], rows: Iterable[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(header), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _run_row(record: RunRecord, run: Run, digest: str) -> dict[str, str]:
    """The ``runs.csv`` row of ``record`` (its MLflow run ``run``)."""
    epochs, lrs = record.series("lr")
    tags = run.data.tags
    row = {
        "setting": record.setting,
        "seed": record.seed,
        "status": record.outcome.status.value,
        "optimizer": record.optimizer,
        "sequence": record.sequence,
        "strategy": record.strategy,
        "scheduler": record.scheduler,
        **{column: record.params.get(key, "") for key, column in PARAM_COLUMNS.items()},
        "final_lr": _text(lrs[-1] if epochs else None),
        "rate_moves": _text(record.rate_moves()),
        "labels_hash": digest,
        "commit": tags.get("mlflow.source.git.commit", ""),
        "start_utc": _utc(run.info.start_time),
        "end_utc": _utc(run.info.end_time),
        "run_id": record.run_id,
        "run_name": run.info.run_name or "",
        "fingerprint": tags.get(FINGERPRINT_TAG, ""),
        "threads": tags.get("threads", ""),
    }
    for name in SUMMARY_METRICS:
        row[name] = _text(getattr(record.outcome, name))
    return {column: row.get(column, "") for column in RUN_COLUMNS}


def _history_rows(record: RunRecord, extra: dict[str, dict[int, float]]) -> list[dict[str, str]]:
    """The ``histories.csv.gz`` rows of ``record``: one per epoch any column was logged at."""
    history = {**extra, **record.history}
    epochs = sorted({epoch for values in history.values() for epoch in values})
    return [
        {
            "run_id": record.run_id,
            "setting": record.setting,
            "seed": record.seed,
            "epoch": str(epoch),
            **{c: _text(history.get(c, {}).get(epoch)) for c in HISTORY_COLUMNS},
        }
        for epoch in epochs
    ]


def _predictions(client: MlflowClient, run_id: str, folder: Path) -> Predictions | None:
    """The run's logged predictions, or None when it has none (a diverged run, or one logged
    before runs kept them)."""
    try:
        if PREDICTIONS_FILE not in {a.path for a in client.list_artifacts(run_id)}:
            return None
        local = client.download_artifacts(run_id, PREDICTIONS_FILE, str(folder))
        return Predictions.load(Path(local))
    except (MlflowException, OSError, ValueError) as exc:
        raise ReportError(f"run {run_id}: its predictions cannot be read ({exc})") from exc


def _study_predictions(runs: Sequence[tuple[RunRecord, Predictions]]) -> dict[str, np.ndarray]:
    """The arrays of ``predictions.npz``; every run must have been scored on the same items."""
    if not runs:
        return {}
    hashes = {p.labels_hash for _, p in runs}
    splits = {p.split for _, p in runs}
    if len(hashes) > 1 or len(splits) > 1:
        raise ReportError(
            f"the runs were scored on different items ({len(hashes)} labels hashes, splits "
            f"{', '.join(sorted(splits))}): one study, one scoring split"
        )
    first = runs[0][1]
    top = max(int(p.predicted.max(initial=0)) for _, p in runs)
    dtype = class_dtype(max(top, int(first.labels.max(initial=0))) + 1)
    arrays: dict[str, np.ndarray] = {
        "labels": first.labels.astype(dtype),
        "labels_hash": np.array(first.labels_hash),
        "split": np.array(first.split),
        "n": np.array(first.n, dtype=np.int64),
    }
    settings: list[str] = []
    for record, _ in runs:
        if record.setting not in settings:
            settings.append(record.setting)
    for setting in settings:
        members = sorted(
            ((r, p) for r, p in runs if r.setting == setting),
            key=lambda rp: (len(rp[0].seed), rp[0].seed, rp[0].run_id),
        )
        arrays[f"predicted/{setting}"] = np.stack([p.predicted.astype(dtype) for _, p in members])
        arrays[f"seeds/{setting}"] = np.array([r.seed for r, _ in members])
        arrays[f"run_ids/{setting}"] = np.array([r.run_id for r, _ in members])
    arrays["settings"] = np.array(settings)
    return arrays


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """``arrays`` as a compressed ``.npz`` that ``numpy.load`` reads, with fixed timestamps
    (NumPy's own stamps the time of writing): the same arrays give the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
    return buffer.getvalue()


def _write(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def origin_id(run: Run) -> str:
    """The id ``run`` ran as: a restored run's original id
    (:data:`~lrdecay.tracking.resume.RESTORED_FROM_TAG`), any other run's own."""
    return run.data.tags.get(RESTORED_FROM_TAG) or run.info.run_id


def _launch(run: Run) -> dict[str, str]:
    """A launch (a sweep's parent run) as ``export.json`` lists it."""
    return {
        "run_id": origin_id(run),
        "run_name": run.info.run_name or "",
        "status": run.info.status,
        "start_utc": _utc(run.info.start_time),
        "end_utc": _utc(run.info.end_time),
    }


def as_trained(record: RunRecord, run: Run) -> RunRecord:
    """``record`` under the id its run trained as (:func:`origin_id`), so that an export of a
    restored study names its runs as the first export did."""
    origin = origin_id(run)
    if origin == record.run_id:
        return record
    return dataclasses.replace(record, outcome=dataclasses.replace(record.outcome, run_id=origin))


def export(client: MlflowClient, experiment: str, out_dir: Path) -> list[Path]:
    """Write the files of ``experiment``'s runs into ``out_dir``; returns their paths."""
    runset = load_runs(client, experiment=experiment)
    mlflow_runs = {r.info.run_id: r for r in search_all(client, runset.experiment_id, "")}
    pairs = [(as_trained(r, mlflow_runs[r.run_id]), mlflow_runs[r.run_id]) for r in runset.runs]
    pairs.sort(key=lambda pair: (pair[0].setting, pair[0].seed, pair[0].run_id))
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, history_rows, scored = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (record, run) in enumerate(pairs):
            folder = Path(tmp) / str(i)
            folder.mkdir()
            kept = _predictions(client, run.info.run_id, folder)
            if kept is not None:
                scored.append((record, kept))
            rows.append(_run_row(record, run, kept.labels_hash if kept else ""))
            extra = read_train_history(client, run.info.run_id)
            history_rows += _history_rows(record, extra)
    history_header = ("run_id", "setting", "seed", "epoch", *HISTORY_COLUMNS)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as packed:  # same runs, same bytes
        packed.write(_csv(history_header, history_rows).encode())
    manifest = {
        "experiment": runset.experiment,
        "experiment_id": runset.experiment_id,
        "runs": len(runset.runs),
        "runs_with_predictions": len(scored),
        "excluded": runset.excluded,
        "untagged": runset.untagged,
        "search_trials": runset.search_trials,
        "launches": [_launch(run) for run in launches(client, runset.experiment_id)],
    }
    files = {
        RUNS_FILE: _csv(RUN_COLUMNS, rows).encode(),
        HISTORIES_FILE: buffer.getvalue(),
        MANIFEST_FILE: (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode(),
    }
    arrays = _study_predictions(scored)
    if arrays:
        files[STUDY_PREDICTIONS_FILE] = npz_bytes(arrays)
    else:  # no run kept any: no file, not an earlier export's
        (out_dir / STUDY_PREDICTIONS_FILE).unlink(missing_ok=True)
    for name, data in files.items():
        _write(out_dir / name, data)
    return [out_dir / name for name in files]


def read_train_history(client: MlflowClient, run_id: str) -> dict[str, dict[int, float]]:
    """The per-epoch columns the report itself does not read (training loss and accuracy)."""
    return read_history(client, run_id, [c for c in HISTORY_COLUMNS if c not in HISTORY_KEYS])


# --------------------------------------------------------------------------- reading back


def read_table(path: Path) -> list[dict[str, str]]:
    """The rows of an exported table (``runs.csv``, ``histories.csv.gz``) by column name."""
    if not path.is_file():
        raise ReportError(f"no {path.name} in {path.parent}: export the study there first")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _number(text: str, integer: bool = False) -> float | int | None:
    if text == "":
        return None
    return int(float(text)) if integer else float(text)


def _outcome(row: dict[str, str]) -> RunOutcome:
    numbers = {name: _number(row[name], name in INTEGER_METRICS) for name in SUMMARY_METRICS}
    return RunOutcome(
        status=RunStatus(row["status"]),
        setting=row["setting"],
        run_id=row["run_id"],
        **{name: value for name, value in numbers.items() if value is not None},  # type: ignore[arg-type]
    )


def load_exported(folder: Path) -> RunSet:
    """The runs of an exported study (``runs.csv``, ``histories.csv.gz``, ``export.json`` in
    ``folder``) as the report reads them from a store: the same records, statistics and files."""
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ReportError(f"no {MANIFEST_FILE} in {folder}: not an exported study")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    histories: dict[str, dict[str, dict[int, float]]] = {}
    for row in read_table(folder / HISTORIES_FILE):
        kept = histories.setdefault(row["run_id"], {})
        for name in HISTORY_KEYS:
            if row[name] != "":
                kept.setdefault(name, {})[int(row["epoch"])] = float(row[name])
    records = [
        RunRecord(
            outcome=_outcome(row),
            optimizer=row["optimizer"],
            sequence=row["sequence"],
            strategy=row["strategy"],
            seed=row["seed"],
            dataset=row["dataset"],
            params={key: row[column] for key, column in PARAM_COLUMNS.items() if row[column]},
            history=histories.get(row["run_id"], {}),
            scheduler=row["scheduler"],
        )
        for row in read_table(folder / RUNS_FILE)
    ]
    records.sort(key=lambda r: (r.setting, r.seed, r.run_id))
    return RunSet(
        experiment=manifest["experiment"],
        experiment_id=str(manifest.get("experiment_id", "")),
        parent_run_id=None,
        runs=records,
        excluded=dict(manifest.get("excluded", {})),
        untagged=int(manifest.get("untagged", 0)),
        search_trials=int(manifest.get("search_trials", 0)),
    )


@dataclass(frozen=True)
class ArmPredictions:
    """One setting's predictions: a runs × items matrix, with each row's seed and run id."""

    predicted: np.ndarray
    seeds: list[str]
    run_ids: list[str]


@dataclass(frozen=True)
class StudyPredictions:
    """Every setting's predictions on the scoring split, and that split's labels."""

    split: str
    labels: np.ndarray
    labels_hash: str
    arms: dict[str, ArmPredictions]


def load_predictions(folder: Path) -> StudyPredictions:
    """The predictions of an exported study (``predictions.npz`` in ``folder``), checked: every
    matrix has one column per labelled item, one row per seed named."""
    path = folder / STUDY_PREDICTIONS_FILE
    if not path.is_file():
        raise ReportError(f"no {STUDY_PREDICTIONS_FILE} in {folder}: export the study first")
    with np.load(path, allow_pickle=False) as archive:
        labels = np.asarray(archive["labels"])
        arms = {
            str(s): ArmPredictions(
                np.asarray(archive[f"predicted/{s}"]),
                [str(x) for x in archive[f"seeds/{s}"]],
                [str(x) for x in archive[f"run_ids/{s}"]],
            )
            for s in archive["settings"]
        }
        found = StudyPredictions(str(archive["split"]), labels, str(archive["labels_hash"]), arms)
    for setting, arm in arms.items():
        if arm.predicted.shape != (len(arm.seeds), labels.size):
            raise ReportError(f"{path}: {setting}'s matrix does not match its seeds and labels")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: export one experiment's runs as publishable files."""
    parser = argparse.ArgumentParser(prog="lrdecay-export", description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", required=True, help="MLflow experiment name")
    parser.add_argument("--out", type=Path, required=True, help="the files' folder")
    parser.add_argument("--tracking-uri", default=None, help="default: as lrdecay-report")
    args = parser.parse_args(argv)
    set_mlflow_defaults()
    uri = args.tracking_uri or default_uri()
    try:
        paths = export(store_client(uri), args.experiment, args.out)
    except (ReportError, TrackingError) as exc:
        print(f"lrdecay-export: {exc} (store {redact_uri(uri)})", file=sys.stderr)
        return 1
    for path in paths:
        print(f"exported {path} ({path.stat().st_size:,} bytes)")
    manifest = json.loads((args.out / MANIFEST_FILE).read_text(encoding="utf-8"))
    missing = manifest["runs"] - manifest["runs_with_predictions"]
    if missing:
        print(
            f"lrdecay-export: {missing} of {manifest['runs']} runs have no predictions (diverged, "
            "or trained before runs kept them; runs.csv leaves their labels_hash empty)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
