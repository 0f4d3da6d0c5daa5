"""SIGTERM (what SLURM, Kubernetes and ``timeout`` send first) stops runs like Ctrl-C does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from lrdecay.core.checkpoint import CHECKPOINT_FILE
from lrdecay.tracking.ui import SHARED_VIEW_TAG, decode_view, sweep_view_key
from tests.helpers import (
    experiment_runs,
    is_summary_run,
    is_sweep_parent,
    run_cli,
    start_cli,
    store,
)

pytestmark = pytest.mark.slow

EPOCHS = 40  # long enough to be mid-training when the signal comes
#: A sweep's two jobs must both be mid-training at once, however late a loaded machine starts
#: the second: long enough that the first never finishes first (the signal ends them anyway).
SWEEP_EPOCHS = 1000
BASE = [
    "dataset=digits",
    f"trainer.max_epochs={EPOCHS}",
    "trainer.progress=off",
    "tracking.log_plot=false",
]


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    """``python train.py args`` in its own process group, as a batch system starts it, with
    Ctrl-C live as in a terminal's foreground job (a suite started in the background by a
    non-interactive shell inherits SIGINT ignored, and a run leaves an ignored signal alone)."""
    return start_cli(
        args,
        cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for(paths: list[Path], proc: subprocess.Popen, timeout: float = 240) -> None:
    """Wait until every path exists (a checkpoint: an epoch is logged) while ``proc`` runs."""
    deadline = time.monotonic() + timeout
    while not all(p.is_file() for p in paths):
        assert proc.poll() is None and time.monotonic() < deadline, "ended too early"
        time.sleep(0.1)


def _runs(folder: Path) -> list:
    return experiment_runs(store(folder))


def test_sigterm_ends_a_single_run_killed_and_resumable(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _start([*BASE, f"hydra.run.dir={out}"], tmp_path)
    _wait_for([out / CHECKPOINT_FILE], proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Traceback" not in err and "stopped by SIGTERM" in err
    (killed,) = _runs(tmp_path)
    assert killed.info.status == "KILLED"
    assert json.loads((out / "result.json").read_text())["status"] == "killed"
    assert (out / CHECKPOINT_FILE).is_file()

    again = run_cli([*BASE, "resume=true", f"hydra.run.dir={tmp_path / 'again'}"], tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    (resumed,) = _runs(tmp_path)  # the same MLflow run, continued
    assert resumed.info.run_id == killed.info.run_id and resumed.info.status == "FINISHED"


def test_ctrl_c_ends_a_single_run_killed_with_status_130(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the terminal's process group): one line, 128 + 2, the run KILLED.
    Never resumed, so its budget can be long: a loaded machine may see the first checkpoint
    late, and a 40-epoch run on digits can finish before the signal comes."""
    out = tmp_path / "run"
    proc = _start([*BASE, f"trainer.max_epochs={SWEEP_EPOCHS}", f"hydra.run.dir={out}"], tmp_path)
    _wait_for([out / CHECKPOINT_FILE], proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT == 130, err[-3000:]
    assert "Traceback" not in err and "unfinished runs are KILLED" in err
    (killed,) = _runs(tmp_path)
    assert killed.info.status == "KILLED"
    assert (out / CHECKPOINT_FILE).is_file()


def test_sigterm_to_a_sweep_closes_parent_and_jobs_killed(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = _start(
        [
            "-m",
            *BASE,
            f"trainer.max_epochs={SWEEP_EPOCHS}",
            "sequence=seq1,seq2",
            "hydra.launcher.n_jobs=2",
            "report.enabled=false",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    _wait_for([sweep / str(n) / CHECKPOINT_FILE for n in (0, 1)], proc)
    os.killpg(proc.pid, signal.SIGTERM)  # as timeout and SLURM do: the whole process group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Traceback" not in err and "stopped by SIGTERM" in err
    runs = _runs(tmp_path)
    (parent,) = [r for r in runs if is_sweep_parent(r)]
    children = [r for r in runs if r is not parent]
    assert len(children) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert [r.info.status for r in runs] == ["KILLED"] * 3  # none left RUNNING


def test_a_sweep_stopped_midway_leaves_the_band_of_each_setting_it_finished(
    tmp_path: Path,
) -> None:
    """Jobs one after another (the basic launcher): sgd-fixed's two seeds finish, seq3-epoch's
    first is mid-training when SIGTERM comes. The launcher writes sgd-fixed's summary run
    before it closes the parent, and the sweep's view shows it as a band."""
    sweep = tmp_path / "sweep"
    proc = _start(
        [
            "-m",
            *BASE,
            "setting=sgd-fixed,seq3-epoch",
            "seed=0,1",
            "hydra/launcher=basic",
            "report.enabled=false",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    _wait_for([sweep / "2" / CHECKPOINT_FILE], proc)  # jobs 0 and 1 (sgd-fixed) have ended
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    runs = _runs(tmp_path)
    (parent,) = [r for r in runs if is_sweep_parent(r)]
    (band,) = [r for r in runs if is_summary_run(r)]
    assert parent.info.status == "KILLED" and band.info.status == "FINISHED"
    assert band.info.run_name == "sgd-fixed (mean of 2)"
    assert band.data.tags["mlflow.parentRunId"] == parent.info.run_id
    view = (
        store(tmp_path)
        .get_experiment(parent.info.experiment_id)
        .tags[f"{SHARED_VIEW_TAG}{sweep_view_key(parent.info.run_id)}"]
    )
    assert "groupBy" in decode_view(view)  # the sweep's view shows it as a band
