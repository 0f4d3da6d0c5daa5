"""Sweeps launched at once into a fresh SQLite store: each parent, each child, a usable store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import cli_env, experiment_runs, is_sweep_parent, run_cli, start_cli, store

pytestmark = pytest.mark.slow

#: Whole CLI sweeps raced per round, and rounds of them: each launch costs a full start-up
#: (Hydra, MLflow, torch), so the many rounds that make a race likely are run below on the
#: launcher's own store set-up alone (:data:`LAUNCHERS` x :data:`LAUNCHER_ROUNDS`).
SWEEPS, ROUNDS = 3, 3
LAUNCHERS, LAUNCHER_ROUNDS = 4, 6

#: What a sweep's launching process does to a store before any job starts, in the same calls
#: (:class:`lrdecay.sweep.launcher.SweepTracking`): open the store (creating its schema),
#: make sure of the experiment, tidy dead parents, create the parent run; then close it. One
#: process imports the modules once (MLflow's SQLAlchemy store too, which MLflow would import
#: in each fork on first use) and, for each store URI of ``argv[2:]`` in turn, forks
#: ``argv[1]`` launching processes at once (each ends as a process does, exit status 1 and its
#: traceback on an error), waits for them and prints the round's exit statuses; it exits
#: non-zero when any of them did not end with 0. A launching process importing on its own
#: would add seconds of CPU each, and spread the starts over the imports' jitter instead of
#: racing them; one importing process per round would add those seconds to every round. The
#: imported modules are frozen out of the garbage collector before the forks: a launching
#: process's full collections (the last one as it exits) walked them, 0.7 of its 0.9 CPU-s.
#: Each round's launching processes write their output to ``<store folder>/stderr``.
LAUNCHER = """
import gc, json, os, socket, sys
import mlflow.store.tracking.sqlalchemy_store
from lrdecay.sweep.launcher import HOST_TAG, PID_TAG, close_dead_parents
from lrdecay.tracking.run_logger import MlflowTracker
from lrdecay.tracking.store import default_artifact_root, sqlite_path
gc.freeze()
count, failed = int(sys.argv[1]), False
for uri in sys.argv[2:]:
    log = sqlite_path(uri).parent / "stderr"
    log.parent.mkdir(parents=True)
    sys.stderr.flush()
    children = []
    for _ in range(count):
        pid = os.fork()
        if pid:
            children.append(pid)
            continue
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(fd, 2)
        tracker = MlflowTracker(uri, "lrdecay-digits", default_artifact_root(uri), log_plot=False)
        tracker.connect()
        close_dead_parents(tracker)
        tags = {"lrdecay.role": "sweep", HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
        tracker.start(f"sweep-{os.getpid()}", tags=tags, params={"overrides": "seed=0"})
        tracker.end("FINISHED")
        sys.exit(0)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    print(json.dumps(codes), flush=True)
    failed = failed or any(codes)
sys.exit(1 if failed else 0)
"""


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


@pytest.mark.timeout(900)  # three rounds of three CLI launches
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


@pytest.mark.timeout(900)
def test_launchers_started_at_once_on_a_fresh_store_each_get_their_parent_run(
    tmp_path: Path,
) -> None:
    """The race itself, many times: launching processes that start together on a new SQLite
    store (the schema, the experiment, the parent runs), without the jobs' start-up cost."""
    dbs = [tmp_path / str(round_) / "mlruns" / "mlflow.db" for round_ in range(LAUNCHER_ROUNDS)]
    proc = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(LAUNCHERS), *(f"sqlite:///{db}" for db in dbs)],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300 * LAUNCHER_ROUNDS,
    )
    codes = [json.loads(line) for line in proc.stdout.splitlines()]  # a line a round
    assert len(codes) == LAUNCHER_ROUNDS, (proc.stdout, proc.stderr[-2000:])
    for round_, db in enumerate(dbs):
        err = (db.parent / "stderr").read_text()  # every launching process's of the round
        assert codes[round_] == [0] * LAUNCHERS, (round_, codes[round_], err[-2000:])
        assert "Traceback" not in err and "UserWarning" not in err, (round_, err[-2000:])
        runs = experiment_runs(store(db.parent.parent))
        assert len(runs) == LAUNCHERS and all(is_sweep_parent(r) for r in runs), round_
        assert all(r.info.status == "FINISHED" for r in runs), round_
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "UserWarning" not in proc.stderr, proc.stderr[-2000:]


def test_sweep_without_its_parent_run_stops_before_any_job(tmp_path: Path) -> None:
    """A store that cannot hold the parent run (a file that is not a database): one line naming
    the file and the fix, non-zero, and no job launched."""
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
    assert done.returncode == 2  # a mistake it names, before any job: as a single run
    assert "Traceback" not in done.stderr and "UserWarning" not in done.stderr
    (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("lrdecay: ")]
    assert f"{tmp_path / 'broken.db'} is not an MLflow SQLite store" in line
    assert "Fix: move it aside" in line
    assert not list((tmp_path / "sweep").glob("*/result.json"))  # no job ran
