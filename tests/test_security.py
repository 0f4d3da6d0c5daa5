"""Security: user-supplied names stay inside their folders, data files are verified before
they are unpickled, and credentials never reach a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrdecay.config import validate
from lrdecay.errors import ConfigError
from tests.conftest import compose_config, run_cli


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
