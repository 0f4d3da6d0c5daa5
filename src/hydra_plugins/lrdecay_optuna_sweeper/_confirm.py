"""The confirm stage: the search's winner run again with fresh seeds, as jobs the study is never
told of, so that the summary can set their mean ± 95 % CI against the search's value."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from optuna.trial import FrozenTrial, TrialState

from ._jobs import job_error, output_dir
from ._shared import claim_confirmations, launcher_id, release_confirmations
from ._space import format_value
from .files import CONFIRM_SUBDIR
from .stats import Stat
from .trial_hooks import StudyInfo, TrialHooks

log = logging.getLogger("lrdecay.optuna")


@dataclass
class Confirmed:
    """One job of the confirm stage: the overrides that made it, how it ended and its
    measures (by objective name)."""

    overrides: list[str]
    state: TrialState
    measures: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    reason: str = ""


@dataclass
class Point:
    """One configuration the confirm stage ran again: its trial and the runs of its seeds."""

    trial: FrozenTrial
    runs: list[Confirmed] = field(default_factory=list)

    def stat(self, name: str) -> Stat | None:
        """Mean and 95 % t-interval of measure ``name`` over the runs that ended well; None
        without a value."""
        return Stat.of(r.measures.get(name) for r in self.runs if r.state == TrialState.COMPLETE)

    @property
    def failed(self) -> int:
        """How many of its runs did not end well."""
        return sum(r.state != TrialState.COMPLETE for r in self.runs)


def override_key(override: str) -> str:
    """The config key an override (or a parameter name) sets: ``seed`` of ``+seed=3``."""
    return override.split("=", 1)[0].lstrip("+~")


def winners(study: optuna.Study, directions: list[str], max_points: int) -> list[FrozenTrial]:
    """What the confirm stage runs again: the best trial, or the first ``max_points``
    points of the Pareto front, best by the first objective."""
    if len(directions) == 1:
        return [study.best_trial]
    sign = -1.0 if directions[0] == "maximize" else 1.0
    front = sorted(study.best_trials, key=lambda t: (sign * t.values[0], t.number))
    return front[:max_points]


def job_overrides(
    trial: FrozenTrial, own: list[str], fixed: dict[str, str], launcher: list[str]
) -> list[str]:
    """A confirm job's overrides: the sweep's fixed ones and the trial's parameters, less the
    keys its ``own`` overrides (fresh seeds...) set, in the confirm stage's folder."""
    taken = {override_key(o) for o in own}
    base = [
        *(v for k, v in fixed.items() if k not in taken),
        *(
            f"{k}={format_value(v)}"
            for k, v in trial.params.items()
            if override_key(k) not in taken
        ),
    ]
    return [*base, *launcher, f"hydra.sweep.subdir={CONFIRM_SUBDIR}", *own]


class ConfirmStage:
    """Each winner's configuration run again with ``seeds`` fresh seeds through ``launcher``."""

    def __init__(
        self,
        launcher: Launcher,
        hooks: TrialHooks,
        info: StudyInfo,
        launcher_overrides: list[str],
        seeds: int,
    ) -> None:
        self.launcher = launcher
        self.hooks = hooks
        self.info = info
        self.launcher_overrides = launcher_overrides
        self.seeds = seeds

    def run(self, chosen: list[FrozenTrial], fixed: dict[str, str]) -> list[Point]:
        """Confirm the ``chosen`` trials this launcher may claim (launchers sharing a study
        confirm each winner once); returns the points with their runs (none when the
        application cannot confirm)."""
        study = self.info.study
        holders = claim_confirmations(study, [t.number for t in chosen])
        mine = [t for t in chosen if holders[t.number] == launcher_id()]
        for trial in chosen:
            if trial not in mine:
                log.info(
                    "trial %d is confirmed by launcher %s, which shares this study; its "
                    "summary shows the confirmation (or launch this search again once it ended)",
                    trial.number,
                    holders[trial.number],
                )
        try:
            return self._runs(mine, fixed) if mine else []
        finally:
            release_confirmations(study, [t.number for t in mine])

    def _jobs(
        self, chosen: list[FrozenTrial], fixed: dict[str, str]
    ) -> tuple[list[Point], list[tuple[Point, list[str], list[str]]]]:
        """The points, and each confirm job: its point, its own overrides, all its overrides
        (none when the hooks name no fresh seeds)."""
        points, jobs = [], []
        for trial in chosen:
            extra = self.hooks.confirm_overrides(self.info, trial, self.seeds)
            if not extra:
                log.warning(
                    "no confirm stage: %s names no fresh seeds to run the winner with",
                    type(self.hooks).__name__,
                )
                return [], []
            point = Point(trial)
            points.append(point)
            for own in extra:
                overrides = job_overrides(trial, own, fixed, self.launcher_overrides)
                jobs.append((point, own, overrides))
        return points, jobs

    def _runs(self, chosen: list[FrozenTrial], fixed: dict[str, str]) -> list[Point]:
        """Launch the confirm jobs of ``chosen`` (claimed by this launcher) and read them."""
        points, jobs = self._jobs(chosen, fixed)
        if not jobs:
            return []
        last_trial = max(t.number for t in self.info.study.get_trials(deepcopy=False))
        first = (1 + last_trial) * max(1, len(self.info.seeds))  # after every trial's jobs
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
    ) -> Confirmed:
        """How one confirm job ended, as its hooks read it (its return value is not used:
        the measures are)."""
        if ret is None:
            return Confirmed(own, TrialState.FAIL, reason=error)
        folder = output_dir(ret)
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
        return Confirmed(own, state, measures, report.run_id, reason)
