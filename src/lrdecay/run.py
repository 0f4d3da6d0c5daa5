"""One run from a composed config: build its components, fit them inside its tracked MLflow run,
and record its outcome.

:func:`build_engine` turns the config into data, model, optimizer, scheduler and engine;
:class:`TrackedRun` owns the MLflow run's life (started, or reopened to resume, then ended with
the status the fit reached); :func:`run` decides between skipping, resuming and training afresh
and saves the :class:`~lrdecay.core.outcome.RunOutcome` as ``result.json``. ``train.py`` is a
thin Hydra entry point around :func:`run`; tests and sweepers call it too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from lrdecay.components import (
    build_model,
    build_optimizer,
    build_scheduler,
    check_components,
    check_scheduler,
    with_budget,
)
from lrdecay.components import sized as sized_config
from lrdecay.config import LrdecayConfig, validate
from lrdecay.core.acceleration import accelerate, uses_channels_last
from lrdecay.core.checkpoint import CHECKPOINT_FILE, CheckpointListener, load_checkpoint, restore
from lrdecay.core.data import load_data
from lrdecay.core.engine import Engine, TrainerSettings
from lrdecay.core.interrupts import StopAtEpochEnd
from lrdecay.core.listeners import Listener
from lrdecay.core.objectives import OBJECTIVES
from lrdecay.core.outcome import RunOutcome, RunStatus
from lrdecay.core.progress import EpochLogLine, ProgressBar
from lrdecay.core.records import EpochRecord
from lrdecay.core.resources import resolve_device, seed_everything, set_threads
from lrdecay.core.schedulers import TorchScheduler
from lrdecay.provenance import git_commit
from lrdecay.sweep.folder import write_result
from lrdecay.tracking.batch_rates import BatchRates
from lrdecay.tracking.experiments import experiment_name
from lrdecay.tracking.redact import redact_text, redact_uri
from lrdecay.tracking.resume import (
    CHECKPOINT_TAG,
    FINGERPRINT_TAG,
    Prior,
    find_prior,
    fingerprint,
    replace_stale,
)
from lrdecay.tracking.run_logger import MlflowTracker, flatten, outcome_from_run
from lrdecay.tracking.store import default_artifact_root, resolve_uri
from lrdecay.tracking.ui import (
    OPTION_KEYS,
    RUN_COLOR_TAG,
    TRIAL_TAG,
    name_suffix,
    run_params,
    setting_colour,
)

log = logging.getLogger("lrdecay")


@dataclass
class RunContext:
    """Where a run was launched from, as the launcher (Hydra) knows it."""

    base_dir: Path = field(default_factory=Path.cwd)
    output_dir: Path | None = None
    job_num: int | None = None
    sweep_dir: str | None = None
    overrides: list[str] = field(default_factory=list)
    parent_run_id: str | None = None
    n_workers: int = 1
    swept: list[str] = field(default_factory=list)  # the keys the sweep varies


def run_name(conf: LrdecayConfig) -> str:
    """The setting's name: ``setting_name`` when the config gives one (``sgd-fixed-r0``), else
    ``<sequence>-<strategy>``; a fixed rate is named by its optimizer (``sgd-fixed``); a
    PyTorch scheduler stepped as it is defined by its name alone (``cosine``)."""
    if conf.setting_name:
        return conf.setting_name
    if conf.sequence.scheduler is not None and conf.strategy.name == "epoch":
        return conf.sequence.name
    if conf.strategy.name == "fixed":
        return f"{conf.optimizer.name}-fixed"
    return f"{conf.sequence.name}-{conf.strategy.name}"


def display_name(conf: LrdecayConfig, ctx: RunContext) -> str:
    """The run's name in MLflow and logs: ``tracking.run_name``, else its setting plus what
    the sweep varies besides it (``seq3-epoch s1``, ``seq3-epoch lr=0.05``)."""
    if conf.tracking.run_name:
        return conf.tracking.run_name
    return f"{run_name(conf)} {name_suffix(ctx.swept, ctx.overrides)}".rstrip()


def objective_values(outcome: RunOutcome, names: Iterable[str]) -> list[float]:
    """The outcome's values for the objectives ``names`` (NaN where a value is missing)."""
    metrics = outcome.metrics()
    return [float(metrics.get(OBJECTIVES[name].key, float("nan"))) for name in names]


def _tags(
    conf: LrdecayConfig, ctx: RunContext, threads: int, device: torch.device
) -> dict[str, str]:
    # "layout" records what channels_last=auto chose on this device (it changes summation order)
    nhwc = uses_channels_last(conf.trainer.channels_last, device, conf.trainer.precision)
    tags = {
        "dataset": conf.dataset.name,
        "sequence": conf.sequence.name,
        "strategy": conf.strategy.name,
        "optimizer": conf.optimizer.name,
        "model": conf.model.name,
        "seed": str(conf.seed),
        "threads": str(threads),
        "setting": run_name(conf),
        "layout": "NHWC" if nhwc else "NCHW",
    }
    if conf.sequence.scheduler is not None:  # the report's "Modern baselines" block
        tags["scheduler"] = str(conf.sequence.scheduler["_target_"])
    colour = setting_colour(run_name(conf), conf.sequence.name, conf.strategy.name)
    if colour:  # the seeds of one setting share its colour in the UI's tables and charts
        tags[RUN_COLOR_TAG] = colour
    commit = git_commit(ctx.base_dir)
    if commit:
        tags["mlflow.source.git.commit"] = commit
    if ctx.job_num is not None:
        tags["hydra.job_num"] = str(ctx.job_num)
    if ctx.sweep_dir:
        tags["hydra.sweep_dir"] = ctx.sweep_dir
    if ctx.output_dir is not None:
        tags["hydra.output_dir"] = str(ctx.output_dir)
    if conf.trial.number is not None:  # a trial of an Optuna study
        tags[TRIAL_TAG] = str(conf.trial.number)
        tags["optuna.study"] = str(conf.trial.study_name)
    return tags


def _params(cfg: DictConfig | LrdecayConfig) -> dict[str, str]:
    """The config's leaves this run uses, as MLflow params (store credentials redacted)."""
    resolved: Any = OmegaConf.to_container(
        OmegaConf.structured(cfg) if isinstance(cfg, LrdecayConfig) else cfg, resolve=True
    )
    params = flatten(resolved)
    for key in ("tracking.uri", "trial.storage"):
        if params.get(key) not in (None, "None"):
            params[key] = redact_uri(params[key])
    choices = {group: params.get(f"{group}.name", "") for group in OPTION_KEYS}
    if params.get("sequence.scheduler") == "None":  # the study's sequences: no scheduler keys
        params = {k: v for k, v in params.items() if k not in SCHEDULER_ONLY}
    return run_params(params, choices)


#: Params of the sequence group that only a PyTorch scheduler uses.
SCHEDULER_ONLY = ("sequence.scheduler", "sequence.interval", "sequence.steps_per_epoch")


def run(
    cfg: DictConfig, ctx: RunContext | None = None, extra_listeners: Iterable[Listener] = ()
) -> RunOutcome:
    """Validate ``cfg``, train one model under its schedule, track it, and return its outcome.

    The MLflow run ends as :attr:`RunStatus.mlflow` says: FINISHED, FAILED (an exception, or
    divergence: tagged ``diverged``) or KILLED (KeyboardInterrupt, or a search pruned it: tag
    ``pruned``). Errors a user can fix raise :class:`lrdecay.errors.LrdecayError`.
    With ``ctx.output_dir`` set, the outcome is also saved there as ``result.json``, however the
    run ends, for the sweep's summary.
    """
    ctx = ctx or RunContext()
    ctx.overrides = [redact_text(o) for o in ctx.overrides]
    outcome = RunOutcome(
        RunStatus.FAILED,
        setting=" ".join(ctx.overrides) or "run",
        job_num=ctx.job_num,
        overrides=list(ctx.overrides),
    )
    try:
        outcome.take(_train(cfg, ctx, outcome, extra_listeners))
        return outcome
    except KeyboardInterrupt:
        outcome.status, outcome.error = RunStatus.KILLED, "interrupted"
        raise
    except Exception as exc:
        outcome.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise
    finally:
        if ctx.output_dir is not None:
            write_result(ctx.output_dir, outcome)


def _connect(conf: LrdecayConfig, ctx: RunContext) -> MlflowTracker | None:
    """The run's tracker, connected (store reachable, experiment there), or None if off."""
    if not conf.tracking.enabled:
        return None
    uri = resolve_uri(conf.tracking.uri, ctx.base_dir / conf.tracking.store_dir)
    tracker = MlflowTracker(
        uri, experiment_name(conf), default_artifact_root(uri), log_plot=conf.tracking.log_plot
    )
    tracker.connect()
    return tracker


def _idempotent(conf: LrdecayConfig, ctx: RunContext) -> bool:
    """Look for an earlier twin: always in a sweep (unless sweep.rerun), with resume=true alone.
    Search trials never: each trial is its own experiment point."""
    if conf.trial.number is not None:
        return False
    return conf.resume or (ctx.job_num is not None and not conf.sweep.rerun)


def _skip(prior: Prior, tracker: MlflowTracker, ctx: RunContext, outcome: RunOutcome) -> RunOutcome:
    """Reuse a FINISHED twin: no training; the run joins this sweep's parent."""
    assert prior.run is not None
    run_id = prior.run.info.run_id
    tracker.run_id = run_id
    if ctx.parent_run_id:
        tracker.set_tags({"mlflow.parentRunId": ctx.parent_run_id})
    log.info(
        "%s skipped: already FINISHED as run %s (sweep.rerun=true trains it again)",
        outcome.setting,
        run_id,
    )
    outcome.run_id, outcome.note = run_id, f"skipped: FINISHED as run {run_id}"
    earlier = outcome_from_run(prior.run)
    earlier.status = RunStatus.SKIPPED
    return earlier


def build_engine(
    cfg: DictConfig, conf: LrdecayConfig, device: torch.device, listeners: Iterable[Listener] = ()
) -> Engine:
    """The run's components from its config (``cfg`` composed, ``conf`` validated): the data on
    ``device``, the model, its optimizer and scheduler, and the engine that trains them,
    observed by ``listeners``."""
    data = load_data(conf.dataset, conf.data, device)
    model = accelerate(build_model(conf, data.input_shape, data.num_classes), device, conf.trainer)
    optimizer = build_optimizer(conf, model.parameters())
    cfg = with_budget(cfg, conf, len(data.train))  # steps per epoch, for per-batch schedulers
    scheduler = build_scheduler(cfg, conf, optimizer)
    settings = TrainerSettings(
        max_epochs=conf.trainer.max_epochs,
        batch_size=conf.dataset.batch_size,
        eval_batch_size=conf.dataset.eval_batch_size,
        early_stop_tol=conf.trainer.early_stop_tol,
        convergence_window=conf.trainer.convergence_window,
        convergence_threshold=conf.trainer.convergence_threshold,
        seed=conf.seed,
        precision=conf.trainer.precision,
    )
    return Engine(model, optimizer, scheduler, data, settings, listeners)


@dataclass
class FreshRun:
    """What a new MLflow run starts with: its tags, params and text artifacts by file name."""

    tags: dict[str, str]
    params: dict[str, str]
    texts: dict[str, str]


def _fresh_run(
    cfg: DictConfig, conf: LrdecayConfig, ctx: RunContext, threads: int, device: torch.device
) -> FreshRun:
    """The tags (the fingerprint of the composed ``cfg`` among them), params, resolved config
    and overrides a new MLflow run of ``cfg`` records; params and config as the run was sized
    (a per-batch scheduler's steps per epoch)."""
    sized = sized_config(cfg, conf)
    return FreshRun(
        tags={**_tags(conf, ctx, threads, device), FINGERPRINT_TAG: fingerprint(cfg)},
        params=_params(sized),
        texts={
            "config.yaml": redact_text(OmegaConf.to_yaml(sized, resolve=True)),
            "overrides.txt": "\n".join(ctx.overrides) + "\n",
        },
    )


class TrackedRun:
    """The MLflow run of one training run, from its opening to its end.

    :meth:`start` creates it, :meth:`reopen` continues an interrupted twin (a resume); both
    replace the twins it supersedes. Leaving the ``with`` block ends it with the status the fit
    reached (:meth:`ended`), KILLED on an interrupt, FAILED on any other exception, and then
    deletes a finished run's checkpoint: a finished run is skipped on re-launch, never resumed.
    Without a tracker (tracking off) only the checkpoint's part remains.
    """

    def __init__(
        self,
        tracker: MlflowTracker | None,
        label: str,
        parent_run_id: str | None,
        checkpoint: Path | None,
        keep_checkpoint: bool,
    ) -> None:
        self.tracker = tracker
        self.label = label
        self.parent_run_id = parent_run_id
        self.checkpoint = checkpoint
        self.keep_checkpoint = keep_checkpoint
        self.status = RunStatus.FAILED  # until the fit says how it ended

    @property
    def run_id(self) -> str | None:
        return self.tracker.run_id if self.tracker is not None else None

    def start(self, prior: Prior, fresh: FreshRun) -> None:
        """Create the MLflow run, replacing ``prior``'s stale twins."""
        if self.tracker is not None:
            self.tracker.start(self.label, fresh.tags, fresh.params, self.parent_run_id)
            assert self.tracker.run_id is not None
            replace_stale(self.tracker.client, prior, self.tracker.run_id)
            for name, text in fresh.texts.items():
                self.tracker.log_text(text, name)
            self._opened()

    def reopen(self, prior: Prior, history: list[EpochRecord]) -> None:
        """Continue ``prior``'s interrupted run, logging the epochs of ``history`` (restored
        from its checkpoint) that the store is missing."""
        if self.tracker is not None:
            assert prior.run is not None
            run_id = prior.run.info.run_id
            self.tracker.reopen(run_id, prior.run.info.run_name, self.parent_run_id)
            replace_stale(self.tracker.client, prior, run_id)
            flushed = self.tracker.flush_history(history)
            if flushed:
                log.info("%s: logged %d epoch(s) the store was missing", self.label, flushed)
            self._opened()

    def _opened(self) -> None:
        """Point the run at its checkpoint, and say where it is tracked."""
        tracker = self.tracker
        assert tracker is not None
        if self.checkpoint is not None:
            tracker.set_tags({CHECKPOINT_TAG: str(self.checkpoint.resolve())})
        log.info(
            "tracking run %s (%s) in experiment '%s' at %s",
            tracker.run_id,
            self.label,
            tracker.experiment,
            redact_uri(tracker.uri),
        )

    def ended(self, status: RunStatus) -> None:
        """The fit ended as ``status``: the MLflow run ends as :attr:`RunStatus.mlflow`."""
        self.status = status

    def __enter__(self) -> TrackedRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is not None:
            interrupted = issubclass(exc_type, KeyboardInterrupt)
            self.status = RunStatus.KILLED if interrupted else RunStatus.FAILED
        if self.tracker is not None:
            self.tracker.end(self.status.mlflow)
        if self.status.ok and self.checkpoint is not None and not self.keep_checkpoint:
            self.checkpoint.unlink(missing_ok=True)
            if self.tracker is not None:
                self.tracker.delete_tag(CHECKPOINT_TAG)  # no tag pointing at a deleted file


def _add_observers(
    engine: Engine, conf: LrdecayConfig, checkpoint: Path | None, tracked: TrackedRun
) -> None:
    """Append the listeners that save, track, prune and stop, in the order that keeps them
    consistent: the checkpoint before the tracker (whatever is logged is also in the
    checkpoint), the stop-signal check last (the epoch is saved and logged first)."""
    if checkpoint is not None:
        engine.listeners.append(CheckpointListener(checkpoint, engine, tracked.run_id))
    if tracked.tracker is not None:
        engine.listeners.append(tracked.tracker)
        if isinstance(engine.scheduler, TorchScheduler) and engine.scheduler.per_batch:
            engine.listeners.append(BatchRates(tracked.tracker, engine.scheduler))
    if conf.trial.number is not None:  # a trial of an Optuna study: report, maybe prune
        from lrdecay.sweep.pruning import PruningListener

        engine.listeners.append(PruningListener(conf.trial, engine.stop, conf.seed))
    engine.listeners.append(StopAtEpochEnd())


def _train(
    cfg: DictConfig, ctx: RunContext, outcome: RunOutcome, extra_listeners: Iterable[Listener]
) -> RunOutcome:
    """The body of :func:`run`: skip, resume or start afresh as the store says, then fit inside
    the tracked run. Fills ``outcome``'s setting, run id and note as soon as they are known;
    returns the fit's outcome."""
    conf = validate(cfg)
    check_components(conf)  # model, optimizer, data set: importable, right kind, arguments fit
    if conf.sequence.scheduler is not None:  # a PyTorch scheduler: importable, its arguments fit
        check_scheduler(conf.sequence, conf.strategy.name)
    outcome.setting = conf.tracking.run_name or run_name(conf)
    label = display_name(conf, ctx)
    seed_everything(conf.seed)
    threads = set_threads(conf.threads, ctx.n_workers)
    device = resolve_device(conf.device, ctx.job_num)
    tracker = _connect(conf, ctx)
    prior = Prior("fresh")
    if tracker is not None and tracker.experiment_id and _idempotent(conf, ctx):
        prior = find_prior(tracker.client, tracker.experiment_id, fingerprint(cfg))
        if prior.action == "skip":
            return _skip(prior, tracker, ctx, outcome)

    listeners = [EpochLogLine(label), ProgressBar(conf.trainer.progress), *extra_listeners]
    engine = build_engine(cfg, conf, device, listeners)
    checkpoint = None
    if ctx.output_dir is not None and conf.trainer.checkpoint:
        checkpoint = ctx.output_dir / CHECKPOINT_FILE
    tracked = TrackedRun(
        tracker, label, ctx.parent_run_id, checkpoint, conf.trainer.keep_checkpoint
    )
    if prior.action == "resume":
        assert prior.checkpoint is not None
        restore(engine, load_checkpoint(prior.checkpoint), prior.checkpoint)
        outcome.note = f"resumed after epoch {len(engine.history)}"
        log.info("%s resumes after epoch %d from %s", label, len(engine.history), prior.checkpoint)
        tracked.reopen(prior, engine.history)
    elif tracker is not None:
        tracked.start(prior, _fresh_run(cfg, conf, ctx, threads, device))
    outcome.run_id = tracked.run_id
    _add_observers(engine, conf, checkpoint, tracked)
    with tracked:
        result = engine.fit()
        tracked.ended(result.status)
    if result.diverged:
        log.warning(
            "%s diverged at epoch %d (non-finite loss); recorded as FAILED",
            label,
            result.epochs_run,
        )
    return result
