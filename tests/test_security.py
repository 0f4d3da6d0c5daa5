"""Security: user-supplied names stay inside their folders, data files are verified before
they are unpickled, and credentials never reach a file."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from lrdecay.config import DataConfig, DatasetConfig, validate
from lrdecay.data import load_data
from lrdecay.errors import ConfigError, DataError
from tests.conftest import compose_config, run_cli

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
    cifar = DatasetConfig(name="cifar10", channels=3, height=32, width=32)
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
    errors = [line for line in output.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "cifar-10-batches-py/data_batch_1" in errors[0], output
    assert "Traceback" not in output
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
    errors = [line for line in output.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "tracking.experiment" in errors[0], output
    assert "Traceback" not in output
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
