"""Shared fixtures: configs composed by Hydra exactly as the CLI composes them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from lrdecay.config import register_configs

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"

register_configs()

#: Test files that take minutes, longest first. The suite runs in two workers, each taking the
#: next whole file; files handed out longest first keep one worker from running a long file
#: alone at the end while the other idles.
LONGEST_FIRST = (
    "test_cluster.py",
    "test_concurrency.py",
    "test_sweeps.py",
    "test_kill.py",
    "test_benchmarks.py",
    "test_bad_input.py",
    "test_remote.py",
    "test_optuna.py",
    "test_browser.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the collected tests so the longest files come first (see :data:`LONGEST_FIRST`);
    the order within a file is kept."""

    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each file's own order is unchanged


def require_debian_package(package: str, path: Path) -> None:
    """Skip the calling test unless Debian's ``package`` has put ``path`` in place, naming the
    one command that enables it; under CI (``CI=true``, where .ci/run installs it) fail instead."""
    import os

    if path.exists():
        return
    message = f"needs Debian's {package} ({path} is missing); enable: apt-get install {package}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def require_fashion_mnist() -> None:
    """Skip (fail under CI) unless the offline Fashion-MNIST files are installed."""
    from lrdecay.core.data import DEBIAN_FASHION_MNIST

    require_debian_package(
        "dataset-fashion-mnist", DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz"
    )


def compose_config(overrides: list[str]) -> DictConfig:
    """The config ``python train.py <overrides>`` would run with."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=overrides)


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    """A fresh SQLite MLflow store for one test."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def make_cfg(tmp_path: Path, tracking_uri: str) -> Callable[..., DictConfig]:
    """Compose a small digits run that tracks into this test's own store."""

    def make(*overrides: str) -> DictConfig:
        base = [
            "dataset=digits",
            f"tracking.uri={tracking_uri}",
            f"data.root={tmp_path}/data",
            "trainer.progress=off",
            "tracking.log_plot=false",
        ]
        return compose_config([*base, *overrides])

    return make


def run_cli(args: list[str], cwd: Path, timeout: float = 300, env: dict | None = None):
    """Run ``python train.py args`` as a user would, returning the completed process."""
    import os
    import subprocess

    full_env = {**os.environ, **(env or {})}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def error_line(output: str) -> str:
    """The one ERROR line a CLI run that failed on bad input prints (there must be exactly one,
    and no traceback)."""
    errors = [line for line in output.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "Traceback" not in output, output[-3000:]
    return errors[0]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        import subprocess
        import time
        import urllib.request

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


@pytest.fixture
def mlflow_server(tmp_path: Path):
    """A started server, stopped after the test."""
    server = MlflowServer(tmp_path).start()
    yield server
    server.stop()
