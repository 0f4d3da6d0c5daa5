"""What an epoch and a run produce, and the hooks that observe them: plain data, no torch.

Kept apart from :mod:`lrdecay.engine` so that the processes that only read or record results
(MLflow tracking in a sweep's launching process, the report, resume bookkeeping) start
without importing torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lrdecay.engine import Engine

#: Per-epoch metric names, in the order they are recorded.
#: The run-level metric of the final validation accuracy (what a sweep is sorted by).
FINAL_ACC_METRIC = "final_val_acc"
EPOCH_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "lr_advances",
                 "epoch_seconds")


@dataclass
class EpochRecord:
    """What one epoch produced; ``lr`` is the rate used during the epoch, ``lr_advances`` the
    number of advances made once it ended."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    lr: float
    lr_advances: int
    epoch_seconds: float

    def metrics(self) -> dict[str, float]:
        """The per-epoch metrics by name (``epoch`` excluded: it is the step)."""
        return {k: float(v) for k, v in asdict(self).items() if k != "epoch"}


@dataclass
class RunSummary:
    """The outcome of a fit: status is ``finished``, ``early_stopped``, ``diverged``, or what a
    listener's :class:`StopRun` said (``pruned``)."""

    status: str
    epochs_run: int
    final_val_acc: float
    best_val_acc: float
    convergence_epoch: int
    train_seconds: float
    samples_per_second: float
    test_loss: float | None = None
    test_acc: float | None = None
    history: list[EpochRecord] = field(default_factory=list, repr=False)

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    def metrics(self) -> dict[str, float]:
        """The run-level metrics by name (test metrics only when a test split was scored)."""
        out = {FINAL_ACC_METRIC: self.final_val_acc, "best_val_acc": self.best_val_acc,
               "convergence_epoch": float(self.convergence_epoch),
               "epochs_run": float(self.epochs_run), "train_seconds": self.train_seconds,
               "samples_per_second": self.samples_per_second}
        if self.test_acc is not None and self.test_loss is not None:
            out.update(test_acc=self.test_acc, test_loss=self.test_loss)
        return out


class StopRun(Exception):
    """Raised by a listener's ``on_epoch_end`` to end the run early with ``status``
    (e.g. ``pruned`` by a hyperparameter search); the engine still summarises the run."""

    def __init__(self, status: str, reason: str = "") -> None:
        super().__init__(reason or status)
        self.status = status


class Listener:
    """Hooks the engine calls; override what you need."""

    def on_fit_start(self, engine: Engine) -> None:
        """Before the first epoch."""

    def on_epoch_end(self, record: EpochRecord) -> None:
        """After each epoch's scheduler step."""

    def on_fit_end(self, summary: RunSummary) -> None:
        """After the last epoch (not called when the loop raises)."""
