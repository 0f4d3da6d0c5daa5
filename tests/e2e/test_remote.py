"""Tracking against a real `mlflow server` on loopback: sweeps, outages, credentials."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from lrdecay.core.listeners import Listener
from lrdecay.core.records import EPOCH_METRICS, EpochRecord, epoch_key
from lrdecay.run import RunContext, run
from tests.helpers import (
    MlflowServer,
    compose_config,
    experiment_runs,
    free_port,
    metric_steps,
    run_cli,
    seed_store,
    timed_cli,
)

pytestmark = pytest.mark.slow


def test_sweep_against_a_server_never_shows_credentials(tmp_path: Path, mlflow_server) -> None:
    uri = mlflow_server.uri.replace("http://", "http://alice:s3cret@")
    proc = run_cli(
        [
            "-m",
            "sequence=seq1,seq3",
            "dataset=digits",
            "trainer.max_epochs=3",
            f"tracking.uri={uri}",
        ],
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "s3cret" not in proc.stdout + proc.stderr
    assert "credentials in tracking.uri go to MLflow" in proc.stdout + proc.stderr
    client = MlflowClient(mlflow_server.uri)
    runs = experiment_runs(client)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)
    for r in runs:
        blob = str(r.data.params) + str(r.data.tags)
        assert "s3cret" not in blob
    for r in children:
        assert metric_steps(client, r.info.run_id, epoch_key("val_acc")) == [1, 2, 3]


class Outage(Listener):
    """Stops the server after one epoch and brings it back after a later one."""

    def __init__(self, server: MlflowServer, down_after: int, up_after: int) -> None:
        self.server, self.down_after, self.up_after = server, down_after, up_after

    def on_epoch_end(self, record: EpochRecord) -> None:
        if record.epoch == self.down_after:
            self.server.stop()
        elif record.epoch == self.up_after:
            self.server.start()


def test_server_restart_mid_run_loses_no_metric(tmp_path: Path, mlflow_server) -> None:
    cfg = compose_config(
        [
            "dataset=digits",
            "trainer.max_epochs=6",
            "trainer.progress=off",
            f"tracking.uri={mlflow_server.uri}",
            "tracking.log_plot=false",
        ]
    )
    summary = run(
        cfg,
        RunContext(base_dir=tmp_path, output_dir=tmp_path / "job"),
        extra_listeners=[Outage(mlflow_server, down_after=2, up_after=4)],
    )
    assert summary.status == "finished" and summary.epochs_run == 6
    client = MlflowClient(mlflow_server.uri)
    (r,) = experiment_runs(client)
    assert r.info.status == "FINISHED"
    for name in EPOCH_METRICS:
        assert metric_steps(client, r.info.run_id, name) == [1, 2, 3, 4, 5, 6], name


def test_unreachable_server_is_one_line_before_training(tmp_path: Path) -> None:
    proc, wall, cpu = timed_cli(
        ["dataset=digits", f"tracking.uri=http://127.0.0.1:{free_port()}"],
        cwd=tmp_path,
        timeout=120,
    )
    # no training (its own work is a start-up, about 5 CPU-s) and no retrying with backoff
    # (MLflow's own retries take minutes); 20 s of wall time also measured the machine's load
    assert cpu < 10, f"{cpu:.1f} CPU-s"
    assert wall < 60, f"{wall:.1f} s"
    assert proc.returncode == 2
    out = proc.stdout + proc.stderr
    assert "unreachable" in out and "Traceback" not in out and "epoch 1" not in out


def test_report_from_a_server_equals_the_report_from_sqlite(tmp_path: Path) -> None:
    import re

    from lrdecay.report.report_files import write_report

    seed_store(tmp_path)
    proc = run_cli(
        [
            "-m",
            "setting=seq1-epoch,seq3-oscillate,sgd-fixed",
            "seed=1,2",
            "dataset=digits",
            "trainer.max_epochs=3",
            "report.enabled=false",
            "tracking.log_plot=false",  # the report reads metrics, never the jobs' figures
            "trainer.checkpoint=false",
        ],
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    db = tmp_path / "mlruns" / "mlflow.db"
    from_file = write_report(
        f"sqlite:///{db}",
        experiment="lrdecay-digits",
        out_dir=tmp_path / "file",
        log_to_parent=False,
    )
    server = MlflowServer(tmp_path, db=db).start()
    try:
        from_server = write_report(
            server.uri,
            experiment="lrdecay-digits",
            out_dir=tmp_path / "server",
            log_to_parent=False,
        )
    finally:
        server.stop()
    for name in ("table.md", "table.csv", "table.tex"):
        assert (tmp_path / "file" / name).read_text() == (tmp_path / "server" / name).read_text()
    stamp = re.compile(r"Written \S+ \S+")
    assert stamp.sub("", from_file.read_text()) == stamp.sub("", from_server.read_text())
    assert "n=2" in (tmp_path / "file" / "table.md").read_text()
