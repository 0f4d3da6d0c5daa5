"""The Optuna sweeper driven through Hydra's CLI, as Hydra's own plugin tests drive it: every
sampler past its start-up trials, and how failing and diverging jobs end a trial and a search.
The task is mostly ``tests/sweeper_app.py`` (a quadratic, no training): seconds a search."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.helpers import ROOT, load_search, run_cli, run_search, store

pytestmark = pytest.mark.slow

APP = ROOT / "tests" / "sweeper_app.py"
STUDY = "app"
#: x a stepped float range, y an int range: both ordered, so every model sampler takes them.
SPACE = ["x=range(-2.0, 2.5, step=0.5)", "y=range(-2, 3)"]


def run_app(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``tests/sweeper_app.py`` searched (:func:`~tests.helpers.run_search`) in ``cwd``."""
    return run_search(APP, STUDY, args, cwd)


def load_study(cwd: Path) -> optuna.Study:
    """The study a search run by :func:`run_app` or ``run_cli`` in ``cwd`` left."""
    return load_search(cwd, STUDY)


#: Per sampler, the overrides that end its start-up (random) phase after 2 trials at most, so
#: that the 4 trials run reach the sampler's own model.
SAMPLERS = {
    "tpe": ["hydra.sweeper.sampler.n_startup_trials=2"],
    "gp": ["hydra.sweeper.sampler.n_startup_trials=2"],
    "cmaes": ["hydra.sweeper.sampler.n_startup_trials=1"],
    "nsgaii": ["hydra.sweeper.sampler.population_size=2"],
    "qmc": [],
    "random": [],
    "grid": [],
}


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_every_sampler_runs_its_model(sampler: str, tmp_path: Path) -> None:
    proc = run_app(
        [
            f"hydra/sweeper/sampler={sampler}",
            "hydra.sweeper.sampler.seed=0",
            *SAMPLERS[sampler],
            "hydra.sweeper.n_trials=4",
            *SPACE,
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # a model sampler that cannot take a parameter falls back to random for it, and says so
    assert "sampled independently" not in proc.stderr, proc.stderr[-3000:]
    trials = load_study(tmp_path).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    for t in trials:
        assert t.params["x"] in [-2.0 + 0.5 * i for i in range(9)]
        assert t.params["y"] in range(-2, 3)
        assert t.value == pytest.approx((t.params["x"] - 1) ** 2 + (t.params["y"] - 1) ** 2)


def test_a_grid_whose_jobs_all_raise_exits_non_zero_with_the_error(tmp_path: Path) -> None:
    """Fewer failures than max_failures, but no complete trial: no best parameters."""
    proc = run_app(
        ["hydra/sweeper/sampler=grid", "error=true", "hydra.sweeper.n_trials=2", "x=choice(0,1)"],
        tmp_path,
    )
    assert proc.returncode == 1  # the search ran and failed, as failed jobs fail a sweep
    last = proc.stderr.strip().splitlines()[-1]
    assert "no complete trial" in last and "RuntimeError: cfg.error is True" in last
    assert "Traceback" not in proc.stderr
    assert [t.state for t in load_study(tmp_path).trials] == [TrialState.FAIL] * 2


def test_max_failures_stops_the_search_non_zero(tmp_path: Path) -> None:
    proc = run_app(
        ["error=true", "hydra.sweeper.n_trials=5", "hydra.sweeper.max_failures=2", *SPACE], tmp_path
    )
    assert proc.returncode == 1  # the search ran and failed
    last = proc.stderr.strip().splitlines()[-1]
    assert "max_failures=2" in last and "RuntimeError: cfg.error is True" in last
    assert [t.state for t in load_study(tmp_path).trials] == [TrialState.FAIL] * 2


def test_a_misspelled_searched_key_exits_non_zero_naming_it(tmp_path: Path) -> None:
    proc = run_app(["hydra.sweeper.n_trials=2", "xx=interval(0, 1)"], tmp_path)
    assert proc.returncode == 1  # Hydra's status for an override it cannot apply
    last = proc.stderr.strip().splitlines()[-1]
    assert "Could not override 'xx'" in last and "+xx=" in last  # the key and Hydra's fix


def test_a_diverged_run_is_a_failed_trial(tmp_path: Path) -> None:
    """r0 = 1e6 diverges in its first epoch: a FAIL, not its chance-level accuracy; the search
    still ends well, its best trial the one that learned."""
    proc = run_cli(
        [
            "-m",
            "hydra/sweeper=optuna",
            "hydra/sweeper/sampler=grid",
            "hydra/launcher=basic",
            "dataset=digits",
            "trainer.progress=off",
            "tracking.log_plot=false",
            "report.enabled=false",
            "trainer.max_epochs=1",
            "optimizer.lr=choice(0.05,1e6)",
            "hydra.sweeper.n_jobs=1",
            f"hydra.sweeper.study_name={STUDY}",
            "hydra.sweeper.n_trials=2",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the sweeper's log line for the trial says why
    assert re.search(r"trial \d failed in [\d.]+ s: the run diverged at epoch 1", proc.stdout)
    trials = {t.params["optimizer.lr"]: t for t in load_study(tmp_path).trials}
    assert trials[1e6].state == TrialState.FAIL and trials[1e6].values is None
    assert trials[0.05].state == TrialState.COMPLETE
    run = store(tmp_path).get_run(trials[1e6].user_attrs["mlflow_run_id"])
    assert run.data.tags["optuna.state"] == "FAIL" and run.data.tags["diverged"] == "true"
