"""Everything MLflow: store location, experiment, run name, tags, params, metrics, artifacts
(a run's curves figure, and its predictions on the split that scored it).

The default store is SQLite at ``<store_dir>/mlflow.db`` with artifacts under
``<store_dir>/artifacts``; ``tracking.uri`` or ``MLFLOW_TRACKING_URI`` points anywhere else.
The client API is used throughout (no fluent global run), so nothing leaks between jobs that
share a worker process.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import inspect
import logging
import os
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from lrdecay.core.hooks import FitStart, Listener
from lrdecay.core.interrupts import stop_deferred
from lrdecay.core.outcome import SUMMARY_METRICS, RunOutcome, RunStatus
from lrdecay.core.predictions import PREDICTIONS_FILE, Predictions
from lrdecay.core.records import EpochRecord, by_name, epoch_key
from lrdecay.errors import TrackingError
from lrdecay.tracking.credentials import PASSWORD_ENV, USERNAME_ENV
from lrdecay.tracking.redact import redact_uri
from lrdecay.tracking.store import sqlite_uri
from lrdecay.tracking.ui import (
    SHARED_VIEW_TAG,
    experiment_tags,
)

if TYPE_CHECKING:
    from lrdecay.config import LrdecayConfig

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Tags a training run ends with: its :class:`RunStatus` value, and ``true``/``false`` flags
#: for the two early ends MLflow's own status cannot tell apart (a divergence is FAILED like a
#: crash, a pruned trial KILLED like an interrupted run).
OUTCOME_TAG, DIVERGED_TAG, PRUNED_TAG = "outcome", "diverged", "pruned"
#: MLflow's limits: params and metrics per log_batch call, and a param value's length.
PARAM_BATCH, METRIC_BATCH, PARAM_VALUE_LIMIT = 100, 1000, 6000
SCHEMES = ("sqlite", "http", "https", "file", "postgresql", "mysql", "mssql", "databricks")

# MLflow's own HTTP client retries a dead server for minutes per call; this module retries with
# its own, shorter backoff and keeps training meanwhile. Users can still override both.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
# MLflow prints each run's URL, credentials included; our own log line names the run instead.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def with_retry(fn: Callable[[], T], attempts: int, first_delay: float = 0.5) -> T:
    """Call ``fn``, retrying failures with exponential backoff; re-raise the last failure."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception:
            if attempt == attempts:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 8.0)
    raise AssertionError("unreachable")


def resolve_uri(uri: str | None, store_dir: Path) -> str:
    """The tracking URI: explicit ``uri``, else ``MLFLOW_TRACKING_URI``, else local SQLite."""
    if uri:
        return uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    try:
        store_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrackingError(
            f"tracking.store_dir={store_dir} cannot be created "
            f"({exc.strerror or type(exc).__name__}). Fix: point "
            "tracking.store_dir at a writable folder"
        ) from exc
    return sqlite_uri(store_dir)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI; None for any other store."""
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<db>.lock`` beside a SQLite store (nothing for other stores),
    so that only one process at a time creates or upgrades its schema."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sqlite_tables(db: Path) -> list[str]:
    """The tables of the SQLite database ``db``, read without writing; raises
    :class:`sqlite3.Error` when the file is not a SQLite database."""
    with contextlib.closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)) as con:
        rows = con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return [name for (name,) in rows]


def store_damage(db: Path) -> TrackingError | None:
    """One line for a SQLite store file MLflow could not open: not a database at all, or left
    mid-upgrade by an interrupted migration; None when the file looks sound."""
    if not db.is_file():
        return None
    try:
        tables = sqlite_tables(db)
    except sqlite3.Error as error:
        return TrackingError(
            f"{db} is not an MLflow SQLite store ({error}). Fix: move it aside, or point "
            "tracking.uri (or tracking.store_dir) elsewhere"
        )
    leftovers = [name for name in tables if name.startswith("_alembic_tmp_")]
    if leftovers:
        return TrackingError(
            f"the MLflow store {db} is damaged (an interrupted schema upgrade left "
            f"{', '.join(leftovers)}). Fix: move it aside or restore a backup, or "
            "point tracking.uri at a fresh store"
        )
    return None


class StopSafeClient(MlflowClient):
    """An :class:`MlflowClient` whose public calls a stop signal never cuts in half: the
    signal's :class:`~lrdecay.core.interrupts.Interrupted` is raised as the call returns."""

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        if name.startswith("_") or not inspect.ismethod(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            with stop_deferred():
                return attr(*args, **kwargs)

        return call


def open_client(uri: str) -> MlflowClient:
    """An MLflow client on ``uri``. MLflow creates and upgrades a SQLite store's schema when the
    client is made; the store's lock keeps processes that start together from racing there,
    and a stop signal waits for the upgrade to end."""
    with store_lock(uri), stop_deferred():
        try:
            return StopSafeClient(tracking_uri=uri)
        except Exception as exc:
            db = sqlite_path(uri)
            damage = store_damage(db) if db is not None else None
            if damage is not None:
                raise damage from exc
            raise


def check_writable(uri: str) -> None:
    """Fail with one line when a SQLite store's file or folder cannot be written (a run would
    otherwise fail deep inside MLflow, or after training, when it logs)."""
    db = sqlite_path(uri)
    if db is None:
        return
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=db.parent).close()  # SQLite writes its journal beside it
        if db.exists():
            with db.open("r+b"):
                pass
    except OSError as exc:
        raise TrackingError(
            f"the MLflow store {db} is not writable "
            f"({exc.strerror or type(exc).__name__}). Fix: point "
            "tracking.store_dir (or tracking.uri) at a writable place"
        ) from exc


def experiment_name(conf: LrdecayConfig) -> str:
    """``tracking.experiment`` or ``lrdecay-<dataset>``: one experiment per data set."""
    return conf.tracking.experiment or f"lrdecay-{conf.dataset.name}"


def default_artifact_root(uri: str) -> str | None:
    """Artifacts of a SQLite store live beside its file (``<db folder>/artifacts``), never in
    the working directory; servers choose their own."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///") :]).resolve().parent / "artifacts").as_uri()
    return None


def ensure_experiment(client: MlflowClient, name: str, artifact_root: str | None) -> str:
    """The id of experiment ``name``, created if needed; tolerates another process racing."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        for key, value in experiment_tags().items():  # made before the project wrote them
            stale = key.startswith(SHARED_VIEW_TAG) and found.tags.get(key) != value
            if key not in found.tags or stale:  # its kind, unless set; the project's view
                client.set_experiment_tag(found.experiment_id, key, value)
        return found.experiment_id
    location = f"{artifact_root}/{name}" if artifact_root else None
    try:
        return client.create_experiment(name, artifact_location=location, tags=experiment_tags())
    except MlflowException:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` → ``{"a.b": "1"}``: the resolved config as MLflow params."""
    out: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(value)
    return out


def log_batches(
    client: MlflowClient,
    run_id: str,
    params: Mapping[str, str] | None = None,
    metrics: Sequence[Metric] = (),
) -> None:
    """Log ``params`` (values cut to MLflow's limit) and ``metrics`` to run ``run_id`` in as
    few calls as MLflow takes them."""
    items = [Param(k, v[:PARAM_VALUE_LIMIT]) for k, v in (params or {}).items()]
    for i in range(0, len(items), PARAM_BATCH):
        client.log_batch(run_id, params=items[i : i + PARAM_BATCH])
    for i in range(0, len(metrics), METRIC_BATCH):
        client.log_batch(run_id, metrics=list(metrics[i : i + METRIC_BATCH]))


def git_commit(path: Path) -> str | None:
    """The commit checked out at ``path``, if it is a git work tree."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=path,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class MlflowTracker(Listener):
    """One MLflow run: opened by :meth:`start`, fed by the engine, closed by :meth:`end`."""

    def __init__(
        self,
        uri: str,
        experiment: str,
        artifact_root: str | None = None,
        log_plot: bool = True,
        retry_delay: float = 0.5,
    ) -> None:
        """``retry_delay``: seconds before a failed store call's first retry (then doubling)."""
        self.uri = uri
        self.retry_delay = retry_delay
        self.experiment = experiment
        self.artifact_root = artifact_root
        self.log_plot = log_plot
        scheme = uri.split(":", 1)[0].split("+", 1)[0] if ":" in uri else "file"
        if scheme not in SCHEMES:
            raise TrackingError(
                f"tracking.uri={redact_uri(uri)} has an unknown scheme "
                f"'{scheme}'; use one of {', '.join(SCHEMES)} "
                "(e.g. sqlite:///mlruns/mlflow.db or http://127.0.0.1:5000)"
            )
        check_writable(uri)
        try:
            self.client = open_client(uri)
        except MlflowException as exc:
            raise TrackingError(
                f"cannot use tracking.uri={redact_uri(uri)}: {str(exc).splitlines()[0]}"
            ) from exc
        self.run_id: str | None = None
        self.run_name: str | None = None
        self.experiment_id: str | None = None
        self.pending: list[tuple[int, dict[str, float]]] = []
        self.warned = False

    def _check_server(self) -> None:
        """Fail in seconds, with one clear line, when an HTTP tracking server is not there."""
        if not self.uri.startswith(("http://", "https://")):
            return
        parts = urlsplit(self.uri)
        host = f"{parts.hostname}:{parts.port}" if parts.port else (parts.hostname or "")
        request = urllib.request.Request(
            urlunsplit(parts._replace(netloc=host)).rstrip("/") + "/health"
        )
        user = parts.username or os.environ.get(USERNAME_ENV)
        if user:
            password = parts.password or os.environ.get(PASSWORD_ENV, "")
            token = base64.b64encode(f"{user}:{password}".encode())
            request.add_header("Authorization", f"Basic {token.decode()}")
        try:
            with urllib.request.urlopen(request, timeout=5):
                pass
        except urllib.error.HTTPError:
            return  # something answers; MLflow's own calls will tell if it is not MLflow
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingError(
                f"the MLflow server at {redact_uri(self.uri)} is unreachable "
                f"({reason}). Fix: start it (mlflow server --host 127.0.0.1 "
                "--port ...), or point tracking.uri at another store"
            ) from exc

    def connect(self) -> str:
        """Reach the store and make sure the experiment exists, before any data loads."""
        self._check_server()
        try:
            self.experiment_id = ensure_experiment(self.client, self.experiment, self.artifact_root)
        except MlflowException as exc:
            raise TrackingError(
                f"cannot use the MLflow store at {redact_uri(self.uri)}: "
                f"{str(exc).splitlines()[0]}. Fix: point tracking.uri at a "
                "reachable store, or tracking.enabled=false"
            ) from exc
        return self.experiment_id

    def start(
        self,
        run_name: str,
        tags: Mapping[str, str],
        params: Mapping[str, str],
        parent_run_id: str | None = None,
    ) -> str:
        """Create the run with its tags and params; returns its id."""
        experiment_id = self.experiment_id or self.connect()
        all_tags = dict(tags)
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(experiment_id, run_name=run_name, tags=all_tags)
        self.run_id, self.run_name = run.info.run_id, run.info.run_name
        log_batches(self.client, self.run_id, params=params)
        return self.run_id

    def reopen(self, run_id: str, run_name: str, parent_run_id: str | None = None) -> None:
        """Continue the existing run ``run_id`` named ``run_name`` (a resume): RUNNING again,
        under ``parent``."""
        self.run_id, self.run_name = run_id, run_name
        with_retry(lambda: self.client.update_run(run_id, status="RUNNING"), 3, self.retry_delay)
        if parent_run_id:
            self.set_tags({"mlflow.parentRunId": parent_run_id})

    def log_metrics(self, values: Mapping[str, float], step: int, attempts: int = 3) -> None:
        """All ``values`` at ``step`` in one batched call, retried with backoff."""
        assert self.run_id is not None, "start() first"
        run_id, now = self.run_id, int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v in values.items()]
        with_retry(
            lambda: self.client.log_batch(run_id, metrics=metrics), attempts, self.retry_delay
        )

    def logged_epochs(self) -> set[int]:
        """Epochs whose metrics the store holds under today's keys (read from ``val_acc``'s
        history): a run resumed from a store written before them gets its whole history anew."""
        assert self.run_id is not None, "start() first"
        key = epoch_key("val_acc")
        history = with_retry(
            lambda: self.client.get_metric_history(self.run_id, key), 3, self.retry_delay
        )
        return {m.step for m in history}

    def flush_history(self, history: Iterable[EpochRecord]) -> int:
        """Log the epochs of ``history`` the store lacks (after a resume); returns how many."""
        done = self.logged_epochs()
        missing = [r for r in history if r.epoch not in done]
        for record in missing:
            self.log_metrics(record.metrics(), step=record.epoch)
        return len(missing)

    def _flush_pending(self, attempts: int) -> bool:
        """Log queued epochs in order; False (and the queue kept) while the store is away."""
        while self.pending:
            step, values = self.pending[0]
            try:
                self.log_metrics(values, step, attempts)
            except Exception as exc:
                if not self.warned:
                    log.warning(
                        "tracking store %s unavailable (%s); training goes on, %d "
                        "epoch(s) queued and kept in the checkpoint",
                        redact_uri(self.uri),
                        str(exc).splitlines()[0][:200],
                        len(self.pending),
                    )
                    self.warned = True
                return False
            self.pending.pop(0)
        if self.warned:
            log.info("tracking store reachable again; queued epochs logged")
            self.warned = False
        return True

    def set_tags(self, tags: Mapping[str, str]) -> None:
        assert self.run_id is not None, "start() first"
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def delete_tag(self, key: str) -> None:
        """Remove tag ``key`` from the run; a store that is away only costs a warning."""
        assert self.run_id is not None, "start() first"
        run_id = self.run_id
        try:
            with_retry(lambda: self.client.delete_tag(run_id, key), 3, self.retry_delay)
        except Exception as exc:
            log.warning(
                "could not remove tag %s from run %s: %s",
                key,
                run_id,
                str(exc).splitlines()[0][:200],
            )

    def log_text(self, text: str, artifact_file: str) -> None:
        assert self.run_id is not None, "start() first"
        self.client.log_text(self.run_id, text, artifact_file)

    def log_predictions(self, predictions: Predictions) -> None:
        """Log the run's predictions on its scoring split as :data:`PREDICTIONS_FILE` (a few KB;
        retried like a run's end, since the paired analysis needs every run's)."""
        assert self.run_id is not None, "start() first"
        run_id = self.run_id
        with tempfile.TemporaryDirectory() as tmp:
            path = predictions.save(Path(tmp) / PREDICTIONS_FILE)
            with_retry(lambda: self.client.log_artifact(run_id, str(path)), 8, self.retry_delay)

    def on_fit_start(self, start: FitStart) -> None:
        self.set_tags({"device": start.device})

    def on_epoch_end(self, record: EpochRecord) -> None:
        self.pending.append((record.epoch, record.metrics()))
        self._flush_pending(attempts=3)

    def on_fit_end(self, outcome: RunOutcome) -> None:
        if not self._flush_pending(attempts=8):
            raise TrackingError(
                f"{len(self.pending)} epoch(s) could not be logged to "
                f"{redact_uri(self.uri)}; they are in the run's checkpoint. "
                "Fix: once the store is back, run the same command again "
                "(resume=true for a single run) to log them"
            )
        self.log_metrics(outcome.metrics(), step=outcome.epochs_run or 0)
        tags = {OUTCOME_TAG: outcome.status.value, DIVERGED_TAG: str(outcome.diverged).lower()}
        if outcome.status == RunStatus.PRUNED:
            tags[PRUNED_TAG] = "true"
        self.set_tags(tags)
        if outcome.predictions is not None:
            self.log_predictions(outcome.predictions)
        if self.log_plot and outcome.history:
            from lrdecay.tracking.plots import plot_history

            with tempfile.TemporaryDirectory() as tmp:
                title = f"{self.run_name} · {self.experiment}" if self.run_name else self.experiment
                path = plot_history(outcome.history, Path(tmp) / "curves.png", title=title)
                self.client.log_artifact(self.run_id, str(path))

    def end(self, status: str) -> None:
        """Close the run as FINISHED, FAILED or KILLED (left RUNNING if the store is away)."""
        if self.run_id is None:
            return
        run_id = self.run_id
        try:
            with_retry(
                lambda: self.client.set_terminated(run_id, status=status), 3, self.retry_delay
            )
        except Exception as exc:
            log.error(
                "could not mark run %s %s: %s", run_id, status, str(exc).splitlines()[0][:200]
            )


def outcome_from_run(run: Run) -> RunOutcome:
    """The outcome an MLflow training run recorded: its status (:meth:`RunStatus.of_mlflow`
    from the run's state and tags) and run-level numbers, under today's metric keys or the bare
    names of a store written before them. No epoch history: it stays in MLflow."""
    tags, metrics = run.data.tags, by_name(run.data.metrics)
    numbers = {name: metrics[name] for name in SUMMARY_METRICS if name in metrics}
    for name in ("convergence_epoch", "epochs_run"):
        if name in numbers:
            numbers[name] = int(numbers[name])
    status = RunStatus.of_mlflow(
        run.info.status, tags.get(OUTCOME_TAG), tags.get(DIVERGED_TAG) == "true"
    )
    return RunOutcome(
        status=status, setting=tags.get("setting", "run"), run_id=run.info.run_id, **numbers
    )
