"""Sweeps launched at once into a fresh SQLite store: each parent, each child, a usable store."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import experiment_runs, is_sweep_parent, run_cli, start_cli, store

pytestmark = pytest.mark.slow

SWEEPS, ROUNDS = 3, 10


def _launch_sweeps(folder: Path) -> list[subprocess.CompletedProcess]:
    """Start ``SWEEPS`` one-job sweeps (distinct seeds) at once; wait for all of them. Each
    creates the store, its experiment and its parent run, and its job a child run, racing."""
    procs = [
        start_cli(
            [
                "-m",
                "dataset=digits",
                "trainer.max_epochs=1",
                f"seed={seed}",
                "report.enabled=false",
                "tracking.log_plot=false",
                "trainer.progress=off",
                "trainer.checkpoint=false",
                "hydra/launcher=basic",  # the job in the launching process: one start each
                f"hydra.sweep.dir={folder}/multirun/{seed}",
            ],
            folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(SWEEPS)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    return [
        subprocess.CompletedProcess(p.args, p.returncode, *out)
        for p, out in zip(procs, outputs, strict=True)
    ]


@pytest.mark.timeout(1800)  # ten rounds of three CLI launches
def test_sweeps_launched_at_once_into_a_fresh_store(tmp_path: Path) -> None:
    for round_ in range(ROUNDS):
        folder = tmp_path / str(round_)
        folder.mkdir()
        for done in _launch_sweeps(folder):
            assert done.returncode == 0, (round_, done.stderr[-2000:])
            assert "Traceback" not in done.stderr and "UserWarning" not in done.stderr
        runs = experiment_runs(store(folder))
        parents = {r.info.run_id for r in runs if is_sweep_parent(r)}
        children = [r for r in runs if r.info.run_id not in parents]
        assert len(parents) == SWEEPS and len(children) == SWEEPS, round_
        assert {c.data.tags.get("mlflow.parentRunId") for c in children} == parents, round_
        assert all(r.info.status == "FINISHED" for r in runs), round_


def test_sweep_without_its_parent_run_stops_before_any_job(tmp_path: Path) -> None:
    """A store that cannot hold the parent run: one line, non-zero, and no job launched."""
    (tmp_path / "broken.db").write_bytes(b"not a SQLite database, not even close" * 100)
    done = run_cli(
        [
            "-m",
            "dataset=digits",
            "trainer.max_epochs=1",
            "seed=1,2",
            f"tracking.uri=sqlite:///{tmp_path / 'broken.db'}",
            "report.enabled=false",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "UserWarning" not in done.stderr
    assert "lrdecay: " in done.stderr and "parent run" in done.stderr
    assert not list((tmp_path / "sweep").glob("*/result.json"))  # no job ran
