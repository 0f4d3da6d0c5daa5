"""The tracker's queue of epochs not yet logged: a real SQLite MLflow store, one run.

Each epoch's metrics join the queue and the queue is logged in order; while the store refuses
writes (here: the run is deleted, which MLflow refuses to log to) training goes on and epochs
wait; the end of the fit flushes what waits before the summary, and an end that cannot flush
raises one error naming how many epochs are only in the checkpoint.
"""

from __future__ import annotations

import logging

import pytest

from lrdecay.core.outcome import RunOutcome, RunStatus
from lrdecay.core.records import EpochRecord, epoch_key
from lrdecay.errors import TrackingError
from lrdecay.tracking.run_logger import OUTCOME_TAG, MlflowTracker
from lrdecay.tracking.store import default_artifact_root
from tests.helpers import new_store


def _record(epoch: int) -> EpochRecord:
    return EpochRecord(epoch, 1.0 / epoch, 0.5, 2.0 / epoch, 0.1 * epoch, 0.01, epoch, 0.25)


def _outcome(epochs: int) -> RunOutcome:
    return RunOutcome(
        RunStatus.FINISHED,
        epochs_run=epochs,
        final_val_acc=0.1 * epochs,
        best_val_acc=0.1 * epochs,
        convergence_epoch=epochs,
        train_seconds=1.0,
        samples_per_second=100.0,
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module (creating its schema takes seconds)."""
    return new_store(tmp_path_factory.mktemp("queue") / "mlflow.db")


@pytest.fixture
def tracker(store: str) -> MlflowTracker:
    """A tracker on a fresh run, retrying a refused write at once (no backoff to wait out)."""
    tracker = MlflowTracker(
        store, "queue", default_artifact_root(store), log_plot=False, retry_delay=0.0
    )
    tracker.start("queued", tags={}, params={})
    return tracker


def _logged(tracker: MlflowTracker, name: str) -> list[tuple[int, float]]:
    """``(step, value)`` of a per-epoch metric in the order the store received them."""
    assert tracker.run_id is not None
    history = tracker.client.get_metric_history(tracker.run_id, epoch_key(name))
    return [(m.step, m.value) for m in sorted(history, key=lambda m: m.timestamp)]


def _store_away(tracker: MlflowTracker) -> None:
    assert tracker.run_id is not None
    tracker.client.delete_run(tracker.run_id)


def _store_back(tracker: MlflowTracker) -> None:
    assert tracker.run_id is not None
    tracker.client.restore_run(tracker.run_id)


def test_every_epoch_is_logged_in_order(tracker: MlflowTracker) -> None:
    for epoch in range(1, 6):
        tracker.on_epoch_end(_record(epoch))
    assert tracker.pending == []
    assert [s for s, _ in _logged(tracker, "val_acc")] == [1, 2, 3, 4, 5]
    assert [v for _, v in _logged(tracker, "val_loss")] == pytest.approx(
        [2.0 / e for e in range(1, 6)]
    )


def test_epochs_wait_while_the_store_is_away_and_follow_in_order(
    tracker: MlflowTracker, caplog: pytest.LogCaptureFixture
) -> None:
    tracker.on_epoch_end(_record(1))
    _store_away(tracker)
    with caplog.at_level(logging.WARNING):
        tracker.on_epoch_end(_record(2))
        tracker.on_epoch_end(_record(3))
    assert [step for step, _ in tracker.pending] == [2, 3]
    assert sum("unavailable" in r.getMessage() for r in caplog.records) == 1  # warned once
    _store_back(tracker)
    tracker.on_epoch_end(_record(4))
    assert tracker.pending == []
    assert [s for s, _ in _logged(tracker, "val_acc")] == [1, 2, 3, 4]


def test_the_end_of_the_fit_flushes_the_queue_before_the_summary(tracker: MlflowTracker) -> None:
    _store_away(tracker)
    for epoch in (1, 2, 3):
        tracker.on_epoch_end(_record(epoch))
    assert len(tracker.pending) == 3
    _store_back(tracker)
    tracker.on_fit_end(_outcome(3))

    assert tracker.pending == []
    assert [s for s, _ in _logged(tracker, "val_acc")] == [1, 2, 3]
    assert tracker.run_id is not None
    run = tracker.client.get_run(tracker.run_id)
    assert run.data.metrics["summary/final_val_acc"] == pytest.approx(0.3)
    assert run.data.tags[OUTCOME_TAG] == "finished"


def test_an_end_that_cannot_flush_raises_naming_the_epochs_left(tracker: MlflowTracker) -> None:
    tracker.on_epoch_end(_record(1))
    _store_away(tracker)
    tracker.on_epoch_end(_record(2))
    tracker.on_epoch_end(_record(3))
    with pytest.raises(TrackingError, match=r"2 epoch\(s\) could not be logged"):
        tracker.on_fit_end(_outcome(3))
    assert [step for step, _ in tracker.pending] == [2, 3]  # kept, in order, for a retry
    _store_back(tracker)
    assert [s for s, _ in _logged(tracker, "val_acc")] == [1]
