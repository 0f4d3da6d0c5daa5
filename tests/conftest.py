"""Shared fixtures (configs composed by Hydra exactly as the CLI composes them, stores, servers)
and the suite's file order. Shared plain helpers live in ``tests/helpers.py``."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from lrdecay import startup
from lrdecay.tracking.environment import set_mlflow_defaults

# Re-exported: test files written against this module keep importing them from here.
from tests.helpers import CONF_DIR as CONF_DIR
from tests.helpers import ROOT as ROOT
from tests.helpers import MlflowServer as MlflowServer
from tests.helpers import compose_config as compose_config
from tests.helpers import error_line as error_line
from tests.helpers import free_port as free_port
from tests.helpers import new_store
from tests.helpers import require_debian_package as require_debian_package
from tests.helpers import require_fashion_mnist as require_fashion_mnist
from tests.helpers import run_cli as run_cli

#: A file system in memory, where the suite keeps its temporary files when the machine has one
#: with room (:data:`RAM_TEMP_ROOM` bytes free) and ``TMPDIR`` names no other place.
RAM_TEMP = "/dev/shm"
RAM_TEMP_ROOM = 4 * 2**30


def _temp_in_ram() -> None:
    """Point this process's temporary files, ``tmp_path`` and every process it starts (CLI runs,
    servers, xdist's workers) at :data:`RAM_TEMP`. SQLite syncs each commit to disk, and a
    run's store is tens of commits an epoch, a fresh store's schema a hundred more: one 3-epoch
    CLI run made 1132 ``fdatasync`` calls, its fresh store took 10 s on this disk and 1.7 s in
    memory. What the tests check never depends on a power cut's durability."""
    if os.environ.get("TMPDIR") or not os.access(RAM_TEMP, os.W_OK):
        return
    if shutil.disk_usage(RAM_TEMP).free < RAM_TEMP_ROOM:
        return
    os.environ["TMPDIR"] = RAM_TEMP
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again


_temp_in_ram()

# The test process starts like train.py does: its in-process runs get the short HTTP retries of
# a real run (a server stopped mid-run costs seconds, not MLflow's minutes of backoff).
set_mlflow_defaults()

#: Test files that take minutes, longest first (by their seconds in a full run). The suite runs
#: in two workers, each taking the next whole file; files handed out longest first keep one
#: worker from running a long file alone at the end while the other idles.
LONGEST_FIRST = (
    "test_cluster.py",
    "test_sweeps.py",
    "test_optuna.py",
    "test_optuna_confirm.py",
    "test_browser.py",
    "test_benchmarks.py",
    "test_concurrency.py",
    "test_kill.py",
    "test_remote.py",
    "test_cli.py",
    "test_security.py",
    "test_publish.py",
    "test_bad_input.py",
    "test_report_verdicts.py",
    "test_report.py",
    "test_sigterm.py",
    "test_torch_schedulers.py",
    "test_resume.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the collected tests so the longest files come first (see :data:`LONGEST_FIRST`);
    the order within a file is kept."""

    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each file's own order is unchanged


def pytest_configure(config: pytest.Config) -> None:
    """Before anything loads torch: this worker's start-up tricks (:mod:`lrdecay.startup`)."""
    startup.start("tests")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what collecting the test files imported (torch, MLflow, Hydra, the project)."""
    startup.start("tests")


def pytest_runtest_logfinish(nodeid: str, location: tuple) -> None:
    """Freeze what a test imported on first use (optuna, statsmodels, torch._dynamo ...)."""
    startup.start("tests")


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    """A fresh SQLite MLflow store for one test."""
    return new_store(tmp_path / "mlflow.db")


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


@pytest.fixture
def mlflow_server(tmp_path: Path):
    """A started server, stopped after the test."""
    server = MlflowServer(tmp_path).start()
    yield server
    server.stop()
