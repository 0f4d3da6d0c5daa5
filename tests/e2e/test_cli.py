"""The CLI as a user runs it: `python train.py ...` in a fresh folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrdecay.core.records import FINAL_ACC_METRIC
from tests.helpers import (
    error_line,
    experiment_runs,
    require_fashion_mnist,
    run_cli,
    store,
    timed_cli,
)

pytestmark = pytest.mark.slow


def _no_traceback(proc) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr


def test_default_store_is_sqlite_under_mlruns(tmp_path: Path) -> None:
    proc = run_cli(["dataset=digits", "trainer.max_epochs=3"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "epoch 3/3" in proc.stdout + proc.stderr
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()
    client = store(tmp_path)
    (r,) = experiment_runs(client)
    assert r.info.status == "FINISHED"
    assert r.info.artifact_uri.startswith((tmp_path / "mlruns" / "artifacts").as_uri())
    assert {a.path for a in client.list_artifacts(r.info.run_id)} >= {"curves.png", "config.yaml"}


def test_negative_learning_rate_names_the_field(tmp_path: Path) -> None:
    proc = run_cli(["optimizer.lr=-1"], cwd=tmp_path)
    assert proc.returncode == 2  # lrdecay's check of an out-of-range value
    assert "optimizer.lr" in proc.stderr + proc.stdout
    _no_traceback(proc)
    assert not (tmp_path / "data").exists()  # failed before any data was touched


def test_unknown_sequence_lists_the_options(tmp_path: Path) -> None:
    proc = run_cli(["sequence=seq9"], cwd=tmp_path)
    assert proc.returncode == 1  # an unknown option: Hydra's composition refuses it
    out = proc.stderr + proc.stdout
    assert "seq9" in out and all(f"seq{i}" in out for i in range(1, 5))
    _no_traceback(proc)


def test_missing_mnist_offline_is_one_clear_message(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc, wall, cpu = timed_cli(
        ["dataset=mnist", f"data.root={empty}", "data.download_timeout=5"], cwd=tmp_path, timeout=90
    )
    # its own work is a start-up and a failed fetch (about 6 CPU-s), and it waits on no network
    # for long; a wall bound near the start-up's own time failed only on a loaded machine
    assert cpu < 15, f"{cpu:.1f} CPU-s"
    assert wall < 60, f"{wall:.1f} s"
    assert proc.returncode == 2  # lrdecay's check: data it cannot read or fetch
    _no_traceback(proc)
    line = error_line(proc.stdout + proc.stderr)
    assert "data.root=" in line and "download" in line


def test_fashion_mnist_two_epochs_offline(tmp_path: Path) -> None:
    """Debian's dataset-fashion-mnist files, no network: ≥ 0.85 validation accuracy."""
    require_fashion_mnist()
    proc = run_cli(
        [
            "dataset=fashion_mnist",
            "trainer.max_epochs=2",
            f"data.root={tmp_path / 'data'}",
            "data.download=false",
        ],
        cwd=tmp_path,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (r,) = experiment_runs(store(tmp_path), "lrdecay-fashion_mnist")
    assert r.data.metrics[FINAL_ACC_METRIC] >= 0.85
