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
from lrdecay.data import load_data
from lrdecay.engine import Engine, Listener, RunSummary, TrainerSettings
from lrdecay.models import build_model
from lrdecay.progress import EpochLogLine, ProgressBar
from lrdecay.resources import resolve_device, seed_everything, set_threads
from lrdecay.results import JobResult, write_result
from lrdecay.schedules import SequenceScheduler, make_sequence, make_strategy
from lrdecay.tracking import (
    MlflowTracker,
    default_artifact_root,
    flatten,
    git_commit,
    redact_uri,
    resolve_uri,
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


def run_name(conf: LrdecayConfig) -> str:
    """``<sequence>-<strategy>``; a fixed rate is named by its optimizer (``sgd-fixed``)."""
    if conf.strategy.name == "fixed":
        return f"{conf.optimizer.name}-fixed"
    return f"{conf.sequence.name}-{conf.strategy.name}"


def experiment_name(conf: LrdecayConfig) -> str:
    """``tracking.experiment`` or ``lrdecay-<dataset>``."""
    return conf.tracking.experiment or f"lrdecay-{conf.dataset.name}"


#: Names a sweeper may ask for as ``objective``, and the summary metric each one reads.
OBJECTIVES = {"val_acc": "final_val_acc", "best_val_acc": "best_val_acc",
              "convergence_epoch": "convergence_epoch", "test_acc": "test_acc",
              "train_seconds": "train_seconds", "epochs_run": "epochs_run"}


def objective_values(summary: RunSummary, names: Iterable[str]) -> list[float]:
    """The summary's values for the objectives ``names`` (NaN where a value is missing)."""
    metrics = summary.metrics()
    return [float(metrics.get(OBJECTIVES[name], float("nan"))) for name in names]


def build_optimizer(cfg: OptimizerConfig, params: Iterable[torch.nn.Parameter]
                    ) -> torch.optim.Optimizer:
    """SGD with momentum or Adam at initial rate ``cfg.lr`` (= r0)."""
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas),  # type: ignore[arg-type]
                            weight_decay=cfg.weight_decay)


def _tags(conf: LrdecayConfig, ctx: RunContext, threads: int) -> dict[str, str]:
    tags = {"dataset": conf.dataset.name, "sequence": conf.sequence.name,
            "strategy": conf.strategy.name, "optimizer": conf.optimizer.name,
            "model": conf.model.name, "seed": str(conf.seed), "threads": str(threads),
            "setting": run_name(conf)}
    commit = git_commit(ctx.base_dir)
    if commit:
        tags["mlflow.source.git.commit"] = commit
    if ctx.job_num is not None:
        tags["hydra.job_num"] = str(ctx.job_num)
    if ctx.sweep_dir:
        tags["hydra.sweep_dir"] = ctx.sweep_dir
    if ctx.output_dir is not None:
        tags["hydra.output_dir"] = str(ctx.output_dir)
    return tags


def _params(cfg: DictConfig | LrdecayConfig) -> dict[str, str]:
    resolved: Any = OmegaConf.to_container(OmegaConf.structured(cfg) if isinstance(
        cfg, LrdecayConfig) else cfg, resolve=True)
    params = flatten(resolved)
    if params.get("tracking.uri") not in (None, "None"):
        params["tracking.uri"] = redact_uri(params["tracking.uri"])
    return params


def run(cfg: DictConfig, ctx: RunContext | None = None,
        extra_listeners: Iterable[Listener] = ()) -> RunSummary:
    """Validate ``cfg``, train one model under its schedule, track it, and return the summary.

    The MLflow run ends FINISHED, FAILED (an exception, or divergence: tagged ``diverged``) or
    KILLED (KeyboardInterrupt, or a search pruned it: tag ``pruned``). Errors a user can fix
    raise :class:`lrdecay.errors.LrdecayError`.
    With ``ctx.output_dir`` set, the outcome is also saved there as ``result.json``, however the
    run ends, for the sweep's summary.
    """
    ctx = ctx or RunContext()
    outcome = JobResult(setting=" ".join(ctx.overrides) or "run", status="failed",
                        job_num=ctx.job_num, overrides=list(ctx.overrides))
    try:
        summary = _train(cfg, ctx, outcome, extra_listeners)
        outcome.status = summary.status
        outcome.final_val_acc = summary.final_val_acc
        outcome.convergence_epoch = summary.convergence_epoch
        outcome.epochs_run = summary.epochs_run
        outcome.seconds = summary.train_seconds
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


def _train(cfg: DictConfig, ctx: RunContext, outcome: JobResult,
           extra_listeners: Iterable[Listener]) -> RunSummary:
    """The body of :func:`run`; fills ``outcome`` with what is known as soon as it is known."""
    conf = validate(cfg)
    outcome.setting = conf.tracking.run_name or run_name(conf)
    seed_everything(conf.seed)
    threads = set_threads(conf.threads, ctx.n_workers)
    device = resolve_device(conf.device, ctx.job_num)
    tracker = None
    if conf.tracking.enabled:
        store = ctx.base_dir / conf.tracking.store_dir
        uri = resolve_uri(conf.tracking.uri, store)
        tracker = MlflowTracker(uri, experiment_name(conf), default_artifact_root(uri),
                                log_plot=conf.tracking.log_plot)
        tracker.connect()

    data = load_data(conf.dataset, conf.data, device)
    model = build_model(conf.model, data.input_shape, data.num_classes).to(device)
    optimizer = build_optimizer(conf.optimizer, model.parameters())
    scheduler = SequenceScheduler(
        optimizer,
        make_sequence(conf.sequence.name, conf.sequence.gamma, conf.sequence.period),
        make_strategy(conf.strategy.name, conf.strategy.rate, conf.strategy.shrink))
    label = outcome.setting
    listeners: list[Listener] = [EpochLogLine(label), ProgressBar(conf.trainer.progress)]
    listeners += list(extra_listeners)
    if tracker is not None:
        tracker.start(label, _tags(conf, ctx, threads), _params(cfg), ctx.parent_run_id)
        tracker.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
        tracker.log_text("\n".join(ctx.overrides) + "\n", "overrides.txt")
        outcome.run_id = tracker.run_id
        log.info("tracking run %s (%s) in experiment '%s' at %s", tracker.run_id, label,
                 tracker.experiment, redact_uri(tracker.uri))
        listeners.append(tracker)
    if conf.trial.number is not None:  # a trial of an Optuna study: report, maybe prune
        # (after the tracker, so a pruned epoch is still logged)
        from lrdecay.pruning import PruningListener

        listeners.append(PruningListener(conf.trial))

    settings = TrainerSettings(
        max_epochs=conf.trainer.max_epochs, batch_size=conf.dataset.batch_size,
        eval_batch_size=conf.dataset.eval_batch_size, early_stop_tol=conf.trainer.early_stop_tol,
        convergence_window=conf.trainer.convergence_window,
        convergence_threshold=conf.trainer.convergence_threshold, seed=conf.seed)
    engine = Engine(model, optimizer, scheduler, data, settings, listeners)
    status = "FAILED"
    try:
        summary = engine.fit()
        status = {"diverged": "FAILED", "pruned": "KILLED"}.get(summary.status, "FINISHED")
        if summary.diverged:
            log.warning("%s diverged at epoch %d (non-finite loss); recorded as FAILED",
                        label, summary.epochs_run)
        return summary
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if tracker is not None:
            tracker.end(status)
