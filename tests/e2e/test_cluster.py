"""The cluster path for real, on the local services that ``make cluster-up`` starts as root
(deploy/): sweeps through SLURM, a requeued job resuming its own MLflow run, many jobs writing
to the PostgreSQL-backed tracking server at once, two launchers sharing one Optuna study.

Without those services each test skips, naming the command that starts them; under CI
(``CI=true``, where .ci/run starts them) it fails instead.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from lrdecay.core.records import EPOCH_METRICS, epoch_key
from lrdecay.sweep.folder import read_results
from tests.conftest import CONF_DIR, ROOT
from tests.helpers import is_job

#: Where cluster-up keeps its state and writes what the tests read back (cluster.env).
STATE = Path(os.environ.get("LRDECAY_CLUSTER_DIR", "/var/lib/lrdecay-cluster"))
ENABLE = "make cluster-up (as root)"
#: The SLURM launcher on the local cluster, as a user would pick it.
SLURM = ["hydra/launcher=submitit_slurm", "cluster=local"]


@dataclass
class Cluster:
    """The running local services: SLURM partition, tracking server, Optuna storage."""

    partition: str
    tracking_uri: str
    storage: str


def _probe() -> tuple[Cluster | None, str]:
    """The local cluster if all its services answer, else what is missing."""
    env_file = STATE / "cluster.env"
    if not env_file.is_file():
        return None, f"{env_file} is missing"
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    cluster = Cluster(
        values.get("LRDECAY_PARTITION", ""),
        values.get("MLFLOW_TRACKING_URI", ""),
        values.get("LRDECAY_OPTUNA_STORAGE", ""),
    )
    if shutil.which("sinfo") is None:
        return None, "SLURM's commands are not installed"
    sinfo = subprocess.run(
        ["sinfo", "-h", "-p", cluster.partition, "-o", "%a %t"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if not re.match(r"up (idle|mix|alloc)", sinfo.stdout):
        return None, f"SLURM partition '{cluster.partition}' is not up ({sinfo.stdout.strip()})"
    try:
        with urllib.request.urlopen(f"{cluster.tracking_uri}/health", timeout=5):
            pass
    except OSError:
        return None, f"no mlflow server answers at {cluster.tracking_uri}"
    try:
        import sqlalchemy

        with sqlalchemy.create_engine(cluster.storage).connect():
            pass
    except Exception as exc:
        return None, f"PostgreSQL at {cluster.storage}: {str(exc).splitlines()[0][:120]}"
    return cluster, ""


@pytest.fixture(scope="module")
def probed() -> tuple[Cluster | None, str]:
    return _probe()


@pytest.fixture
def cluster(probed: tuple[Cluster | None, str], request: pytest.FixtureRequest) -> Cluster:
    """The local cluster; without it the test skips (fails under CI) naming the command."""
    found, missing = probed
    if found is not None:
        return found
    message = f"{request.node.name} needs the local cluster ({missing}); enable: {ENABLE}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


#: The CLI processes this module started; a test that fails leaves none behind (see below).
_LAUNCHED: list[subprocess.Popen] = []
_OUTPUT: dict[int, Path] = {}  # each one's output file, by process id


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path: Path):
    """After each test: stop the launchers it started and cancel its SLURM jobs, should it have
    failed before they ended."""
    yield
    while _LAUNCHED:
        proc = _LAUNCHED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    jobs = {p.name.split("_")[0] for p in tmp_path.glob("**/.submitit/*") if p.is_dir()}
    if jobs and shutil.which("scancel"):
        subprocess.run(["scancel", *sorted(jobs)], capture_output=True, timeout=60)


def _experiment(kind: str) -> str:
    """A fresh experiment name: the server outlives test runs."""
    return f"cluster-{kind}-{secrets.token_hex(4)}"


def _cli(args: list[str], cwd: Path) -> subprocess.Popen:
    """``python train.py args`` started as a user would start it (output to files in cwd)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    n = len(list(cwd.glob("cli-*.out")))
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd,
        env=env,
        stdout=(cwd / f"cli-{n}.out").open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    _LAUNCHED.append(proc)
    _OUTPUT[proc.pid] = cwd / f"cli-{n}.out"
    return proc


def _finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str]:
    """Wait for ``proc``; its exit status and output."""
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        code = -9
    return code, _OUTPUT[proc.pid].read_text(errors="replace")


def _runs(client: MlflowClient, experiment: str, view: int = ViewType.ACTIVE_ONLY) -> list:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment}"
    return client.search_runs([exp.experiment_id], run_view_type=view, max_results=1000)


def _steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


_STAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")


def _stamps(log: Path, marker: str) -> list[datetime]:
    """When each line of ``log`` that contains ``marker`` was written."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        m = _STAMP.search(line)
        if marker in line and m:
            found.append(datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f"))
    return found


def _job_seconds(sweep: Path) -> list[tuple[float, float]]:
    """Per SLURM job: seconds from its start on the node to its end, and of those, training."""
    trained = {str(r.job_num): r.train_seconds or 0.0 for r in read_results(sweep)}
    timings = []
    for log in sorted(sweep.glob(".submitit/*_*/*_log.out")):
        start = _stamps(log, "Starting with JobEnvironment")
        end = _stamps(log, "Job completed successfully")
        job_num = log.parent.name.split("_")[1]  # <array job>_<task> = the sweep's job number
        if start and end:
            timings.append(((end[-1] - start[0]).total_seconds(), trained.get(job_num, 0.0)))
    return timings


def test_local_preset_fits_the_local_node() -> None:
    """``cluster=local`` is the SLURM preset within the local node's means: its partition, one
    CPU and 1 GB per job, no GPU; time limits requeue, as on a real cluster."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "config",
            ["experiment=paper", "hydra/launcher=submitit_slurm", "cluster=local"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher.partition == os.environ.get("LRDECAY_PARTITION", "debug")
    assert (launcher.cpus_per_task, launcher.gpus_per_node, launcher.mem_gb) == (1, 0, 1)
    assert launcher.max_num_timeout == 3 and launcher.signal_delay_s == 120
    assert launcher.timeout_min == 60 and launcher.array_parallelism == 2


def _as_non_root(command: list[str]) -> list[str]:
    """``command`` run by an unprivileged user (as it is, when that is who runs the tests)."""
    if os.geteuid() != 0:
        return command
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]


@pytest.mark.parametrize("script", ["cluster-up.sh", "cluster-down.sh"])
def test_cluster_scripts_say_in_one_line_that_they_need_root(script: str) -> None:
    # a copy the unprivileged user can read: the checkout may sit in a folder only root enters
    shared = Path(tempfile.mkdtemp(prefix="lrdecay-deploy-"))
    try:
        shared.chmod(0o755)
        deploy = shutil.copytree(ROOT / "deploy", shared / "deploy")
        done = subprocess.run(
            _as_non_root(["bash", str(deploy / script)]),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=shared,
        )
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    assert done.returncode == 1 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"{script[:-3]}: must run as root") and "sudo make" in line


@pytest.mark.slow
def test_cluster_up_again_changes_nothing(cluster: Cluster) -> None:
    """Up twice is fine: the second run finds everything running, and ends with the export."""
    if os.geteuid() != 0:
        pytest.skip("cluster-up runs as root")
    done = subprocess.run(
        ["bash", str(ROOT / "deploy" / "cluster-up.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MLFLOW": str(Path(sys.executable).with_name("mlflow"))},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"export MLFLOW_TRACKING_URI={cluster.tracking_uri}"
    assert "started" not in done.stdout  # nothing was down
    assert f"SLURM partition '{cluster.partition}'" in done.stdout


def _descendants(pid: int) -> list[str]:
    """The command lines of every process below ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    commands: dict[int, str] = {}
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = status.read_text()
            commands[int(status.parent.name)] = (
                (status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            )
        except OSError:  # the process ended while being read
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(status.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(commands.get(child, ""))
            todo.append(child)
    return found


@pytest.mark.slow
def test_the_tracking_server_runs_without_mlflows_job_runners(cluster: Cluster) -> None:
    """The server serves runs only: none of MLflow's GenAI job runner processes below it
    (eight of them, ~1.9 GB of memory, that nothing in the project uses)."""
    pid = int((STATE / "mlflow-server.pid").read_text())
    below = _descendants(pid)
    assert below, "the server's pid file names no running server"
    assert not [c for c in below if "huey" in c or "mlflow.server.jobs" in c], below


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_paper_sweep_runs_through_slurm(cluster: Cluster, tmp_path: Path) -> None:
    """The study's 14 settings as 14 SLURM jobs: one FINISHED parent, 14 FINISHED children
    tracked into the PostgreSQL-backed server, a report, exit 0."""
    experiment, sweep = _experiment("paper"), tmp_path / "sweep"
    started = time.monotonic()
    proc = _cli(
        [
            "-m",
            "experiment=paper",
            "dataset=digits",
            "trainer.max_epochs=2",
            *SLURM,
            f"hydra.launcher.partition={cluster.partition}",
            f"tracking.uri={cluster.tracking_uri}",
            f"tracking.experiment={experiment}",
            "trainer.progress=off",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    code, out = _finish(proc, timeout=2000)
    wall = time.monotonic() - started
    assert code == 0, out[-3000:]
    client = MlflowClient(cluster.tracking_uri)
    runs = _runs(client, experiment)
    (parent,) = [r for r in runs if r.data.tags.get("lrdecay.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "FINISHED" and len(runs) == 15
    assert len(children) == 14 and all(r.info.status == "FINISHED" for r in children)
    assert len({r.data.tags["setting"] for r in children}) == 14
    assert (sweep / "report" / "report.md").is_file()
    jobs = _job_seconds(sweep)
    assert len(jobs) == 14
    overhead = sorted(total - train for total, train in jobs)
    print(
        f"\nSLURM paper sweep: {wall:.0f} s wall for 14 jobs; per job on its node "
        f"{overhead[len(overhead) // 2]:.1f} s median start-up and tear-down besides training "
        f"(min {overhead[0]:.1f}, max {overhead[-1]:.1f})"
    )


def _child(client: MlflowClient, experiment: str) -> object | None:
    """The sweep's one job run, once it exists."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id])
    runs = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return runs[0] if runs else None


#: Long enough that a job requeued at epoch 2 is still training when it is killed (2 s after
#: SLURM's SIGTERM on the local cluster, which submitit ignores) on a fast machine too.
EPOCHS = 16


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("how", ["scontrol requeue", "time-limit signal"])
def test_a_requeued_job_continues_its_own_run(cluster: Cluster, tmp_path: Path, how: str) -> None:
    """A job requeued after epoch 2 or later (by SLURM: ``scontrol requeue``; or by submitit,
    on the USR2 that SLURM sends before the time limit) comes back, resumes from its last
    checkpoint in the same MLflow run, and ends FINISHED with each epoch logged once."""
    experiment, sweep = _experiment("requeue"), tmp_path / "sweep"
    proc = _cli(
        [
            "-m",
            "dataset=digits",
            "setting=seq3-epoch",
            f"trainer.max_epochs={EPOCHS}",
            "dataset.batch_size=1",  # seconds per epoch: the requeue lands mid-run
            *SLURM,
            f"hydra.launcher.partition={cluster.partition}",
            f"tracking.uri={cluster.tracking_uri}",
            f"tracking.experiment={experiment}",
            "trainer.progress=off",
            "report.enabled=false",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    client = MlflowClient(cluster.tracking_uri)
    deadline, seen = time.monotonic() + 600, 0
    while time.monotonic() < deadline and proc.poll() is None:
        run = _child(client, experiment)
        seen = max(_steps(client, run.info.run_id, epoch_key("val_acc")) or [0]) if run else 0
        if seen >= 2:
            break
        time.sleep(0.5)
    assert 2 <= seen < EPOCHS, f"the job never reached epoch 2 mid-run (saw {seen})"
    (job_folder,) = [p for p in (sweep / ".submitit").iterdir() if p.is_dir()]
    job_id = job_folder.name  # one job: no array, its folder is its SLURM job id
    signalled = datetime.now()
    if how == "scontrol requeue":
        subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=60)
    else:
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True, timeout=60)
    code, out = _finish(proc, timeout=900)
    assert code == 0, out[-3000:]

    runs = _runs(client, experiment, ViewType.ALL)  # deleted twins too: there must be none
    children = [r for r in runs if r.data.tags.get("lrdecay.role") != "sweep"]
    assert len(runs) == 2 and len(children) == 1, [r.info.run_id for r in runs]
    child = children[0]
    assert child.info.status == "FINISHED"
    for key in EPOCH_METRICS:
        assert _steps(client, child.info.run_id, key) == list(range(1, EPOCHS + 1)), key
    (result,) = read_results(sweep)
    assert result.status == "finished" and result.run_id == child.info.run_id
    resumed = re.fullmatch(r"resumed after epoch (\d+)", result.note or "")
    assert resumed and seen <= int(resumed.group(1)) < EPOCHS, result.note
    log = next(job_folder.glob("*_log.out"))
    attempts = _stamps(log, "Starting with JobEnvironment")
    assert len(attempts) == 2, log.read_text()[-3000:]
    summary = (sweep / "summary.txt").read_text()
    rows = [line.split() for line in summary.splitlines() if re.match(r"\d+ +seq3-epoch", line)]
    assert len(rows) == 1 and rows[0][2] == "finished", summary  # the table's one row
    assert "1 jobs: 1 finished" in summary, summary
    print(
        f"\n{how}: signalled after epoch {seen} of {EPOCHS}; resumed after epoch "
        f"{resumed.group(1)} in run {child.info.run_id}; the job started again "
        f"{(attempts[1] - signalled).total_seconds():.0f} s after the signal; the sweep ended "
        f"{(datetime.now() - signalled).total_seconds():.0f} s after it"
    )


JOBS = 16


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_sixteen_jobs_at_once_lose_no_point_on_the_server(cluster: Cluster, tmp_path: Path) -> None:
    """16 jobs training at once, each logging every epoch to the PostgreSQL-backed server
    through a URI with a password: every point arrives, and the password is nowhere."""
    experiment, sweep, epochs = _experiment("sixteen"), tmp_path / "sweep", 4
    password = f"pw-{secrets.token_hex(6)}"
    uri = cluster.tracking_uri.replace("http://", f"http://alice:{password}@")
    proc = _cli(
        [
            "-m",
            "dataset=digits",
            f"seed=range(0,{JOBS})",
            f"trainer.max_epochs={epochs}",
            f"hydra.launcher.n_jobs={JOBS}",  # all of them at once, one torch thread each
            f"tracking.uri={uri}",
            f"tracking.experiment={experiment}",
            "trainer.progress=off",
            "report.enabled=false",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    code, out = _finish(proc, timeout=1500)
    assert code == 0, out[-3000:]
    assert password not in out
    client = MlflowClient(cluster.tracking_uri)
    runs = _runs(client, experiment)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags and is_job(r)]
    assert len(children) == JOBS and all(r.info.status == "FINISHED" for r in children)
    missing = sum(
        len(set(range(1, epochs + 1)) - set(_steps(client, r.info.run_id, key)))
        for r in children
        for key in EPOCH_METRICS
    )
    assert missing == 0
    for r in runs:
        assert password not in str(r.data.params) + str(r.data.tags)
    for path in sweep.rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            assert password not in path.read_text(errors="replace"), path


N_TRIALS = 12


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_two_launchers_share_one_study(cluster: Cluster, tmp_path: Path) -> None:
    """Two searches started at once on one PostgreSQL study, as two users on two login nodes
    would: together exactly ``n_trials`` finished trials, none run twice, both exit 0, every
    trial's run in MLflow."""
    import optuna

    from lrdecay.sweep.pruning import open_storage

    experiment, study_name = _experiment("tune"), f"shared-{secrets.token_hex(4)}"
    procs = []
    for n in range(2):
        folder = tmp_path / f"launcher{n}"
        folder.mkdir()
        procs.append(
            _cli(
                [
                    "-m",
                    "experiment=tune",
                    "dataset=digits",
                    "trainer.max_epochs=2",
                    f"hydra.sweeper.storage={cluster.storage}",
                    f"hydra.sweeper.study_name={study_name}",
                    f"hydra.sweeper.n_trials={N_TRIALS}",
                    "hydra.sweeper.n_jobs=2",
                    "hydra.launcher.n_jobs=2",
                    f"tracking.uri={cluster.tracking_uri}",
                    f"tracking.experiment={experiment}",
                    "trainer.progress=off",
                    "report.enabled=false",
                    f"hydra.sweep.dir={folder / 'sweep'}",
                ],
                folder,
            )
        )
    ended = [_finish(p, timeout=1500) for p in procs]
    for code, out in ended:
        assert code == 0, out[-3000:]
    study = optuna.load_study(study_name=study_name, storage=open_storage(cluster.storage))
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state.is_finished() and t.state.name != "FAIL"]
    assert len(finished) == N_TRIALS, [(t.number, t.state.name) for t in trials]
    assert not [t for t in trials if t.state.name == "RUNNING"]
    params = [tuple(sorted(t.params.items())) for t in finished]
    assert len(set(params)) == N_TRIALS  # no trial twice
    client = MlflowClient(cluster.tracking_uri)
    runs = _runs(client, experiment)
    parents = [r for r in runs if r.data.tags.get("lrdecay.role") == "sweep"]
    trial_runs = [r for r in runs if "optuna.trial" in r.data.tags]
    assert len(parents) == 2
    by_trial = {}
    for r in trial_runs:
        by_trial.setdefault(int(r.data.tags["optuna.trial"]), []).append(r)
    assert sorted(by_trial) == sorted(t.number for t in finished)
    assert all(len(v) == 1 for v in by_trial.values())
    for t in finished:
        assert t.user_attrs.get("mlflow_run_id") == by_trial[t.number][0].info.run_id
    launchers = {t.user_attrs.get("lrdecay.launcher") for t in finished}
    surplus = [t.number for t in trials if t.state.name == "FAIL"]
    print(
        f"\ntwo launchers: {N_TRIALS} finished trials from {len(launchers)} launchers; "
        f"{len(surplus)} asked for a place already taken (failed, never run): {surplus}"
    )


#: A launcher's start on a study, alone: wait for the parent's go of each round, then create or
#: load the study "race" on that round's storage; one JSON line per round (its id, or the error).
CREATOR = r"""
import json, os, sys, time
from pathlib import Path
from lrdecay.sweep.pruning import open_study
folder = Path(sys.argv[1])
for n, url in enumerate(sys.argv[2:]):
    (folder / f"ready-{n}-{os.getpid()}").touch()
    while not (folder / f"go-{n}").exists():
        time.sleep(0.001)
    try:
        storage, _ = open_study(url, study_name="race", directions=["maximize"])
        done = {"study_id": storage.get_study_id_from_name("race")}
    except Exception as exc:
        done = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
    print(json.dumps({"round": n, **done}), flush=True)
"""
CREATORS, ROUNDS = 4, 3


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_launchers_creating_one_study_on_a_fresh_database_at_once_all_succeed(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Four launchers create the same study on a fresh PostgreSQL database at the same instant,
    three rounds over: each one opens it, and the database holds Optuna's schema and the study
    once. (Each round's fresh database is a new schema, first on the connection's search path.)"""
    import sqlalchemy

    schemas = [f"fresh_{secrets.token_hex(4)}" for _ in range(ROUNDS)]
    admin = sqlalchemy.create_engine(cluster.storage, poolclass=sqlalchemy.pool.NullPool)
    with admin.begin() as connection:
        for schema in schemas:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    urls = [f"{cluster.storage}?options=-csearch_path%3D{schema}" for schema in schemas]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    procs = []
    try:
        for _ in range(CREATORS):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", CREATOR, str(tmp_path), *urls],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        for n in range(ROUNDS):  # all ready, then one go: the creations start together
            deadline = time.monotonic() + 120
            while len(list(tmp_path.glob(f"ready-{n}-*"))) < CREATORS:
                alive = all(p.poll() is None for p in procs)
                assert alive and time.monotonic() < deadline, f"round {n}: a launcher stopped"
                time.sleep(0.01)
            (tmp_path / f"go-{n}").touch()
        ended = [(p.communicate(timeout=300), p.returncode) for p in procs]
        counts = {}
        with admin.connect() as connection:
            for schema in schemas:
                counts[schema] = [
                    connection.exec_driver_sql(f'SELECT count(*) FROM "{schema}".{table}').scalar()
                    for table in ("studies", "version_info", "alembic_version")
                ]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        with admin.begin() as connection:
            for schema in schemas:
                connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()
    for (_, err), code in ended:
        assert code == 0, err[-3000:]
    lines = [json.loads(line) for (out, _), _ in ended for line in out.splitlines()]
    errors = [line for line in lines if "error" in line]
    assert not errors, errors
    for n in range(ROUNDS):
        ids = {line["study_id"] for line in lines if line["round"] == n}
        assert len(ids) == 1, (n, ids)  # all four opened the one study
    assert all(count == [1, 1, 1] for count in counts.values()), counts
