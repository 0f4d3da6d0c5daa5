"""What an epoch and a run produce, and the hooks that observe them: plain data, no torch.

Kept apart from :mod:`lrdecay.core.engine` so that the processes that only read or record results
(MLflow tracking in a sweep's launching process, the report, resume bookkeeping) start
without importing torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lrdecay.core.engine import Engine

#: MLflow's UI groups a run's charts into sections by the key's prefix before ``/``, sections
#: in alphabetical order: the per-epoch curves (``epoch/val_acc``) come first, the run-level
#: values (``summary/final_val_acc``) after them. Stores written before held bare names.
EPOCH_SECTION = "epoch"
SUMMARY_SECTION = "summary"


def epoch_key(name: str) -> str:
    """The MLflow key of per-epoch metric ``name`` (``epoch/val_acc``)."""
    return f"{EPOCH_SECTION}/{name}"


def summary_key(name: str) -> str:
    """The MLflow key of run-level metric ``name`` (``summary/final_val_acc``)."""
    return f"{SUMMARY_SECTION}/{name}"


def metric_name(key: str) -> str:
    """The name a stored metric key holds: ``summary/final_val_acc`` and the bare
    ``final_val_acc`` of a store written before the sections both hold ``final_val_acc``."""
    return key.rpartition("/")[2]


def epoch_keys(name: str) -> tuple[str, str]:
    """The keys a store may hold per-epoch metric ``name`` under, today's first, then the bare
    name of a store written before the sections."""
    return epoch_key(name), name


def by_name(metrics: Mapping[str, float]) -> dict[str, float]:
    """A run's stored metrics by name (:func:`metric_name`), so that stores written before and
    after the sections read alike; a sectioned key wins over a bare one of the same name."""
    bare = {key: value for key, value in metrics.items() if "/" not in key}
    return bare | {metric_name(key): value for key, value in metrics.items() if "/" in key}


#: The run-level metric of the final validation accuracy (what a sweep is sorted by).
FINAL_ACC_METRIC = summary_key("final_val_acc")


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
        """The per-epoch metrics by MLflow key (``epoch`` excluded: it is the step)."""
        return {epoch_key(k): float(v) for k, v in asdict(self).items() if k != "epoch"}


#: Per-epoch metric keys, in the order they are recorded.
EPOCH_METRICS = tuple(epoch_key(f.name) for f in fields(EpochRecord) if f.name != "epoch")


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
        """The run-level metrics by MLflow key (test metrics only when a test split was
        scored)."""
        out = {
            "final_val_acc": self.final_val_acc,
            "best_val_acc": self.best_val_acc,
            "convergence_epoch": float(self.convergence_epoch),
            "epochs_run": float(self.epochs_run),
            "train_seconds": self.train_seconds,
            "samples_per_second": self.samples_per_second,
        }
        if self.test_acc is not None and self.test_loss is not None:
            out.update(test_acc=self.test_acc, test_loss=self.test_loss)
        return {summary_key(name): value for name, value in out.items()}


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
