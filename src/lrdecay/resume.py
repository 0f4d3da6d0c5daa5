"""Idempotent runs: a config fingerprint, and what to do with an earlier run that has it.

A run's fingerprint hashes the resolved config minus what does not change the computation
(tracking, progress display, data location, device, threads). Re-launching a sweep looks each
job's fingerprint up in the experiment: a FINISHED run is skipped, an interrupted one (RUNNING
after a kill, KILLED, or FAILED by an exception) resumes from its checkpoint in the same MLflow
run, and the rest start afresh: an interrupted twin that cannot be resumed (its checkpoint is
gone) is replaced, i.e. deleted and tagged with the new run's id, so the experiment holds each
setting once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from lrdecay.records import RunSummary

FINGERPRINT_TAG = "lrdecay.fingerprint"
CHECKPOINT_TAG = "lrdecay.checkpoint"
#: Set on a deleted twin: the id of the run that replaced it.
REPLACED_BY_TAG = "lrdecay.replaced_by"
#: Config keys that do not change what a run computes.
VOLATILE = ("tracking", "data", "device", "threads", "resume", "sweep", "report")
VOLATILE_TRAINER = ("progress",)


def fingerprint(cfg: DictConfig) -> str:
    """A short stable hash of everything in ``cfg`` that decides the run's numbers."""
    tree: Any = OmegaConf.to_container(cfg, resolve=True)
    tree = {k: v for k, v in tree.items() if k not in VOLATILE and k != "hydra"}
    trainer = {k: v for k, v in tree.get("trainer", {}).items() if k not in VOLATILE_TRAINER}
    tree["trainer"] = trainer
    blob = json.dumps(tree, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class Prior:
    """What an earlier run with the same fingerprint means for this one."""

    action: str  # "skip", "resume" or "fresh"
    run: Run | None = None
    checkpoint: Path | None = None
    stale: list[str] = field(default_factory=list)  # interrupted twins that cannot be resumed


def find_prior(client: MlflowClient, experiment_id: str, fp: str) -> Prior:
    """Skip a FINISHED twin; resume the newest interrupted twin whose checkpoint still exists;
    the other interrupted twins are ``stale``: the resumed or the fresh run replaces them."""
    runs = client.search_runs([experiment_id], f"tags.`{FINGERPRINT_TAG}` = '{fp}'",
                              order_by=["attributes.start_time DESC"], max_results=50)
    for run in runs:
        if run.info.status == "FINISHED":
            return Prior("skip", run)
    interrupted = [r for r in runs if r.info.status in ("RUNNING", "KILLED", "FAILED")
                   and r.data.tags.get("diverged") != "true"]
    for run in interrupted:
        path = run.data.tags.get(CHECKPOINT_TAG)
        if path and Path(path).is_file():
            others = [r.info.run_id for r in interrupted if r is not run]
            return Prior("resume", run, Path(path), stale=others)
    return Prior("fresh", stale=[r.info.run_id for r in interrupted])


def replace_stale(client: MlflowClient, prior: Prior, new_run_id: str) -> None:
    """Delete the twins ``new_run_id`` replaces, each tagged with that id (kept findable among
    deleted runs), so that a setting appears once among the experiment's active runs."""
    for run_id in prior.stale:
        client.set_tag(run_id, REPLACED_BY_TAG, new_run_id)
        client.delete_run(run_id)


def summary_from_run(run: Run) -> RunSummary:
    """The summary an earlier FINISHED run recorded (no epoch history: it stays in MLflow)."""
    m = run.data.metrics
    return RunSummary(
        status=run.data.tags.get("outcome", "finished"),
        epochs_run=int(m.get("epochs_run", 0)),
        final_val_acc=float(m.get("final_val_acc", float("nan"))),
        best_val_acc=float(m.get("best_val_acc", float("nan"))),
        convergence_epoch=int(m.get("convergence_epoch", 0)),
        train_seconds=float(m.get("train_seconds", 0.0)),
        samples_per_second=float(m.get("samples_per_second", 0.0)),
        test_loss=m.get("test_loss"), test_acc=m.get("test_acc"))
