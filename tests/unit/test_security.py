"""Security: user-supplied names stay inside their folders, data files are verified before
they are unpickled, and credentials never reach a file."""

from __future__ import annotations

import base64
import pickle
from pathlib import Path

import pytest
import torch

from lrdecay.config import DataConfig, validate
from lrdecay.core.data import load_data
from lrdecay.errors import ConfigError, DataError
from lrdecay.report.html_page import render_html
from tests.helpers import compose_config, error_line, run_cli, shipped_dataset

CIFAR_FILES = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]


class _CreatesFile:
    """A pickle that, when loaded, creates the file ``marker`` (any code could run instead)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return open, (str(self.marker), "w")


def write_crafted_cifar(root: Path, marker: Path) -> Path:
    """A ``cifar-10-batches-py`` folder whose every file is a pickle that creates ``marker``."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in CIFAR_FILES:
        (folder / name).write_bytes(pickle.dumps(_CreatesFile(marker)))
    return folder


def test_crafted_cifar_files_are_refused_before_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    folder = write_crafted_cifar(tmp_path / "data", marker)
    cifar = shipped_dataset("cifar10", channels=3, height=32, width=32)
    with pytest.raises(DataError, match="data_batch_1 is not the official CIFAR-10 file"):
        load_data(
            cifar, DataConfig(root=str(tmp_path / "data"), download=False), torch.device("cpu")
        )
    assert not marker.exists()
    assert folder.is_dir()


@pytest.mark.slow
def test_cli_refuses_a_crafted_cifar_folder_in_one_line(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    write_crafted_cifar(tmp_path / "data", marker)
    proc = run_cli(
        [
            "dataset=cifar10",
            f"data.root={tmp_path / 'data'}",
            "data.download=false",
            "tracking.enabled=false",
            "trainer.max_epochs=1",
        ],
        cwd=tmp_path,
        timeout=120,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-2000:]
    assert "cifar-10-batches-py/data_batch_1" in error_line(output)
    assert not marker.exists()


def _outside(top: Path, inside: Path) -> list[Path]:
    """Everything under ``top`` that is neither ``inside``, in it, nor one of its parents."""
    return [
        p
        for p in top.rglob("*")
        if p != inside and inside not in p.parents and p not in inside.parents
    ]


@pytest.mark.parametrize(
    "name", ["../../../outside/evil_exp", "a/b", "..", ".hidden", "back\\slash", "tab\there"]
)
def test_experiment_names_that_are_not_one_folder_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=r"^tracking\.experiment: "):
        validate(compose_config([f"tracking.experiment='{name}'"]))


def test_plain_experiment_names_are_accepted() -> None:
    conf = validate(compose_config(["tracking.experiment='my study: lr 0.1..0.01'"]))
    assert conf.tracking.experiment == "my study: lr 0.1..0.01"


@pytest.mark.slow
def test_experiment_name_cannot_write_outside_the_store(tmp_path: Path) -> None:
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    proc = run_cli(
        [
            "dataset=digits",
            "trainer.max_epochs=1",
            "tracking.experiment='../../../outside/evil_exp'",
        ],
        cwd=work,
        timeout=60,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-2000:]
    assert "tracking.experiment" in error_line(output)
    assert _outside(tmp_path, work) == []


@pytest.mark.slow
def test_run_name_never_becomes_a_path(tmp_path: Path) -> None:
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    proc = run_cli(
        [
            "dataset=digits",
            "trainer.max_epochs=1",
            "trainer.progress=off",
            "tracking.run_name='../../../outside/evil_run'",
        ],
        cwd=work,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _outside(tmp_path, work) == []


def _files_holding(top: Path, secret: bytes) -> list[Path]:
    """Every file under ``top`` whose bytes contain ``secret``."""
    return [p for p in top.rglob("*") if p.is_file() and secret in p.read_bytes()]


@pytest.mark.slow
def test_a_password_in_tracking_uri_reaches_no_file_and_no_output(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from tests.helpers import MlflowServer

    server = MlflowServer(tmp_path / "server")
    server.folder.mkdir()
    server.start()
    try:
        uri = server.uri.replace("http://", "http://alice:S3cr3tPW@")
        work = tmp_path / "work"
        work.mkdir()
        base = ["dataset=digits", "trainer.max_epochs=1", "trainer.progress=off"]
        sweep = run_cli(["-m", *base, f"tracking.uri={uri}"], cwd=work, timeout=300)
        single = run_cli([*base, f"tracking.uri={uri}"], cwd=work, timeout=300)
        for proc in (sweep, single):
            output = proc.stdout + proc.stderr
            assert proc.returncode == 0, output[-3000:]
            assert "S3cr3tPW" not in output
            assert "credentials in tracking.uri go to MLflow" in output
        client = MlflowClient(server.uri)
        exp = client.get_experiment_by_name("lrdecay-digits")
        runs = client.search_runs([exp.experiment_id])
        children = [r for r in runs if r.data.tags.get("setting")]
        assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)
    finally:
        server.stop()
    assert list((work / "multirun").rglob("multirun.yaml"))  # the places looked into exist
    assert list((work / "outputs").rglob("overrides.yaml"))
    assert list((tmp_path / "server" / "server-artifacts").rglob("config.yaml"))
    assert _files_holding(tmp_path, b"S3cr3tPW") == []


def test_config_file_passwords_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"^tracking\.uri: holds a password"):
        validate(compose_config(["tracking.uri=http://alice:S3cr3tPW@127.0.0.1:5077"]))


def test_passwords_move_from_the_command_line_into_the_environment() -> None:
    from lrdecay.tracking.credentials import STORAGE_PASSWORD_ENV, move_credentials, storage_url

    environ = {"MLFLOW_TRACKING_URI": "https://carol:pw%403@mlflow.example:443/x"}
    argv, moved = move_credentials(
        [
            "-m",
            "tracking.uri=http://alice:S3cr3tPW@127.0.0.1:5077",
            "hydra.sweeper.storage='postgresql://bob:pw2@db/optuna'",
            "seed=1",
        ],
        environ,
    )
    assert argv == [
        "-m",
        "tracking.uri=http://127.0.0.1:5077",
        "hydra.sweeper.storage='postgresql://bob@db/optuna'",
        "seed=1",
    ]
    assert moved == ["MLFLOW_TRACKING_URI", "tracking.uri", "hydra.sweeper.storage"]
    assert environ == {
        "MLFLOW_TRACKING_URI": "https://mlflow.example:443/x",
        "MLFLOW_TRACKING_USERNAME": "alice",  # the command line wins over the environment
        "MLFLOW_TRACKING_PASSWORD": "S3cr3tPW",
        STORAGE_PASSWORD_ENV: "pw2",
    }
    assert storage_url("postgresql://bob@db/optuna", environ) == ("postgresql://bob:pw2@db/optuna")
    assert storage_url("sqlite:////tmp/o.db", environ) == "sqlite:////tmp/o.db"


def test_the_report_page_runs_no_html_from_names_and_reads_no_file_outside_its_folder(
    tmp_path: Path,
) -> None:
    """Setting names and experiment names reach the report's text; anyone who can log a run can
    choose them. The HTML page shows such markup as text, links to no script, and embeds no
    file from outside the report's folder."""
    out = tmp_path / "report"
    out.mkdir()
    (out / "fig.png").write_bytes(b"\x89PNG inside")
    (tmp_path / "secret.png").write_bytes(b"\x89PNG outside")
    markdown = (
        "# Study <script>alert(1)</script>\n\n"
        "| Setting | Final accuracy |\n|:--|--:|\n| <img src=x onerror=alert(1)> | 0.9 |\n\n"
        "[click](javascript:alert(1))\n\n![inside](fig.png)\n\n![outside](../secret.png)\n"
    )
    page = render_html(markdown, out)
    assert "<script>" not in page and "<img src=x" not in page and 'href="javascript:' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert base64.b64encode(b"\x89PNG inside").decode() in page
    assert base64.b64encode(b"\x89PNG outside").decode() not in page
