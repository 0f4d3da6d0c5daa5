"""One training run in MLflow: its tags, params, per-epoch metrics (queued and retried while the
store is away), and at its end the outcome, predictions and curves figure; and the outcome read
back from a run. The client API is used throughout (no fluent global run), so nothing leaks
between jobs that share a worker process.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from lrdecay.core.listeners import FitStart, Listener
from lrdecay.core.outcome import SUMMARY_METRICS, RunOutcome, RunStatus
from lrdecay.core.predictions import PREDICTIONS_FILE, Predictions
from lrdecay.core.records import EpochRecord, by_name, epoch_key
from lrdecay.errors import TrackingError
from lrdecay.tracking.client import check_server, open_client, with_retry
from lrdecay.tracking.experiments import ensure_experiment
from lrdecay.tracking.redact import redact_uri
from lrdecay.tracking.store import check_scheme, check_writable

log = logging.getLogger(__name__)

#: Tags a training run ends with: its :class:`RunStatus` value, and ``true``/``false`` flags
#: for the two early ends MLflow's own status cannot tell apart (a divergence is FAILED like a
#: crash, a pruned trial KILLED like an interrupted run).
OUTCOME_TAG, DIVERGED_TAG, PRUNED_TAG = "outcome", "diverged", "pruned"
#: MLflow's limits: params (and tags) and metrics (and all entries) per log_batch call, and a
#: param value's length.
PARAM_BATCH, METRIC_BATCH, PARAM_VALUE_LIMIT = 100, 1000, 6000


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
        check_scheme(uri)
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

    def connect(self) -> str:
        """Reach the store and make sure the experiment exists, before any data loads."""
        check_server(self.uri)
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
        run_id, key = self.run_id, epoch_key("val_acc")
        history = with_retry(
            lambda: self.client.get_metric_history(run_id, key), 3, self.retry_delay
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
    # RunOutcome's fields by name: floats, and the two counts as ints
    numbers: dict[str, Any] = {name: metrics[name] for name in SUMMARY_METRICS if name in metrics}
    for name in ("convergence_epoch", "epochs_run"):
        if name in numbers:
            numbers[name] = int(numbers[name])
    status = RunStatus.of_mlflow(
        run.info.status, tags.get(OUTCOME_TAG), tags.get(DIVERGED_TAG) == "true"
    )
    return RunOutcome(
        status=status, setting=tags.get("setting", "run"), run_id=run.info.run_id, **numbers
    )
