"""What the test files share: the CLI run as a user runs it, the MLflow store it writes and the
runs in it, and servers on loopback. Fixtures stay in ``conftest.py``; these are plain functions
so that a test file imports exactly what it uses."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import importlib
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from lrdecay.component_config import DatasetConfig
from lrdecay.config import register_configs
from lrdecay.core.listeners import Listener
from lrdecay.core.records import EpochRecord
from lrdecay.tracking.ui import ROLE_TAG, SWEEP_ROLE, is_summary

if TYPE_CHECKING:
    import optuna
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
#: The experiment a digits run tracks into unless ``tracking.experiment`` says otherwise.
DIGITS = "lrdecay-digits"

register_configs()


def compose_config(overrides: list[str]) -> DictConfig:
    """The config ``python train.py <overrides>`` would run with."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=overrides)


def shipped_dataset(name: str, **changes: Any) -> DatasetConfig:
    """The shipped ``dataset=<name>`` option as the run validates it, with ``changes``."""
    from lrdecay.config import validate

    return dataclasses.replace(validate(compose_config([f"dataset={name}"])).dataset, **changes)


def cli_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment plus ``env``, without ``MLFLOW_TRACKING_URI``: a CLI run
    under test tracks into its own folder's store, never into one the caller's shell names."""
    full = {**os.environ, **(env or {})}
    full.pop("MLFLOW_TRACKING_URI", None)
    return full


def run_cli(args: list[str], cwd: Path, timeout: float = 300, env: dict | None = None):
    """Run ``python train.py args`` as a user would, returning the completed process."""
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(env),
    )


def timed_cli(
    args: list[str], cwd: Path, timeout: float = 300, env: dict | None = None
) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """:func:`run_cli`, with its wall seconds and the CPU seconds of the process it started:
    the CPU time is the product's own work, the wall time also counts others' load."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = run_cli(args, cwd, timeout=timeout, env=env)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc, wall, cpu


def run_search(
    app: Path, study: str, args: list[str], cwd: Path, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``python <app> -m hydra/sweeper=lrdecay_optuna args``, a search of study ``study`` one
    trial at a time, in ``cwd``: its sweep dir ``cwd/multirun``, its study ``cwd/optuna.db``
    (:func:`load_search`)."""
    return subprocess.run(
        [
            sys.executable,
            str(app),
            "-m",
            "hydra/sweeper=lrdecay_optuna",
            f"hydra.sweeper.study_name={study}",
            f"hydra.sweep.dir={cwd}/multirun",
            "hydra.sweeper.n_jobs=1",
            *args,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def load_search(cwd: Path, study: str) -> optuna.Study:
    """Study ``study`` as a search in ``cwd`` (:func:`run_search`, or ``run_cli``) left it."""
    import optuna

    return optuna.load_study(study_name=study, storage=f"sqlite:///{cwd / 'optuna.db'}")


def python_json(code: str, *args: str, timeout: float = 300) -> Any:
    """Run ``python -c code args`` in the project's root with the CLI's environment; it must
    exit 0, and its last line of output, JSON, is returned decoded."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def start_cli(args: list[str], cwd: Path, **popen: Any) -> subprocess.Popen:
    """Start ``python train.py args`` in its own process group (as a batch system does, so a
    test can signal the whole tree) and return at once; ``popen`` sets its output pipes."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd,
        env=cli_env(),
        start_new_session=True,
        **popen,
    )


def error_line(output: str) -> str:
    """The one ERROR line a CLI run that failed on bad input prints (there must be exactly one,
    and no traceback)."""
    errors = [line for line in output.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "Traceback" not in output, output[-3000:]
    return errors[0]


def table_rows(markdown: str) -> list[list[str]]:
    """The cells of every Markdown table row in ``markdown``, header rows included and rules
    left out, stripped: what a reader sees, whatever the columns' padding."""
    return [
        [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
        for line in markdown.splitlines()
        if line.startswith("|") and not set(line) <= set("|:- ")
    ]


def store_uri(folder: Path) -> str:
    """The SQLite store a run launched in ``folder`` writes by default (``mlruns/mlflow.db``)."""
    return f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"


_TEMPLATE: list[Path] = []


def new_store(db: Path) -> str:
    """The URI of a SQLite MLflow store at ``db``, made now if it is not there yet: a copy of
    an empty store MLflow created once in this process (creating the schema anew, a dozen
    migrations, costs each test one to two seconds; the copy is the same database)."""
    if not _TEMPLATE:
        import atexit
        import tempfile

        from mlflow.tracking import MlflowClient

        folder = tempfile.mkdtemp(prefix="lrdecay-store-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        template = Path(folder) / "mlflow.db"
        MlflowClient(tracking_uri=f"sqlite:///{template}").search_experiments()
        _TEMPLATE.append(template)
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_TEMPLATE[0], db)
    return f"sqlite:///{db}"


def seed_store(folder: Path) -> str:
    """Put an empty store where a run launched in ``folder`` writes by default, for tests whose
    subject is not a first run's store creation: the CLI then skips the schema's migrations
    (seconds of each launch) and finds an empty store of the schema it would have made."""
    return new_store(folder / "mlruns" / "mlflow.db")


def store(folder: Path) -> MlflowClient:
    """A client on the default store of runs launched in ``folder``."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(store_uri(folder))


def experiment_runs(client: MlflowClient, experiment: str = DIGITS, **search: Any) -> list[Run]:
    """Every run of ``experiment`` (``search``: more arguments for ``search_runs``)."""
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], **search)


def is_sweep_parent(run: Run) -> bool:
    """Whether ``run`` is a sweep's parent run (not one of its jobs)."""
    return run.data.tags.get(ROLE_TAG) == SWEEP_ROLE


def is_summary_run(run: Run) -> bool:
    """Whether ``run`` is a setting's summary over its seeds (no training run)."""
    return is_summary(run.data.tags)


def is_job(run: Run) -> bool:
    """Whether ``run`` is a training run: neither a sweep's parent nor a setting's summary."""
    return not is_sweep_parent(run) and not is_summary_run(run)


def metric_steps(client: MlflowClient, run_id: str, name: str) -> list[int]:
    """The steps at which ``name`` was logged in the run, in order."""
    return sorted(m.step for m in client.get_metric_history(run_id, name))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: How the project starts MLflow's servers (``make ui``, deploy/cluster-up.sh): without MLflow's
#: GenAI job runners, eight processes that cost each start ~16 s of CPU and ~1.9 GB of memory.
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def start_mlflow_ui(store: str, cwd: Path, port: int) -> subprocess.Popen:
    """``make ui``'s ``mlflow ui`` on ``store``, on 127.0.0.1:``port``, started in the
    background (its output discarded)."""
    return subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "ui",
            "--backend-store-uri",
            store,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=cwd,
        env={**os.environ, **SERVER_ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _missing(message: str) -> NoReturn:
    """Skip the calling test for want of what ``message`` names; under CI (``CI=true``, where
    .ci/run installs everything the tests need) fail instead."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def require_debian_package(package: str, path: Path) -> None:
    """Skip the calling test unless Debian's ``package`` has put ``path`` in place, naming the
    one command that enables it; under CI (``CI=true``, where .ci/run installs it) fail instead."""
    if not path.exists():
        _missing(f"needs Debian's {package} ({path} is missing); enable: apt-get install {package}")


def require_module(name: str, enable: str) -> None:
    """Skip the calling test unless Python module ``name`` imports, naming the command that
    enables it; under CI (``CI=true``, where the dev extras are installed) fail instead."""
    try:
        importlib.import_module(name)
    except ImportError as exc:
        _missing(f"needs the Python module {name} ({exc}); enable: {enable}")


def require_fashion_mnist() -> None:
    """Skip (fail under CI) unless the offline Fashion-MNIST files are installed."""
    from lrdecay.core.datafiles import DEBIAN_FASHION_MNIST

    require_debian_package(
        "dataset-fashion-mnist", DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz"
    )


class FileServer:
    """The files of a folder over HTTP on 127.0.0.1, served from a thread, counting the
    downloads of each path: a download mirror whose traffic a test can check.

    torchvision asks for each file twice: a GET with a ``Method: HEAD`` header that looks for
    redirects and reads no body, then the download. The first is answered with headers only and
    counted in ``probes``; ``requests`` counts the downloads.
    """

    def __init__(self, folder: Path) -> None:
        self.requests: Counter[str] = Counter()
        self.probes: Counter[str] = Counter()
        requests, probes = self.requests, self.probes

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.headers.get("Method") == "HEAD":
                    probes[self.path] += 1
                    self.do_HEAD()
                    return
                requests[self.path] += 1
                super().do_GET()

            def log_message(self, *args: Any) -> None:  # keep the test's output clean
                pass

        handler = functools.partial(Handler, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class MlflowServer:
    """A real ``mlflow server`` on 127.0.0.1, backed by SQLite, that tests can stop and restart."""

    def __init__(self, folder: Path, port: int | None = None, db: Path | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.db = db or folder / "server.db"
        self.proc = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> MlflowServer:
        mlflow_bin = Path(sys.executable).with_name("mlflow")
        self.proc = subprocess.Popen(
            [
                str(mlflow_bin),
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.db}",
                "--artifacts-destination",
                str(self.folder / "server-artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            cwd=self.folder,
            env={**os.environ, **SERVER_ENV},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2):
                    return self
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("mlflow server did not start") from None
                time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.proc = None


class InterruptAt(Listener):
    """Ctrl-C after a given epoch: what a user or a scheduler does mid-run."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, record: EpochRecord) -> None:
        if record.epoch == self.epoch:
            raise KeyboardInterrupt
