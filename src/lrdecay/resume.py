"""Idempotent runs: a config fingerprint, and what to do with an earlier run that has it.

A run's fingerprint hashes the resolved config minus what does not change the computation
(tracking, progress display, data location, device, threads). Re-launching a sweep looks each
job's fingerprint up in the experiment: a FINISHED run is skipped, an interrupted one (RUNNING
after a kill, KILLED, or FAILED by an exception) resumes from its checkpoint in the same MLflow
run, and the rest start afresh (a twin killed before it logged any epoch is deleted, so the
experiment holds each setting once).
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
    stale: list[str] = field(default_factory=list)  # twins killed before their first epoch


def find_prior(client: MlflowClient, experiment_id: str, fp: str) -> Prior:
    """Skip a FINISHED twin; resume the newest interrupted twin whose checkpoint still exists."""
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
            return Prior("resume", run, Path(path))
    return Prior("fresh", stale=[r.info.run_id for r in interrupted if not r.data.metrics])


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
