"""Checkpoints, resume in the same MLflow run, and idempotent re-runs."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import torch
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from lrdecay.core.checkpoint import CHECKPOINT_FILE, FORMAT_VERSION, load_checkpoint
from lrdecay.core.records import EPOCH_METRICS, metric_name
from lrdecay.errors import LrdecayError
from lrdecay.run import RunContext, run
from tests.helpers import InterruptAt, compose_config, new_store


def _cfg(tmp: Path, store: str, *extra: str):
    return compose_config(
        [
            "dataset=digits",
            f"tracking.uri={new_store(tmp / store)}",
            "trainer.progress=off",
            "tracking.log_plot=false",
            "trainer.max_epochs=5",
            "model=cifar_cnn",
            "dataset.channels=1",
            *extra,
        ]
    )


def _ctx(tmp: Path, name: str) -> RunContext:
    return RunContext(base_dir=tmp, output_dir=tmp / name)


@pytest.mark.parametrize("setting", ["seq3-epoch", "sgd_schedulefree-fixed", "prodigy-fixed"])
def test_resumed_run_equals_an_uninterrupted_one(setting: str, tmp_path: Path) -> None:
    """cifar_cnn on digits: dropout and shuffling both draw from the restored RNGs; the state
    of a schedule-free or learning-rate-free optimizer is restored with them."""
    chosen = f"setting={setting}"
    torch.use_deterministic_algorithms(True)
    try:
        whole = run(_cfg(tmp_path, "a.db", chosen), _ctx(tmp_path, "a"))
        with pytest.raises(KeyboardInterrupt):
            run(
                _cfg(tmp_path, "b.db", chosen),
                _ctx(tmp_path, "b1"),
                extra_listeners=[InterruptAt(3)],
            )
        assert (tmp_path / "b1" / CHECKPOINT_FILE).is_file()
        resumed = run(_cfg(tmp_path, "b.db", chosen, "resume=true"), _ctx(tmp_path, "b2"))
    finally:
        torch.use_deterministic_algorithms(False)
    assert [r.val_loss for r in resumed.history] == [r.val_loss for r in whole.history]
    assert resumed.final_val_acc == whole.final_val_acc  # bit-identical on CPU

    client = MlflowClient(f"sqlite:///{tmp_path / 'b.db'}")
    (r,) = client.search_runs([client.get_experiment_by_name("lrdecay-digits").experiment_id])
    assert r.info.status == "FINISHED"
    for name in EPOCH_METRICS:
        steps = [m.step for m in client.get_metric_history(r.info.run_id, name)]
        assert sorted(steps) == [1, 2, 3, 4, 5], name  # no gap, no duplicate
    assert not (tmp_path / "b2" / CHECKPOINT_FILE).exists()  # finished: nothing to resume


def test_finished_twin_is_skipped_and_rerun_trains_again(tmp_path: Path) -> None:
    first = run(_cfg(tmp_path, "s.db", "resume=true"), _ctx(tmp_path, "one"))
    again = run(_cfg(tmp_path, "s.db", "resume=true"), _ctx(tmp_path, "two"))
    assert again.status == "skipped" and again.history == []
    assert again.final_val_acc == pytest.approx(first.final_val_acc)
    run(_cfg(tmp_path, "s.db"), _ctx(tmp_path, "three"))  # resume=false: a fresh run
    client = MlflowClient(f"sqlite:///{tmp_path / 's.db'}")
    runs = client.search_runs([client.get_experiment_by_name("lrdecay-digits").experiment_id])
    assert len(runs) == 2


def test_checkpoint_loads_without_unpickling(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        run(_cfg(tmp_path, "c.db"), _ctx(tmp_path, "c"), extra_listeners=[InterruptAt(2)])
    state = torch.load(tmp_path / "c" / CHECKPOINT_FILE, weights_only=True)
    assert len(state["history"]) == 1 and state["run_id"]


def _active_twins(tmp: Path, store: str) -> list:
    client = MlflowClient(f"sqlite:///{tmp / store}")
    return client.search_runs([client.get_experiment_by_name("lrdecay-digits").experiment_id])


def test_twin_without_its_checkpoint_is_replaced_not_duplicated(tmp_path: Path) -> None:
    """An interrupted run whose checkpoint is gone cannot resume: the re-run replaces it."""
    with pytest.raises(KeyboardInterrupt):
        run(_cfg(tmp_path, "r.db"), _ctx(tmp_path, "r1"), extra_listeners=[InterruptAt(3)])
    (lost,) = _active_twins(tmp_path, "r.db")
    assert lost.info.status == "KILLED" and lost.data.metrics  # it had logged epochs
    (tmp_path / "r1" / CHECKPOINT_FILE).unlink()
    run(_cfg(tmp_path, "r.db", "resume=true"), _ctx(tmp_path, "r2"))
    (kept,) = _active_twins(tmp_path, "r.db")  # the setting appears once
    assert kept.info.status == "FINISHED" and kept.info.run_id != lost.info.run_id
    client = MlflowClient(f"sqlite:///{tmp_path / 'r.db'}")
    replaced = client.get_run(lost.info.run_id)
    assert replaced.info.lifecycle_stage == "deleted"
    assert replaced.data.tags["lrdecay.replaced_by"] == kept.info.run_id


def _as_written_before_sections(client: MlflowClient, run) -> str:
    """``run`` as a store written before the metric sections holds it: a copy with its tags,
    every metric's history under the bare name (``val_acc``), its status; the original is
    deleted so that the copy is the setting's twin. Returns the copy's id."""
    copy = client.create_run(
        run.info.experiment_id, run_name=run.info.run_name, tags=dict(run.data.tags)
    ).info.run_id
    bare = [
        Metric(metric_name(key), m.value, m.timestamp, m.step)
        for key in run.data.metrics
        for m in client.get_metric_history(run.info.run_id, key)
    ]
    client.log_batch(copy, metrics=bare)
    client.set_terminated(copy, status=run.info.status)
    client.delete_run(run.info.run_id)
    return copy


def test_a_store_written_before_the_metric_sections_is_skipped_and_resumed(tmp_path: Path) -> None:
    """Re-launching over runs logged with bare metric names: the FINISHED twin is skipped with
    its recorded accuracy, the interrupted one resumes from its checkpoint in the same run and
    ends with its whole history under today's keys, step = epoch."""
    done = run(_cfg(tmp_path, "o.db", "resume=true", "seed=1"), _ctx(tmp_path, "d1"))
    with pytest.raises(KeyboardInterrupt):
        run(
            _cfg(tmp_path, "o.db", "resume=true", "seed=2"),
            _ctx(tmp_path, "i1"),
            extra_listeners=[InterruptAt(3)],
        )
    client = MlflowClient(f"sqlite:///{tmp_path / 'o.db'}")
    old = {
        r.data.tags["seed"]: _as_written_before_sections(client, r)
        for r in _active_twins(tmp_path, "o.db")
    }
    assert not any("/" in key for key in client.get_run(old["1"]).data.metrics)

    skipped = run(_cfg(tmp_path, "o.db", "resume=true", "seed=1"), _ctx(tmp_path, "d2"))
    assert skipped.status == "skipped" and skipped.final_val_acc == done.final_val_acc
    assert (skipped.epochs_run, skipped.best_val_acc) == (done.epochs_run, done.best_val_acc)
    resumed = run(_cfg(tmp_path, "o.db", "resume=true", "seed=2"), _ctx(tmp_path, "i2"))
    assert resumed.status == "finished" and resumed.epochs_run == 5
    assert {r.info.run_id for r in _active_twins(tmp_path, "o.db")} == set(old.values())
    for name in EPOCH_METRICS:
        steps = [m.step for m in client.get_metric_history(old["2"], name)]
        assert sorted(steps) == [1, 2, 3, 4, 5], name


@pytest.mark.parametrize("damage", ["missing entries", "another model's weights"])
def test_a_checkpoint_of_the_wrong_structure_is_one_clear_error(
    tmp_path: Path, damage: str
) -> None:
    """resume=true onto a checkpoint that is not this run's: an error naming the file and the
    fix, never a KeyError or a state-dict traceback."""
    from lrdecay.errors import LrdecayError

    with pytest.raises(KeyboardInterrupt):
        run(_cfg(tmp_path, "w.db"), _ctx(tmp_path, "w"), extra_listeners=[InterruptAt(2)])
    path = tmp_path / "w" / CHECKPOINT_FILE
    state = torch.load(path, weights_only=True)
    if damage == "missing entries":
        state = {"version": state["version"], "model": state["model"]}
    else:
        state["model"] = {"conv.weight": torch.zeros(3, 3)}
    torch.save(state, path)
    with pytest.raises(LrdecayError, match=rf"checkpoint {path}.*delete it") as caught:
        run(_cfg(tmp_path, "w.db", "resume=true"), _ctx(tmp_path, "w2"))
    assert "\n" not in str(caught.value)


class _Payload:
    """Pickles as a call that creates ``marker``: what a crafted checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize(
    ("content", "refusal"),
    [
        pytest.param("garbage", r"is unreadable \(\w+\)", id="garbage"),
        pytest.param("truncated", r"is unreadable \(\w+\)", id="truncated"),
        pytest.param("list", r"holds a list, not a checkpoint", id="list"),
        pytest.param("version 2", rf"has format 2, expected {FORMAT_VERSION}", id="version 2"),
        pytest.param("no version", rf"has format None, expected {FORMAT_VERSION}", id="no version"),
    ],
)
def test_a_checkpoint_that_is_no_checkpoint_is_refused_in_one_line(
    tmp_path: Path, content: str, refusal: str
) -> None:
    path = tmp_path / CHECKPOINT_FILE
    if content == "garbage":
        path.write_bytes(b"not a checkpoint at all\n" * 10)
    elif content == "truncated":
        torch.save({"version": FORMAT_VERSION, "model": {"w": torch.zeros(64, 64)}}, path)
        path.write_bytes(path.read_bytes()[:200])
    elif content == "list":
        torch.save([torch.zeros(2), 1], path)
    elif content == "version 2":
        torch.save({"version": 2}, path)
    else:
        torch.save({"model": {}}, path)
    with pytest.raises(LrdecayError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert re.fullmatch(
        rf"checkpoint {re.escape(str(path))} {refusal}; delete it to start that run afresh", message
    )


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_a_checkpoint_crafted_to_run_code_is_refused_unrun(tmp_path: Path, writer: str) -> None:
    """Checkpoints load with ``weights_only=True``: a pickle that would run code is refused as
    unreadable, and its code never runs."""
    marker = tmp_path / "ran"
    path = tmp_path / CHECKPOINT_FILE
    payload = {"version": FORMAT_VERSION, "run_id": _Payload(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(LrdecayError) as caught:
        load_checkpoint(path)
    assert not marker.exists(), "unpickling the checkpoint ran its code"
    assert f"checkpoint {path} is unreadable (UnpicklingError); delete it" in str(caught.value)


#: Overrides that change what a run computes (each must change the fingerprint) ...
DEFINING = [
    "dataset.batch_size=32",
    "dataset.val_fraction=0.1",
    "dataset.split_seed=3",
    "model=cifar_cnn",
    "optimizer=adam",
    "optimizer.lr=0.02",
    "sequence=seq1",
    "sequence.gamma=0.8",
    "strategy=cutoff",
    "strategy.rate=0.02",
    "trainer.max_epochs=7",
    "trainer.early_stop_tol=0.001",
    "trainer.convergence_window=3",
    "trainer.precision=bf16",
    "seed=7",
]
#: ... and overrides that do not (a re-launch with any of them retrains nothing).
INCIDENTAL = [
    "trainer.keep_checkpoint=true",
    "trainer.checkpoint=false",
    "objective=[test_acc]",
    "trainer.progress=off",
    "trainer.channels_last=off",
    "trainer.compile=true",
    "tracking.store_dir=elsewhere",
    "tracking.log_plot=false",
    "data.root=/x",
    "data.download=false",
    "device=cpu",
    "threads=1",
    "resume=true",
    "sweep.rerun=true",
    "report.enabled=false",
    "dataset.eval_batch_size=64",
    "dataset.target_accuracy=0.9",
    "trial.number=3",
]


def test_fingerprint_is_what_defines_the_experiment() -> None:
    from lrdecay.tracking.resume import fingerprint

    base = fingerprint(compose_config(["dataset=digits"]))
    assert fingerprint(compose_config(["dataset=digits"])) == base  # stable
    for override in DEFINING:
        assert fingerprint(compose_config(["dataset=digits", override])) != base, override
    for override in INCIDENTAL:
        assert fingerprint(compose_config(["dataset=digits", override])) == base, override
