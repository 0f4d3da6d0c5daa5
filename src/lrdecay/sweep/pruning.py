"""The Optuna side of one run: the pruning listener (the storage and the pruners are the
sweeper's, in ``hydra_plugins.lrdecay_optuna_sweeper``, and named here too).

A job launched by the project's Optuna sweeper gets ``trial.storage``, ``trial.study_name``,
``trial.number`` and ``trial.pruner`` as overrides. :class:`PruningListener` then reports the
per-epoch metric to that trial through the study's storage and raises the run's stop flag
(status ``pruned``) when the pruner says so. The sweeper, not the job, tells the study how the trial
ended; the job only reports.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hydra_plugins.lrdecay_optuna_sweeper.pruners import (
    PRUNER_ATTR,
    PRUNERS,
    HyperbandPrunerSettings,
    MedianPrunerSettings,
    PercentilePrunerSettings,
    PrunerSettings,
    SuccessiveHalvingPrunerSettings,
)
from hydra_plugins.lrdecay_optuna_sweeper.pruners import make_pruner as _make_pruner
from hydra_plugins.lrdecay_optuna_sweeper.seeds import TrialReporter
from hydra_plugins.lrdecay_optuna_sweeper.storage import (
    CREATION_LOCK_KEY,
    CREATION_LOCK_TIMEOUT_S,
    SQLITE_TIMEOUT_S,
    creation_lock,
    open_storage,
    open_study,
)
from lrdecay.config import TrialConfig
from lrdecay.core.listeners import FitStart, Listener, StopFlag
from lrdecay.core.outcome import RunStatus
from lrdecay.core.records import EpochRecord
from lrdecay.errors import ConfigError
from lrdecay.tracking.redact import redact_uri

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("lrdecay")

#: Per-epoch values a trial can report to its pruner (fields of :class:`EpochRecord`).
REPORTABLE = ("val_acc", "val_loss", "train_acc", "train_loss")


__all__ = [
    "CREATION_LOCK_KEY",
    "CREATION_LOCK_TIMEOUT_S",
    "PRUNERS",
    "PRUNER_ATTR",
    "REPORTABLE",
    "SQLITE_TIMEOUT_S",
    "HyperbandPrunerSettings",
    "MedianPrunerSettings",
    "PercentilePrunerSettings",
    "PrunerSettings",
    "PruningListener",
    "SuccessiveHalvingPrunerSettings",
    "creation_lock",
    "make_pruner",
    "open_storage",
    "open_study",
]


def make_pruner(spec: str | Mapping[str, Any]) -> optuna.pruners.BasePruner:
    """The sweeper's pruner named by ``spec`` (its :func:`make_pruner`), an unknown name a
    :class:`ConfigError` here."""
    try:
        return _make_pruner(spec)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


class PruningListener(Listener):
    """Reports ``trial.metric`` after every epoch to trial ``trial.number`` of the study
    ``trial.study_name`` and raises ``stop``, the run's :class:`StopFlag`, with status
    ``pruned`` when its pruner says so.

    With ``trial.pruner`` ``none``, and in multi-objective studies (which Optuna cannot
    prune), the listener stays silent: the per-epoch history is in MLflow anyway. The last
    epoch is reported but never pruned, since there is nothing left to save. One of a trial's
    seeds (``hydra.sweeper.seeds_per_trial``), the run reports under its ``seed`` through the
    sweeper's :class:`TrialReporter`: the trial's value is the seeds' mean, and a prune stops
    them all.
    """

    def __init__(self, trial: TrialConfig, stop: StopFlag, seed: int | None = None) -> None:
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
        self.trial: TrialReporter | None = None
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
                self.trial = TrialReporter(storage, study, trial_id, seed)
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
            last = self.max_epochs is not None and record.epoch >= self.max_epochs
            prune = self.trial.report(record.epoch, value, last)
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
