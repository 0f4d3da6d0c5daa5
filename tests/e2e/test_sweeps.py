"""Multirun sweeps through the real CLI: parent run, children, isolation, the MLflow UI."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from lrdecay.core.datafiles import IDX_FILES
from lrdecay.core.records import EPOCH_METRICS, FINAL_ACC_METRIC, epoch_key
from tests.helpers import (
    experiment_runs,
    free_port,
    is_job,
    is_sweep_parent,
    metric_steps,
    run_cli,
    seed_store,
    start_mlflow_ui,
    store,
    store_uri,
)

pytestmark = pytest.mark.slow

PAPER_NAMES = {f"seq{i}-{s}" for i in range(1, 5) for s in ("epoch", "cutoff", "oscillate")}
PAPER_NAMES |= {"sgd-fixed", "adam-fixed"}
#: What the sweeps below do not test and switch off: the report, each job's figure and its
#: resume checkpoint (seconds of every job; the paper sweep and other files test them).
QUIET = [
    "report.enabled=false",
    "tracking.log_plot=false",
    "trainer.checkpoint=false",
    "trainer.progress=off",
]


def _sweep_runs(client: MlflowClient, experiment: str = "lrdecay-digits"):
    """(parent, training children) of the only sweep in ``experiment``."""
    runs = experiment_runs(client, experiment, max_results=1000)
    parents = [r for r in runs if is_sweep_parent(r)]
    assert len(parents) == 1
    others = [r for r in runs if r is not parents[0]]
    # every other run is a child of the sweep: its jobs, and its settings' summaries
    assert {r.data.tags.get("mlflow.parentRunId") for r in others} <= {parents[0].info.run_id}
    return parents[0], [r for r in others if is_job(r)]


def _assert_complete_history(client: MlflowClient, run, epochs: int) -> None:
    for name in EPOCH_METRICS:
        steps = metric_steps(client, run.info.run_id, name)
        assert steps == list(range(1, epochs + 1)), (run.info.run_name, name, steps)


@pytest.fixture(scope="module")
def paper_sweep(tmp_path_factory) -> Path:
    """`python train.py -m experiment=paper dataset=digits` at 3 epochs, run once."""
    folder = tmp_path_factory.mktemp("paper")
    proc = run_cli(
        ["-m", "experiment=paper", "dataset=digits", "trainer.max_epochs=3"],
        cwd=folder,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (folder / "stdout.txt").write_text(proc.stdout)
    return folder


def test_paper_preset_runs_the_14_settings_under_one_parent(paper_sweep: Path) -> None:
    client = store(paper_sweep)
    parent, children = _sweep_runs(client)
    assert {c.info.run_name for c in children} == PAPER_NAMES and len(children) == 14
    assert all(c.info.status == "FINISHED" for c in children)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["children_finished"] == "14"
    for child in children:
        _assert_complete_history(client, child, 3)
        if child.info.run_name.endswith("-fixed"):
            lrs = {m.value for m in client.get_metric_history(child.info.run_id, epoch_key("lr"))}
            assert lrs == {0.001}
    by_name = {c.info.run_name: c for c in children}
    assert by_name["adam-fixed"].data.tags["optimizer"] == "adam"
    assert by_name["seq4-cutoff"].data.params["optimizer.lr"] == "0.01"
    assert {c.data.tags["threads"] for c in children} == {"1"}  # 2 cores shared by 2 workers


def test_paper_sweep_prints_the_table_and_the_ui_command(paper_sweep: Path) -> None:
    out = (paper_sweep / "stdout.txt").read_text()
    for name in PAPER_NAMES:
        assert name in out
    assert "14 jobs: 14 finished, 0 diverged, 0 failed" in out
    assert "mlflow ui --backend-store-uri sqlite:///" in out and "127.0.0.1" in out
    # the one sweep here that writes its report (the others switch it off: it is not theirs to
    # test, and it costs each sweep seconds of figures)
    assert "Report (tables, figures, the study's claims)" in out
    assert list(paper_sweep.glob("multirun/*/*/report/report.md"))


def test_mlflow_ui_serves_the_sweep(paper_sweep: Path) -> None:
    """docs/tracking.md's UI command on this store: REST lists the 14 children, the page loads."""
    port = free_port()
    ui = start_mlflow_ui(store_uri(paper_sweep), paper_sweep, port)
    base = f"http://127.0.0.1:{port}"
    try:
        exp = store(paper_sweep).get_experiment_by_name("lrdecay-digits")
        body = json.dumps(
            {
                "experiment_ids": [exp.experiment_id],
                "max_results": 100,
                "filter": "attributes.status = 'FINISHED'",
            }
        ).encode()
        deadline = time.monotonic() + 90
        while True:
            try:
                req = urllib.request.Request(
                    f"{base}/api/2.0/mlflow/runs/search",
                    data=body,
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(req, timeout=5) as resp:
                    runs = json.load(resp)["runs"]
                break
            except OSError:
                if time.monotonic() > deadline or ui.poll() is not None:
                    raise
                time.sleep(1)
        children = [
            r
            for r in runs
            if any(t["key"] == "mlflow.parentRunId" for t in r["data"].get("tags", []))
        ]
        assert {r["info"]["run_name"] for r in children} == PAPER_NAMES
        assert all(
            any(m["key"] == FINAL_ACC_METRIC for m in r["data"]["metrics"]) for r in children
        )
        with urllib.request.urlopen(base + "/", timeout=10) as resp:
            assert resp.status == 200 and "<html" in resp.read().decode().lower()
    finally:
        ui.terminate()
        ui.wait(timeout=30)


def test_grid_gives_twelve_finished_children_and_a_diverging_job_is_isolated(tmp_path) -> None:
    seed_store(tmp_path)
    proc = run_cli(
        [
            "-m",
            "sequence=seq1,seq2,seq3,seq4",
            "strategy=epoch,cutoff,oscillate",
            "dataset=digits",
            "trainer.max_epochs=2",
            *QUIET,
        ],
        cwd=tmp_path,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = store(tmp_path)
    _, children = _sweep_runs(client)
    assert len(children) == 12 and all(c.info.status == "FINISHED" for c in children)
    assert {c.info.run_name for c in children} == PAPER_NAMES - {"sgd-fixed", "adam-fixed"}
    for child in children:
        _assert_complete_history(client, child, 2)

    other = tmp_path / "diverge"
    other.mkdir()
    seed_store(other)
    proc = run_cli(
        [
            "-m",
            "optimizer.lr=0.01,1e6",
            "strategy=fixed",
            "dataset=digits",
            "trainer.max_epochs=4",
            "tracking.experiment=diverge",
            *QUIET,
        ],
        cwd=other,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]  # a divergence is an outcome, not a crash
    parent, children = _sweep_runs(store(other), "diverge")
    status = {c.data.params["optimizer.lr"]: c for c in children}
    assert status["0.01"].info.status == "FINISHED"
    assert status["1000000.0"].info.status == "FAILED"
    assert status["1000000.0"].data.tags["diverged"] == "true"
    assert parent.info.status == "FAILED" and parent.data.tags["children_diverged"] == "1"
    assert "diverged" in proc.stdout and "1 diverged" in proc.stdout


def test_a_job_that_raises_leaves_the_others_running(tmp_path) -> None:
    seed_store(tmp_path)
    raw = tmp_path / "baddata" / "MNIST" / "raw"  # present, so the launcher lets the jobs start
    raw.mkdir(parents=True)
    for name in IDX_FILES:
        (raw / name).write_bytes(b"garbage")
    proc = run_cli(
        [
            "-m",
            "dataset=digits,mnist",
            f"data.root={tmp_path / 'baddata'}",
            "data.download=false",
            "trainer.max_epochs=2",
            *QUIET,
        ],
        cwd=tmp_path,
        timeout=900,
    )
    assert proc.returncode == 1  # a crashed job fails the sweep, after the table
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "2 jobs: 1 finished, 0 diverged, 1 failed" in proc.stdout
    assert "unreadable or corrupt" in proc.stdout
    assert "Compare the runs in the MLflow UI:" in proc.stdout  # one run to compare
    assert "No run finished" not in proc.stdout
    finished = experiment_runs(store(tmp_path), filter_string="attributes.status = 'FINISHED'")
    # the sweep varies the data set, so the run's name says which (the setting tag does not)
    assert [r.info.run_name for r in finished] == ["seq3-epoch dataset=digits"]
    assert finished[0].data.tags["setting"] == "seq3-epoch"
    # the parent run records the crash: FAILED, with the count of each outcome
    client = store(tmp_path)
    every = [e.experiment_id for e in client.search_experiments()]
    (parent,) = [r for r in client.search_runs(every) if is_sweep_parent(r)]
    assert parent.info.status == "FAILED"
    tags = parent.data.tags
    assert (tags["children_finished"], tags["children_failed"]) == ("1", "1")


def test_a_sweep_in_which_no_run_finished_ends_with_the_next_step_not_the_ui(tmp_path) -> None:
    """Every job fails (its model cannot be imported, which only a job finds out): nothing to
    compare in the MLflow UI, so the sweep names where the errors are and what to do, and exits
    non-zero."""
    seed_store(tmp_path)
    proc = run_cli(
        [
            "-m",
            "dataset=digits",
            "model._target_=nosuchpkg.Net",
            "seed=0,1",
            "trainer.max_epochs=1",
            *QUIET,
        ],
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "2 jobs: 0 finished, 0 diverged, 2 failed" in proc.stdout
    assert "MLflow UI" not in proc.stdout and "mlflow ui" not in proc.stdout
    last = proc.stdout.rstrip().splitlines()[-1]
    prefix = "No run finished: see the table above and each job's log under "
    suffix = "; fix the cause and run the same command again"
    assert last.startswith(prefix) and last.endswith(suffix), last
    sweep_dir = tmp_path / last[len(prefix) : -len(suffix)]  # relative to the launch folder
    assert len(list(sweep_dir.glob("*/*.log"))) == 2  # the folder it names holds the jobs' logs
    assert (sweep_dir / "summary.txt").read_text().rstrip().endswith(last)
    assert proc.stderr.rstrip().splitlines()[-1] == "lrdecay: 2 of 2 job(s) failed"
    (parent,) = [r for r in experiment_runs(store(tmp_path)) if is_sweep_parent(r)]
    assert parent.info.status == "FAILED" and parent.data.tags["children_failed"] == "2"


def test_stress_many_parallel_jobs_on_a_fresh_store(tmp_path) -> None:
    """16 jobs, 8 workers at once on a new SQLite store: no schema race, no lost points."""
    proc = run_cli(
        [
            "-m",
            "seed=range(0,16)",
            "dataset=digits",
            "trainer.max_epochs=5",
            "hydra.launcher.n_jobs=8",
            "tracking.log_plot=false",
            "report.enabled=false",
        ],
        cwd=tmp_path,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    for bad in ("database is locked", "duplicate column", "OperationalError", "Traceback"):
        assert bad not in log
    client = store(tmp_path)
    _, children = _sweep_runs(client)
    assert len(children) == 16 and all(c.info.status == "FINISHED" for c in children)
    assert sorted(int(c.data.tags["seed"]) for c in children) == list(range(16))
    for child in children:
        _assert_complete_history(client, child, 5)


def test_submitit_local_launcher_runs_a_sweep(tmp_path) -> None:
    seed_store(tmp_path)
    proc = run_cli(
        [
            "-m",
            "sequence=seq1,seq3",
            "dataset=digits",
            "trainer.max_epochs=2",
            "hydra/launcher=submitit_local",
            *QUIET,
        ],
        cwd=tmp_path,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, children = _sweep_runs(store(tmp_path))
    assert sorted(c.info.run_name for c in children) == ["seq1-epoch", "seq3-epoch"]
    assert all(c.info.status == "FINISHED" for c in children)


def test_slurm_cluster_preset_composes_for_submitit(tmp_path) -> None:
    """What cannot run here (no SLURM) is at least composed exactly as a cluster would get it."""
    proc = run_cli(
        [
            "experiment=paper",
            "hydra/launcher=submitit_slurm",
            "cluster=slurm",
            "hydra.launcher.partition=gpu",
            "--cfg",
            "hydra",
            "--package",
            "hydra.launcher",
        ],
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SlurmLauncher" in proc.stdout and "partition: gpu" in proc.stdout
    assert "cpus_per_task: 4" in proc.stdout
