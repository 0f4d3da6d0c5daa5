"""The run fingerprint: what defines an experiment (``IDENTITY``) changes it, nothing else does.

A re-launched sweep skips or resumes the runs whose fingerprint it finds, so a key that wrongly
counts retrains finished work, and one that wrongly does not reuses a run of another experiment.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from omegaconf import OmegaConf

from lrdecay.tracking.resume import IDENTITY, fingerprint
from lrdecay.tracking.tracker import flatten
from tests.conftest import compose_config

#: Command-line changes to what a run computes: each must give another fingerprint.
COUNTS = [
    "dataset=digits",
    "dataset.batch_size=32",
    "dataset.val_fraction=0.1",
    "dataset.split_seed=1",
    "dataset.epochs=7",  # through trainer.max_epochs: ${dataset.epochs}
    "model=cifar_cnn",
    "model.dropout=0.5",
    "optimizer=adam",
    "optimizer.lr=0.05",
    "optimizer.momentum=0.8",
    "sequence=seq1",
    "sequence.gamma=0.8",
    "strategy=cutoff",
    "strategy.rate=0.02",
    "trainer.max_epochs=7",
    "trainer.early_stop_tol=0.001",
    "trainer.convergence_window=5",
    "trainer.convergence_threshold=0.01",
    "trainer.precision=bf16",
    "seed=1",
]
#: Changes to where and how fast a run goes, what it shows and what reads it: same experiment.
IGNORED = [
    "dataset.eval_batch_size=512",
    "dataset.target_accuracy=0.9",
    "data.root=/elsewhere",
    "data.download=false",
    "data.mirror=http://127.0.0.1:8000/",
    "trainer.progress=off",
    "trainer.checkpoint=false",
    "trainer.keep_checkpoint=true",
    "trainer.channels_last=off",
    "trainer.compile=true",
    "tracking.store_dir=other",
    "tracking.uri=sqlite:///other.db",
    "tracking.experiment=elsewhere",
    "tracking.run_name=named",
    "tracking.log_plot=false",
    "report.enabled=false",
    "sweep.rerun=true",
    "objective=[best_val_acc]",
    "resume=true",
    "device=cpu",
    "threads=2",
    "trial.metric=val_loss",
]


@pytest.fixture(scope="module")
def base() -> str:
    return fingerprint(compose_config([]))


@pytest.mark.parametrize("override", COUNTS)
def test_a_change_to_the_experiment_changes_the_fingerprint(base: str, override: str) -> None:
    assert fingerprint(compose_config([override])) != base


@pytest.mark.parametrize("override", IGNORED)
def test_a_change_outside_the_experiment_keeps_the_fingerprint(base: str, override: str) -> None:
    assert fingerprint(compose_config([override])) == base


def test_the_fingerprint_is_stable_and_short() -> None:
    cfg = compose_config(["dataset=digits", "seed=3"])
    fp = fingerprint(cfg)
    assert (
        fp
        == fingerprint(copy.deepcopy(cfg))
        == fingerprint(compose_config(["seed=3", "dataset=digits"]))
    )
    assert len(fp) == 16 and int(fp, 16) >= 0


def _changed(value: Any) -> Any:
    """Another value of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, list):
        return [*value, value[-1] if value else 1]
    return f"{value}-changed"


def _in_identity(path: str) -> bool:
    group, _, key = path.partition(".")
    if group not in IDENTITY:
        return False
    keys = IDENTITY[group]
    return keys is None or key in keys


def test_every_key_outside_identity_is_ignored_and_new_keys_follow_their_group() -> None:
    """Walk the whole config: changing any key outside :data:`IDENTITY` keeps the fingerprint
    (a key added to the config later is covered without listing it), and a key added to a
    group that counts as a whole changes it, while one added to a listed group does not."""
    tree: Any = OmegaConf.to_container(compose_config([]), resolve=False)
    base = fingerprint(OmegaConf.create(tree))
    # keys whose value another key interpolates into the identity (trainer.max_epochs)
    feeds_identity = {"dataset.epochs"}
    outside = [k for k in flatten(tree) if not _in_identity(k) and k not in feeds_identity]
    assert "tracking.store_dir" in outside and "device" in outside
    for path in outside:
        changed = copy.deepcopy(tree)
        *parents, leaf = path.split(".")
        node = changed
        for part in parents:
            node = node[part]
        node[leaf] = _changed(node[leaf])
        assert fingerprint(OmegaConf.create(changed)) == base, path
    for group, keys in IDENTITY.items():
        if not isinstance(tree.get(group), dict):
            continue
        grown = copy.deepcopy(tree)
        grown[group]["added_later"] = 1
        counts = fingerprint(OmegaConf.create(grown)) != base
        assert counts == (keys is None), group
