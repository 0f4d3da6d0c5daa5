"""Runs read back from MLflow for the report: each sorted into *included* (finished, or
diverged: counted but never averaged) or *excluded* (still running, killed, crashed), so that no
table cell silently mixes them. The trials of an Optuna search (each a different configuration,
one seed) are no seeds of a setting: they are counted apart and shown by
:mod:`lrdecay.report.search_section`; a search's confirmation runs (its winner again with fresh
seeds) are the settings' runs.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from mlflow.entities import Experiment, Run, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from lrdecay.core.metrics import epochs_to_target
from lrdecay.core.outcome import RunOutcome, RunStatus
from lrdecay.core.records import epoch_keys
from lrdecay.errors import LrdecayError
from lrdecay.tracking.client import open_client
from lrdecay.tracking.run_logger import outcome_from_run
from lrdecay.tracking.store import DEFAULT_STORE_DIR, sqlite_path, sqlite_uri
from lrdecay.tracking.ui import STAGE_TAG, SWEEP_PARENTS, TRIAL_TAG, is_summary

#: Per-epoch metrics the report reads back by name (MLflow step = epoch, 1-based); runs and
#: their histories are read by name, so stores written before the metric sections read too.
HISTORY_KEYS = ("val_acc", "val_loss", "lr", "lr_advances")
#: What a run's record holds for a tag it lacks.
UNKNOWN = "?"


class ReportError(LrdecayError):
    """Nothing to report on (unknown experiment, no runs, unreachable store); one-line message."""


@dataclass
class RunRecord:
    """One training run as the report needs it: its outcome (status, run-level numbers, as
    :func:`~lrdecay.tracking.run_logger.outcome_from_run` reads them), what it trained (its
    optimizer, sequence, strategy, seed and data set), its params, its per-epoch history and
    all its tags."""

    outcome: RunOutcome
    optimizer: str
    sequence: str
    strategy: str
    seed: str
    dataset: str
    params: dict[str, str]
    history: dict[str, dict[int, float]] = field(default_factory=dict)
    scheduler: str = ""  # the PyTorch scheduler's class path; empty for the study's sequences
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.outcome.run_id or ""

    @property
    def setting(self) -> str:
        return self.outcome.setting

    @property
    def diverged(self) -> bool:
        return self.outcome.diverged

    def metric(self, key: str) -> float | None:
        """A run-level metric by name, or None when it is missing or not finite."""
        return self.outcome.metric(key)

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """Epochs and values of a per-epoch metric, sorted by epoch (empty when not logged)."""
        points = sorted(self.history.get(key, {}).items())
        return [e for e, _ in points], [v for _, v in points]

    def max_epochs(self) -> int | None:
        """The epoch budget the run was given (``trainer.max_epochs``), if recorded."""
        try:
            return int(float(self.params["trainer.max_epochs"]))
        except (KeyError, ValueError):
            return None

    def epochs_seen(self) -> int | None:
        """How many epochs the run trained (``epochs_run``, else its logged accuracy history)."""
        run = self.metric("epochs_run")
        if run is not None:
            return int(run)
        return len(self.history["val_acc"]) if self.history.get("val_acc") else None

    def rate_moves(self) -> int | None:
        """How many times the rate used for training changed between epochs (from ``lr``).

        Derived from the logged rate rather than ``lr_advances``, which also counts an advance
        after the last epoch that no epoch trained with. None when no rate was logged.
        """
        epochs, lrs = self.series("lr")
        return len(rate_change_epochs(epochs, lrs)) if epochs else None

    def convergence_time(self) -> tuple[float, bool] | None:
        """(epoch, converged) of the convergence rule; a run that never met it is censored at
        the last epoch it ran (the metric then holds the budget, which is not an observation)."""
        conv = self.metric("convergence_epoch")
        if conv is None:
            return None
        limit = self.max_epochs() or self.epochs_seen()
        if limit is not None and conv >= limit:
            return float(self.epochs_seen() or limit), False
        return conv, True

    def target_time(self, target: float | None) -> tuple[float, bool] | None:
        """(epoch, reached) of the first epoch at ``target`` accuracy; censored at the last."""
        _, accs = self.series("val_acc")
        if target is None or not accs:
            return None
        hit = epochs_to_target(accs, target)
        return (float(hit), True) if hit is not None else (float(len(accs)), False)


def rate_change_epochs(epochs: Sequence[int], lrs: Sequence[float]) -> list[int]:
    """Epochs that trained at a different rate from the epoch before (where the rate moved)."""
    return [
        e
        for e, prev, now in zip(epochs[1:], lrs, lrs[1:], strict=False)
        if not math.isclose(prev, now, rel_tol=1e-9, abs_tol=0.0)
    ]


@dataclass
class RunSet:
    """The runs of one experiment (or one sweep), split into included and excluded."""

    experiment: str
    experiment_id: str
    parent_run_id: str | None
    runs: list[RunRecord]
    excluded: dict[str, int] = field(default_factory=dict)
    untagged: int = 0
    search_trials: int = 0  # trial runs of an Optuna search, left out of the per-setting numbers

    @property
    def datasets(self) -> list[str]:
        """The data sets the included runs trained on, most common first."""
        return [d for d, _ in Counter(r.dataset for r in self.runs).most_common()]

    @property
    def models(self) -> list[str]:
        """The networks the included runs trained (``model.name``), most common first; runs
        that do not record it are left out."""
        names = Counter(r.params["model.name"] for r in self.runs if "model.name" in r.params)
        return [m for m, _ in names.most_common()]


def _status_reason(outcome: RunOutcome, mlflow_status: str) -> str | None:
    """None when the run belongs in the table (it finished or diverged); otherwise why it is
    left out."""
    if outcome.ok or outcome.diverged:
        return None
    if outcome.status == RunStatus.FAILED:
        return "failed (crashed, not diverged)"
    if outcome.status in (RunStatus.KILLED, RunStatus.PRUNED):
        return RunStatus.KILLED.value
    return "still running" if mlflow_status == "RUNNING" else f"status {mlflow_status.lower()}"


def is_search_trial(run: Run) -> bool:
    """Whether ``run`` is a trial of an Optuna search (tagged ``lrdecay.stage=search`` by the
    sweeper, or ``optuna.trial`` by the run itself), not a seed of a setting."""
    tags = run.data.tags
    return tags.get(STAGE_TAG) == "search" or TRIAL_TAG in tags


def search_all(client: MlflowClient, experiment_id: str, filter_string: str) -> list[Run]:
    """Every active run matching ``filter_string``, following MLflow's pagination."""
    runs: list[Run] = []
    token: str | None = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=filter_string,
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=1000,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def launches(client: MlflowClient, experiment_id: str) -> list[Run]:
    """The active sweep parents (launches) of an experiment, oldest first."""
    found = search_all(client, experiment_id, SWEEP_PARENTS)
    return sorted(found, key=lambda run: (run.info.start_time, run.info.run_id))


def read_history(
    client: MlflowClient, run_id: str, names: Sequence[str] = HISTORY_KEYS
) -> dict[str, dict[int, float]]:
    """Per-epoch values of ``names`` by epoch (the latest value logged wins), from the first of
    :func:`~lrdecay.core.records.epoch_keys` the run holds."""
    out: dict[str, dict[int, float]] = {}
    for name in names:
        logged = next(
            (h for key in epoch_keys(name) if (h := client.get_metric_history(run_id, key))), []
        )
        points = sorted(logged, key=lambda m: m.timestamp)
        if points:
            out[name] = {int(m.step): float(m.value) for m in points}
    return out


def _record(
    client: MlflowClient, run: Run, outcome: RunOutcome, history: Sequence[str]
) -> RunRecord:
    """The :class:`RunRecord` of an MLflow run that carries a ``setting`` tag, with the
    per-epoch metrics ``history`` names."""
    tags = run.data.tags
    return RunRecord(
        outcome=outcome,
        optimizer=tags.get("optimizer", UNKNOWN),
        sequence=tags.get("sequence", UNKNOWN),
        strategy=tags.get("strategy", UNKNOWN),
        seed=tags.get("seed", UNKNOWN),
        dataset=tags.get("dataset", UNKNOWN),
        params=dict(run.data.params),
        history=read_history(client, run.info.run_id, history),
        scheduler=tags.get("scheduler", ""),
        tags=dict(tags),
    )


def load_runs(
    client: MlflowClient,
    experiment: str | None = None,
    parent_run_id: str | None = None,
    history: Sequence[str] = HISTORY_KEYS,
    with_trials: bool = False,
    trial: int | None = None,
) -> RunSet:
    """The training runs of ``experiment``, or the children of sweep ``parent_run_id``, with
    the per-epoch metrics ``history`` names.

    Raises :class:`ReportError` when the experiment or parent run does not exist or holds no
    training runs. Runs without a ``setting`` tag (a sweep's parent) are ignored and counted;
    the settings' summary runs are no runs at all here. A search's trials are counted, not
    loaded, unless ``with_trials`` (then those of trial number ``trial`` alone, when given).
    """
    if experiment is None and parent_run_id is None:
        raise ReportError("name the runs to report on: --experiment NAME or --parent-run-id ID")
    try:
        if parent_run_id is not None:
            found, filter_string = _sweep_of(client, parent_run_id, experiment)
            if with_trials and trial is not None:
                filter_string += f" and tags.`{TRIAL_TAG}` = '{int(trial)}'"
        else:
            assert experiment is not None  # one of the two is named (checked above)
            found, filter_string = _experiment_named(client, experiment), ""
        experiment_id = found.experiment_id
        raw = [
            r
            for r in search_all(client, experiment_id, filter_string)
            if not is_summary(r.data.tags)
        ]
    except MlflowException as exc:
        raise ReportError(f"cannot read the tracking store: {str(exc).splitlines()[0]}") from exc

    what = f"sweep {parent_run_id}" if parent_run_id else f"experiment '{found.name}'"
    tagged = [r for r in raw if "setting" in r.data.tags]
    training = tagged if with_trials else [r for r in tagged if not is_search_trial(r)]
    runs, excluded = _sorted_out(client, training, history)
    trials = len(tagged) - len(training)
    if not runs and not trials:
        detail = f" ({_excluded_text(excluded)})" if excluded else ""
        raise ReportError(f"{what} has no finished or diverged training runs to report on{detail}")
    runs.sort(key=lambda r: (r.setting, r.seed, r.run_id))
    return RunSet(
        found.name,
        experiment_id,
        parent_run_id,
        runs,
        dict(excluded),
        len(raw) - len(tagged),
        trials,
    )


def _sweep_of(
    client: MlflowClient, parent_run_id: str, experiment: str | None
) -> tuple[Experiment, str]:
    """The experiment of sweep ``parent_run_id`` (which must be ``experiment`` when named) and
    the filter that finds its children."""
    try:
        parent = client.get_run(parent_run_id)
    except MlflowException as exc:
        raise ReportError(
            f"no run with id '{parent_run_id}' in this tracking store; "
            "check --parent-run-id and --tracking-uri"
        ) from exc
    found = client.get_experiment(parent.info.experiment_id)
    if experiment is not None and found.name != experiment:
        raise ReportError(
            f"run {parent_run_id} belongs to experiment '{found.name}', not '{experiment}'"
        )
    return found, f"tags.`mlflow.parentRunId` = '{parent_run_id}'"


def _experiment_named(client: MlflowClient, experiment: str) -> Experiment:
    """The active experiment ``experiment``; a :class:`ReportError` naming the others if none."""
    found = client.get_experiment_by_name(experiment)
    if found is None or found.lifecycle_stage == "deleted":
        names = sorted(e.name for e in client.search_experiments())
        hint = f" (experiments here: {', '.join(names)})" if names else ""
        raise ReportError(f"no experiment named '{experiment}' in this tracking store{hint}")
    return found


def _sorted_out(
    client: MlflowClient, training: Sequence[Run], history: Sequence[str]
) -> tuple[list[RunRecord], Counter[str]]:
    """The records of the ``training`` runs that belong in the table, and how many of the
    others were left out for each reason."""
    excluded: Counter[str] = Counter()
    runs: list[RunRecord] = []
    for run in training:
        outcome = outcome_from_run(run)
        reason = _status_reason(outcome, run.info.status)
        if reason is None:
            runs.append(_record(client, run, outcome, history))
        else:
            excluded[reason] += 1
    return runs, excluded


def default_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the runs' default store (under ``./mlruns``)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or sqlite_uri(DEFAULT_STORE_DIR)


def store_client(client_or_uri: MlflowClient | str) -> MlflowClient:
    """A client for ``client_or_uri``; refuses a SQLite file that does not exist (MLflow would
    silently create an empty store there)."""
    if isinstance(client_or_uri, MlflowClient):
        return client_or_uri
    uri = client_or_uri
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise ReportError(
            f"no MLflow store at {uri}: run from the project root or pass "
            "--tracking-uri (or set MLFLOW_TRACKING_URI)"
        )
    return open_client(uri)


def _excluded_text(excluded: dict[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(excluded.items()))
