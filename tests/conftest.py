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
        base = ["dataset=digits", f"tracking.uri={tracking_uri}", f"data.root={tmp_path}/data",
                "trainer.progress=off", "tracking.log_plot=false"]
        return compose_config([*base, *overrides])

    return make


def run_cli(args: list[str], cwd: Path, timeout: float = 300, env: dict | None = None):
    """Run ``python train.py args`` as a user would, returning the completed process."""
    import os
    import subprocess

    full_env = {**os.environ, **(env or {})}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=full_env)
