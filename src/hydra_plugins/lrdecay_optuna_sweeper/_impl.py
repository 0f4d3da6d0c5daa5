"""The Optuna sweeper's search: its settings checked, the study opened, its stages run.

Everything only the application knows (its config keys, its jobs' files, MLflow) goes through
the :class:`~.trial_hooks.TrialHooks` named by ``hydra.sweeper.trial_hooks``. The confirm stage is
``_confirm``'s, the result files ``_results``', the study's opening ``_study``'s; with
``seeds_per_trial`` > 1 a trial is one job per seed, scored together (``seeds``). This class
sets the search up and runs its stages; the loop is ``_loop``'s, a trial's jobs
``_trial_jobs``', launching them ``_launch``'s.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_class, get_method
from omegaconf import DictConfig, ListConfig, OmegaConf
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from . import _study
from ._confirm import ConfirmStage, Point, winners
from ._jobs import FINISHED, Tally
from ._launch import BatchLauncher, make_launcher
from ._loop import SearchLoop
from ._results import study_head, write_results
from ._space import (
    Condition,
    SearchFailed,
    SweepError,
    conditional_space,
    describe_space,
    parse_search_space,
    resolve_directions,
)
from ._trial_jobs import TrialJobs
from .redact import redact_uri
from .seeds import Scoring
from .trial_hooks import StudyInfo, TrialHooks

log = logging.getLogger("lrdecay.optuna")


def _plain(node: Any, default: dict[str, Any]) -> dict[str, Any]:
    """A config node (or mapping, or None) as a plain dict."""
    if isinstance(node, DictConfig):
        return dict(OmegaConf.to_container(node, resolve=True))  # type: ignore[arg-type]
    return dict(node or default)


def make_hooks(dotted: str | None, config: DictConfig, sweep: Path, base: Path) -> TrialHooks:
    """The application's hooks named by ``dotted`` (the plain ones when null)."""
    factory: type[TrialHooks] = TrialHooks
    if dotted:
        try:
            factory = get_class(dotted)
        except Exception as exc:
            raise SweepError(f"hydra.sweeper.trial_hooks: cannot import {dotted} ({exc})") from exc
        if not issubclass(factory, TrialHooks):
            raise SweepError(
                f"hydra.sweeper.trial_hooks: {dotted} is not a subclass of "
                f"{TrialHooks.__module__}.TrialHooks"
            )
    return factory(config, sweep, base)


def search_space(
    params: Mapping[str, Any], conditions: Mapping[str, str], arguments: list[str]
) -> tuple[dict[str, BaseDistribution], dict[str, str], dict[str, Condition]]:
    """The searched parameters (conditions applied, parents first), the fixed overrides and
    the conditions."""
    lines = [f"{k}={v}" for k, v in params.items()] + list(arguments)
    space, fixed = parse_search_space(lines)
    searched = list(space)
    space, checked = conditional_space(conditions, space, fixed)
    for name in searched:
        if name not in space:
            log.info("%s not searched: its condition's parent is set to another value", name)
    return space, fixed, checked


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
        seeds_per_trial: int = 1,
        trial_score: str = "mean",
        seed_key: str = "seed",
    ) -> None:
        self.sampler = sampler
        self.pruner_settings = _plain(pruner, {"name": "none"})
        self.direction = (
            OmegaConf.to_container(direction, resolve=True)
            if isinstance(direction, ListConfig)
            else direction
        )
        self.storage, self.study_name = storage, study_name
        self.n_trials = self.study_trials = n_trials  # study_trials: all launchers, per search
        self.n_jobs, self.max_failures = n_jobs, max_failures
        self.params = {str(k): v for k, v in (params or {}).items()}
        self.custom_search_space = custom_search_space
        self.raw_conditions = {str(k): v for k, v in (conditions or {}).items()}
        self.conditions: dict[str, Condition] = {}
        self.trial_hooks = trial_hooks
        confirm_settings = _plain(confirm, {})
        self.confirm = bool(confirm_settings.get("enabled", False))
        self.confirm_seeds = int(confirm_settings.get("seeds", 5))
        self.confirm_points = int(confirm_settings.get("max_points", 3))
        self.scoring = Scoring(int(seeds_per_trial), str(trial_score))
        self.seed_key = str(seed_key)
        self.seeds: list[int] = []  # every trial's seeds (none: one job, the config's seed)
        self.extend_space: Any = None
        self.warning: str | None = None
        self.config: DictConfig | None = None
        self.hooks: TrialHooks | None = None
        self.grid: dict[str, list[Any]] | None = None

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
        # a trial's seeds run side by side: the pool holds each trial's jobs
        pool = self.parallel * max(1, self.scoring.seeds)
        self.launcher, self.launcher_overrides = make_launcher(
            config, pool, hydra_context, task_function
        )

    def sweep(self, arguments: list[str]) -> list[FrozenTrial]:
        """Run the search and report it; errors end with one message, never a traceback."""
        try:
            return self._sweep(arguments)
        except SweepError as exc:
            self._stopped("FAILED")
            print(f"lrdecay: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(1 if isinstance(exc, SearchFailed) else 2) from None
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

    def _check(self) -> TrialHooks:
        """The hooks, once the settings and the application's protocol checks pass."""
        assert self.config is not None
        hooks = self.hooks = make_hooks(
            self.trial_hooks, self.config, self.sweep_dir, self.base_dir
        )
        if self.n_trials < 0 or self.n_jobs < 1 or self.max_failures < 1:
            raise SweepError("hydra.sweeper: n_trials must be >= 0, n_jobs and max_failures >= 1")
        if self.confirm and (self.confirm_seeds < 1 or self.confirm_points < 1):
            raise SweepError("hydra.sweeper.confirm: seeds and max_points must be >= 1")
        problem = self.scoring.problem() or hooks.search_problem(self.confirm)
        if problem:
            raise SweepError(problem)
        self.seeds = self._trial_seeds()
        self.warning = hooks.search_warning(self.confirm)
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
        return hooks

    def _trial_seeds(self) -> list[int]:
        """Every trial's seeds: the config's seed at ``seed_key`` and the ones after it (none
        with one seed per trial)."""
        assert self.config is not None
        if self.scoring.seeds == 1:
            return []
        base = OmegaConf.select(self.config, self.seed_key, default=None)
        if not isinstance(base, int) or isinstance(base, bool):
            raise SweepError(
                f"hydra.sweeper.seeds_per_trial={self.scoring.seeds} runs each trial with "
                f"seeds from the config's integer '{self.seed_key}', which this config "
                f"{'lacks' if base is None else f'sets to {base!r}'}. Fix: "
                "hydra.sweeper.seed_key=<the key that seeds your task>"
            )
        return self.scoring.seeds_from(base)

    def _open(self, directions: list[str], objectives: list[str] | None) -> optuna.Study:
        """Open the study (its sampler seeded for its size), recover a killed sweep's trials,
        and tell the hooks it started."""
        assert self.config is not None and self.hooks is not None
        if self.pruner_settings.get("name", "none") != "none" and len(directions) > 1:
            log.warning(
                "Optuna cannot prune multi-objective studies: pruner %s is off",
                self.pruner_settings["name"],
            )
            self.pruner_settings = {"name": "none"}
        name = self.study_name or self.hooks.default_study_name()
        url = _study.storage_url(self.storage, bool(self.study_name), self.base_dir, self.sweep_dir)
        storage, study = _study.open_checked(
            url, name, self.pruner_settings, directions, objectives, self.scoring
        )
        offset = len(study.get_trials(deepcopy=False))
        study.sampler = _study.make_sampler(self.sampler, self.config, self.grid, offset)
        self.info = StudyInfo(
            study, storage, url, self.pruner_settings, self.seed_key, tuple(self.seeds)
        )
        _study.recover(study)
        self.hooks.study_started(self.info, directions)
        return study

    def _sweep(self, arguments: list[str]) -> list[FrozenTrial]:
        hooks = self._check()
        space, fixed, self.conditions = search_space(self.params, self.raw_conditions, arguments)
        if self.seeds and self.seed_key in space:
            raise SweepError(
                f"{self.seed_key} is searched, and seeds_per_trial={self.scoring.seeds} sets it "
                "in every trial's jobs; search it or score trials over seeds, not both"
            )
        objectives = hooks.objectives()
        directions = resolve_directions(self.direction, objectives, hooks.objective_directions())
        self.grid, n_trials = _study.grid_of(self.sampler, space, self.conditions, self.n_trials)
        study = self._open(directions, objectives)
        done = len(study.get_trials(deepcopy=False, states=FINISHED))
        to_run = max(0, n_trials - done)
        log.info(
            "study '%s' at %s: %d finished trial(s), %d to run, %d at a time%s; searching %s",
            study.study_name,
            redact_uri(self.info.storage_url),
            done,
            to_run,
            self.parallel,
            f", each the {self.scoring.describe()} ({self.seed_key}={self.seeds})"
            if self.seeds
            else "",
            describe_space(space, self.conditions) or "nothing",
        )
        started = time.monotonic()
        self.study_trials = n_trials  # the study's total, all launchers together
        tally = self._loop(study, space, fixed, directions).run(to_run) if to_run else Tally()
        searched = time.monotonic() - started
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        failure = tally.failure(self.max_failures, to_run, len(complete))
        points: list[Point] = []
        if self.confirm and complete and not failure:
            stage = ConfirmStage(
                self.launcher, hooks, self.info, self.launcher_overrides, self.confirm_seeds
            )
            points = stage.run(winners(study, directions, self.confirm_points), fixed)
        names = objectives or [f"value{i}" for i in range(len(directions))]
        rerun = " ".join(v for k, v in fixed.items() if not k.startswith("hydra"))
        head = study_head(study, self.info.storage_url, tally.ran, searched)
        write_results(
            study,
            self.sweep_dir,
            hooks,
            names,
            directions,
            rerun,
            self.info.storage_url,
            head,
            points,
            self.warning,
            self.scoring,
        )
        if failure:
            raise SearchFailed(failure)
        return study.get_trials(deepcopy=False)

    def _loop(
        self,
        study: optuna.Study,
        space: dict[str, BaseDistribution],
        fixed: dict[str, str],
        directions: list[str],
    ) -> SearchLoop:
        """The search loop of this search, its trials' jobs built and launched by its
        collaborators."""
        assert self.config is not None and self.hooks is not None
        jobs = TrialJobs(
            self.config,
            self.hooks,
            self.info,
            space,
            fixed,
            self.conditions,
            self.launcher_overrides,
            self.extend_space,
            self.custom_search_space,
        )
        batches = BatchLauncher(
            self.launcher, self.hooks, self.scoring, len(self.seeds), directions
        )
        return SearchLoop(
            study,
            self.info.storage,
            jobs,
            batches,
            self.hooks,
            self.scoring,
            self.parallel,
            self.max_failures,
            self.study_trials,
            self.grid,
        )
