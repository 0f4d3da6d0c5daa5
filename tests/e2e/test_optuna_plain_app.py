"""The sweeper's defaults drive a plain Hydra app: no hooks, nothing of this project's.

The app is written to a temporary folder with its own conf and imports only Hydra; the search
runs it as a subprocess, as any user of the installed plugin would.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import ROOT

PLUGIN = ROOT / "src" / "hydra_plugins" / "lrdecay_optuna_sweeper"

#: A float-returning task: -(x - 2)², at most 0 at x = 2.
PLAIN_APP = """
import sys
from pathlib import Path

import hydra


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg) -> float:
    return -((float(cfg.x) - 2.0) ** 2)


if __name__ == "__main__":
    main()
    Path("modules.txt").write_text("\\n".join(sorted(sys.modules)))
"""

PLAIN_CONF = """
defaults:
  - override hydra/sweeper: lrdecay_optuna
  - _self_

x: 0.0

hydra:
  sweeper:
    direction: maximize
    n_trials: 20
    sampler:
      seed: 0             # a reproducible search: the test does not depend on luck
    params:
      x: interval(-5, 5)
"""


def test_the_plugin_imports_nothing_of_the_app() -> None:
    """No module of the plugin names ``lrdecay`` in an import (the app plugs in by config)."""
    imports = []
    for path in sorted(PLUGIN.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imports += [(path.name, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imports.append((path.name, node.module))
    assert [i for i in imports if i[1].split(".")[0] == "lrdecay"] == []


@pytest.mark.slow
def test_a_plain_app_is_searched_with_the_plugins_defaults(tmp_path: Path) -> None:
    """``hydra/sweeper: lrdecay_optuna`` in a plain app's conf: the search finds x near 2 and
    writes the sweeper's result files, and nothing imports this project."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text(PLAIN_CONF)
    (tmp_path / "app.py").write_text(PLAIN_APP)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src"), "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "app.py", "-m", "hydra/launcher=basic", "hydra.sweep.dir=multirun"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = tmp_path / "multirun"
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    assert results.n_complete == 20 and results.directions == ["maximize"]
    assert abs(results.best_params.x - 2.0) < 0.5 and results.best_value > -0.25
    assert (sweep / "trials.csv").read_text().splitlines()[0].startswith("trial,state,value0,x")
    assert (sweep / "param_importances.csv").is_file()
    assert (sweep / "optuna.db").is_file()
    modules = (tmp_path / "modules.txt").read_text().split()
    assert "hydra_plugins.lrdecay_optuna_sweeper.optuna_sweeper" in modules
    assert not [m for m in modules if m.split(".")[0] == "lrdecay"]
