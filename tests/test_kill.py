"""A sweep killed with SIGKILL mid-way, then re-launched: nothing lost, nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from lrdecay.core.records import EPOCH_METRICS
from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.slow

EPOCHS = 20
ARGS = [
    "-m",
    "experiment=paper",
    "dataset=digits",
    f"trainer.max_epochs={EPOCHS}",
    "hydra.launcher.n_jobs=2",
    "report.enabled=false",
]


def _results(folder: Path) -> list[Path]:
    return list(folder.glob("multirun/*/*/*/result.json"))


def test_kill_9_mid_sweep_then_rerun_finishes_each_setting_once(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *ARGS],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while len(_results(tmp_path)) < 4:  # some settings done, others mid-training
        assert proc.poll() is None and time.monotonic() < deadline, "sweep ended too early"
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole tree: launcher and every worker
    proc.wait()
    done_before = len(_results(tmp_path))
    assert done_before < 14

    again = run_cli(ARGS, cwd=tmp_path, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "14 jobs: 14 finished" in again.stdout
    assert again.stdout.count("skipped: FINISHED as run") >= 4  # completed work not redone

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("lrdecay-digits")
    every = client.search_runs([exp.experiment_id], max_results=500)
    parents = sorted(
        (r for r in every if r.data.tags.get("lrdecay.role") == "sweep"),
        key=lambda r: r.info.start_time,
    )
    # the killed launcher's parent could never close itself: the re-launch closed it
    assert [p.info.status for p in parents] == ["KILLED", "FINISHED"]
    assert "closed 1 sweep parent run(s) whose launcher had died" in again.stdout
    runs = [r for r in every if r.data.tags.get("lrdecay.role") != "sweep"]
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert len(finished) == 14 and len({r.info.run_name for r in finished}) == 14
    assert len(runs) == 14  # interrupted runs were resumed, not duplicated
    for r in finished:
        for name in EPOCH_METRICS:
            steps = [m.step for m in client.get_metric_history(r.info.run_id, name)]
            assert sorted(steps) == list(range(1, EPOCHS + 1)), (r.info.run_name, name)
