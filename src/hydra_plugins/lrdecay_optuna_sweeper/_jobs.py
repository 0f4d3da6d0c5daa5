"""Trials as Hydra jobs: a trial in flight, how its job ended (or its seed jobs, scored
together), the sweep's tally of them."""

from __future__ import annotations

import contextlib
import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import ListConfig, OmegaConf
from optuna.storages import BaseStorage
from optuna.trial import Trial, TrialState

from .redact import redact_text
from .seeds import SEED_VALUES_ATTR, Scoring, pruned_at, settle_means, trial_id
from .trial_hooks import JobReport, TrialHooks

log = logging.getLogger("lrdecay.optuna")

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
#: Trial user attributes: the MLflow run of its job, or of each of its seed jobs.
RUN_ID_ATTR = "mlflow_run_id"
RUN_IDS_ATTR = "mlflow_run_ids"


@dataclass
class Running:
    """A trial in flight: its trial and its jobs' overrides, one job per seed of ``seeds``
    (one job, with the config's own seed, when ``seeds`` is empty)."""

    trial: Trial
    jobs: list[list[str]]
    seeds: list[int] = field(default_factory=list)


@dataclass
class Outcome:
    """How a job (or a trial's seed jobs together: ``parts``) ended, as the study will be
    told."""

    state: TrialState
    values: list[float] | None = None
    reason: str = ""
    report: JobReport = field(default_factory=JobReport)
    parts: list[Outcome] = field(default_factory=list)


@dataclass
class Tally:
    """What this sweep's trials did: how many ran, finished and failed, and the first failure's
    reason (what a search that fails as a whole shows)."""

    ran: int = 0
    finished: int = 0
    failed: int = 0
    first_error: str = ""

    def count(self, outcome: Outcome) -> None:
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


def tell(
    study: optuna.Study, trial: Trial | int, state: TrialState, values: list[float] | None = None
) -> None:
    """Tell the study how ``trial`` ended (a grid sampler that stopped the study is no error)."""
    try:
        study.tell(trial, values=values, state=state)
    except RuntimeError as exc:  # the grid sampler calls Study.stop() when it is done
        if "Study.stop" not in str(exc):
            raise


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


def output_dir(ret: JobReturn) -> Path | None:
    """The folder the job ran in (None: unknown)."""
    folder = (
        OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir")
        if ret.hydra_cfg is not None
        else None
    )
    return Path(str(folder)) if folder else None


def read_outcome(ret: JobReturn, hooks: TrialHooks, n_objectives: int) -> Outcome:
    """How a job ended: its status and return value, unless the application's report
    on it (e.g. a pruned or diverged run) decides."""
    report = hooks.job_report(output_dir(ret))
    if ret.status == JobStatus.FAILED:
        error = job_error(ret)
        return Outcome(TrialState.FAIL, reason=f"{type(error).__name__}: {error}", report=report)
    if report.state is not None:
        return Outcome(report.state, reason=report.reason, report=report)
    raw = ret.return_value
    raw_list = list(raw) if isinstance(raw, list | tuple | ListConfig) else [raw]
    try:
        values = [float(v) for v in raw_list]
    except (TypeError, ValueError):
        return Outcome(
            TrialState.FAIL, reason=f"the job returned {raw!r}, not numbers", report=report
        )
    if len(values) != n_objectives:
        return Outcome(
            TrialState.FAIL,
            reason=f"{len(values)} value(s) for {n_objectives} objective(s)",
            report=report,
        )
    if not all(math.isfinite(v) for v in values):
        return Outcome(
            TrialState.FAIL, reason=f"no objective value: the job returned {raw!r}", report=report
        )
    return Outcome(TrialState.COMPLETE, values, report=report)


def combine(
    parts: Sequence[Outcome], seeds: Sequence[int], scoring: Scoring, directions: Sequence[str]
) -> Outcome:
    """A trial's outcome from its seed jobs' ``parts`` (in ``seeds`` order): FAIL when a seed
    failed (its reason, naming the seed), PRUNED when one was pruned, else COMPLETE with each
    objective scored over the seeds."""
    for seed, part in zip(seeds, parts, strict=True):
        if part.state == TrialState.FAIL:
            reason = f"seed {seed}: {part.reason}"
            return Outcome(TrialState.FAIL, reason=reason, report=part.report, parts=list(parts))
    pruned = [p for p in parts if p.state == TrialState.PRUNED]
    if pruned:
        return Outcome(TrialState.PRUNED, report=pruned[0].report, parts=list(parts))
    values = [
        scoring.value([(p.values or [])[i] for p in parts], direction == "maximize")
        for i, direction in enumerate(directions)
    ]
    return Outcome(TrialState.COMPLETE, values, report=parts[0].report, parts=list(parts))


def log_outcome(number: int, outcome: Outcome, seconds: float, scoring: Scoring) -> None:
    """One log line for an ended trial: its values (and its seeds'), its pruning epoch, or its
    failure."""
    if outcome.state == TrialState.COMPLETE:
        shown = ", ".join(f"{v:.4g}" for v in outcome.values or [])
        if outcome.parts:
            seeds = " ".join(",".join(f"{v:.4g}" for v in p.values or []) for p in outcome.parts)
            shown += f" ({scoring.describe()}: {seeds})"
        log.info("trial %d complete in %.1f s: %s", number, seconds, shown)
    elif outcome.state == TrialState.PRUNED:
        epochs = outcome.report.epochs
        log.info(
            "trial %d pruned after %s epoch(s) in %.1f s",
            number,
            epochs if epochs is not None else "?",
            seconds,
        )
    else:
        log.warning("trial %d failed in %.1f s: %s", number, seconds, outcome.reason)


def consecutive_runs(batch: Sequence[Running]) -> list[list[Running]]:
    """``batch`` split where trial numbers do not follow on (one run when they all do)."""
    runs: list[list[Running]] = []
    for item in batch:
        if runs and item.trial.number == runs[-1][-1].trial.number + 1:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def finish(
    study: optuna.Study,
    storage: BaseStorage,
    item: Running,
    outcome: Outcome,
    seconds: float,
    hooks: TrialHooks,
    scoring: Scoring,
) -> None:
    """Tell the study how the trial's job(s) ended (PRUNED when one of them pruned it, unless
    a job failed), with each seed's value and run; log it; pass each job's report to the hooks.
    ``storage``: the study's, where the jobs reported."""
    trial = item.trial
    ident = trial_id(storage, study.study_name, trial.number)
    flagged = pruned_at(storage.get_trial_system_attrs(ident)) is not None
    if flagged and outcome.state != TrialState.FAIL:
        outcome.state, outcome.values = TrialState.PRUNED, None
    if item.seeds:
        settle_means(storage, ident)  # each epoch: the mean over all the seeds that reached it
        single = len(study.directions) == 1
        values = [
            (p.values[0] if single else p.values) if p.values else None for p in outcome.parts
        ]
        trial.set_user_attr(SEED_VALUES_ATTR, values)
        runs = [p.report.run_id for p in outcome.parts]
        if any(runs):
            trial.set_user_attr(RUN_IDS_ATTR, runs)
    elif outcome.report.run_id:
        trial.set_user_attr(RUN_ID_ATTR, outcome.report.run_id)
    tell(study, trial, outcome.state, outcome.values)
    log_outcome(trial.number, outcome, seconds, scoring)
    parts = outcome.parts or [outcome]
    for part in parts:
        hooks.trial_ended(trial.number, outcome.state, part.report)
    hooks.trial_told(trial.number, outcome.state, [part.report for part in parts])
