"""Idempotent runs: a config fingerprint, and what to do with an earlier run that has it.

A run's fingerprint hashes the config keys that define the experiment (:data:`IDENTITY`):
the data set and its split, model, optimizer, sequence, strategy, seed and the training budget.
Everything else (where data and runs are kept, device, threads, speed and display options,
what a sweeper reads back, checkpoint policy) may change between launches without retraining.
Re-launching a sweep looks each job's fingerprint up in the experiment: a FINISHED run is
skipped, an interrupted one (RUNNING after a kill, KILLED, or FAILED by an exception) resumes
from its checkpoint in the same MLflow run, and the rest start afresh: an interrupted twin that
cannot be resumed (its checkpoint is gone) is replaced, i.e. deleted and tagged with the new
run's id, so the experiment holds each setting once.
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

from lrdecay.tracking.run_logger import DIVERGED_TAG
from lrdecay.tracking.ui import is_summary

FINGERPRINT_TAG = "lrdecay.fingerprint"
CHECKPOINT_TAG = "lrdecay.checkpoint"
#: Set on a deleted twin: the id of the run that replaced it.
REPLACED_BY_TAG = "lrdecay.replaced_by"
#: Set on a run recreated from a study's exported files (:mod:`lrdecay.report.restore`): the id
#: of the run it was trained as, in the store that trained it.
RESTORED_FROM_TAG = "lrdecay.restored_from"
#: What defines an experiment: each config group whose values decide a run's numbers, with the
#: keys of it that count (None: the whole group, so a field added to it counts by default).
#: An allow-list: a new setting elsewhere never makes finished runs look new.
IDENTITY: dict[str, tuple[str, ...] | None] = {
    "dataset": (
        "name",
        "channels",
        "height",
        "width",
        "num_classes",
        "batch_size",
        "val_fraction",
        "split_seed",
    ),
    "model": None,
    "optimizer": None,
    "sequence": None,
    "strategy": None,
    "trainer": (
        "max_epochs",
        "early_stop_tol",
        "convergence_window",
        "convergence_threshold",
        "precision",
    ),
    "seed": None,
}


#: The data set's own keys that do not define the experiment (how it is evaluated, its budget
#: before ``trainer.max_epochs`` reads it, the report's target). Every key of a data set that is
#: neither these nor listed in :data:`IDENTITY` is an argument of its factory, and counts.
DATASET_INCIDENTAL = ("eval_batch_size", "epochs", "target_accuracy")
#: The study's shipped options, as configured before components were named by ``_target_``:
#: their class is implied by their name, and the fields the old schema gave every option of the
#: group are filled in where the option lacks them. So the runs of the study's options keep their
#: fingerprints across that change (a re-launch skips or resumes them); any other ``_target_``,
#: and a data-set factory's own arguments, count.
SHIPPED: dict[str, tuple[dict[str, str], dict[str, Any]]] = {
    "dataset": (
        {
            name: f"lrdecay.core.data.{name}"
            for name in ("mnist", "fashion_mnist", "cifar10", "digits")
        },
        {},
    ),
    "model": (
        {"mnist_cnn": "lrdecay.core.models.MnistCNN", "cifar_cnn": "lrdecay.core.models.CifarCNN"},
        {"dropout": 0.25},
    ),
    "optimizer": (
        {"sgd": "torch.optim.SGD", "adam": "torch.optim.Adam"},
        {"momentum": 0.9, "weight_decay": 0.0, "betas": [0.9, 0.999]},
    ),
}

#: The project's own PyTorch schedulers by their former import path: runs fingerprinted before
#: core.torch_schedules was folded into core.schedulers hash that path, and keep doing so (a
#: re-launch skips or resumes them instead of training again).
FORMER_TARGETS = {
    f"lrdecay.core.schedulers.{name}": f"lrdecay.core.torch_schedules.{name}"
    for name in ("WarmupCosineLR", "WarmupStableDecayLR")
}


def _component(group: str, node: dict[str, Any], keys: tuple[str, ...] | None) -> dict[str, Any]:
    """A component node's identity: the allow-listed ``keys`` (None: all) plus, for a data set,
    its factory's own arguments; a shipped option's ``_target_`` as its name (:data:`SHIPPED`)."""
    targets, legacy = SHIPPED[group]
    node = dict(node)
    if keys is not None:  # a data set: its listed keys, and its factory's arguments
        own = {*keys, *DATASET_INCIDENTAL, "_target_"}
        args = {k: v for k, v in node.items() if k not in own}
        node = {k: node.get(k) for k in keys} | args | {"_target_": node.get("_target_")}
    if node.get("_target_") == targets.get(str(node.get("name"))):
        node.pop("_target_")
        for key, value in legacy.items():
            node.setdefault(key, value)
    return node


def identity(cfg: DictConfig) -> dict[str, Any]:
    """The part of ``cfg`` that defines the experiment (see :data:`IDENTITY`), resolved."""
    tree: Any = OmegaConf.to_container(cfg, resolve=True)
    out: dict[str, Any] = {}
    for group, keys in IDENTITY.items():
        value = tree.get(group)
        if group in SHIPPED and isinstance(value, dict):
            value = _component(group, value, keys)
        elif keys is not None and isinstance(value, dict):
            value = {k: value.get(k) for k in keys}
        out[group] = value
    sequence = out.get("sequence")
    if isinstance(sequence, dict):  # derived from the data; a study sequence's hash as before
        sequence.pop("steps_per_epoch", None)
        scheduler = sequence.get("scheduler")
        if scheduler is None:
            sequence.pop("scheduler", None)
            sequence.pop("interval", None)
        elif scheduler.get("_target_") in FORMER_TARGETS:
            scheduler["_target_"] = FORMER_TARGETS[scheduler["_target_"]]
    return out


def fingerprint(cfg: DictConfig) -> str:
    """A short stable hash of what defines the run's experiment (:func:`identity`)."""
    blob = json.dumps(identity(cfg), sort_keys=True, default=str)
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
    found = client.search_runs(
        [experiment_id],
        f"tags.`{FINGERPRINT_TAG}` = '{fp}'",
        order_by=["attributes.start_time DESC"],
        max_results=50,
    )
    runs = [r for r in found if not is_summary(r.data.tags)]  # a setting's mean is no twin
    for run in runs:
        if run.info.status == "FINISHED":
            return Prior("skip", run)
    interrupted = [
        r
        for r in runs
        if r.info.status in ("RUNNING", "KILLED", "FAILED")
        and r.data.tags.get(DIVERGED_TAG) != "true"
    ]
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
