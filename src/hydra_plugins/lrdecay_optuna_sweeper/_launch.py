"""Trials' jobs through Hydra's launcher: the launcher built for the sweep's pool, and a batch of
trials launched from the sweeper's one thread, how each ended read back (a trial of K seeds
scored over its K jobs)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, read_write
from optuna.trial import TrialState

from ._jobs import Outcome, Running, combine, consecutive_runs, read_outcome
from .seeds import Scoring
from .trial_hooks import TrialHooks


def make_launcher(
    config: DictConfig, parallel: int, hydra_context: HydraContext, task_function: TaskFunction
) -> tuple[Launcher, list[str]]:
    """The sweep's launcher, and the overrides its jobs need: a joblib launcher's pool is
    sized to ``parallel`` jobs, one worker each."""
    if "n_jobs" not in config.hydra.launcher:
        launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        return launcher, []
    launcher_config = copy.deepcopy(config)
    with read_write(launcher_config.hydra.launcher):
        launcher_config.hydra.launcher.n_jobs = parallel
    launcher = Plugins.instance().instantiate_launcher(
        config=launcher_config, hydra_context=hydra_context, task_function=task_function
    )
    return launcher, [f"hydra.launcher.n_jobs={parallel}"]


class BatchLauncher:
    """Launches batches of trials and reads how each ended: ``per_trial`` jobs a trial (its
    seeds), scored as ``scoring`` says for objectives in ``directions``."""

    def __init__(
        self,
        launcher: Launcher,
        hooks: TrialHooks,
        scoring: Scoring,
        per_trial: int,
        directions: Sequence[str],
    ) -> None:
        self.launcher, self.hooks, self.scoring = launcher, hooks, scoring
        self.per_trial = max(1, per_trial)
        self.directions = list(directions)

    def launch(self, batch: list[Running]) -> list[Outcome]:
        """Run the batch's jobs through the launcher and read how each trial ended. A trial's
        job number is its trial's number (with K seeds, trial × K plus the seed's index), so job
        numbers stay unique across resumed sweeps; trial numbers that do not follow on are
        launched apart."""
        outcomes: list[Outcome] = []
        for run in consecutive_runs(batch):
            try:
                returns = iter(
                    self.launcher.launch(
                        [job for item in run for job in item.jobs],
                        initial_job_idx=run[0].trial.number * self.per_trial,
                    )
                )
            except Exception as exc:  # the launcher itself failed (e.g. a worker was killed)
                reason = f"{type(exc).__name__}: {exc}"
                outcomes += [Outcome(TrialState.FAIL, reason=reason) for _ in run]
                continue
            for item in run:
                n = len(self.directions)
                parts = [read_outcome(next(returns), self.hooks, n) for _ in item.jobs]
                if item.seeds:
                    outcomes.append(combine(parts, item.seeds, self.scoring, self.directions))
                else:
                    outcomes += parts
        return outcomes
