"""This project's side of an Optuna search: the hooks the sweeper plugin calls.

The sweeper (``hydra_plugins.lrdecay_optuna_sweeper``) asks, launches and tells; what a trial
means to this project lives here: the ``trial.*`` overrides through which a run reports to its
trial (and the pruner settings it reads back), the job's outcome read from its ``result.json``,
and the MLflow tags and artifacts of the sweep's parent run and its trials' runs. For the confirm
stage: the fresh seeds, the measures (the test split's accuracy the held-out measure of a
validation accuracy), and the ``lrdecay.stage`` tag that tells a search's trials (``search``)
from the confirmation's runs (``confirm``). A search that would select on the data its
confirmation reports (``dataset.val_fraction=0``: validation *is* the test split) is refused
with the confirm stage on, and warned about without. Selected by ``hydra.sweeper.trial_hooks``
in this project's ``conf/hydra/sweeper/optuna.yaml`` (the plugin's own default is null).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from omegaconf import ListConfig, OmegaConf
from optuna.trial import FrozenTrial, TrialState

from hydra_plugins.lrdecay_optuna_sweeper.trial_hooks import JobReport, StudyInfo, TrialHooks
from lrdecay.core.objectives import OBJECTIVES
from lrdecay.core.outcome import RunStatus
from lrdecay.sweep.folder import read_parent, read_result
from lrdecay.sweep.pruning import PRUNER_ATTR
from lrdecay.tracking.redact import redact_uri
from lrdecay.tracking.ui import STAGE_TAG

log = logging.getLogger("lrdecay.optuna")

#: On a confirm run: the number of the trial whose configuration it runs again.
CONFIRMS_TAG = "lrdecay.confirms_trial"
#: Objectives measured on the validation split, whose held-out measure is the test accuracy.
VALIDATION_ACCURACIES = ("val_acc", "best_val_acc")
#: The natural direction of each objective a run can return (``objective`` in the config).
OBJECTIVE_DIRECTIONS = {name: objective.direction for name, objective in OBJECTIVES.items()}


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

    def objective_directions(self) -> Mapping[str, str]:
        """Each objective's natural direction (``core.objectives``: accuracies maximised;
        convergence epoch, seconds and epochs minimised)."""
        return OBJECTIVE_DIRECTIONS

    def objectives(self) -> list[str] | None:
        """``objective``: one name or a list (what ``train.py`` returns, in that order)."""
        objective = self.config.get("objective")
        if objective is None:
            return None
        if isinstance(objective, ListConfig):
            return [str(o) for o in objective]
        return [str(objective)]

    def _val_fraction(self) -> float | None:
        """``dataset.val_fraction`` (None for an app without it)."""
        value = OmegaConf.select(self.config, "dataset.val_fraction", default=None)
        return None if value is None else float(value)

    def _selects_on_test(self) -> str | None:
        """How this search would select on the official test split, or None: validation *is*
        the test split without a held-out one, and ``test_acc`` is the test split."""
        objectives = self.objectives() or []
        if "test_acc" in objectives:
            return "its objective test_acc is the test split's accuracy"
        if self._val_fraction() == 0:
            return "with dataset.val_fraction=0 the validation split is the official test split"
        return None

    def search_problem(self, confirming: bool) -> str | None:
        """With the confirm stage on, a search that selects on the test split is refused: the
        confirmation's number would come from the very data the winner was chosen on."""
        why = self._selects_on_test() if confirming else None
        if why is None:
            return None
        return (
            f"hydra.sweeper.confirm: the search would choose its winner on the test split "
            f"({why}), so no number of the confirmation would be untouched by the search. "
            "Fix: hold out a validation split (dataset.val_fraction=0.1) and optimise "
            "val_acc; or search on the test split knowingly with "
            "hydra.sweeper.confirm.enabled=false"
        )

    def search_warning(self, confirming: bool) -> str | None:
        """Without the confirm stage, a search that selects on the test split runs, warned:
        its best value is biased upward (the more trials, the more so)."""
        why = None if confirming else self._selects_on_test()
        if why is None:
            return None
        return (
            f"this search selects on the test split ({why}): its best value is an optimistic "
            "estimate, not a measurement. Hold out validation (dataset.val_fraction=0.1) and "
            "confirm the winner on the test split (hydra.sweeper.confirm.enabled=true)"
        )

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
                from lrdecay.tracking.client import open_client
                from lrdecay.tracking.store import resolve_uri

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
        """Tag the trial's run with how the study saw it end, and as a search trial."""
        if report.run_id:
            self._set_tags(report.run_id, {"optuna.state": state.name, STAGE_TAG: "search"})

    def trial_told(self, number: int, state: TrialState, reports: Sequence[JobReport]) -> None:
        """A trial of several seeds ended: write its summary run, the mean and 95 % interval
        of its seeds (:func:`~lrdecay.report.summary_runs.write_trial_summary`), so that the
        sweep's view shows the trial as one band while the search goes on."""
        parent = self._parent() if len(reports) > 1 else None
        if parent is None:
            return
        run_id, client = parent
        try:
            from lrdecay.report.summary_runs import write_trial_summary

            write_trial_summary(client, run_id, number)
        except Exception as exc:  # a summary problem must never end the search
            log.warning(
                "no summary run of trial %d: %s", number, (str(exc).splitlines() or [repr(exc)])[0]
            )

    # -------------------------------------------------------------- confirm stage

    def confirm_overrides(self, info: StudyInfo, trial: FrozenTrial, seeds: int) -> list[list[str]]:
        """``<seed key>=<s>`` for ``seeds`` seeds after the config's seed that no trial of the
        study trained with (nor searched, nor ran as one of its seeds): the same seeds on every
        launch, so a re-launch finds the finished runs of an earlier confirmation (same config
        fingerprint) and reuses them."""
        key = info.seed_key
        seed = OmegaConf.select(self.config, key, default=None)
        if seed is None:
            return []
        base = int(seed)
        used = {base, *info.seeds} | {
            int(t.params[key])
            for t in info.study.get_trials(deepcopy=False)
            if isinstance(t.params.get(key), int | float)
        }
        fresh: list[int] = []
        candidate = base
        while len(fresh) < seeds:
            candidate += 1
            if candidate not in used:
                fresh.append(candidate)
        return [[f"{key}={s}"] for s in fresh]

    def measures(self, output_dir: Path | None) -> dict[str, float]:
        """Every objective's value the job's ``result.json`` holds (the test split's
        accuracy among them when a validation split was held out)."""
        try:
            result = read_result(output_dir) if output_dir is not None else None
        except (OSError, ValueError, TypeError):
            result = None
        if result is None:
            return {}
        metrics = result.metrics()
        values = {name: metrics.get(o.key) for name, o in OBJECTIVES.items()}
        return {name: float(v) for name, v in values.items() if v is not None and math.isfinite(v)}

    def held_out(self, objective: str) -> str | None:
        """``test_acc`` for a validation accuracy when validation was held out of training
        (the test split is then scored, and never seen by the search)."""
        if objective in VALIDATION_ACCURACIES and (self._val_fraction() or 0) > 0:
            return "test_acc"
        return None

    def confirm_ended(self, number: int, report: JobReport) -> None:
        """Tag the run as the confirmation of trial ``number``."""
        if report.run_id:
            self._set_tags(report.run_id, {STAGE_TAG: "confirm", CONFIRMS_TAG: str(number)})

    def confirmation_finished(self, metrics: Mapping[str, float]) -> None:
        """Log the confirmation's summary numbers on the sweep's parent run."""
        parent = self._parent()
        if parent is None:
            return
        run_id, client = parent
        try:
            for key, value in metrics.items():
                client.log_metric(run_id, key, float(value))
        except Exception as exc:
            log.warning("could not log the confirmation to MLflow run %s: %s", run_id, exc)

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
