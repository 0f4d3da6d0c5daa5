"""The run fingerprint: what defines an experiment (``IDENTITY``) changes it, nothing else does.

A re-launched sweep skips or resumes the runs whose fingerprint it finds, so a key that wrongly
counts retrains finished work, and one that wrongly does not reuses a run of another experiment.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from omegaconf import OmegaConf

from lrdecay.tracking.resume import FORMER_TARGETS, IDENTITY, SHIPPED, fingerprint
from lrdecay.tracking.run_logger import flatten
from tests.conftest import compose_config

#: Command-line changes to what a run computes: each must give another fingerprint.
COUNTS = [
    "dataset=digits",
    "dataset.batch_size=32",
    "dataset.val_fraction=0.1",
    "dataset.split_seed=1",
    "dataset.epochs=7",  # through trainer.max_epochs: ${dataset.epochs}
    "model=cifar_cnn",
    "+model.width=64",  # an argument of the model's class
    "model._target_=mypkg.nets.TinyNet",
    "optimizer._target_=torch.optim.RMSprop",
    "dataset._target_=mypkg.data.blobs",
    "+dataset.n=100",  # an argument of the data set's factory
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
    "setting_name=named",
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
    # the value itself: a fingerprint that changes makes every re-launch over a store written
    # before the change retrain what it should skip or resume
    assert fp == "fbef2d075f637bca"


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
    return keys is None or key in keys or key == "_target_"  # a component's class counts


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
        # a key added to a data set is an argument of its factory: it counts too
        assert counts == (keys is None or group == "dataset"), group


#: Fingerprints of the study's options as the project computed them before components were
#: named by ``_target_`` (and before its schedulers' module was renamed): runs already in a
#: store must keep them (a re-launch skips or resumes them instead of training again).
STORED = {
    (): "8064f081b8232be2",
    ("dataset=digits", "setting=seq3-epoch"): "5c5998861661f81c",
    ("dataset=digits", "setting=adam-fixed"): "7d2da353653447e6",
    ("dataset=cifar10", "setting=sgd-fixed"): "830ceece6849303f",
    ("dataset=fashion_mnist", "setting=cosine", "seed=1"): "1261a3f3dd599eb3",
    ("optimizer=adam", "sequence=seq1", "strategy=oscillate"): "4482216fe70de3ec",
    # the project's own schedulers, as fingerprinted before their module was renamed
    ("setting=wsd",): "34fa949ce7a51b1f",
    ("setting=warmup_cosine",): "3025ea2c4d3048a9",
}


@pytest.mark.parametrize("overrides", list(STORED))
def test_the_study_options_keep_the_fingerprints_of_stored_runs(overrides: tuple) -> None:
    assert fingerprint(compose_config(list(overrides))) == STORED[overrides]


@pytest.mark.parametrize(
    ("group", "name"), [(g, n) for g, (targets, _) in SHIPPED.items() for n in targets]
)
def test_the_shipped_targets_the_fingerprint_implies_are_those_of_the_options(
    group: str, name: str
) -> None:
    assert compose_config([f"{group}={name}"])[group]["_target_"] == SHIPPED[group][0][name]


def test_every_own_key_of_a_data_set_is_either_identity_or_incidental() -> None:
    """Any other key of a dataset node is an argument of its factory, and counts."""
    from dataclasses import fields

    from lrdecay.component_config import DatasetConfig
    from lrdecay.tracking.resume import DATASET_INCIDENTAL

    own = {f.name for f in fields(DatasetConfig)} - {"target", "args"}
    listed = IDENTITY["dataset"]
    assert listed is not None
    assert own == {*listed, *DATASET_INCIDENTAL}


@pytest.mark.parametrize("name", ["wsd", "warmup_cosine"])
def test_the_former_scheduler_paths_are_those_of_the_shipped_sequences(name: str) -> None:
    assert compose_config([f"sequence={name}"]).sequence.scheduler._target_ in FORMER_TARGETS
