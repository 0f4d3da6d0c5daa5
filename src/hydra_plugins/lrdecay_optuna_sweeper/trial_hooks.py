"""What the sweeper asks of the application whose jobs it launches: the whole interface.

(Hydra's plugin scan imports this module on every start: it imports no Optuna, and its records
are named tuples, since the scan's way of importing breaks dataclasses.)

The sweeper does the sweeping: the study and its storage, ask/tell, launching the trials'
jobs, the results. What only the application knows (its config keys, the files its jobs
leave, where it records runs) it asks of a :class:`TrialHooks` object, named by
``hydra.sweeper.trial_hooks`` (the dotted path of a subclass, built with the sweep's config).
:class:`TrialHooks` itself does nothing: with ``hydra.sweeper.trial_hooks=null`` the sweeper
drives any Hydra app whose task returns its objective value(s). The sweeper calls the hooks
from its one thread, in this order: :meth:`~TrialHooks.objectives`,
:meth:`~TrialHooks.objective_directions` and
:meth:`~TrialHooks.default_study_name`, :meth:`~TrialHooks.study_started`; per trial
:meth:`~TrialHooks.trial_overrides`, then after each of its jobs (one, or one per seed with
``seeds_per_trial``) :meth:`~TrialHooks.job_report`, and once the trial was told
:meth:`~TrialHooks.trial_ended` for each job, then :meth:`~TrialHooks.trial_told` once;
with ``hydra.sweeper.confirm.enabled``, per job of the confirm stage
:meth:`~TrialHooks.confirm_overrides` (before), :meth:`~TrialHooks.job_report`,
:meth:`~TrialHooks.measures` and :meth:`~TrialHooks.confirm_ended` (after), then
:meth:`~TrialHooks.confirmation_finished`; at the end :meth:`~TrialHooks.study_finished`, or
:meth:`~TrialHooks.study_stopped` when the search stops early. :meth:`~TrialHooks.search_problem`
and :meth:`~TrialHooks.search_warning` come first of all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from omegaconf import DictConfig

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial, TrialState


class StudyInfo(NamedTuple):
    """The study a search runs, as the hooks see it: the study, the storage the sweeper opened
    it on (and its URL, which the jobs open again), the pruner's settings, the config key of a
    job's seed (``hydra.sweeper.seed_key``) and the seeds every trial's jobs run with (empty
    with ``seeds_per_trial=1``: each trial one job, with the config's seed)."""

    study: optuna.Study
    storage: BaseStorage
    storage_url: str
    pruner: Mapping[str, Any]
    seed_key: str = "seed"
    seeds: tuple[int, ...] = ()


class JobReport(NamedTuple):
    """What the application knows of an ended job beyond its return value.

    ``state`` PRUNED or FAIL overrides the return value (a pruned run, a diverged run whose
    value means nothing), with ``reason`` for a failure; None: the trial is judged by the
    job's status and return value. ``run_id`` is stored as the trial's ``mlflow_run_id``
    (one of its ``mlflow_run_ids`` with ``seeds_per_trial``).
    """

    state: TrialState | None = None
    reason: str = ""
    run_id: str | None = None
    epochs: int | None = None


class TrialHooks:
    """The application's side of a search; every hook does nothing here (a plain Hydra app)."""

    def __init__(self, config: DictConfig, sweep_dir: Path, base_dir: Path) -> None:
        """``config``: the sweep's config; ``sweep_dir``: ``hydra.sweep.dir``; ``base_dir``:
        the launch directory (relative paths in the config are relative to it)."""
        self.config = config
        self.sweep_dir = sweep_dir
        self.base_dir = base_dir

    def objectives(self) -> list[str] | None:
        """The names of the values each job returns (None: unnamed, one)."""
        return None

    def objective_directions(self) -> Mapping[str, str]:
        """Each objective's natural direction by name (``maximize`` or ``minimize``), taken
        when ``hydra.sweeper.direction`` is null; a name missing here is maximised."""
        return {}

    def search_problem(self, confirming: bool) -> str | None:
        """Why this search must not run as configured (the sweeper stops with it, naming the
        fix), or None; ``confirming``: the confirm stage is on."""
        return None

    def search_warning(self, confirming: bool) -> str | None:
        """What is wrong with this search's protocol yet allowed (printed loudly at its start
        and in its summary), or None."""
        return None

    def default_study_name(self) -> str:
        """The study's name when ``hydra.sweeper.study_name`` is null."""
        return "search"

    def study_started(self, info: StudyInfo, directions: Sequence[str]) -> None:
        """The study is open and its trials are about to run."""

    def trial_overrides(self, info: StudyInfo, trial: optuna.Trial) -> list[str]:
        """Overrides the job of ``trial`` (already sampled, not yet launched) needs beyond its
        parameters."""
        return []

    def job_report(self, output_dir: Path | None) -> JobReport:
        """What the job that ran in ``output_dir`` (None: unknown) left behind."""
        return JobReport()

    def trial_ended(self, number: int, state: TrialState, report: JobReport) -> None:
        """The study was told that trial ``number`` ended in ``state``; ``report``: one of its
        jobs' (called once per job: ``seeds_per_trial`` times)."""

    def trial_told(self, number: int, state: TrialState, reports: Sequence[JobReport]) -> None:
        """Trial ``number`` ended in ``state`` and every one of its jobs was passed to
        :meth:`trial_ended`; ``reports``: its jobs' (one per seed, in seed order)."""

    def confirm_overrides(self, info: StudyInfo, trial: FrozenTrial, seeds: int) -> list[list[str]]:
        """The overrides, beyond ``trial``'s parameters, of the ``seeds`` jobs that run its
        configuration again with fresh seeds (seeds no trial used: none of ``info.seeds``):
        one list per job. Empty: this application cannot confirm (the confirm stage is
        skipped)."""
        return []

    def measures(self, output_dir: Path | None) -> dict[str, float]:
        """The numbers the job that ran in ``output_dir`` measured, by objective name (what
        the confirm stage averages over its seeds); empty when unknown."""
        return {}

    def held_out(self, objective: str) -> str | None:
        """The name of the measure that scores ``objective`` on data the search never saw
        (e.g. the test split's accuracy for a validation accuracy), or None."""
        return None

    def confirm_ended(self, number: int, report: JobReport) -> None:
        """A confirm job of trial ``number``'s configuration ended (``report``: what it left)."""

    def confirmation_finished(self, metrics: Mapping[str, float]) -> None:
        """The confirm stage ended; ``metrics``: its summary numbers by name (the winner's)."""

    def study_finished(self, files: Sequence[Path], best_value: float | None) -> None:
        """The search ended and wrote its result ``files``; ``best_value``: None with no best
        trial (several objectives, or no complete trial)."""

    def study_stopped(self, status: str) -> None:
        """The search stopped before its end: ``FAILED`` (an error) or ``KILLED`` (a stop
        signal)."""
