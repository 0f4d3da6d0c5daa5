"""requirements.lock against what runs the suite: every pin installed at exactly its version, and
every dependency pyproject.toml declares pinned there (a drift or a stale lock fails here, fast)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
#: The extras the lock is compiled with (the Makefile's `lock` target).
LOCKED_EXTRAS = ("dev", "cluster")


def locked_pins(text: str) -> dict[str, Version]:
    """The ``name==version`` lines of a pip-compile output, by canonical name."""
    pins: dict[str, Version] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"requirements.lock: {line!r} is not an exact pin"
        pins[canonicalize_name(requirement.name)] = Version(spec.version)
    return pins


def test_every_locked_distribution_is_installed_at_its_pinned_version() -> None:
    pins = locked_pins(LOCK.read_text())
    assert {"mlflow", "torch", "optuna", "hydra-core"} <= pins.keys()
    drift = []
    for name, pinned in sorted(pins.items()):
        try:
            installed = Version(version(name))
        except PackageNotFoundError:
            drift.append(f"{name}: locked {pinned}, not installed")
            continue
        if installed != pinned:
            drift.append(f"{name}: locked {pinned}, installed {installed}")
    assert not drift, "the environment is not the lock (make setup installs it):\n" + "\n".join(
        drift
    )


def test_every_declared_dependency_is_pinned_in_the_lock_within_its_range() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+, as the lock itself
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in LOCKED_EXTRAS:
        declared += project["optional-dependencies"][extra]
    pins = locked_pins(LOCK.read_text())
    stale = []
    for line in declared:
        requirement = Requirement(line)
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None or pinned not in requirement.specifier:
            stale.append(f"{line}: locked {pinned}")
    assert not stale, "pyproject.toml changed since the lock (make lock):\n" + "\n".join(stale)


def test_the_pin_parser_reads_pip_compile_lines_and_refuses_ranges() -> None:
    text = "# header\nmlflow==3.17.2\n    # via -r pyproject.toml\nTyping_Extensions==4.16.0\n"
    assert locked_pins(text) == {
        "mlflow": Version("3.17.2"),
        "typing-extensions": Version("4.16.0"),
    }
    with pytest.raises(AssertionError, match="not an exact pin"):
        locked_pins("mlflow>=3\n")
