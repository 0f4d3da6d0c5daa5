"""The Optuna sweeper's work: the study, the ask/tell loop over Hydra jobs, the results.

Why ask/tell with a thread per running trial: Hydra's ``Launcher.launch`` blocks until its whole
batch ends, so a batch of ``n_jobs`` trials waits for its slowest one. Here each of ``n_jobs``
threads launches one trial at a time (joblib runs it in its worker pool), and the main thread,
the only one that touches the study, asks for the next trial as soon as any one finishes.
"""

from __future__ import annotations

import functools
import logging
import math
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, Trial, TrialState

from lrdecay.sweep.pruning import PRUNER_ATTR, make_pruner, open_storage
from lrdecay.tracking.redact import redact_text, redact_uri

from ._shared import claim, has_room, orphaned, surplus
from ._space import (
    SweepError,
    format_value,
    grid_values,
    parse_search_space,
    quote,
    resolve_directions,
    sqlite_absolute,
)

if TYPE_CHECKING:
    from lrdecay.sweep.outcomes import JobResult

log = logging.getLogger("lrdecay.optuna")

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
RESULTS_FILE = "optimization_results.yaml"
TRIALS_FILE = "trials.csv"


@dataclass
class _Running:
    """A trial in flight: what was launched, and when."""

    trial: Trial
    overrides: list[str]
    started: float


@dataclass
class _Outcome:
    """How a job ended, as the study will be told."""

    state: TrialState
    values: list[float] | None = None
    reason: str = ""
    run_id: str | None = None
    epochs: int | None = None


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
        self.n_jobs = n_jobs
        self.max_failures = max_failures
        self.params = {str(k): v for k, v in (params or {}).items()}
        self.custom_search_space = custom_search_space
        self.extend_space: Any = None
        self.config: DictConfig | None = None
        self._mlflow: Any = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        """Create the launcher and size its pool to ``n_jobs``."""
        from hydra._internal.core_plugins.basic_launcher import BasicLauncher

        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.base_dir = Path(str(config.hydra.runtime.cwd))
        self.parallel = max(1, self.n_jobs)
        if isinstance(self.launcher, BasicLauncher) and self.n_jobs > 1:
            log.warning(
                "the basic launcher runs jobs in this process, one at a time: trials "
                "run one by one (use hydra/launcher=joblib for n_jobs=%d)",
                self.n_jobs,
            )
            self.parallel = 1
        pool = getattr(self.launcher, "joblib", None)
        if isinstance(pool, dict):  # the joblib launcher: one worker per running trial
            pool["n_jobs"] = self.parallel
        self.launcher_overrides = (
            [f"hydra.launcher.n_jobs={self.parallel}"] if "n_jobs" in config.hydra.launcher else []
        )

    # -------------------------------------------------------------- study

    def _objectives(self) -> list[str] | None:
        assert self.config is not None
        objective = self.config.get("objective")
        if objective is None:
            return None
        return (
            [str(o) for o in objective] if isinstance(objective, ListConfig) else [str(objective)]
        )

    def _default_study_name(self) -> str:
        assert self.config is not None
        experiment = self.config.hydra.runtime.choices.get("experiment") or "search"
        dataset = OmegaConf.select(self.config, "dataset.name", default=None)
        return f"{experiment}-{dataset}" if dataset else str(experiment)

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
        name = self.study_name or self._default_study_name()
        self.storage_url = self._storage_url()
        try:
            study = optuna.create_study(
                storage=open_storage(self.storage_url),
                sampler=optuna.samplers.RandomSampler(),
                pruner=make_pruner(self.pruner_settings),
                study_name=name,
                directions=directions,
                load_if_exists=True,
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
            self._close_parent("FAILED")
            raise SystemExit(f"lrdecay: {exc}") from None
        except KeyboardInterrupt:
            self._close_parent("KILLED")
            print(
                "lrdecay: search interrupted; running trials were marked failed and are "
                "retried first when the same command runs again",
                file=sys.stderr,
            )
            raise SystemExit(130) from None

    def _sweep(self, arguments: list[str]) -> list[FrozenTrial]:
        assert self.config is not None
        if self.n_trials < 0 or self.n_jobs < 1 or self.max_failures < 1:
            raise SweepError("hydra.sweeper: n_trials must be >= 0, n_jobs and max_failures >= 1")
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
        objectives = self._objectives()
        directions = resolve_directions(self.direction, objectives)
        n_trials = self.n_trials
        self.grid: dict[str, list[Any]] | None = None
        if isinstance(self.sampler, functools.partial):  # the grid sampler, built from params
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
        self._recover(study)
        done = len(study.get_trials(deepcopy=False, states=FINISHED))
        to_run = max(0, n_trials - done)
        self._tag_parent(study, objectives, directions)
        log.info(
            "study '%s' at %s: %d finished trial(s), %d to run, %d at a time; searching %s",
            study.study_name,
            redact_uri(self.storage_url),
            done,
            to_run,
            self.parallel,
            ", ".join(space) or "nothing",
        )
        started = time.monotonic()
        self.study_trials = n_trials  # the study's total, all launchers together
        tally = self._run(study, space, fixed, to_run) if to_run else _Tally()
        self._report(study, objectives, directions, fixed, tally.ran, time.monotonic() - started)
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        failure = tally.failure(self.max_failures, to_run, len(complete))
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
        """Keep ``parallel`` trials running until ``to_run`` finished, or ``max_failures``
        failed; returns what the trials did."""
        running: dict[Future[JobReturn], _Running] = {}
        tally = _Tally()
        pool = ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="trial")

        def refill() -> None:
            """Start trials until every slot is busy or nothing is left to start."""
            while (
                len(running) < self.parallel
                and tally.finished + len(running) < to_run
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
                overrides = self._trial_overrides(study, trial, space, fixed)
                future = pool.submit(self._launch_one, overrides, trial.number)
                running[future] = _Running(trial, overrides, time.monotonic())
                tally.ran += 1

        try:
            refill()
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                ended = [self._finish(study, running.pop(f), f) for f in done]
                for outcome in ended:
                    tally.count(outcome)
                refill()  # the next trials start before the MLflow bookkeeping below
                for outcome in ended:
                    if outcome.run_id:
                        self._set_run_tags(outcome.run_id, {"optuna.state": outcome.state.name})
        except BaseException:
            for item in running.values():  # interrupted: fail them, queue them again
                self._tell(study, item.trial, TrialState.FAIL)
                if item.trial.params:
                    study.enqueue_trial(
                        dict(item.trial.params), user_attrs={"retry_of": item.trial.number}
                    )
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return tally

    def _may_ask(self, study: optuna.Study) -> bool:
        """False once every grid point has been taken (finished, failed or running): the grid
        sampler would only repeat one. Queued retries are always asked for."""
        if self.grid is None:
            return True
        trials = study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in trials):
            return True
        taken = {t.system_attrs["grid_id"] for t in trials if "grid_id" in t.system_attrs}
        return len(taken) < math.prod(len(v) for v in self.grid.values())

    def _trial_overrides(
        self,
        study: optuna.Study,
        trial: Trial,
        space: dict[str, BaseDistribution],
        fixed: dict[str, str],
    ) -> list[str]:
        """Sample the trial's parameters and build its job's overrides."""
        assert self.config is not None
        try:
            for name, dist in space.items():
                trial._suggest(name, dist)
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
        if "trial" in self.config:  # this project's runs: report to the trial, maybe prune
            study._storage.set_trial_system_attr(trial._trial_id, PRUNER_ATTR, self.pruner_settings)
            maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
            overrides += [
                f"trial.storage={quote(self.storage_url)}",
                f"trial.study_name={quote(study.study_name)}",
                f"trial.number={trial.number}",
                f"trial.pruner={self.pruner_settings.get('name', 'none')}",
                f"trial.metric={'val_acc' if maximize else 'val_loss'}",
            ]
        log.info("trial %d started: %s", trial.number, " ".join(sampled))
        return overrides

    def _launch_one(self, overrides: list[str], number: int) -> JobReturn:
        """One job through the launcher (runs in a pool thread; the job number is the trial
        number, so job folders stay unique across resumed sweeps)."""
        return self.launcher.launch([overrides], initial_job_idx=number)[0]

    def _finish(self, study: optuna.Study, item: _Running, future: Future[JobReturn]) -> _Outcome:
        """Tell the study how the trial's job ended, and log it."""
        trial = item.trial
        try:
            outcome = self._outcome(future.result(), len(study.directions))
        except Exception as exc:  # the launcher itself failed (e.g. a worker was killed)
            outcome = _Outcome(TrialState.FAIL, reason=f"{type(exc).__name__}: {exc}")
        if outcome.run_id:
            study._storage.set_trial_user_attr(trial._trial_id, "mlflow_run_id", outcome.run_id)
        self._tell(study, trial, outcome.state, outcome.values)
        seconds = time.monotonic() - item.started
        if outcome.state == TrialState.COMPLETE:
            shown = ", ".join(f"{v:.4g}" for v in outcome.values or [])
            log.info("trial %d complete in %.1f s: %s", trial.number, seconds, shown)
        elif outcome.state == TrialState.PRUNED:
            log.info(
                "trial %d pruned after %s epoch(s) in %.1f s",
                trial.number,
                outcome.epochs if outcome.epochs is not None else "?",
                seconds,
            )
        else:
            log.warning("trial %d failed in %.1f s: %s", trial.number, seconds, outcome.reason)
        return outcome

    def _outcome(self, ret: JobReturn, n_objectives: int) -> _Outcome:
        """Read the job's return value and its ``result.json`` (which says ``pruned``)."""
        result = self._job_result(ret)
        run_id = result.run_id if result is not None else None
        epochs = result.epochs_run if result is not None else None
        if ret.status == JobStatus.FAILED:  # (not .return_value: it would print the job's
            # overrides, the study's storage URL included, to stderr)
            error = ret._return_value
            return _Outcome(
                TrialState.FAIL, reason=f"{type(error).__name__}: {error}", run_id=run_id
            )
        if result is not None and result.status == "pruned":
            return _Outcome(TrialState.PRUNED, run_id=run_id, epochs=epochs)
        if result is not None and not result.ok:  # diverged, failed: its value means nothing
            return _Outcome(TrialState.FAIL, reason=failure_reason(result), run_id=run_id)
        raw = ret.return_value
        raw_list = list(raw) if isinstance(raw, list | tuple | ListConfig) else [raw]
        try:
            values = [float(v) for v in raw_list]
        except (TypeError, ValueError):
            return _Outcome(
                TrialState.FAIL, reason=f"the job returned {raw!r}, not numbers", run_id=run_id
            )
        if len(values) != n_objectives:
            return _Outcome(
                TrialState.FAIL,
                run_id=run_id,
                reason=f"{len(values)} value(s) for {n_objectives} objective(s)",
            )
        if not all(math.isfinite(v) for v in values):
            return _Outcome(
                TrialState.FAIL,
                reason=f"no objective value: the job returned {raw!r}",
                run_id=run_id,
            )
        return _Outcome(TrialState.COMPLETE, values, run_id=run_id, epochs=epochs)

    def _job_result(self, ret: JobReturn) -> Any:
        """The job's ``result.json`` (a ``JobResult``), if this project's job wrote one."""
        from lrdecay.sweep.outcomes import read_result

        hydra_cfg = getattr(ret, "hydra_cfg", None)
        output_dir = (
            OmegaConf.select(hydra_cfg, "hydra.runtime.output_dir", default=None)
            if hydra_cfg is not None
            else None
        )
        if not output_dir:
            return None
        try:
            return read_result(Path(str(output_dir)))
        except (OSError, ValueError, TypeError):
            return None

    # -------------------------------------------------------------- MLflow and results

    def _client(self) -> Any:
        """An MLflow client on the runs' store, or None when tracking is off."""
        if self._mlflow is None:
            assert self.config is not None
            self._mlflow = False
            if OmegaConf.select(self.config, "tracking.enabled", default=False):
                from lrdecay.tracking.tracker import open_client, resolve_uri

                store = self.base_dir / str(self.config.tracking.store_dir)
                self._mlflow = open_client(resolve_uri(self.config.tracking.uri, store))
        return self._mlflow or None

    def _set_run_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        client = self._client()
        if client is None:
            return
        try:
            for key, value in tags.items():
                client.set_tag(run_id, key, value)
        except Exception as exc:  # MLflow trouble must not end the search
            log.warning("could not tag MLflow run %s: %s", run_id, str(exc).splitlines()[0])

    def _parent_id(self) -> str | None:
        from lrdecay.sweep.outcomes import read_parent

        try:
            return read_parent(self.sweep_dir)
        except (OSError, ValueError, KeyError):
            return None

    def _tag_parent(
        self, study: optuna.Study, objectives: list[str] | None, directions: list[str]
    ) -> None:
        parent = self._parent_id()
        if parent:
            self._set_run_tags(
                parent,
                {
                    "optuna.study": study.study_name,
                    "optuna.storage": redact_uri(self.storage_url),
                    "optuna.objectives": ",".join(objectives or []),
                    "optuna.directions": ",".join(directions),
                    "optuna.sampler": type(study.sampler).__name__,
                    "optuna.pruner": str(self.pruner_settings.get("name", "none")),
                },
            )

    def _close_parent(self, status: str) -> None:
        """End the sweep's parent run when the search stops before Hydra's end callbacks."""
        parent = self._parent_id() if self.config is not None else None
        client = self._client() if parent else None
        if client is not None:
            try:
                client.set_terminated(parent, status=status)
            except Exception as exc:
                log.warning("could not close MLflow run %s: %s", parent, exc)

    def _report(
        self,
        study: optuna.Study,
        objectives: list[str] | None,
        directions: list[str],
        fixed: dict[str, str],
        ran: int,
        seconds: float,
    ) -> None:
        """Write ``optimization_results.yaml``, print the best trial or the Pareto front."""
        trials = study.get_trials(deepcopy=False)
        counts = {s: sum(t.state == s for t in trials) for s in TrialState}
        names = objectives or [f"value{i}" for i in range(len(directions))]
        arrows = {"maximize": "↑", "minimize": "↓"}
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
        lines = ["", head]
        rerun = " ".join(v for k, v in fixed.items() if not k.startswith("hydra"))
        if len(directions) == 1:
            best = study.best_trial if counts[TrialState.COMPLETE] else None
            if best is None:
                lines.append("No complete trial yet: no best parameters.")
            else:
                params = " ".join(f"{k}={format_value(v)}" for k, v in best.params.items())
                results.update(
                    best_trial=best.number, best_value=best.value, best_params=dict(best.params)
                )
                lines += [
                    f"Best trial {best.number}: {names[0]} {arrows[directions[0]]} = "
                    f"{best.value:.4f}",
                    f"Best parameters: {params}",
                    f"Run it alone: python train.py {rerun} {params}".rstrip(),
                ]
        else:
            front = sorted(study.best_trials, key=lambda t: t.values)
            results["solutions"] = [
                {"number": t.number, "params": dict(t.params), "values": list(t.values)}
                for t in front
            ]
            header = ", ".join(f"{n} {arrows[d]}" for n, d in zip(names, directions, strict=True))
            lines.append(f"Pareto front: {len(front)} trial(s) ({header})")
            for t in front:
                shown = "  ".join(f"{n} {v:.4g}" for n, v in zip(names, t.values, strict=True))
                params = " ".join(f"{k}={format_value(v)}" for k, v in t.params.items())
                lines.append(f"  trial {t.number}: {shown}  {params}")
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        path = self.sweep_dir / RESULTS_FILE
        OmegaConf.save(OmegaConf.create(results), path)
        table = self.sweep_dir / TRIALS_FILE
        write_csv(table, trial_rows(trials, names, directions))
        rows = trial_rows(trials, names, directions, short=True)
        shown = [r for r in rows[1:] if r[1] in ("COMPLETE", "PRUNED")][:5]
        if shown:
            lines += [
                "",
                f"Top trials by {names[0]} {arrows[directions[0]]} (every trial in {table}):",
                *fixed_width([rows[0], *shown]),
                "",
            ]
        lines.append(f"Results: {path}")
        print("\n".join(lines), flush=True)
        parent = self._parent_id()
        client = self._client() if parent else None
        if client is not None:
            try:
                client.log_artifact(parent, str(path))
                client.log_artifact(parent, str(table))
                if "best_value" in results:
                    client.log_metric(parent, "best_value", float(results["best_value"]))
            except Exception as exc:
                log.warning("could not log the results to MLflow run %s: %s", parent, exc)


def failure_reason(result: JobResult) -> str:
    """Why a job that wrote ``result`` is a failed trial: a diverged run has no error, only a
    chance-level accuracy, so its divergence is the reason."""
    if result.status == "diverged":
        return f"the run diverged at epoch {result.epochs_run} (non-finite loss)"
    return result.error or f"the run ended {result.status}"


def trial_rows(
    trials: Sequence[FrozenTrial],
    names: Sequence[str],
    directions: Sequence[str],
    short: bool = False,
) -> list[list[str]]:
    """Header plus one row per trial (number, state, objectives, parameters, MLflow run),
    best first by the first objective; pruned trials (by their last reported value) after
    the complete ones, then the rest. ``short``: floats to 4 significant digits."""

    def show(value: Any) -> str:
        return f"{value:.4g}" if short and isinstance(value, float) else format_value(value)

    params = list(dict.fromkeys(k for t in trials for k in t.params))
    sign = -1.0 if directions[0] == "maximize" else 1.0
    rank = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1}

    def key(t: FrozenTrial) -> tuple[int, float, int]:
        value = t.values[0] if t.values else math.nan
        return rank.get(t.state, 2), sign * value if math.isfinite(value) else math.inf, t.number

    rows = [["trial", "state", *names, *params, "mlflow_run_id"]]
    for t in sorted(trials, key=key):
        values = list(t.values or [])
        shown = [f"{v:.4g}" for v in values] + [""] * (len(names) - len(values))
        rows.append(
            [
                str(t.number),
                t.state.name,
                *shown,
                *(show(t.params[p]) if p in t.params else "" for p in params),
                str(t.user_attrs.get("mlflow_run_id", "")),
            ]
        )
    return rows


def write_csv(path: Path, rows: Sequence[Sequence[str]]) -> None:
    """``rows`` as a CSV file."""
    import csv

    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)


def fixed_width(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as aligned text lines (the MLflow run id column left out)."""
    cut = [list(r[:-1]) for r in rows]
    widths = [max(len(r[i]) for r in cut) for i in range(len(cut[0]))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cut
    ]
