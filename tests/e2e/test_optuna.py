"""The project's Optuna sweeper: search space parsing, and real searches through the CLI
(persistence and resume after a kill, several objectives, pruning)."""

from __future__ import annotations

import contextlib
import csv
import importlib.metadata
import importlib.util
import math
import os
import signal
import sqlite3
import subprocess
import time
import warnings
from pathlib import Path

import optuna
import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from mlflow.tracking import MlflowClient
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState
from packaging.requirements import Requirement

from hydra_plugins.lrdecay_optuna_sweeper._space import (
    SweepError,
    format_value,
    grid_values,
    parse_search_space,
    resolve_directions,
    sqlite_absolute,
)
from lrdecay.core.records import FINAL_ACC_METRIC, epoch_key
from lrdecay.sweep.pruning import make_pruner
from lrdecay.sweep.trials import OBJECTIVE_DIRECTIONS
from tests.helpers import (
    CONF_DIR,
    ROOT,
    experiment_runs,
    is_sweep_parent,
    run_cli,
    start_cli,
    store,
)

QUIET = [
    "dataset=digits",
    "trainer.progress=off",
    "tracking.log_plot=false",
    "report.enabled=false",
]


# ---------------------------------------------------------------- fast: no training


def test_sweep_syntax_maps_to_optuna_distributions() -> None:
    space, fixed = parse_search_space(
        [
            "optimizer.lr=tag(log, interval(1e-4, 1e-1))",
            "strategy.rate=interval(0.001, 0.1)",
            "dataset.batch_size=choice(32, 64, 128)",
            "sequence=seq1,seq2",
            "trainer.max_epochs=range(2, 11, 4)",
            "seed=int(interval(0, 9))",
            "strategy.shrink=range(0.5, 5.5, step=1)",
            "dataset=digits",
            "+extra=1",
            "sequence=seq3",
        ]
    )
    assert space["optimizer.lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert space["strategy.rate"] == FloatDistribution(0.001, 0.1)
    assert space["dataset.batch_size"] == CategoricalDistribution([32, 64, 128])
    assert space["trainer.max_epochs"] == IntDistribution(2, 10, step=4)  # 2, 6, 10 as Hydra
    assert space["seed"] == IntDistribution(0, 9)
    assert space["strategy.shrink"] == FloatDistribution(0.5, 4.5, step=1)  # 0.5, …, 4.5
    assert "sequence" not in space  # a later plain value wins over the earlier sweep
    assert fixed == {"dataset": "dataset=digits", "+extra": "+extra=1", "sequence": "sequence=seq3"}
    assert grid_values("x", space["trainer.max_epochs"]) == [2, 6, 10]
    with pytest.raises(SweepError, match="discrete"):
        grid_values("optimizer.lr", space["optimizer.lr"])
    assert [format_value(v) for v in (1e-05, True, None, "seq1", 3)] == [
        "1e-05",
        "true",
        "null",
        "seq1",
        "3",
    ]


@pytest.mark.parametrize(
    "line",
    [
        "range(0.5, 5.5, step=1)",
        "range(0.1, 1.0, step=0.1)",
        "range(-2.0, 2.5, step=0.5)",
        "range(1, 2, step=0.25)",
        "range(0.001, 0.01, step=0.003)",
    ],
)
def test_a_float_range_stays_ordered(line: str) -> None:
    """A stepped float distribution over Hydra's own values (stop excluded), never a
    categorical (CMA-ES and QMC would lose the order)."""
    (override,) = OverridesParser.create().parse_overrides([f"key={line}"])
    hydra_values = list(override.sweep_iterator())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna warns when (high - low) is not a step multiple
        space, _ = parse_search_space([f"key={line}"])
    dist = space["key"]
    assert isinstance(dist, FloatDistribution) and dist.step
    assert (dist.low, dist.high) == (hydra_values[0], hydra_values[-1])
    assert grid_values("key", dist) == pytest.approx(hydra_values)


def test_directions_follow_the_objectives_unless_given() -> None:
    assert resolve_directions(None, ["val_acc", "convergence_epoch"], OBJECTIVE_DIRECTIONS) == [
        "maximize",
        "minimize",
    ]
    assert resolve_directions("minimize", ["val_acc"]) == ["minimize"]
    with pytest.raises(SweepError, match="1 direction"):
        resolve_directions("maximize", ["val_acc", "train_seconds"])
    with pytest.raises(SweepError, match="sideways"):
        resolve_directions(["sideways"], ["val_acc"])


def test_storage_and_pruner_helpers(tmp_path: Path) -> None:
    assert sqlite_absolute("sqlite:///s.db", tmp_path) == f"sqlite:///{tmp_path}/s.db"
    assert sqlite_absolute("sqlite:////abs/s.db", tmp_path) == "sqlite:////abs/s.db"
    with pytest.raises(SweepError, match="in-memory"):  # a user's fix: one line, no traceback
        sqlite_absolute("sqlite://", tmp_path)
    assert isinstance(make_pruner("none"), optuna.pruners.NopPruner)
    median = make_pruner({"name": "median", "n_startup_trials": 2})
    assert isinstance(median, optuna.pruners.MedianPruner)


#: What each sampler imports beyond Optuna's own dependencies (``hydra/sweeper/sampler=...``).
SAMPLER_PACKAGES = {"cmaes": {"cmaes"}, "qmc": {"scipy"}, "gp": {"torch", "scipy"}}


def test_every_sampler_needs_only_declared_dependencies() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {Requirement(line).name for line in project["dependencies"]}
    for sampler, packages in SAMPLER_PACKAGES.items():
        assert packages <= declared, f"hydra/sweeper/sampler={sampler} needs {packages}"


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


@pytest.mark.parametrize("extra", [[], ["hydra/sweeper=optuna"]])
def test_tune_preset_selects_the_sweeper_itself(extra: list[str]) -> None:
    cfg = _compose(*extra, "experiment=tune", "dataset=digits")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.startswith("hydra_plugins.lrdecay_optuna_sweeper.")
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert sweeper.pruner.name == "percentile"
    assert sweeper.study_name == "tune-digits"
    assert set(sweeper.params) == {
        "optimizer.lr",
        "sequence",
        "strategy",
        "strategy.rate",
        "dataset.batch_size",
    }
    assert sweeper.params["optimizer.lr"] == "tag(log, interval(1e-4, 1e-1))"


def test_stock_optuna_sweeper_is_neither_installed_nor_used() -> None:
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("hydra-optuna-sweeper")
    assert importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None
    sources = [
        ROOT / "train.py",
        ROOT / "pyproject.toml",
        *ROOT.glob("src/**/*.py"),
        *ROOT.glob("conf/**/*.yaml"),
    ]
    for path in sources:
        text = path.read_text()
        assert "hydra_optuna_sweeper" not in text and "hydra-optuna-sweeper" not in text, path
    cfg = _compose(
        "hydra/sweeper=optuna", "hydra/sweeper/sampler=nsgaii", "hydra/sweeper/pruner=hyperband"
    )
    assert cfg.hydra.sweeper._target_ == (
        "hydra_plugins.lrdecay_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    )
    assert cfg.hydra.sweeper.sampler._target_ == "optuna.samplers.NSGAIISampler"
    assert cfg.hydra.sweeper.pruner.name == "hyperband"


# ---------------------------------------------------------------- slow: real searches


def _children_by_parent(client: MlflowClient) -> dict[str, list]:
    """Each sweep parent run id (in start order) with its child runs."""
    runs = experiment_runs(client, max_results=1000, order_by=["attributes.start_time ASC"])
    parents = [r for r in runs if is_sweep_parent(r)]
    return {
        p.info.run_id: [r for r in runs if r.data.tags.get("mlflow.parentRunId") == p.info.run_id]
        for p in parents
    }


def _states(db: Path, study: str) -> dict[str, int]:
    """Trial states of ``study``, counted straight from the SQLite file ({} before the
    sweeper has created its tables)."""
    if not db.is_file():
        return {}
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as con:
        try:
            rows = con.execute(
                "SELECT t.state, COUNT(*) FROM trials t JOIN studies s ON "
                "t.study_id = s.study_id WHERE s.study_name = ? "
                "GROUP BY t.state",
                (study,),
            ).fetchall()
        except sqlite3.OperationalError:  # no tables yet
            return {}
    return dict(rows)


TUNE = [
    "-m",
    "experiment=tune",
    *QUIET,
    "trainer.max_epochs=4",
    "hydra.sweeper.n_jobs=2",
    "hydra/sweeper/sampler=random",
    "hydra.sweeper.sampler.seed=0",
    "hydra.sweeper.confirm.enabled=false",  # the search alone (test_optuna_confirm.py: the rest)
]


@pytest.mark.slow
def test_search_survives_a_kill_resumes_and_extends(tmp_path: Path) -> None:
    """The tune preset: killed mid-way, re-run to exactly n_trials, then extended."""
    db = tmp_path / "optuna.db"
    first = start_cli(
        [*TUNE, "hydra.sweeper.n_trials=6"],
        tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and first.poll() is None:
            states = _states(db, "tune-digits")
            if states.get("COMPLETE", 0) >= 1 and states.get("RUNNING", 0) >= 1:
                break
            time.sleep(0.2)
        assert first.poll() is None, "the search ended before it could be killed"
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the launcher, its workers, everything
        first.wait(timeout=60)
    killed = _states(db, "tune-digits")
    done_before = killed.get("COMPLETE", 0) + killed.get("PRUNED", 0)
    assert killed.get("RUNNING", 0) >= 1 and done_before < 6

    proc = run_cli([*TUNE, "hydra.sweeper.n_trials=6"], cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "marked failed" in out and "Best parameters: optimizer.lr=" in out
    study = optuna.load_study(study_name="tune-digits", storage=f"sqlite:///{db}")
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(finished) == 6 and len(failed) == killed["RUNNING"]
    retried = {t.user_attrs["retry_of"]: t for t in finished if "retry_of" in t.user_attrs}
    sampled = [t for t in failed if t.params]  # (a kill can land between ask and sampling)
    assert sampled and sorted(retried) == sorted(t.number for t in sampled)  # ran again...
    for t in sampled:  # ...with its own parameters (a kill mid-sampling leaves only some of
        # them; the sampler then draws the rest)
        assert t.params.items() <= retried[t.number].params.items()
    fresh = [tuple(sorted(t.params.items())) for t in finished if "retry_of" not in t.user_attrs]
    assert len(set(fresh)) == len(fresh)  # the resumed seeded sampler drew new points
    results = yaml.safe_load(
        next(tmp_path.glob("multirun/*/*/optimization_results.yaml")).read_text()
    )
    best = study.best_trial
    assert results["best_value"] == pytest.approx(best.value)
    assert results["best_params"] == best.params
    assert results["n_complete"] + results["n_pruned"] == 6

    proc = run_cli([*TUNE, "hydra.sweeper.n_trials=8"], cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "8 finished trials" in proc.stdout
    assert _states(db, "tune-digits")["COMPLETE"] + _states(db, "tune-digits").get("PRUNED", 0) == 8
    sweeps = list(_children_by_parent(store(tmp_path)).values())
    assert len(sweeps) == 3 and len(sweeps[1]) == 6 - done_before
    last = sweeps[2]
    assert len(last) == 2  # the extension ran exactly the 2 new trials
    study = optuna.load_study(study_name="tune-digits", storage=f"sqlite:///{db}")
    newest = {t.number: t for t in study.trials[-2:]}
    for run in last:
        tags = run.data.tags
        trial = newest[int(tags["optuna.trial"])]
        assert tags["optuna.study"] == "tune-digits" and tags["optuna.state"] == trial.state.name
        assert run.info.status == {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}[trial.state.name]
        assert trial.user_attrs["mlflow_run_id"] == run.info.run_id
        assert float(run.data.params["optimizer.lr"]) == trial.params["optimizer.lr"]


@pytest.mark.slow
def test_two_objectives_give_a_pareto_front(tmp_path: Path) -> None:
    """Accuracy against convergence epoch: a longer budget is more accurate and slower."""
    proc = run_cli(
        [
            "-m",
            "hydra/sweeper=optuna",
            *QUIET,
            "hydra/sweeper/sampler=grid",
            "objective=[val_acc,convergence_epoch]",
            "hydra.sweeper.direction=[maximize,minimize]",
            "trainer.max_epochs=choice(2,4,6)",
            "optimizer.lr=0.05",
            "hydra.sweeper.n_trials=10",
        ],
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "the grid has 3 points" in proc.stdout + proc.stderr
    results = yaml.safe_load(
        next(tmp_path.glob("multirun/*/*/optimization_results.yaml")).read_text()
    )
    front = results["solutions"]
    assert len(front) >= 2 and "Pareto front:" in proc.stdout
    assert results["objectives"] == ["val_acc", "convergence_epoch"]
    epochs = {s["params"]["trainer.max_epochs"] for s in front}
    assert 2 in epochs and len(epochs) >= 2
    for a in front:  # no point of the front dominates another
        for b in front:
            assert not (a["values"][0] > b["values"][0] and a["values"][1] < b["values"][1])
    (children,) = _children_by_parent(store(tmp_path)).values()
    assert len(children) == 3 and all(
        math.isfinite(c.data.metrics[FINAL_ACC_METRIC]) for c in children
    )


@pytest.mark.slow
def test_median_pruner_stops_hopeless_rates_early(tmp_path: Path) -> None:
    """r0 = 1e-6 cannot learn in 6 epochs: once two good trials finished, it is pruned."""
    proc = run_cli(
        [
            "-m",
            "hydra/sweeper=optuna",
            *QUIET,
            "hydra/sweeper/sampler=random",
            "hydra.sweeper.sampler.seed=6",
            "hydra/sweeper/pruner=median",
            "hydra.sweeper.pruner.n_startup_trials=2",
            "hydra.sweeper.pruner.n_warmup_steps=1",
            "hydra.sweeper.n_jobs=1",
            "hydra.sweeper.n_trials=4",
            "trainer.max_epochs=6",
            "optimizer.lr=choice(0.05,1e-6)",
            "hydra.sweeper.study_name=prune",
        ],
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pruned" in proc.stdout
    study = optuna.load_study(study_name="prune", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned and all(t.params["optimizer.lr"] == 1e-6 for t in pruned)
    assert all(t.last_step is not None and t.last_step < 6 for t in pruned)
    (children,) = _children_by_parent(store(tmp_path)).values()
    assert len(children) == 4
    client = store(tmp_path)
    for trial in pruned:
        (run,) = [c for c in children if c.data.tags["optuna.trial"] == str(trial.number)]
        assert run.info.status == "KILLED"
        assert run.data.tags["pruned"] == "true" and run.data.tags["optuna.state"] == "PRUNED"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, epoch_key("val_acc"))]
        assert steps == list(range(1, trial.last_step + 1))  # its history up to the prune
        assert trial.user_attrs["mlflow_run_id"] == run.info.run_id
    assert "pruned" in proc.stdout.split("jobs:")[-1]  # the sweep summary counts them
    rows = list(csv.reader(next(tmp_path.glob("multirun/*/*/trials.csv")).open()))
    assert rows[0][:3] == ["trial", "state", "val_acc"] and len(rows) == 5
    complete = [float(r[2]) for r in rows[1:] if r[1] == "COMPLETE"]
    assert complete == sorted(complete, reverse=True)  # best first
    assert complete[0] == pytest.approx(study.best_value, rel=1e-3)
    assert [r[1] for r in rows[len(complete) + 1 :]] == ["PRUNED"] * len(pruned)
