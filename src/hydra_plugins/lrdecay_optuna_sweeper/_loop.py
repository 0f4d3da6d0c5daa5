"""The search loop: batches of up to ``parallel`` trials asked, launched and told.

Why batches from one thread: Hydra's ``Launcher.launch`` blocks until its whole batch ends, and
neither the basic nor the joblib launcher says it may be called from several threads at once
(both reconfigure logging and Hydra's global state on every call; the joblib launcher also
writes its settings dict). So one thread does everything: it asks a batch of ``n_jobs`` trials,
launches them in one call (the joblib launcher runs them in its pool of ``n_jobs`` workers),
then tells the study how each ended, asking each one's replacement for the next batch right
after telling it. A batch waits for its slowest trial; ``benchmarks/sweeper_utilisation.py``
measures what that costs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from . import _study
from ._jobs import Running, Tally, finish, tell
from ._launch import BatchLauncher
from ._shared import claim, has_room, surplus
from ._trial_jobs import TrialJobs
from .seeds import Scoring
from .trial_hooks import TrialHooks

log = logging.getLogger("lrdecay.optuna")


class SearchLoop:
    """Runs a study's trials: ``jobs`` builds each one's jobs, ``batches`` launches them; at
    most ``parallel`` at a time, until the study holds ``study_trials`` (all launchers
    together) or ``max_failures`` failed; ``grid``: the grid sampler's points, if it runs."""

    def __init__(
        self,
        study: optuna.Study,
        storage: BaseStorage,
        jobs: TrialJobs,
        batches: BatchLauncher,
        hooks: TrialHooks,
        scoring: Scoring,
        parallel: int,
        max_failures: int,
        study_trials: int,
        grid: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        self.study, self.storage, self.jobs, self.batches = study, storage, jobs, batches
        self.hooks, self.scoring = hooks, scoring
        self.parallel, self.max_failures = parallel, max_failures
        self.study_trials, self.grid = study_trials, grid

    def run(self, to_run: int) -> Tally:
        """Launch batches until ``to_run`` trials finished, or ``max_failures`` failed; returns
        what the trials did. Each trial of a batch that ended is told, then replaced in the
        next batch at once: the study always holds the trials in flight, and each new one is
        sampled knowing every trial told before it."""
        tally = Tally()
        untold: list[Running] = []  # launched, not yet told
        queued: list[Running] = []  # asked, for the next launch
        try:
            self._refill(to_run, tally, queued, 0)
            while queued:
                untold, queued = queued, []
                tally.ran += len(untold)
                started = time.monotonic()
                outcomes = self.batches.launch(untold)
                while untold:
                    item, outcome = untold.pop(0), outcomes.pop(0)
                    seconds = time.monotonic() - started
                    finish(
                        self.study, self.storage, item, outcome, seconds, self.hooks, self.scoring
                    )
                    tally.count(outcome)
                    self._refill(to_run, tally, queued, len(untold))
        except BaseException:
            for item in [*untold, *queued]:  # interrupted: fail them, queue them again
                tell(self.study, item.trial, TrialState.FAIL)
                if item.trial.params:
                    self.study.enqueue_trial(
                        dict(item.trial.params), user_attrs={"retry_of": item.trial.number}
                    )
            raise
        return tally

    def _refill(self, to_run: int, tally: Tally, queued: list[Running], untold: int) -> None:
        """Ask trials into ``queued`` (the next batch) while it has room, the ``untold``
        trials still in flight and those queued may not reach ``to_run``, and fewer than
        ``max_failures`` failed."""
        study = self.study
        while (
            len(queued) < self.parallel
            and tally.finished + untold + len(queued) < to_run
            and tally.failed < self.max_failures
            and _study.may_ask(study, self.grid)
            and has_room(study, self.study_trials)
        ):
            trial = study.ask()
            claim(trial)
            if surplus(study, trial, self.study_trials):  # another launcher took the place
                tell(study, trial, TrialState.FAIL)
                log.info("trial %d not run: the study has its trials", trial.number)
                break
            queued.append(self.jobs.build(study, trial))
