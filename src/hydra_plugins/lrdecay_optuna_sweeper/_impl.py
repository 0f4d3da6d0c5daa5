"""The Optuna sweeper's work: the study, the ask/tell loop over Hydra jobs, the results.

Why batches from one thread: Hydra's ``Launcher.launch`` blocks until its whole batch ends, and
neither the basic nor the joblib launcher says it may be called from several threads at once
(both reconfigure logging and Hydra's global state on every call; the joblib launcher also
writes its settings dict). So one thread does everything: it asks a batch of ``n_jobs`` trials,
launches them in one call (the joblib launcher runs them in its pool of ``n_jobs`` workers),
then tells the study how each ended, asking each one's replacement for the next batch right
after telling it. A batch waits for its slowest trial; ``benchmarks/sweeper_utilisation.py``
measures what that costs.

Everything only the application knows (its config keys, its jobs' files, MLflow) goes through
the :class:`~.hooks.TrialHooks` named by ``hydra.sweeper.trial_hooks``.

With ``hydra.sweeper.confirm.enabled`` the search ends with a confirm stage: the best trial's
configuration (each of the first ``max_points`` points of a Pareto front) runs again with fresh
seeds, as plain jobs through the same launcher that the study is never told of, and the summary
sets their mean ± 95 % CI (on the held-out measure the hooks name, e.g. the test split) against
the search's value: the gap is the search's selection optimism.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import logging
import math
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_class, get_method, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf, read_write
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, Trial, TrialState

from ._shared import (
    LAUNCHER_ATTR,
    claim,
    claim_confirmations,
    has_room,
    launcher_id,
    orphaned,
    release_confirmations,
    settle,
    surplus,
)
from ._space import (
    Condition,
    SweepError,
    conditional_space,
    describe_space,
    format_value,
    grid_values,
    parse_search_space,
    resolve_directions,
    sample,
    sqlite_absolute,
)
from ._stats import Stat
from .files import (
    CONFIRM_FILE,
    CONFIRM_SUBDIR,
    CONFIRMATION_FILE,
    IMPORTANCES_FILE,
    RESULTS_FILE,
    TRIALS_FILE,
)
from .hooks import JobReport, StudyInfo, TrialHooks
from .pruners import make_pruner
from .redact import redact_text, redact_uri
from .storage import open_study

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("lrdecay.optuna")

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
_NOT_SET = object()


@dataclass
class _Running:
    """A trial in flight: its trial and its job's overrides."""

    trial: Trial
    overrides: list[str]


@dataclass
class _Outcome:
    """How a job ended, as the study will be told."""

    state: TrialState
    values: list[float] | None = None
    reason: str = ""
    report: JobReport = field(default_factory=JobReport)


@dataclass
class _Confirmed:
    """One job of the confirm stage: the overrides that made it, how it ended and its
    measures (by objective name)."""

    overrides: list[str]
    state: TrialState
    measures: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    reason: str = ""


@dataclass
class _Point:
    """One configuration the confirm stage ran again: its trial and the runs of its seeds."""

    trial: FrozenTrial
    runs: list[_Confirmed] = field(default_factory=list)

    def stat(self, name: str) -> Any:
        """Mean and 95 % t-interval of measure ``name`` over the runs that ended well; None
        without a value."""
        return Stat.of(r.measures.get(name) for r in self.runs if r.state == TrialState.COMPLETE)

    @property
    def failed(self) -> int:
        return sum(r.state != TrialState.COMPLETE for r in self.runs)


@dataclass
class _Tally:
    """What this sweep's trials did: how many ran, finished and failed, and the first failure's
    reason (what a search that fails as a whole shows)."""

    ran: int = 0
    finished: int = 0
    failed: int = 0
    first_error: str = ""

    def count(self, outcome: _Outcome) -> None:
        """Count one ended trial."""
        if outcome.state in FINISHED:
            self.finished += 1
            return
        self.failed += 1
        self.first_error = self.first_error or outcome.reason

    def failure(self, max_failures: int, to_run: int, n_complete: int) -> str | None:
        """Why the search failed as a whole, with the first job error; None when it did not.
        It failed when it stopped at ``max_failures``, or ran trials and the study still has
        no complete one (no best parameters)."""
        if self.failed >= max_failures and self.finished < to_run:
            why = (
                f"the search stopped after {self.failed} failed trials "
                f"(hydra.sweeper.max_failures={max_failures})"
            )
        elif self.ran and not n_complete:
            why = (
                f"no complete trial in the study: this sweep's {self.ran} trial(s) "
                f"{self.failed} failed, {self.finished} pruned"
            )
        else:
            return None
        if self.first_error:  # one line, and never a password (the error may quote a URL)
            why += "; first job error: " + redact_text(" ".join(self.first_error.split()))
        return why


class OptunaSweeperImpl:
    """The search: ``n_trials`` finished trials in the study, ``n_jobs`` of them at a time."""

    def __init__(
        self,
        sampler: Any,
        pruner: Any,
        direction: Any,
        storage: str | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        max_failures: int,
        params: Mapping[str, Any] | None,
        custom_search_space: str | None,
        trial_hooks: str | None = None,
        conditions: Mapping[str, str] | None = None,
        confirm: Any = None,
    ) -> None:
        self.sampler = sampler
        self.pruner_settings: dict[str, Any] = (
            dict(OmegaConf.to_container(pruner, resolve=True))  # type: ignore[arg-type]
            if isinstance(pruner, DictConfig)
            else dict(pruner or {"name": "none"})
        )
        self.direction = (
            OmegaConf.to_container(direction, resolve=True)
            if isinstance(direction, ListConfig)
            else direction
        )
        self.storage = storage
        self.study_name = study_name
        self.n_trials = n_trials
        self.study_trials = n_trials  # the study's total, all launchers together (set per search)
        self.n_jobs = n_jobs
        self.max_failures = max_failures
        self.params = {str(k): v for k, v in (params or {}).items()}
        self.custom_search_space = custom_search_space
        self.raw_conditions = {str(k): v for k, v in (conditions or {}).items()}
        self.conditions: dict[str, Condition] = {}
        self.trial_hooks = trial_hooks
        confirm_settings: dict[str, Any] = (
            dict(OmegaConf.to_container(confirm, resolve=True))  # type: ignore[arg-type]
            if isinstance(confirm, DictConfig)
            else dict(confirm or {})
        )
        self.confirm = bool(confirm_settings.get("enabled", False))
        self.confirm_seeds = int(confirm_settings.get("seeds", 5))
        self.confirm_points = int(confirm_settings.get("max_points", 3))
        self.extend_space: Any = None
        self.warning: str | None = None
        self.config: DictConfig | None = None
        self.hooks: TrialHooks | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        """Create the launcher, its pool sized to ``n_jobs`` (the basic launcher runs one
        trial at a time)."""
        self.config = config
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.base_dir = Path(str(config.hydra.runtime.cwd))
        self.parallel = max(1, self.n_jobs)
        if config.hydra.runtime.choices.get("hydra/launcher") == "basic" and self.n_jobs > 1:
            log.warning(
                "the basic launcher runs jobs in this process, one at a time: trials "
                "run one by one (use hydra/launcher=joblib for n_jobs=%d)",
                self.n_jobs,
            )
            self.parallel = 1
        launcher_config = config
        self.launcher_overrides: list[str] = []
        if "n_jobs" in config.hydra.launcher:  # the joblib launcher: one worker per trial
            launcher_config = copy.deepcopy(config)
            with read_write(launcher_config.hydra.launcher):
                launcher_config.hydra.launcher.n_jobs = self.parallel
            self.launcher_overrides = [f"hydra.launcher.n_jobs={self.parallel}"]
        self.launcher = Plugins.instance().instantiate_launcher(
            config=launcher_config, hydra_context=hydra_context, task_function=task_function
        )

    def _make_hooks(self) -> TrialHooks:
        """The application's hooks named by ``trial_hooks`` (the plain ones when null)."""
        assert self.config is not None
        factory: type[TrialHooks] = TrialHooks
        if self.trial_hooks:
            try:
                factory = get_class(self.trial_hooks)
            except Exception as exc:
                raise SweepError(
                    f"hydra.sweeper.trial_hooks: cannot import {self.trial_hooks} ({exc})"
                ) from exc
            if not issubclass(factory, TrialHooks):
                raise SweepError(
                    f"hydra.sweeper.trial_hooks: {self.trial_hooks} is not a subclass of "
                    f"{TrialHooks.__module__}.TrialHooks"
                )
        return factory(self.config, self.sweep_dir, self.base_dir)

    # -------------------------------------------------------------- study

    def _storage_url(self) -> str:
        if self.storage:
            return sqlite_absolute(self.storage, self.base_dir)
        if self.study_name:
            return f"sqlite:///{(self.base_dir / 'optuna.db').resolve()}"
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.sweep_dir / 'optuna.db').resolve()}"

    def _make_sampler(self, offset: int) -> optuna.samplers.BaseSampler:
        """The configured sampler. A seeded one resuming a study that has ``offset`` trials
        is seeded ``seed + offset``: reproducible, yet not the same draws as the first run."""
        assert self.config is not None
        node = OmegaConf.select(self.config, "hydra.sweeper.sampler")
        sampler: Any = self.sampler
        if isinstance(node, DictConfig) and "_target_" in node:
            seed = node.get("seed")
            extra = {"seed": seed + offset} if offset and seed is not None else {}
            sampler = instantiate(node, **extra)
        if isinstance(sampler, functools.partial):
            sampler = sampler(self.grid or {})
        return sampler

    def _open_study(self, directions: list[str], objectives: list[str] | None) -> optuna.Study:
        """Create or load the study, and keep the storage it lives on (``self.storage_obj``)."""
        assert self.hooks is not None
        name = self.study_name or self.hooks.default_study_name()
        self.storage_url = self._storage_url()
        try:
            self.storage_obj, study = open_study(
                self.storage_url,
                sampler=optuna.samplers.RandomSampler(),
                pruner=make_pruner(self.pruner_settings),
                study_name=name,
                directions=directions,
            )
        except Exception as exc:
            raise SweepError(
                f"cannot open study '{name}' at {redact_uri(self.storage_url)}: "
                f"{str(exc).splitlines()[0]}. Fix: hydra.sweeper.storage"
            ) from exc
        have = [d.name.lower() for d in study.directions]
        recorded = study.user_attrs.get("objectives")
        if have != directions or (objectives and recorded and recorded != objectives):
            raise SweepError(
                f"study '{name}' at {redact_uri(self.storage_url)} optimises "
                f"{recorded or '?'} ({', '.join(have)}); this search asks for {objectives} "
                f"({', '.join(directions)}). Fix: another hydra.sweeper.study_name"
            )
        if objectives and not recorded:
            study.set_user_attr("objectives", objectives)
        return study

    def _recover(self, study: optuna.Study) -> None:
        """Trials a killed sweep left RUNNING: mark them failed and queue their parameters
        to run again first. (Trials that another live launcher runs are left alone.)"""
        settle(study)
        stale = [
            t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if orphaned(t)
        ]
        for frozen in stale:
            self._tell(study, frozen.number, TrialState.FAIL)
            if frozen.params:
                study.enqueue_trial(dict(frozen.params), user_attrs={"retry_of": frozen.number})
        if stale:
            log.warning(
                "%d trial(s) left running by an interrupted sweep (%s) were marked "
                "failed; their parameters run again first",
                len(stale),
                ", ".join(str(t.number) for t in stale),
            )

    @staticmethod
    def _tell(
        study: optuna.Study,
        trial: Trial | int,
        state: TrialState,
        values: list[float] | None = None,
    ) -> None:
        try:
            study.tell(trial, values=values, state=state)
        except RuntimeError as exc:  # the grid sampler calls Study.stop() when it is done
            if "Study.stop" not in str(exc):
                raise

    # -------------------------------------------------------------- sweep

    def sweep(self, arguments: list[str]) -> list[FrozenTrial]:
        """Run the search and report it; errors end with one message, never a traceback."""
        try:
            return self._sweep(arguments)
        except SweepError as exc:
            self._stopped("FAILED")
            raise SystemExit(f"lrdecay: {exc}") from None
        except KeyboardInterrupt:
            self._stopped("KILLED")
            print(
                "lrdecay: search interrupted; running trials were marked failed and are "
                "retried first when the same command runs again",
                file=sys.stderr,
            )
            raise SystemExit(130) from None

    def _stopped(self, status: str) -> None:
        """Tell the application the search stopped early (when it got as far as its hooks)."""
        if self.hooks is not None:
            self.hooks.study_stopped(status)

    def _sweep(self, arguments: list[str]) -> list[FrozenTrial]:
        assert self.config is not None
        self.hooks = self._make_hooks()
        if self.n_trials < 0 or self.n_jobs < 1 or self.max_failures < 1:
            raise SweepError("hydra.sweeper: n_trials must be >= 0, n_jobs and max_failures >= 1")
        if self.confirm and (self.confirm_seeds < 1 or self.confirm_points < 1):
            raise SweepError("hydra.sweeper.confirm: seeds and max_points must be >= 1")
        problem = self.hooks.search_problem(self.confirm)
        if problem:
            raise SweepError(problem)
        self.warning = self.hooks.search_warning(self.confirm)
        if self.warning:
            log.warning("%s", self.warning)
        if self.custom_search_space:
            try:
                self.extend_space = get_method(self.custom_search_space)
            except Exception as exc:
                raise SweepError(
                    f"hydra.sweeper.custom_search_space: cannot import "
                    f"{self.custom_search_space} ({exc})"
                ) from exc
        lines = [f"{k}={v}" for k, v in self.params.items()] + list(arguments)
        space, fixed = parse_search_space(lines)
        searched = list(space)
        space, self.conditions = conditional_space(self.raw_conditions, space, fixed)
        for name in searched:
            if name not in space:
                log.info("%s not searched: its condition's parent is set to another value", name)
        objectives = self.hooks.objectives()
        directions = resolve_directions(
            self.direction, objectives, self.hooks.objective_directions()
        )
        n_trials = self.n_trials
        self.grid: dict[str, list[Any]] | None = None
        if isinstance(self.sampler, functools.partial):  # the grid sampler, built from params
            if self.conditions:
                raise SweepError(
                    "hydra.sweeper.conditions: the grid sampler gives every trial a value of "
                    f"every parameter, so {', '.join(self.conditions)} cannot be conditional; "
                    "use another sampler (random, tpe, ...) or hydra.sweeper.conditions=null"
                )
            self.grid = {name: grid_values(name, dist) for name, dist in space.items()}
            size = math.prod(len(v) for v in self.grid.values())
            if n_trials > size:
                log.info("the grid has %d points: n_trials %d -> %d", size, n_trials, size)
                n_trials = size
        if self.pruner_settings.get("name", "none") != "none" and len(directions) > 1:
            log.warning(
                "Optuna cannot prune multi-objective studies: pruner %s is off",
                self.pruner_settings["name"],
            )
            self.pruner_settings = {"name": "none"}
        study = self._open_study(directions, objectives)
        study.sampler = self._make_sampler(len(study.get_trials(deepcopy=False)))
        self.info = StudyInfo(study, self.storage_obj, self.storage_url, self.pruner_settings)
        self._recover(study)
        done = len(study.get_trials(deepcopy=False, states=FINISHED))
        to_run = max(0, n_trials - done)
        self.hooks.study_started(self.info, directions)
        log.info(
            "study '%s' at %s: %d finished trial(s), %d to run, %d at a time; searching %s",
            study.study_name,
            redact_uri(self.storage_url),
            done,
            to_run,
            self.parallel,
            describe_space(space, self.conditions) or "nothing",
        )
        started = time.monotonic()
        self.study_trials = n_trials  # the study's total, all launchers together
        tally = self._run(study, space, fixed, to_run) if to_run else _Tally()
        searched = time.monotonic() - started
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        failure = tally.failure(self.max_failures, to_run, len(complete))
        points = []
        if self.confirm and complete and not failure:
            points = self._confirm(study, directions, fixed)
        self._report(study, objectives, directions, fixed, tally.ran, searched, points)
        if failure:
            raise SweepError(failure)
        return study.get_trials(deepcopy=False)

    def _run(
        self,
        study: optuna.Study,
        space: dict[str, BaseDistribution],
        fixed: dict[str, str],
        to_run: int,
    ) -> _Tally:
        """Launch batches of up to ``parallel`` trials until ``to_run`` finished, or
        ``max_failures`` failed; returns what the trials did. Each trial of a batch that
        ended is told, then replaced in the next batch at once: the study always holds the
        trials in flight, and each new one is sampled knowing every trial told before it."""
        tally = _Tally()
        untold: list[_Running] = []  # launched, not yet told
        queued: list[_Running] = []  # asked, for the next launch
        try:
            self._refill(study, space, fixed, to_run, tally, queued, 0)
            while queued:
                untold, queued = queued, []
                tally.ran += len(untold)
                started = time.monotonic()
                outcomes = self._launch(untold)
                while untold:
                    item, outcome = untold.pop(0), outcomes.pop(0)
                    self._finish(study, item, outcome, time.monotonic() - started)
                    tally.count(outcome)
                    self._refill(study, space, fixed, to_run, tally, queued, len(untold))
        except BaseException:
            for item in [*untold, *queued]:  # interrupted: fail them, queue them again
                self._tell(study, item.trial, TrialState.FAIL)
                if item.trial.params:
                    study.enqueue_trial(
                        dict(item.trial.params), user_attrs={"retry_of": item.trial.number}
                    )
            raise
        return tally

    def _refill(
        self,
        study: optuna.Study,
        space: dict[str, BaseDistribution],
        fixed: dict[str, str],
        to_run: int,
        tally: _Tally,
        queued: list[_Running],
        untold: int,
    ) -> None:
        """Ask trials into ``queued`` (the next batch) while it has room, the ``untold``
        trials still in flight and those queued may not reach ``to_run``, and fewer than
        ``max_failures`` failed."""
        while (
            len(queued) < self.parallel
            and tally.finished + untold + len(queued) < to_run
            and tally.failed < self.max_failures
            and self._may_ask(study)
            and has_room(study, self.study_trials)
        ):
            trial = study.ask()
            claim(trial)
            if surplus(study, trial, self.study_trials):  # another launcher took the place
                self._tell(study, trial, TrialState.FAIL)
                log.info("trial %d not run: the study has its trials", trial.number)
                break
            queued.append(_Running(trial, self._trial_overrides(study, trial, space, fixed)))

    def _may_ask(self, study: optuna.Study) -> bool:
        """False once every grid point has been taken (by a finished, failed or running trial):
        the grid sampler would only repeat one. Queued retries are always asked for."""
        if self.grid is None:
            return True
        trials = study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in trials):
            return True
        taken = {
            tuple(t.params[name] for name in self.grid)
            for t in trials
            if all(t.params.get(name, _NOT_SET) in values for name, values in self.grid.items())
        }
        return len(taken) < math.prod(len(v) for v in self.grid.values())

    def _trial_overrides(
        self,
        study: optuna.Study,
        trial: Trial,
        space: dict[str, BaseDistribution],
        fixed: dict[str, str],
    ) -> list[str]:
        """Sample the trial's parameters and build its job's overrides."""
        assert self.config is not None and self.hooks is not None
        try:
            sample(trial, space, self.conditions)
            if self.extend_space is not None:
                self.extend_space(self.config, trial)
            clash = set(trial.params) & set(fixed)
            if clash:
                raise SweepError(f"{sorted(clash)} both searched and fixed; drop one")
        except Exception as exc:
            self._tell(study, trial, TrialState.FAIL)
            if isinstance(exc, SweepError):
                raise
            raise SweepError(f"sampling trial {trial.number}: {type(exc).__name__}: {exc}") from exc
        sampled = [f"{name}={format_value(value)}" for name, value in trial.params.items()]
        overrides = [*fixed.values(), *sampled, *self.launcher_overrides]
        overrides += self.hooks.trial_overrides(self.info, trial)
        log.info("trial %d started: %s", trial.number, " ".join(sampled))
        return overrides

    def _launch(self, batch: Sequence[_Running]) -> list[_Outcome]:
        """Run the batch's jobs through the launcher, from this one thread, and read how each
        ended. Each job's number is its trial's number, so job folders stay unique across
        resumed sweeps; trial numbers that do not follow on are launched apart."""
        outcomes: list[_Outcome] = []
        for run in consecutive_runs(batch):
            try:
                returns = self.launcher.launch(
                    [item.overrides for item in run], initial_job_idx=run[0].trial.number
                )
            except Exception as exc:  # the launcher itself failed (e.g. a worker was killed)
                reason = f"{type(exc).__name__}: {exc}"
                outcomes += [_Outcome(TrialState.FAIL, reason=reason) for _ in run]
                continue
            outcomes += [self._outcome(ret) for ret in returns]
        return outcomes

    def _finish(
        self, study: optuna.Study, item: _Running, outcome: _Outcome, seconds: float
    ) -> None:
        """Tell the study how the trial's job ended, log it, and pass it on to the hooks."""
        assert self.hooks is not None
        trial = item.trial
        if outcome.report.run_id:
            trial.set_user_attr("mlflow_run_id", outcome.report.run_id)
        self._tell(study, trial, outcome.state, outcome.values)
        if outcome.state == TrialState.COMPLETE:
            shown = ", ".join(f"{v:.4g}" for v in outcome.values or [])
            log.info("trial %d complete in %.1f s: %s", trial.number, seconds, shown)
        elif outcome.state == TrialState.PRUNED:
            epochs = outcome.report.epochs
            log.info(
                "trial %d pruned after %s epoch(s) in %.1f s",
                trial.number,
                epochs if epochs is not None else "?",
                seconds,
            )
        else:
            log.warning("trial %d failed in %.1f s: %s", trial.number, seconds, outcome.reason)
        self.hooks.trial_ended(trial.number, outcome.state, outcome.report)

    def _outcome(self, ret: JobReturn) -> _Outcome:
        """How a job ended: its status and return value, unless the application's report
        on it (e.g. a pruned or diverged run) decides."""
        assert self.hooks is not None
        n_objectives = len(self.info.study.directions)
        output_dir = (
            OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir")
            if ret.hydra_cfg is not None
            else None
        )
        report = self.hooks.job_report(Path(str(output_dir)) if output_dir else None)
        if ret.status == JobStatus.FAILED:
            error = job_error(ret)
            return _Outcome(
                TrialState.FAIL, reason=f"{type(error).__name__}: {error}", report=report
            )
        if report.state is not None:
            return _Outcome(report.state, reason=report.reason, report=report)
        raw = ret.return_value
        raw_list = list(raw) if isinstance(raw, list | tuple | ListConfig) else [raw]
        try:
            values = [float(v) for v in raw_list]
        except (TypeError, ValueError):
            return _Outcome(
                TrialState.FAIL, reason=f"the job returned {raw!r}, not numbers", report=report
            )
        if len(values) != n_objectives:
            return _Outcome(
                TrialState.FAIL,
                reason=f"{len(values)} value(s) for {n_objectives} objective(s)",
                report=report,
            )
        if not all(math.isfinite(v) for v in values):
            return _Outcome(
                TrialState.FAIL,
                reason=f"no objective value: the job returned {raw!r}",
                report=report,
            )
        return _Outcome(TrialState.COMPLETE, values, report=report)

    # -------------------------------------------------------------- confirm

    def _winners(self, study: optuna.Study, directions: list[str]) -> list[FrozenTrial]:
        """What the confirm stage runs again: the best trial, or the first ``max_points``
        points of the Pareto front, best by the first objective."""
        if len(directions) == 1:
            return [study.best_trial]
        sign = -1.0 if directions[0] == "maximize" else 1.0
        front = sorted(study.best_trials, key=lambda t: (sign * t.values[0], t.number))
        return front[: self.confirm_points]

    def _confirm(
        self, study: optuna.Study, directions: list[str], fixed: dict[str, str]
    ) -> list[_Point]:
        """Run each winner's configuration again with fresh seeds, through the launcher, as
        jobs the study is not told of; returns the points with their runs (none when the
        application cannot confirm)."""
        assert self.hooks is not None
        winners = self._winners(study, directions)
        holders = claim_confirmations(study, [t.number for t in winners])
        mine = [t for t in winners if holders[t.number] == launcher_id()]
        for trial in winners:
            if trial not in mine:
                log.info(
                    "trial %d is confirmed by launcher %s, which shares this study; its "
                    "summary shows the confirmation (or launch this search again once it ended)",
                    trial.number,
                    holders[trial.number],
                )
        try:
            return self._confirm_runs(study, mine, fixed)
        finally:
            release_confirmations(study, [t.number for t in mine])

    def _confirm_runs(
        self, study: optuna.Study, winners: list[FrozenTrial], fixed: dict[str, str]
    ) -> list[_Point]:
        """Launch the confirm jobs of ``winners`` (claimed by this launcher) and read them."""
        assert self.hooks is not None
        points, jobs = [], []
        if not winners:
            return []
        for trial in winners:
            extra = self.hooks.confirm_overrides(self.info, trial, self.confirm_seeds)
            if not extra:
                log.warning(
                    "no confirm stage: %s names no fresh seeds to run the winner with",
                    type(self.hooks).__name__,
                )
                return []
            point = _Point(trial)
            for own in extra:
                taken = {override_key(o) for o in own}
                base = [
                    *(v for k, v in fixed.items() if k not in taken),
                    *(
                        f"{k}={format_value(v)}"
                        for k, v in trial.params.items()
                        if override_key(k) not in taken
                    ),
                ]
                overrides = [
                    *base,
                    *self.launcher_overrides,
                    f"hydra.sweep.subdir={CONFIRM_SUBDIR}",
                    *own,
                ]
                jobs.append((point, own, overrides))
            points.append(point)
        first = 1 + max(t.number for t in study.get_trials(deepcopy=False))
        log.info(
            "confirm stage: %d run(s) of %s with fresh seeds (jobs %d-%d), not told to the study",
            len(jobs),
            ", ".join(f"trial {p.trial.number}" for p in points),
            first,
            first + len(jobs) - 1,
        )
        try:
            returns: list[JobReturn | None] = list(
                self.launcher.launch([o for _, _, o in jobs], initial_job_idx=first)
            )
            error = ""
        except Exception as exc:  # the launcher itself failed
            returns, error = [None] * len(jobs), f"{type(exc).__name__}: {exc}"
        for (point, own, _), ret in zip(jobs, returns, strict=True):
            run = self._confirmed(point.trial.number, own, ret, error)
            point.runs.append(run)
            if run.state != TrialState.COMPLETE:
                log.warning(
                    "confirm run of trial %d (%s) failed: %s",
                    point.trial.number,
                    " ".join(own),
                    run.reason,
                )
        return points

    def _confirmed(
        self, number: int, own: list[str], ret: JobReturn | None, error: str
    ) -> _Confirmed:
        """How one confirm job ended, as its hooks read it (its return value is not used:
        the measures are)."""
        assert self.hooks is not None
        if ret is None:
            return _Confirmed(own, TrialState.FAIL, reason=error)
        output_dir = (
            OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir")
            if ret.hydra_cfg is not None
            else None
        )
        folder = Path(str(output_dir)) if output_dir else None
        report = self.hooks.job_report(folder)
        measures = self.hooks.measures(folder)
        state, reason = TrialState.COMPLETE, ""
        if ret.status == JobStatus.FAILED:
            err = job_error(ret)
            state, reason = TrialState.FAIL, f"{type(err).__name__}: {err}"
        elif report.state is not None:
            state, reason = TrialState.FAIL, report.reason or f"the run ended {report.state.name}"
        elif not measures:
            state, reason = TrialState.FAIL, "the job left no measures"
        self.hooks.confirm_ended(number, report)
        return _Confirmed(own, state, measures, report.run_id, reason)

    # -------------------------------------------------------------- results

    def _report(
        self,
        study: optuna.Study,
        objectives: list[str] | None,
        directions: list[str],
        fixed: dict[str, str],
        ran: int,
        seconds: float,
        points: Sequence[_Point] = (),
    ) -> None:
        """Write ``optimization_results.yaml``, ``trials.csv``, ``param_importances.csv`` and
        (after a confirm stage) ``confirmation.csv``; print the best trial or the Pareto front,
        the top trials and the confirmation."""
        assert self.hooks is not None
        names = objectives or [f"value{i}" for i in range(len(directions))]
        results, lines = self._summary(study, names, directions, ran, seconds)
        rerun = " ".join(v for k, v in fixed.items() if not k.startswith("hydra"))
        if len(directions) > 1:
            best, best_lines = _pareto_front(study, names, directions)
        elif results["n_complete"]:
            best, best_lines = _best_trial(study, names[0], directions[0], rerun)
        else:
            best, best_lines = {}, ["No complete trial yet: no best parameters."]
        results.update(best)
        lines += best_lines
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        files = []
        confirm_lines: list[str] = []
        if points:
            confirm_lines, results["confirmation"], summary = self._confirmation(
                points, names, directions
            )
            confirm_path = self.sweep_dir / CONFIRM_FILE
            confirmation_table(points, names).to_csv(confirm_path, index=False)
            files.append(confirm_path)
            (self.sweep_dir / CONFIRMATION_FILE).write_text("\n".join(confirm_lines[1:]) + "\n")
            self.hooks.confirmation_finished(summary)
        path = self.sweep_dir / RESULTS_FILE
        OmegaConf.save(OmegaConf.create(results), path)
        table = trials_table(study, names, directions)
        table_path = self.sweep_dir / TRIALS_FILE
        table.to_csv(table_path, index=False)
        importances = param_importances(study, names[0])
        if importances is not None:
            importances_path = self.sweep_dir / IMPORTANCES_FILE
            importances.to_csv(importances_path, index=False)
            files.append(importances_path)
        lines += _top_trials(table, names[0], directions[0], table_path)
        lines += confirm_lines
        if self.warning:
            lines += ["", f"WARNING: {self.warning}", ""]
        lines.append(f"Results: {path}")
        print("\n".join(lines), flush=True)
        self.hooks.study_finished([path, table_path, *files], results.get("best_value"))

    def _summary(
        self, study: optuna.Study, names: list[str], directions: list[str], ran: int, seconds: float
    ) -> tuple[dict[str, Any], list[str]]:
        """The study's trial counts: the results file's fields, and the report's first lines."""
        trials = study.get_trials(deepcopy=False)
        counts = {s: sum(t.state == s for t in trials) for s in TrialState}
        results: dict[str, Any] = {
            "name": "optuna",
            "study_name": study.study_name,
            "storage": redact_uri(self.storage_url),
            "objectives": names,
            "directions": directions,
            "n_complete": counts[TrialState.COMPLETE],
            "n_pruned": counts[TrialState.PRUNED],
            "n_failed": counts[TrialState.FAIL],
        }
        head = (
            f"Study '{study.study_name}' at {redact_uri(self.storage_url)}: "
            f"{counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]} finished trials "
            f"({counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} pruned), "
            f"{counts[TrialState.FAIL]} failed; {ran} run by this sweep in {seconds:.0f} s"
        )
        return results, ["", head]

    def _confirmation(
        self, points: Sequence[_Point], names: Sequence[str], directions: Sequence[str]
    ) -> tuple[list[str], list[dict[str, Any]], dict[str, float]]:
        """The confirm stage's summary: the lines printed, the entries of the results file,
        and the winner's numbers by name (logged on the parent run). The selection optimism
        is how much better the search's value of the first objective looked than the
        confirmation's mean of its held-out measure (or, with none, of the objective itself)."""
        assert self.hooks is not None
        held = self.hooks.held_out(names[0])
        measured = [*names, *([held] if held and held not in names else [])]
        reference = held or names[0]
        sign = 1.0 if directions[0] == "maximize" else -1.0
        lines, entries, summary = ["", "Confirmation (runs the study was not told of):"], [], {}
        for index, point in enumerate(points):
            trial = point.trial
            stats = {name: point.stat(name) for name in measured}
            ref = stats[reference]
            optimism = sign * (trial.values[0] - ref.mean) if ref is not None else None
            seeds = " ".join(" ".join(r.overrides) for r in point.runs)
            ok = len(point.runs) - point.failed
            lines.append(
                f"  trial {trial.number}'s configuration with {len(point.runs)} fresh seed(s) "
                f"({seeds}): {ok} finished" + (f", {point.failed} failed" if point.failed else "")
            )
            for name, value in zip(names, trial.values, strict=True):
                lines.append(
                    f"    search   {name:<18} {value:.4f}  (trial {trial.number}, one run)"
                )
            for name in measured:
                where = "  <- data the search never saw" if name == held else ""
                lines.append(f"    confirm  {name:<18} {format_stat(stats[name])}{where}")
            if optimism is not None:
                lines.append(
                    f"    selection optimism {optimism:+.4f}  (search {names[0]} "
                    f"{'−' if sign > 0 else 'vs'} confirmation {reference} mean"
                    f"{'' if sign > 0 else ', sign: better in the search'})"
                )
            entry: dict[str, Any] = {
                "trial": trial.number,
                "params": dict(trial.params),
                "runs": len(point.runs),
                "failed": point.failed,
                "jobs": [" ".join(r.overrides) for r in point.runs],
                "search": dict(zip(names, trial.values, strict=True)),
                "confirm": {
                    name: (
                        {"mean": st.mean, "ci95": st.half, "n": st.n} if st is not None else None
                    )
                    for name, st in stats.items()
                },
                "held_out": held,
                "selection_optimism": optimism,
            }
            entries.append(entry)
            if index == 0:  # the winner's numbers, for the parent run
                summary = {f"search_{names[0]}": float(trial.values[0])}
                for name, st in stats.items():
                    if st is not None:
                        summary[f"confirm_{name}_mean"] = st.mean
                        if st.half is not None:
                            summary[f"confirm_{name}_ci95"] = st.half
                if optimism is not None:
                    summary["selection_optimism"] = optimism
                summary["confirm_runs"] = float(ok)
        return lines, entries, summary


def job_error(ret: JobReturn) -> Exception:
    """The exception a failed job raised. ``JobReturn.return_value`` re-raises it after
    printing the job's overrides to stderr (the study's storage URL among them); that line is
    kept out of the output, and the sweeper logs the error itself."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            value = ret.return_value
    except Exception as exc:
        return exc
    return RuntimeError(f"the job failed, returning {value!r}")


def override_key(override: str) -> str:
    """The config key an override (or a parameter name) sets: ``seed`` of ``+seed=3``."""
    return override.split("=", 1)[0].lstrip("+~")


def format_stat(stat: Any) -> str:
    """``0.9650 ± 0.0080 (mean ± 95 % CI, n=5)``; one run: its value; none: ``n/a``."""
    if stat is None:
        return "n/a (no run finished)"
    if stat.half is None:
        return f"{stat.mean:.4f} (one run: no interval)"
    return f"{stat.mean:.4f} ± {stat.half:.4f}  (mean ± 95 % CI, n={stat.n})"


def confirmation_table(points: Sequence[_Point], names: Sequence[str]) -> pd.DataFrame:
    """One row per confirm job: the trial it confirms, its overrides, state, the search's
    value of each objective for that trial, the job's measures and its MLflow run id."""
    import pandas as pd

    rows = []
    for point in points:
        for run in point.runs:
            row: dict[str, Any] = {
                "trial": point.trial.number,
                "overrides": " ".join(run.overrides),
                "state": run.state.name,
            }
            row.update({f"search_{n}": v for n, v in zip(names, point.trial.values, strict=True)})
            row.update(run.measures)
            row["mlflow_run_id"] = run.run_id or ""
            rows.append(row)
    return pd.DataFrame(rows)


#: How the report marks an objective's direction.
ARROWS = {"maximize": "↑", "minimize": "↓"}


def _best_trial(
    study: optuna.Study, name: str, direction: str, rerun: str
) -> tuple[dict[str, Any], list[str]]:
    """A single-objective study's best trial (it has a complete one): the results file's fields
    and the report's lines, with the command that runs it alone (``rerun``: the sweep's fixed
    overrides)."""
    best = study.best_trial
    params = " ".join(f"{k}={format_value(v)}" for k, v in best.params.items())
    fields = {"best_trial": best.number, "best_value": best.value, "best_params": dict(best.params)}
    return fields, [
        f"Best trial {best.number}: {name} {ARROWS[direction]} = {best.value:.4f}",
        f"Best parameters: {params}",
        f"Run it alone: python train.py {rerun} {params}".rstrip(),
    ]


def _pareto_front(
    study: optuna.Study, names: list[str], directions: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """A multi-objective study's Pareto front: the results file's ``solutions`` and the
    report's lines, one trial each."""
    front = sorted(study.best_trials, key=lambda t: t.values)
    solutions = [
        {"number": t.number, "params": dict(t.params), "values": list(t.values)} for t in front
    ]
    header = ", ".join(f"{n} {ARROWS[d]}" for n, d in zip(names, directions, strict=True))
    lines = [f"Pareto front: {len(front)} trial(s) ({header})"]
    for t in front:
        shown = "  ".join(f"{n} {v:.4g}" for n, v in zip(names, t.values, strict=True))
        params = " ".join(f"{k}={format_value(v)}" for k, v in t.params.items())
        lines.append(f"  trial {t.number}: {shown}  {params}")
    return {"solutions": solutions}, lines


def _top_trials(table: pd.DataFrame, name: str, direction: str, table_path: Path) -> list[str]:
    """The report's lines for the five best finished trials of ``table`` (none: no lines)."""
    top = table[table["state"].isin(["COMPLETE", "PRUNED"])].head(5) if len(table) else table
    if not len(top):
        return []
    shown = top.drop(columns=[c for c in ("mlflow_run_id", "retry_of") if c in top])
    text = shown.to_string(index=False, float_format=lambda v: f"{v:.4g}")
    return [
        "",
        f"Top trials by {name} {ARROWS[direction]} (every trial in {table_path}):",
        *("  " + line.rstrip() for line in text.splitlines()),
        "",
    ]


def param_importances(study: optuna.Study, objective: str) -> pd.DataFrame | None:
    """Optuna's parameter importances (fANOVA, seeded) for the first objective over the
    complete trials: columns param, importance, objective; None when they cannot be computed
    (fewer than two complete trials, nothing varied)."""
    import pandas as pd

    multi = len(study.directions) > 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = optuna.importance.get_param_importances(
                study,
                evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
                target=(lambda t: t.values[0]) if multi else None,
            )
    except Exception as exc:  # too few trials, or a space Optuna cannot weigh
        log.info("no parameter importances: %s", str(exc).splitlines()[0] if str(exc) else exc)
        return None
    if not found:
        return None
    return pd.DataFrame(
        {"param": list(found), "importance": list(found.values()), "objective": objective}
    )


def consecutive_runs(batch: Sequence[_Running]) -> list[list[_Running]]:
    """``batch`` split where trial numbers do not follow on (one run when they all do)."""
    runs: list[list[_Running]] = []
    for item in batch:
        if runs and item.trial.number == runs[-1][-1].trial.number + 1:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def trials_table(
    study: optuna.Study, names: Sequence[str], directions: Sequence[str]
) -> pd.DataFrame:
    """Every trial of ``study`` (``Study.trials_dataframe``) with columns trial, state, the
    objectives by name, the parameters and user attributes (the MLflow run id last); best
    first by the first objective: the complete trials, then the pruned (by their last reported
    value), then the rest."""
    frame = study.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs"))
    # which launcher ran a trial is the sweeper's bookkeeping, not a result
    frame = frame.drop(columns=[f"user_attrs_{LAUNCHER_ATTR}"], errors="ignore")
    if frame.empty:
        return frame.reindex(columns=["trial", "state", *names])
    values = ["value"] if len(names) == 1 else [f"values_{i}" for i in range(len(names))]
    renamed = {"number": "trial", **dict(zip(values, names, strict=True))}
    for column in frame.columns:
        for prefix in ("params_", "user_attrs_"):
            if column.startswith(prefix):
                renamed[column] = column[len(prefix) :]
    frame = frame.rename(columns=renamed)
    first = frame[names[0]] if names[0] in frame else float("nan")
    sign = -1.0 if directions[0] == "maximize" else 1.0
    frame = frame.assign(
        _rank=frame["state"].map({"COMPLETE": 0, "PRUNED": 1}).fillna(2),
        _key=(sign * first).fillna(math.inf) if names[0] in frame else math.inf,
    )
    frame = frame.sort_values(["_rank", "_key", "trial"]).drop(columns=["_rank", "_key"])
    last = [c for c in frame.columns if c == "mlflow_run_id"]
    order = ["trial", "state", *[n for n in names if n in frame]]
    rest = [c for c in frame.columns if c not in order and c not in last]
    return frame[[*order, *rest, *last]].reset_index(drop=True)
