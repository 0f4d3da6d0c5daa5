"""What an epoch produces and the keys its metrics are stored under: plain data, no torch.

Kept apart from :mod:`lrdecay.core.engine` so that the processes that only read or record results
(MLflow tracking in a sweep's launching process, the report, resume bookkeeping) start
without importing torch. A run's outcome is :mod:`lrdecay.core.outcome`; the hooks that observe
a run are :mod:`lrdecay.core.listeners`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

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


#: Per-epoch metric names and keys, in the order they are recorded.
EPOCH_NAMES = tuple(f.name for f in fields(EpochRecord) if f.name != "epoch")
EPOCH_METRICS = tuple(epoch_key(name) for name in EPOCH_NAMES)

#: A setting's summary run holds, under each key its seeds log, their mean; under the key with
#: these suffixes the bounds of its 95 % interval (``epoch/val_acc_lo``, ``epoch/val_acc_hi``);
#: and how many seeds each number averages (``epoch/n_seeds`` per epoch, ``summary/n_seeds``).
LOWER_SUFFIX, UPPER_SUFFIX = "_lo", "_hi"
N_SEEDS = "n_seeds"


def bound_keys(key: str) -> tuple[str, str]:
    """The keys of the lower and upper bound of ``key``'s interval in a summary run."""
    return key + LOWER_SUFFIX, key + UPPER_SUFFIX
