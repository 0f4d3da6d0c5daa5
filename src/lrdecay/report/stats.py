"""Runs read back from MLflow and reduced to per-setting statistics for the report.

Loading sorts every run into *included* (finished, or diverged: counted but never averaged) or
*excluded* (still running, killed, crashed), so that no table cell silently mixes them. The
trials of an Optuna search (each a different configuration, one seed) are no seeds of a setting:
they are counted apart and shown by :mod:`lrdecay.report.search`; a search's confirmation runs
(its winner again with fresh seeds) are the settings' runs. Each
setting's accuracies are means with t-distribution 95% confidence intervals over seeds; its
convergence and epochs-to-target are censored (k of n runs got there, Kaplan–Meier median); its
rate moves are counted from the logged rate; its final accuracy is tested against the SGD
baseline by :mod:`lrdecay.report.inference`.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from mlflow.entities import Experiment, Run, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from hydra_plugins.lrdecay_optuna_sweeper.stats import Stat as MeanInterval
from lrdecay.core.metrics import epochs_to_target
from lrdecay.core.outcome import RunOutcome, RunStatus
from lrdecay.core.records import epoch_keys
from lrdecay.core.schedules import FIXED_STRATEGY, study_names
from lrdecay.core.schedules import SEQUENCES as SEQUENCE_REGISTRY
from lrdecay.core.schedules import STRATEGIES as STRATEGY_REGISTRY
from lrdecay.errors import LrdecayError
from lrdecay.palette import (
    BASELINE_SGD,
    BASELINES,
    MODERN_COLORS,
    STUDY_OPTIMIZERS,
    modern_arm,
)
from lrdecay.report.inference import Comparison, compare_means, holm, km_median
from lrdecay.tracking.client import open_client
from lrdecay.tracking.run_logger import outcome_from_run
from lrdecay.tracking.store import DEFAULT_STORE_DIR, sqlite_path, sqlite_uri
from lrdecay.tracking.ui import STAGE_TAG, SWEEP_PARENTS, TRIAL_TAG, is_summary

#: The run metric behind each scoring column, and how the report names it.
SCORE_METRICS = {"final_acc": "final_val_acc", "test_acc": "test_acc"}
SCORE_NAMES = {"final_acc": "final accuracy", "test_acc": "test accuracy"}

#: Per-epoch metrics the report reads back by name (MLflow step = epoch, 1-based); runs and
#: their histories are read by name, so stores written before the metric sections read too.
HISTORY_KEYS = ("val_acc", "val_loss", "lr", "lr_advances")
#: The study's grid, from the registries: its sequences in order, and each strategy that moves
#: them with the name of its row group in the study's Tables 1 and 2.
SEQUENCES = study_names(SEQUENCE_REGISTRY)
STRATEGY_GROUP = {name: STRATEGY_REGISTRY[name].label for name in study_names(STRATEGY_REGISTRY)}
#: Row groups of the study's Tables 1 and 2, in order.
#: The modern baselines raced with the study (PyTorch schedulers, optimizers other than the
#: study's) form a block of their own after them.
MODERN_GROUP = "Modern baselines"
GROUPS = ("Benchmark", *STRATEGY_GROUP.values(), MODERN_GROUP, "Other")
#: How the Benchmark block labels its fixed-rate baselines, in :data:`BASELINES`' order: the
#: study's two at 0.001, and the control at the decayed arms' r0.
BASELINE_LABELS = dict(zip(BASELINES, ("SGD", "SGD at r0", "Adam"), strict=True))
#: What a run's record holds for a tag it lacks.
UNKNOWN = "?"
#: Params that must agree across the seeds of one setting for their mean to mean anything.
CONSISTENCY_PARAMS = (
    "dataset.name",
    "optimizer.lr",
    "trainer.max_epochs",
    "dataset.val_fraction",
    "model.name",
)


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
    found: Experiment | None
    try:
        if parent_run_id is not None:
            try:
                parent = client.get_run(parent_run_id)
            except MlflowException as exc:
                raise ReportError(
                    f"no run with id '{parent_run_id}' in this tracking store; "
                    "check --parent-run-id and --tracking-uri"
                ) from exc
            experiment_id = parent.info.experiment_id
            found = client.get_experiment(experiment_id)
            if experiment is not None and found.name != experiment:
                raise ReportError(
                    f"run {parent_run_id} belongs to experiment '{found.name}', not '{experiment}'"
                )
            filter_string = f"tags.`mlflow.parentRunId` = '{parent_run_id}'"
            if with_trials and trial is not None:
                filter_string += f" and tags.`{TRIAL_TAG}` = '{int(trial)}'"
        else:
            assert experiment is not None  # one of the two is named (checked above)
            found = client.get_experiment_by_name(experiment)
            if found is None or found.lifecycle_stage == "deleted":
                names = sorted(e.name for e in client.search_experiments())
                hint = f" (experiments here: {', '.join(names)})" if names else ""
                raise ReportError(
                    f"no experiment named '{experiment}' in this tracking store{hint}"
                )
            experiment_id = found.experiment_id
            filter_string = ""
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
    excluded: Counter[str] = Counter()
    runs: list[RunRecord] = []
    for run in training:
        outcome = outcome_from_run(run)
        reason = _status_reason(outcome, run.info.status)
        if reason is None:
            runs.append(_record(client, run, outcome, history))
        else:
            excluded[reason] += 1
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


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Stat:
    """Mean of ``n`` values with the half-width of its 95% t-interval (None when n < 2), and the
    lowest and highest value (``lo``, ``hi``)."""

    mean: float
    half: float | None
    n: int
    lo: float
    hi: float

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Stat | None:
        """The statistic of the finite values given; None when there are none."""
        xs = [float(v) for v in values if v is not None and math.isfinite(v)]
        base = MeanInterval.of(xs)
        if base is None:
            return None
        return cls(base.mean, base.half, base.n, min(xs), max(xs))

    @property
    def interval(self) -> tuple[float, float] | None:
        """The bounds of the 95 % t-interval of the mean (``mean ∓ half``); None when n < 2.
        The one the table's cells, the figures' bands and the summary runs all show."""
        if self.half is None:
            return None
        return self.mean - self.half, self.mean + self.half


@dataclass(frozen=True)
class Censored:
    """Censored times of ``n`` runs (epoch, got there?): ``k`` got there, Kaplan–Meier median.

    ``median`` is None while fewer than half the runs got there; ``horizon`` is then the longest
    a run was watched, so the cell reads ``≥ horizon``. No mean: a run that never got there has
    no time to average.
    """

    times: tuple[float, ...]
    reached: tuple[bool, ...]

    @classmethod
    def of(cls, values: Iterable[tuple[float, bool] | None]) -> Censored | None:
        """The censored sample of the values given; None when there are none."""
        pairs = [v for v in values if v is not None]
        if not pairs:
            return None
        return cls(tuple(t for t, _ in pairs), tuple(r for _, r in pairs))

    @property
    def n(self) -> int:
        return len(self.times)

    @property
    def k(self) -> int:
        return sum(self.reached)

    @property
    def median(self) -> float | None:
        return km_median(self.times, self.reached)

    @property
    def horizon(self) -> float:
        return max(self.times)

    @property
    def lo(self) -> float:
        return min(self.times)


def required(stat: Stat | None) -> Stat:
    """``stat`` where the caller has already kept only settings that have values."""
    if stat is None:
        raise ValueError("statistic missing for a setting expected to have it")
    return stat


@dataclass
class SettingSummary:
    """One table row: a setting's runs and the statistics of each column."""

    setting: str
    group: str
    label: str
    order: int
    runs: list[RunRecord]
    target: float | None
    final_acc: Stat | None = None
    convergence: Censored | None = None
    best_acc: Stat | None = None
    to_target: Censored | None = None
    test_acc: Stat | None = None
    moves: Stat | None = None
    epochs_run: Stat | None = None
    comparison: Comparison | None = None
    #: The column that scores the setting: ``final_acc`` (final validation accuracy), or
    #: ``test_acc`` when every run held its validation split out of training, so the split
    #: that steered the schedule is not the one that scores it.
    scored_by: str = "final_acc"

    @property
    def scored(self) -> Stat | None:
        """The statistics of the scoring accuracy (see :attr:`scored_by`)."""
        stat: Stat | None = getattr(self, self.scored_by)
        return stat

    def mean(self, column: str) -> float:
        """Mean of a :class:`Stat` column (``final_acc``, ``moves``…); NaN without values."""
        stat: Stat | None = getattr(self, column)
        return stat.mean if stat is not None else math.nan

    def median(self, column: str) -> float:
        """Kaplan–Meier median of a censored column; infinite when not reached, NaN when empty."""
        cens: Censored | None = getattr(self, column)
        if cens is None:
            return math.nan
        median = cens.median
        return median if median is not None else math.inf

    @property
    def strategy(self) -> str:
        return self.runs[0].strategy

    @property
    def ok_runs(self) -> list[RunRecord]:
        """The runs whose numbers enter the means: every included run that did not diverge."""
        return [r for r in self.runs if not r.diverged]

    @property
    def n_runs(self) -> int:
        return len(self.runs)

    @property
    def n_diverged(self) -> int:
        return sum(r.diverged for r in self.runs)

    @property
    def finals(self) -> list[float]:
        """Scoring accuracy of each seed's non-diverged runs that recorded it."""
        return list(self.finals_by_seed().values())

    def finals_by_seed(self) -> dict[str, float]:
        """Scoring accuracy per seed (the mean when a seed ran twice): pairs settings."""
        metric = SCORE_METRICS[self.scored_by]
        return _by_seed((r.seed, r.metric(metric)) for r in self.ok_runs)

    def convergence_by_seed(self) -> dict[str, tuple[float, bool]]:
        """Censored convergence epoch per seed (the first run of a seed that ran twice)."""
        out: dict[str, tuple[float, bool]] = {}
        for r in self.ok_runs:
            if (value := r.convergence_time()) is not None:
                out.setdefault(r.seed, value)
        return out

    @property
    def with_history(self) -> int:
        return sum(bool(r.history.get("val_acc")) for r in self.ok_runs)

    @property
    def never_moved(self) -> bool:
        """True when the strategy may move the rate but no run's rate ever moved."""
        counts = [m for r in self.ok_runs if (m := r.rate_moves()) is not None]
        return self.strategy != FIXED_STRATEGY and bool(counts) and not any(counts)

    @property
    def still_runs(self) -> int:
        """Runs whose rate never moved, of a strategy that may move it."""
        if self.strategy == FIXED_STRATEGY:
            return 0
        return sum(r.rate_moves() == 0 for r in self.ok_runs)

    @property
    def mixed_params(self) -> list[str]:
        """Params that differ between this setting's runs (their mean would mix configs)."""
        return [k for k in CONSISTENCY_PARAMS if len({r.params.get(k) for r in self.runs}) > 1]


def _by_seed(pairs: Iterable[tuple[str, float | None]]) -> dict[str, float]:
    """``{seed: mean value}`` of the finite values given."""
    grouped: dict[str, list[float]] = {}
    for seed, value in pairs:
        if value is not None and math.isfinite(value):
            grouped.setdefault(seed, []).append(value)
    return {seed: float(np.mean(vs)) for seed, vs in grouped.items()}


def is_modern(optimizer: str, scheduler: str) -> bool:
    """Whether a run is a modern baseline: a PyTorch scheduler (its ``scheduler`` tag), or an
    optimizer other than the study's SGD and Adam (schedule-free, learning-rate-free, AdamW).
    A run without an optimizer tag (``?``) is not."""
    return bool(scheduler) or optimizer not in (*STUDY_OPTIMIZERS, UNKNOWN)


def classify(
    optimizer: str, sequence: str, strategy: str, setting: str, scheduler: str = ""
) -> tuple[str, str, int]:
    """(group, row label, order within group) of a setting, as in the study's tables; the
    fixed-rate baselines and the control at r0 (:data:`BASELINES`) form the Benchmark block,
    modern baselines (:func:`is_modern`) the "Modern baselines" block (ready options first)."""
    if is_modern(optimizer, scheduler):
        ready, arm = list(MODERN_COLORS), modern_arm(setting, sequence)
        return MODERN_GROUP, setting, ready.index(arm) if arm is not None else len(ready)
    if strategy == FIXED_STRATEGY and setting in BASELINE_LABELS:
        return "Benchmark", BASELINE_LABELS[setting], BASELINES.index(setting)
    if optimizer == "sgd" and sequence in SEQUENCES and strategy in STRATEGY_GROUP:
        return STRATEGY_GROUP[strategy], sequence, SEQUENCES.index(sequence)
    return "Other", setting, 0


def default_target(runs: Sequence[RunRecord]) -> float | None:
    """The runs' ``dataset.target_accuracy`` (the most common value if they disagree)."""
    values = Counter(
        r.params["dataset.target_accuracy"]
        for r in runs
        if r.params.get("dataset.target_accuracy") not in (None, "None")
    )
    for value, _ in values.most_common():
        try:
            return float(value)
        except ValueError:
            continue
    return None


def summarise(runs: Sequence[RunRecord], target: float | None) -> list[SettingSummary]:
    """One :class:`SettingSummary` per setting, in table order (group, then sequence)."""
    by_setting: dict[str, list[RunRecord]] = {}
    for run in runs:
        by_setting.setdefault(run.setting, []).append(run)
    rows: list[SettingSummary] = []
    for setting, members in by_setting.items():
        first = members[0]
        group, label, order = classify(
            first.optimizer, first.sequence, first.strategy, setting, first.scheduler
        )
        row = SettingSummary(setting, group, label, order, members, target)
        ok = row.ok_runs
        row.final_acc = Stat.of(r.metric("final_val_acc") for r in ok)
        row.convergence = Censored.of(r.convergence_time() for r in ok)
        row.best_acc = Stat.of(r.metric("best_val_acc") for r in ok)
        row.to_target = Censored.of(r.target_time(target) for r in ok)
        row.test_acc = Stat.of(r.metric("test_acc") for r in ok)
        row.moves = Stat.of(r.rate_moves() for r in ok)
        row.epochs_run = Stat.of(r.metric("epochs_run") for r in ok)
        rows.append(row)
    rows.sort(key=lambda s: (GROUPS.index(s.group), s.order, s.setting))
    scored_by = scoring_column(runs)
    for row in rows:
        row.scored_by = scored_by
    compare_with_baseline(rows)
    return rows


def scoring_column(runs: Sequence[RunRecord]) -> str:
    """``test_acc`` when every non-diverged run held out its validation split and recorded a
    test accuracy; else ``final_acc``, the study's own score (its validation split is the test
    split)."""
    ok = [r for r in runs if not r.diverged]
    held_out = bool(ok) and all(
        (v := r.metric("test_acc")) is not None and math.isfinite(v) for r in ok
    )
    return "test_acc" if held_out else "final_acc"


def scored_by(rows: Sequence[SettingSummary]) -> str:
    """The scoring column of a table's rows (they share one; ``final_acc`` when empty)."""
    return rows[0].scored_by if rows else "final_acc"


def compare_with_baseline(rows: Sequence[SettingSummary]) -> None:
    """Set each row's final-accuracy test against the SGD baseline, Holm-corrected together."""
    baseline = find(rows, BASELINE_SGD)
    if baseline is None:
        return
    others = [s for s in rows if s is not baseline]
    tests = holm([compare_means(s.finals_by_seed(), baseline.finals_by_seed()) for s in others])
    for row, test in zip(others, tests, strict=True):
        row.comparison = test


def find(rows: Sequence[SettingSummary], setting: str) -> SettingSummary | None:
    """The row of ``setting``, if these runs have it."""
    return next((s for s in rows if s.setting == setting), None)


def best_rows(rows: Sequence[SettingSummary], column: str, highest: bool, digits: int) -> set[str]:
    """Settings whose centre in ``column`` (mean, or censored median) is best, compared at the
    displayed precision. Empty when every setting ties: marking them all would single nothing out.
    """
    centres = {
        s.setting: round(centre, digits)
        for s in rows
        if (centre := _centre(getattr(s, column))) is not None
    }
    if not centres or (len(centres) > 1 and len(set(centres.values())) == 1):
        return set()
    best = max(centres.values()) if highest else min(centres.values())
    return {k for k, v in centres.items() if v == best}


def _centre(value: Stat | Censored | None) -> float | None:
    """The number a column is ranked by: a mean, or a median that was reached."""
    if isinstance(value, Censored):
        return value.median
    return value.mean if value is not None else None
