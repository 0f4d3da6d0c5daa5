"""The Optuna side of one run: its study's storage, its pruner, and the pruning listener.

A job launched by the project's Optuna sweeper gets ``trial.storage``, ``trial.study_name``,
``trial.number`` and ``trial.pruner`` as overrides. :class:`PruningListener` then reports the
per-epoch metric to that trial through the study's storage and raises the run's stop flag
(status ``pruned``) when the pruner says so. The sweeper, not the job, tells the study how the trial
ended; the job only reports.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from lrdecay.config import TrialConfig
from lrdecay.core.hooks import FitStart, Listener, StopFlag
from lrdecay.core.outcome import RunStatus
from lrdecay.core.records import EpochRecord
from lrdecay.errors import ConfigError
from lrdecay.tracking.credentials import storage_url
from lrdecay.tracking.redact import redact_uri

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("lrdecay")

#: Per-epoch values a trial can report to its pruner (fields of :class:`EpochRecord`).
REPORTABLE = ("val_acc", "val_loss", "train_acc", "train_loss")


@dataclass
class PrunerSettings:
    """An Optuna pruner by name with its arguments: the sweeper's ``hydra/sweeper/pruner``
    options, which it stores on each trial for the job to rebuild the pruner from. This base is
    ``none`` (no pruning); each subclass is one pruner, its fields the Optuna class's keyword
    arguments."""

    optuna_class: ClassVar[str] = "NopPruner"
    name: str = "none"


@dataclass
class MedianPrunerSettings(PrunerSettings):
    """Stop a trial whose value at an epoch is worse than the median of the finished trials'
    values at that epoch, once ``n_startup_trials`` have finished and after the warm-up."""

    optuna_class: ClassVar[str] = "MedianPruner"
    name: str = "median"
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class HyperbandPrunerSettings(PrunerSettings):
    """Hyperband over epochs: ``max_resource`` ``auto`` takes the longest finished trial."""

    optuna_class: ClassVar[str] = "HyperbandPruner"
    name: str = "hyperband"
    min_resource: int = 1
    max_resource: Any = "auto"
    reduction_factor: int = 3
    bootstrap_count: int = 0


@dataclass
class PercentilePrunerSettings(MedianPrunerSettings):
    """Keep the trials in the top ``percentile`` percent at each epoch (75.0: prune the
    bottom quarter; 50.0 is the median pruner, whose other settings it shares)."""

    optuna_class: ClassVar[str] = "PercentilePruner"
    name: str = "percentile"
    percentile: float = 75.0


@dataclass
class SuccessiveHalvingPrunerSettings(PrunerSettings):
    """Asynchronous successive halving (one Hyperband bracket)."""

    optuna_class: ClassVar[str] = "SuccessiveHalvingPruner"
    name: str = "successive_halving"
    min_resource: Any = "auto"
    reduction_factor: int = 4
    min_early_stopping_rate: int = 0
    bootstrap_count: int = 0


#: The pruners, by the names ``hydra/sweeper/pruner`` and ``trial.pruner`` take: the one list
#: the sweeper's options and the jobs' :func:`make_pruner` read.
PRUNERS: dict[str, type[PrunerSettings]] = {
    settings.name: settings
    for settings in (
        PrunerSettings,
        MedianPrunerSettings,
        HyperbandPrunerSettings,
        PercentilePrunerSettings,
        SuccessiveHalvingPrunerSettings,
    )
}

#: Trial system attribute holding the pruner's settings, written by the sweeper.
PRUNER_ATTR = "lrdecay:pruner"

#: Seconds a SQLite writer waits for a lock: parallel jobs and the sweeper share one file.
SQLITE_TIMEOUT_S = 60
#: The PostgreSQL advisory lock under which launchers create Optuna's tables and their study
#: ("lrdecay" in ASCII): one constant, so that every launcher on a database takes the same lock.
CREATION_LOCK_KEY = 0x6C7264656361_79
#: Seconds a launcher waits for another one's creation before it gives up with one line.
CREATION_LOCK_TIMEOUT_S = 120


def open_storage(url: str, create_tables: bool = True) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage at ``url`` (its user's password from the environment, see
    :mod:`lrdecay.tracking.credentials`); SQLite files get a long lock timeout, because the
    sweeper and its parallel jobs write to the same file."""
    import optuna

    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
    return optuna.storages.RDBStorage(
        storage_url(url, os.environ),
        engine_kwargs=engine_kwargs,
        skip_table_creation=not create_tables,
    )


@contextlib.contextmanager
def creation_lock(url: str) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock, on a connection of its own, while the caller creates
    Optuna's tables and its study: launchers that start together on a fresh database would
    otherwise create the same tables at once and collide in PostgreSQL's catalog. Any other
    database: nothing."""
    import sqlalchemy

    if sqlalchemy.engine.make_url(url).get_backend_name() != "postgresql":
        yield
        return
    # NullPool: leaving the block closes the connection, and ending its session releases the
    # lock, whether the creation succeeded or raised.
    engine = sqlalchemy.create_engine(
        storage_url(url, os.environ), poolclass=sqlalchemy.pool.NullPool
    )
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f"SET lock_timeout = '{CREATION_LOCK_TIMEOUT_S}s'")
            lock = sqlalchemy.text("SELECT pg_advisory_lock(:key)")
            connection.execute(lock, {"key": CREATION_LOCK_KEY})
            connection.commit()
            yield
    finally:
        engine.dispose()


def open_study(url: str, **create: Any) -> tuple[optuna.storages.RDBStorage, optuna.Study]:
    """The storage at ``url`` and the study ``optuna.create_study(**create)`` creates or loads
    there, both under :func:`creation_lock`: launchers may start on one fresh database at once."""
    import optuna

    with creation_lock(url):
        storage = open_storage(url)
        return storage, optuna.create_study(storage=storage, load_if_exists=True, **create)


def make_pruner(spec: str | Mapping[str, Any]) -> optuna.pruners.BasePruner:
    """The pruner named by ``spec``: a name (``none``, ``median``, ``hyperband``, …) or a
    mapping ``{"name": ..., **keyword arguments of the Optuna pruner}``."""
    import optuna

    settings = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = str(settings.pop("name", "none"))
    if name not in PRUNERS:
        raise ConfigError(f"trial.pruner: '{name}' is not one of {', '.join(PRUNERS)}")
    return getattr(optuna.pruners, PRUNERS[name].optuna_class)(**settings)


class PruningListener(Listener):
    """Reports ``trial.metric`` after every epoch to trial ``trial.number`` of the study
    ``trial.study_name`` and raises ``stop``, the run's :class:`StopFlag`, with status
    ``pruned`` when its pruner says so.

    With ``trial.pruner`` ``none``, and in multi-objective studies (which Optuna cannot
    prune), the listener stays silent: the per-epoch history is in MLflow anyway. The last
    epoch is reported but never pruned, since there is nothing left to save.
    """

    def __init__(self, trial: TrialConfig, stop: StopFlag) -> None:
        if not trial.storage or not trial.study_name or trial.number is None:
            raise ConfigError(
                "trial: storage, study_name and number are set together by the "
                "Optuna sweeper; leave trial.* alone in plain runs"
            )
        if trial.metric not in REPORTABLE:
            raise ConfigError(
                f"trial.metric: '{trial.metric}' is not one of {', '.join(REPORTABLE)}"
            )
        self.metric = trial.metric
        self.stop = stop
        self.number = trial.number
        self.pruner_name = trial.pruner
        self.max_epochs: int | None = None
        self.trial: optuna.Trial | None = None
        if trial.pruner == "none":
            return
        import optuna

        try:
            storage = open_storage(trial.storage, create_tables=False)
            study_id = storage.get_study_id_from_name(trial.study_name)
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            spec = storage.get_trial_system_attrs(trial_id).get(PRUNER_ATTR) or trial.pruner
            study = optuna.load_study(
                study_name=trial.study_name,
                storage=storage,
                pruner=make_pruner(spec),
                sampler=optuna.samplers.RandomSampler(),
            )
            if len(study.directions) == 1:
                self.trial = optuna.Trial(study, trial_id)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(
                f"trial: cannot reach trial {trial.number} of study '{trial.study_name}' at "
                f"{redact_uri(trial.storage)} ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}). Fix: run searches through "
                "hydra/sweeper=optuna, which sets trial.*"
            ) from exc

    def on_fit_start(self, start: FitStart) -> None:
        self.max_epochs = start.max_epochs

    def on_epoch_end(self, record: EpochRecord) -> None:
        if self.trial is None:
            return
        value = float(getattr(record, self.metric))
        if not math.isfinite(value):  # divergence: the engine ends the run itself
            return
        try:
            self.trial.report(value, record.epoch)
            last = self.max_epochs is not None and record.epoch >= self.max_epochs
            prune = not last and self.trial.should_prune()
        except Exception as exc:  # e.g. the trial was closed by a restarted sweeper
            log.warning(
                "trial %d: cannot report to the study any more (%s); pruning is off "
                "for the rest of this run",
                self.number,
                str(exc).splitlines()[0],
            )
            self.trial = None
            return
        if prune:
            reason = (
                f"trial {self.number} pruned by the {self.pruner_name} pruner at epoch "
                f"{record.epoch}: {self.metric} {value:.4f}"
            )
            log.info("%s", reason)
            self.stop.request(RunStatus.PRUNED, reason)
