"""This project's side of an Optuna search: the hooks the sweeper plugin calls.

The sweeper (``hydra_plugins.lrdecay_optuna_sweeper``) asks, launches and tells; what a trial
means to this project lives here: the ``trial.*`` overrides through which a run reports to its
trial (and the pruner settings it reads back), the job's outcome read from its ``result.json``,
and the MLflow tags and artifacts of the sweep's parent run and its trials' runs. Selected by
``hydra.sweeper.trial_hooks`` (the default).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from omegaconf import ListConfig, OmegaConf
from optuna.trial import TrialState

from hydra_plugins.lrdecay_optuna_sweeper.hooks import JobReport, StudyInfo, TrialHooks
from lrdecay.core.outcome import RunStatus
from lrdecay.sweep.outcomes import read_parent, read_result
from lrdecay.sweep.pruning import PRUNER_ATTR
from lrdecay.tracking.redact import redact_uri

log = logging.getLogger("lrdecay.optuna")


def quote(text: str) -> str:
    """``text`` as a single-quoted Hydra override value (paths, URLs)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def job_report(output_dir: Path | None) -> JobReport:
    """The trial's verdict from the ``result.json`` a job left in ``output_dir``: a pruned run
    is PRUNED, a run that did not end well FAIL (a diverged one has no error, only a
    chance-level accuracy, so its divergence is the reason); otherwise its return value
    decides. An empty report when the job wrote no readable result."""
    try:
        result = read_result(output_dir) if output_dir is not None else None
    except (OSError, ValueError, TypeError):
        result = None
    if result is None:
        return JobReport()
    if result.status == RunStatus.PRUNED:
        return JobReport(TrialState.PRUNED, run_id=result.run_id, epochs=result.epochs_run)
    if not result.ok:
        if result.status == RunStatus.DIVERGED:
            reason = f"the run diverged at epoch {result.epochs_run} (non-finite loss)"
        else:
            reason = result.error or f"the run ended {result.status.value}"
        return JobReport(TrialState.FAIL, reason, run_id=result.run_id, epochs=result.epochs_run)
    return JobReport(run_id=result.run_id, epochs=result.epochs_run)


class LrdecayTrials(TrialHooks):
    """The hooks for ``train.py``'s runs (and harmless for apps without its config keys)."""

    def __init__(self, config: Any, sweep_dir: Path, base_dir: Path) -> None:
        super().__init__(config, sweep_dir, base_dir)
        self._mlflow: Any = None

    def objectives(self) -> list[str] | None:
        """``objective``: one name or a list (what ``train.py`` returns, in that order)."""
        objective = self.config.get("objective")
        if objective is None:
            return None
        if isinstance(objective, ListConfig):
            return [str(o) for o in objective]
        return [str(objective)]

    def default_study_name(self) -> str:
        """``<experiment or 'search'>-<dataset>``."""
        experiment = self.config.hydra.runtime.choices.get("experiment") or "search"
        dataset = OmegaConf.select(self.config, "dataset.name", default=None)
        return f"{experiment}-{dataset}" if dataset else str(experiment)

    def trial_overrides(self, info: StudyInfo, trial: optuna.Trial) -> list[str]:
        """The ``trial.*`` overrides through which the run reports to its trial and may be
        pruned; the pruner's settings go on the trial for the run to rebuild it."""
        if "trial" not in self.config:
            return []
        storage = info.storage
        study_id = storage.get_study_id_from_name(info.study.study_name)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_system_attr(trial_id, PRUNER_ATTR, dict(info.pruner))
        maximize = info.study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
        return [
            f"trial.storage={quote(info.storage_url)}",
            f"trial.study_name={quote(info.study.study_name)}",
            f"trial.number={trial.number}",
            f"trial.pruner={info.pruner.get('name', 'none')}",
            f"trial.metric={'val_acc' if maximize else 'val_loss'}",
        ]

    def job_report(self, output_dir: Path | None) -> JobReport:
        """See :func:`job_report`."""
        return job_report(output_dir)

    # -------------------------------------------------------------- MLflow

    def _client(self) -> Any:
        """An MLflow client on the runs' store, or None when tracking is off."""
        if self._mlflow is None:
            self._mlflow = False
            if OmegaConf.select(self.config, "tracking.enabled", default=False):
                from lrdecay.tracking.tracker import open_client, resolve_uri

                store = self.base_dir / str(self.config.tracking.store_dir)
                self._mlflow = open_client(resolve_uri(self.config.tracking.uri, store))
        return self._mlflow or None

    def _parent(self) -> tuple[str, Any] | None:
        """The sweep's parent run id and a client to reach it, if both exist."""
        try:
            parent = read_parent(self.sweep_dir)
        except (OSError, ValueError, KeyError):
            return None
        client = self._client() if parent else None
        return (parent, client) if parent and client is not None else None

    def _set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        client = self._client()
        if client is None:
            return
        try:
            for key, value in tags.items():
                client.set_tag(run_id, key, value)
        except Exception as exc:  # MLflow trouble must not end the search
            log.warning("could not tag MLflow run %s: %s", run_id, str(exc).splitlines()[0])

    def study_started(self, info: StudyInfo, directions: Sequence[str]) -> None:
        """Tag the sweep's parent run with the study."""
        parent = self._parent()
        if parent is None:
            return
        self._set_tags(
            parent[0],
            {
                "optuna.study": info.study.study_name,
                "optuna.storage": redact_uri(info.storage_url),
                "optuna.objectives": ",".join(self.objectives() or []),
                "optuna.directions": ",".join(directions),
                "optuna.sampler": type(info.study.sampler).__name__,
                "optuna.pruner": str(info.pruner.get("name", "none")),
            },
        )

    def trial_ended(self, number: int, state: TrialState, report: JobReport) -> None:
        """Tag the trial's run with how the study saw it end."""
        if report.run_id:
            self._set_tags(report.run_id, {"optuna.state": state.name})

    def study_finished(self, files: Sequence[Path], best_value: float | None) -> None:
        """Attach the result files (and the best value) to the sweep's parent run."""
        parent = self._parent()
        if parent is None:
            return
        run_id, client = parent
        try:
            for path in files:
                client.log_artifact(run_id, str(path))
            if best_value is not None:
                client.log_metric(run_id, "best_value", float(best_value))
        except Exception as exc:
            log.warning("could not log the results to MLflow run %s: %s", run_id, exc)

    def study_stopped(self, status: str) -> None:
        """End the sweep's parent run, which Hydra's end callbacks will not reach."""
        parent = self._parent()
        if parent is None:
            return
        run_id, client = parent
        try:
            client.set_terminated(run_id, status=status)
        except Exception as exc:
            log.warning("could not close MLflow run %s: %s", run_id, exc)
