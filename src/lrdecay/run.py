"""One run from a composed config: data, model, optimizer, scheduler, listeners, engine, summary.

``train.py`` is a thin Hydra entry point around :func:`run`; tests and sweepers call it too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from lrdecay.config import LrdecayConfig, OptimizerConfig, validate
from lrdecay.core.acceleration import accelerate, uses_channels_last
from lrdecay.core.checkpoint import CHECKPOINT_FILE, CheckpointListener, load_checkpoint, restore
from lrdecay.core.data import load_data
from lrdecay.core.engine import Engine, TrainerSettings
from lrdecay.core.interrupts import StopAtEpochEnd
from lrdecay.core.models import build_model
from lrdecay.core.progress import EpochLogLine, ProgressBar
from lrdecay.core.records import FINAL_ACC_METRIC, Listener, RunSummary, summary_key
from lrdecay.core.resources import resolve_device, seed_everything, set_threads
from lrdecay.core.torch_schedules import TorchScheduler
from lrdecay.scheduler_config import build_scheduler, check_scheduler, with_budget
from lrdecay.sweep.outcomes import JobResult, write_result
from lrdecay.tracking.batch_rates import BatchRates
from lrdecay.tracking.redact import redact_text, redact_uri
from lrdecay.tracking.resume import (
    CHECKPOINT_TAG,
    FINGERPRINT_TAG,
    Prior,
    find_prior,
    fingerprint,
    replace_stale,
    summary_from_run,
)
from lrdecay.tracking.tracker import (
    MlflowTracker,
    default_artifact_root,
    experiment_name,
    flatten,
    git_commit,
    resolve_uri,
)
from lrdecay.tracking.ui import OPTION_KEYS, RUN_COLOR_TAG, name_suffix, run_params, setting_colour

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
    """``<sequence>-<strategy>``; a fixed rate is named by its optimizer (``sgd-fixed``); a
    PyTorch scheduler stepped as it is defined by its name alone (``cosine``)."""
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


#: Names a sweeper may ask for as ``objective``, and the summary metric each one reads.
OBJECTIVES = {
    "val_acc": FINAL_ACC_METRIC,
    "best_val_acc": summary_key("best_val_acc"),
    "convergence_epoch": summary_key("convergence_epoch"),
    "test_acc": summary_key("test_acc"),
    "train_seconds": summary_key("train_seconds"),
    "epochs_run": summary_key("epochs_run"),
}


def objective_values(summary: RunSummary, names: Iterable[str]) -> list[float]:
    """The summary's values for the objectives ``names`` (NaN where a value is missing)."""
    metrics = summary.metrics()
    return [float(metrics.get(OBJECTIVES[name], float("nan"))) for name in names]


def build_optimizer(
    cfg: OptimizerConfig, params: Iterable[torch.nn.Parameter]
) -> torch.optim.Optimizer:
    """SGD with momentum or Adam at initial rate ``cfg.lr`` (= r0)."""
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    return torch.optim.Adam(
        params,
        lr=cfg.lr,
        betas=tuple(cfg.betas),  # type: ignore[arg-type]
        weight_decay=cfg.weight_decay,
    )


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
        tags["optuna.trial"] = str(conf.trial.number)
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
) -> RunSummary:
    """Validate ``cfg``, train one model under its schedule, track it, and return the summary.

    The MLflow run ends FINISHED, FAILED (an exception, or divergence: tagged ``diverged``) or
    KILLED (KeyboardInterrupt, or a search pruned it: tag ``pruned``). Errors a user can fix
    raise :class:`lrdecay.errors.LrdecayError`.
    With ``ctx.output_dir`` set, the outcome is also saved there as ``result.json``, however the
    run ends, for the sweep's summary.
    """
    ctx = ctx or RunContext()
    ctx.overrides = [redact_text(o) for o in ctx.overrides]
    outcome = JobResult(
        setting=" ".join(ctx.overrides) or "run",
        status="failed",
        job_num=ctx.job_num,
        overrides=list(ctx.overrides),
    )
    try:
        summary = _train(cfg, ctx, outcome, extra_listeners)
        outcome.status = summary.status
        outcome.final_val_acc = summary.final_val_acc
        outcome.convergence_epoch = summary.convergence_epoch
        outcome.epochs_run = summary.epochs_run
        outcome.seconds = summary.train_seconds
        outcome.samples_per_second = summary.samples_per_second
        return summary
    except KeyboardInterrupt:
        outcome.status, outcome.error = "killed", "interrupted"
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


def _skip(prior: Prior, tracker: MlflowTracker, ctx: RunContext, outcome: JobResult) -> RunSummary:
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
    summary = summary_from_run(prior.run)
    summary.status = "skipped"
    return summary


def _train(
    cfg: DictConfig, ctx: RunContext, outcome: JobResult, extra_listeners: Iterable[Listener]
) -> RunSummary:
    """The body of :func:`run`; fills ``outcome`` with what is known as soon as it is known."""
    conf = validate(cfg)
    if conf.sequence.scheduler is not None:  # a PyTorch scheduler: importable, its arguments fit
        check_scheduler(conf.sequence, conf.strategy.name)
    outcome.setting = conf.tracking.run_name or run_name(conf)
    label = display_name(conf, ctx)
    seed_everything(conf.seed)
    threads = set_threads(conf.threads, ctx.n_workers)
    device = resolve_device(conf.device, ctx.job_num)
    tracker = _connect(conf, ctx)
    fp = fingerprint(cfg)
    prior = Prior("fresh")
    if tracker is not None and tracker.experiment_id and _idempotent(conf, ctx):
        prior = find_prior(tracker.client, tracker.experiment_id, fp)
        if prior.action == "skip":
            return _skip(prior, tracker, ctx, outcome)

    data = load_data(conf.dataset, conf.data, device)
    model = accelerate(
        build_model(conf.model, data.input_shape, data.num_classes), device, conf.trainer
    )
    optimizer = build_optimizer(conf.optimizer, model.parameters())
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
    listeners: list[Listener] = [
        EpochLogLine(label),
        ProgressBar(conf.trainer.progress),
        *extra_listeners,
    ]
    engine = Engine(model, optimizer, scheduler, data, settings, listeners)
    if prior.action == "resume":
        assert prior.checkpoint is not None
        restore(engine, load_checkpoint(prior.checkpoint), prior.checkpoint)
        outcome.note = f"resumed after epoch {len(engine.history)}"
        log.info("%s resumes after epoch %d from %s", label, len(engine.history), prior.checkpoint)

    ckpt = (
        ctx.output_dir / CHECKPOINT_FILE
        if ctx.output_dir is not None and conf.trainer.checkpoint
        else None
    )
    if tracker is not None:
        if prior.action == "resume" and prior.run is not None:
            tracker.reopen(prior.run.info.run_id, ctx.parent_run_id)
            replace_stale(tracker.client, prior, prior.run.info.run_id)
            flushed = tracker.flush_history(engine.history)
            if flushed:
                log.info("%s: logged %d epoch(s) the store was missing", label, flushed)
        else:
            tags = {**_tags(conf, ctx, threads, device), FINGERPRINT_TAG: fp}
            tracker.start(label, tags, _params(cfg), ctx.parent_run_id)
            replace_stale(tracker.client, prior, tracker.run_id)
            tracker.log_text(redact_text(OmegaConf.to_yaml(cfg, resolve=True)), "config.yaml")
            tracker.log_text("\n".join(ctx.overrides) + "\n", "overrides.txt")
        if ckpt is not None:
            tracker.set_tags({CHECKPOINT_TAG: str(ckpt.resolve())})
        outcome.run_id = tracker.run_id
        log.info(
            "tracking run %s (%s) in experiment '%s' at %s",
            tracker.run_id,
            label,
            tracker.experiment,
            redact_uri(tracker.uri),
        )
    if ckpt is not None:  # before the tracker: whatever is logged is also in the checkpoint
        engine.listeners.append(CheckpointListener(ckpt, outcome.run_id))
    if tracker is not None:
        engine.listeners.append(tracker)
        if isinstance(scheduler, TorchScheduler) and scheduler.per_batch:
            engine.listeners.append(BatchRates(tracker, scheduler))
    if conf.trial.number is not None:  # a trial of an Optuna study: report, maybe prune
        # (after the tracker, so a pruned epoch is still logged)
        from lrdecay.sweep.pruning import PruningListener

        engine.listeners.append(PruningListener(conf.trial))
    engine.listeners.append(StopAtEpochEnd())  # last: the epoch is saved and logged first

    status = "FAILED"
    try:
        summary = engine.fit()
        status = {"diverged": "FAILED", "pruned": "KILLED"}.get(summary.status, "FINISHED")
        if summary.diverged:
            log.warning(
                "%s diverged at epoch %d (non-finite loss); recorded as FAILED",
                label,
                summary.epochs_run,
            )
        return summary
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if tracker is not None:
            tracker.end(status)
        if status == "FINISHED" and ckpt is not None and not conf.trainer.keep_checkpoint:
            ckpt.unlink(missing_ok=True)  # a finished run is skipped on re-launch, not resumed
            if tracker is not None:
                tracker.delete_tag(CHECKPOINT_TAG)  # no tag pointing at a deleted file
