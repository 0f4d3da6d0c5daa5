"""A trial's jobs: its parameters sampled (conditions applied, the application's extension of
the space called), and the overrides of its one job, or of one job per seed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from omegaconf import DictConfig
from optuna.distributions import BaseDistribution
from optuna.trial import Trial, TrialState

from ._jobs import Running, tell
from ._space import Condition, SweepError, format_value, sample
from .seeds import SEEDS_ATTR
from .trial_hooks import StudyInfo, TrialHooks

log = logging.getLogger("lrdecay.optuna")


class TrialJobs:
    """Builds each trial's jobs: samples ``space`` under ``conditions`` (then ``extend``, the
    ``custom_search_space`` function named ``extend_name``), adds the ``fixed`` overrides, the
    launcher's and the hooks', and runs one job per seed of ``seeds`` at ``seed_key`` (none:
    one job, the config's seed)."""

    def __init__(
        self,
        config: DictConfig,
        hooks: TrialHooks,
        info: StudyInfo,
        space: dict[str, BaseDistribution],
        fixed: dict[str, str],
        conditions: dict[str, Condition],
        launcher_overrides: Sequence[str],
        extend: Callable[[DictConfig, Trial], Any] | None = None,
        extend_name: str | None = None,
    ) -> None:
        self.config, self.hooks, self.info = config, hooks, info
        self.space, self.fixed, self.conditions = space, fixed, conditions
        self.launcher_overrides = list(launcher_overrides)
        self.extend, self.extend_name = extend, extend_name
        self.seeds, self.seed_key = list(info.seeds), info.seed_key

    def _sample(self, study: optuna.Study, trial: Trial) -> None:
        """Sample the trial's parameters; a failure fails the trial and stops the search."""
        try:
            sample(trial, self.space, self.conditions)
            if self.extend is not None:
                self.extend(self.config, trial)
            clash = set(trial.params) & set(self.fixed)
            if clash:
                raise SweepError(f"{sorted(clash)} both searched and fixed; drop one")
            if self.seeds and self.seed_key in trial.params:
                raise SweepError(
                    f"{self.extend_name} suggests {self.seed_key}, which "
                    "seeds_per_trial sets in every trial's jobs; drop one"
                )
        except Exception as exc:
            tell(study, trial, TrialState.FAIL)
            if isinstance(exc, SweepError):
                raise
            raise SweepError(f"sampling trial {trial.number}: {type(exc).__name__}: {exc}") from exc

    def build(self, study: optuna.Study, trial: Trial) -> Running:
        """Sample the trial's parameters and build its jobs' overrides: one job, or one per
        seed (each in its own folder ``<trial>-seed<seed>``)."""
        self._sample(study, trial)
        sampled = [f"{name}={format_value(value)}" for name, value in trial.params.items()]
        kept = [v for k, v in self.fixed.items() if not (self.seeds and k == self.seed_key)]
        overrides = [*kept, *sampled, *self.launcher_overrides]
        overrides += self.hooks.trial_overrides(self.info, trial)
        log.info("trial %d started: %s", trial.number, " ".join(sampled))
        if not self.seeds:
            return Running(trial, [overrides])
        trial.set_user_attr(SEEDS_ATTR, self.seeds)  # before launch: the jobs read it
        jobs = [
            [
                *overrides,
                f"{self.seed_key}={seed}",
                f"hydra.sweep.subdir={trial.number}-seed{seed}",
            ]
            for seed in self.seeds
        ]
        return Running(trial, jobs, list(self.seeds))
