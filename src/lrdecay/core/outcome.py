"""How a run ended: one status vocabulary and one outcome record, plain data, no torch.

:class:`RunStatus` names every way a run or a sweep's job can end, each with the MLflow run
status it is recorded as. :class:`RunOutcome` is what the engine produces, what a job saves as
``result.json``, and what the sweep's table, the Optuna sweeper and the report read back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import TYPE_CHECKING, Any

from lrdecay.core.records import EpochRecord, summary_key

if TYPE_CHECKING:
    from lrdecay.core.predictions import Predictions


class RunStatus(str, Enum):
    """How a run ended (its value is what ``result.json`` and the ``outcome`` tag hold)."""

    FINISHED = "finished"  # trained to its epoch budget
    EARLY_STOPPED = "early_stopped"  # the early-stop rule ended it: complete too
    DIVERGED = "diverged"  # a non-finite loss ended it
    PRUNED = "pruned"  # a hyperparameter search stopped it
    SKIPPED = "skipped"  # an identical run had already finished: nothing trained
    KILLED = "killed"  # interrupted (Ctrl-C, SIGTERM); resumable from its checkpoint
    FAILED = "failed"  # an exception ended it
    DIED = "died"  # its process ended abruptly: a job folder without ``result.json``
    RUNNING = "running"  # not ended yet (an MLflow run still RUNNING)

    def __str__(self) -> str:
        """The plain value (``finished``), in log lines and f-strings alike."""
        return self.value

    @property
    def mlflow(self) -> str:
        """The MLflow run status this outcome is recorded as: FINISHED, FAILED, KILLED or
        RUNNING (a divergence is FAILED, tagged ``diverged``; a pruned trial KILLED)."""
        return _MLFLOW[self]

    @property
    def ok(self) -> bool:
        """True for a complete run: trained to its end (an early stop included), or skipped
        because an identical run had already finished."""
        return self in (RunStatus.FINISHED, RunStatus.EARLY_STOPPED, RunStatus.SKIPPED)

    @classmethod
    def of_mlflow(
        cls, status: str, recorded: str | None = None, diverged: bool = False
    ) -> RunStatus:
        """The outcome of an MLflow run with ``status``: the ``recorded`` outcome tag where it
        agrees with that status, else what the status alone says (FAILED with a ``diverged``
        tag is a divergence; a run neither ended nor terminal is still running)."""
        if recorded in _VALUES and cls(recorded).mlflow == status:
            return cls(recorded)
        if status == "FAILED":
            return cls.DIVERGED if diverged else cls.FAILED
        return {"FINISHED": cls.FINISHED, "KILLED": cls.KILLED}.get(status, cls.RUNNING)


_MLFLOW = {
    RunStatus.FINISHED: "FINISHED",
    RunStatus.EARLY_STOPPED: "FINISHED",
    RunStatus.SKIPPED: "FINISHED",
    RunStatus.DIVERGED: "FAILED",
    RunStatus.FAILED: "FAILED",
    RunStatus.PRUNED: "KILLED",
    RunStatus.KILLED: "KILLED",
    RunStatus.DIED: "KILLED",
    RunStatus.RUNNING: "RUNNING",
}
_VALUES = {s.value for s in RunStatus}

#: Run-level numbers by name, in the order the tracker logs them; the test split's two come
#: last (logged only when a test split was scored).
SUMMARY_METRICS = (
    "final_val_acc",
    "best_val_acc",
    "convergence_epoch",
    "epochs_run",
    "train_seconds",
    "samples_per_second",
    "test_acc",
    "test_loss",
)
#: What a fit decides (its status, numbers, epochs and predictions); the other fields say which
#: job it was.
RESULT_FIELDS = ("status", *SUMMARY_METRICS, "history", "predictions")
#: Fields kept in memory only: ``result.json`` leaves them out (MLflow holds them).
MEMORY_ONLY = ("history", "predictions")


@dataclass
class RunOutcome:
    """One run's outcome: its status, its run-level numbers (None where unknown), which job
    and MLflow run it was, and why it ended where that needs saying (``error``, ``note``).

    ``history`` (each epoch's record) and ``predictions`` (on the split that scored the run;
    None when none was scored) are kept in memory only: ``result.json`` leaves them out, MLflow
    holds the curves and the predictions' file.
    """

    status: RunStatus
    setting: str = "run"
    job_num: int | None = None
    run_id: str | None = None
    final_val_acc: float | None = None
    best_val_acc: float | None = None
    convergence_epoch: int | None = None
    epochs_run: int | None = None
    train_seconds: float | None = None
    samples_per_second: float | None = None  # training samples over ``train_seconds``
    test_acc: float | None = None
    test_loss: float | None = None
    error: str | None = None
    note: str | None = None
    overrides: list[str] = field(default_factory=list)
    history: list[EpochRecord] = field(default_factory=list, repr=False)
    predictions: Predictions | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.status = RunStatus(self.status)

    @property
    def ok(self) -> bool:
        """See :attr:`RunStatus.ok`."""
        return self.status.ok

    @property
    def diverged(self) -> bool:
        """True when a non-finite loss ended the run."""
        return self.status == RunStatus.DIVERGED

    def metric(self, name: str) -> float | None:
        """Run-level number ``name`` (:data:`SUMMARY_METRICS`), or None when it is missing or
        not finite."""
        value = getattr(self, name) if name in SUMMARY_METRICS else None
        return float(value) if value is not None and math.isfinite(value) else None

    def metrics(self) -> dict[str, float]:
        """The run-level numbers known, by MLflow key (``summary/final_val_acc``); test
        metrics only when a test split was scored."""
        scored = self.test_acc is not None and self.test_loss is not None
        names = SUMMARY_METRICS if scored else SUMMARY_METRICS[:-2]
        values = {name: getattr(self, name) for name in names}
        return {summary_key(k): float(v) for k, v in values.items() if v is not None}

    def take(self, result: RunOutcome) -> None:
        """Take the status, numbers, epochs and predictions of ``result`` (a fit, or an earlier
        identical run), keeping which job this is and what it noted."""
        for name in RESULT_FIELDS:
            setattr(self, name, getattr(result, name))

    def to_json(self) -> dict[str, Any]:
        """The record as ``result.json`` holds it (no epoch history, no predictions)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in MEMORY_ONLY}
        data["overrides"] = list(self.overrides)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunOutcome:
        """The record a ``result.json`` holds; files written before this record name the
        training time ``seconds`` and lack its newer fields."""
        data = dict(data)
        if "seconds" in data:
            data.setdefault("train_seconds", data.pop("seconds"))
        known = {f.name for f in fields(cls)} - set(MEMORY_ONLY)
        return cls(**{k: v for k, v in data.items() if k in known})
