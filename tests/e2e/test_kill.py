"""A sweep killed with SIGKILL mid-way, then re-launched: nothing lost, nothing twice."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from lrdecay.core.records import EPOCH_METRICS, epoch_key
from tests.helpers import (
    experiment_runs,
    is_sweep_parent,
    metric_steps,
    run_cli,
    seed_store,
    start_cli,
    store,
)

pytestmark = pytest.mark.slow

EPOCHS = 20
ARGS = [
    "-m",
    "experiment=paper",
    "dataset=digits",
    f"trainer.max_epochs={EPOCHS}",
    "hydra.launcher.n_jobs=2",
    "report.enabled=false",
    "tracking.log_plot=false",  # each job's figure: not what a kill can lose
]
VAL_ACC = epoch_key("val_acc")


def _results(folder: Path) -> list[Path]:
    return list(folder.glob("multirun/*/*/*/result.json"))


def _epochs_done(checkpoint: Path) -> int:
    """The epochs a job's checkpoint holds (0 if it is gone: the job finished meanwhile)."""
    try:
        return len(torch.load(checkpoint, weights_only=True)["history"])
    except Exception:  # gone (the job finished) while being read: not mid-training
        return 0


#: Epochs a cut-off job must still have ahead of it when the kill is sent, so that it cannot
#: finish in the moment between seeing its checkpoint and the kill (a digits epoch is short).
AHEAD = EPOCHS // 2


def _mid_training(folder: Path) -> list[Path]:
    """Checkpoints of jobs that have not ended, holding two epochs or more (so the first is
    logged in MLflow: each epoch's checkpoint is written before that epoch is tracked) and at
    most ``EPOCHS - AHEAD`` (so the job is still training when the kill lands)."""
    return [
        c
        for c in folder.glob("multirun/*/*/*/checkpoint.pt")
        if not (c.parent / "result.json").exists() and 2 <= _epochs_done(c) <= EPOCHS - AHEAD
    ]


def test_kill_9_mid_sweep_then_rerun_finishes_each_setting_once(tmp_path: Path) -> None:
    seed_store(tmp_path)
    proc = start_cli(ARGS, tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    # some settings done, another mid-training with an epoch logged
    while len(_results(tmp_path)) < 4 or not _mid_training(tmp_path):
        assert proc.poll() is None and time.monotonic() < deadline, "sweep ended too early"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # at once, the whole tree: launcher and every worker
    proc.wait()
    done_before = len(_results(tmp_path))
    assert done_before < 14
    # the jobs the kill cut off mid-training, with the epochs they had logged
    client = store(tmp_path)
    cut = {
        r.info.run_id: (r.data.tags["setting"], client.get_metric_history(r.info.run_id, VAL_ACC))
        for r in experiment_runs(client, max_results=500)
        if not is_sweep_parent(r) and r.info.status == "RUNNING"
    }
    cut = {k: v for k, v in cut.items() if v[1]}
    assert cut, "the kill cut no job off after a logged epoch"

    again = run_cli(ARGS, cwd=tmp_path, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "14 jobs: 14 finished" in again.stdout
    assert again.stdout.count("skipped: FINISHED as run") >= 4  # completed work not redone

    client = store(tmp_path)
    every = experiment_runs(client, max_results=500)
    parents = sorted(
        (r for r in every if is_sweep_parent(r)),
        key=lambda r: r.info.start_time,
    )
    # the killed launcher's parent could never close itself: the re-launch closed it
    assert [p.info.status for p in parents] == ["KILLED", "FINISHED"]
    assert "closed 1 sweep parent run(s) whose launcher had died" in again.stdout
    runs = [r for r in every if not is_sweep_parent(r)]
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert len(finished) == 14 and len({r.info.run_name for r in finished}) == 14
    assert len(runs) == 14  # interrupted runs were resumed, not duplicated
    for r in finished:
        for name in EPOCH_METRICS:
            steps = metric_steps(client, r.info.run_id, name)
            assert steps == list(range(1, EPOCHS + 1)), (r.info.run_name, name)
    # each cut-off job resumed in its own run from its checkpoint: the same run id finished,
    # the summary says after which epoch, and the epochs logged before the kill were kept,
    # not trained again (same values, same timestamps)
    ids = {r.info.run_id for r in finished}
    notes = dict(re.findall(r"\((\S+)\): resumed after epoch (\d+)", again.stdout))
    for run_id, (name, before) in cut.items():
        assert run_id in ids, (name, "not resumed in its own run")
        assert int(notes[name]) >= len(before), (name, notes.get(name), len(before))
        after = client.get_metric_history(run_id, VAL_ACC)
        kept = sorted((m.step, m.value, m.timestamp) for m in after)[: len(before)]
        assert kept == sorted((m.step, m.value, m.timestamp) for m in before), name
