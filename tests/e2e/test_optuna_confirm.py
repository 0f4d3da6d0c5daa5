"""An honest search: ``experiment=tune`` selects on a validation split held out of training, and
its confirm stage runs the winner again with fresh seeds on the test split the search never saw
(mean ± 95 % CI, the selection optimism), logged on the parent run and shown in the report."""

from __future__ import annotations

import csv
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from optuna.trial import TrialState

from hydra_plugins.lrdecay_optuna_sweeper._shared import (
    CONFIRM_ATTR,
    claim_confirmations,
    launcher_id,
    release_confirmations,
)
from hydra_plugins.lrdecay_optuna_sweeper.trial_hooks import StudyInfo
from lrdecay.core.outcome import RunOutcome
from lrdecay.report.stats import Stat
from lrdecay.sweep.folder import write_result
from lrdecay.sweep.pruning import open_storage
from lrdecay.sweep.trials import LrdecayTrials
from tests.helpers import (
    CONF_DIR,
    experiment_runs,
    is_summary_run,
    is_sweep_parent,
    run_cli,
    store,
)
from tests.unit.core.test_data import write_idx

QUIET = ["trainer.progress=off", "tracking.log_plot=false"]


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def _hooks(tmp_path: Path, *overrides: str) -> LrdecayTrials:
    return LrdecayTrials(_compose(*overrides), tmp_path, tmp_path)


# ---------------------------------------------------------------- fast: no training


def test_tune_holds_out_validation_and_confirms_by_default() -> None:
    cfg = _compose("experiment=tune", "dataset=digits")
    assert cfg.dataset.val_fraction == 0.1
    assert OmegaConf.to_container(cfg.hydra.sweeper.confirm) == {
        "enabled": True,
        "seeds": 5,
        "max_points": 3,
    }
    plain = _compose("hydra/sweeper=optuna", "dataset=digits")
    assert plain.hydra.sweeper.confirm.enabled is False  # other searches: as before


def test_a_search_on_the_test_split_is_refused_with_confirm_and_warned_without(
    tmp_path: Path,
) -> None:
    """val_fraction=0: validation IS the test split. With the confirm stage on, the sweeper
    stops (its confirmation would report the data the winner was picked on); without, the
    search runs under a loud warning. Selecting on test_acc is the same."""
    on_test = _hooks(tmp_path, "experiment=tune", "dataset=digits", "dataset.val_fraction=0")
    problem = on_test.search_problem(confirming=True)
    assert problem and "dataset.val_fraction=0.1" in problem and "confirm.enabled=false" in problem
    assert on_test.search_warning(confirming=True) is None
    warning = on_test.search_warning(confirming=False)
    assert warning and "optimistic" in warning and on_test.search_problem(False) is None
    by_test = _hooks(tmp_path, "experiment=tune", "dataset=digits", "objective=[test_acc]")
    assert "test_acc" in (by_test.search_problem(confirming=True) or "")
    held = _hooks(tmp_path, "experiment=tune", "dataset=digits")
    assert held.search_problem(True) is None and held.search_warning(True) is None
    assert held.held_out("val_acc") == "test_acc" and held.held_out("convergence_epoch") is None
    assert on_test.held_out("val_acc") is None  # no test split scored then


def test_confirm_seeds_are_fresh_and_the_same_on_every_launch(tmp_path: Path) -> None:
    hooks = _hooks(tmp_path, "experiment=tune", "dataset=digits", "seed=42")
    storage = open_storage(f"sqlite:///{tmp_path / 'o.db'}")
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    for seed in (43, 45):  # a search over seeds: those are taken
        study.add_trial(
            optuna.trial.create_trial(
                params={"seed": seed},
                distributions={"seed": optuna.distributions.IntDistribution(0, 100)},
                value=0.5,
            )
        )
    info = StudyInfo(study, storage, "sqlite://", {"name": "none"})
    jobs = hooks.confirm_overrides(info, study.best_trial, 4)
    assert jobs == [["seed=44"], ["seed=46"], ["seed=47"], ["seed=48"]]
    assert hooks.confirm_overrides(info, study.best_trial, 4) == jobs


def test_measures_read_every_objective_of_the_result(tmp_path: Path) -> None:
    hooks = _hooks(tmp_path, "experiment=tune", "dataset=digits")
    result = RunOutcome("finished", "s", final_val_acc=0.9, test_acc=0.1, test_loss=2.0)
    result.epochs_run = 3
    write_result(tmp_path / "job", result)
    measures = hooks.measures(tmp_path / "job")
    assert measures["val_acc"] == pytest.approx(0.9) and measures["test_acc"] == pytest.approx(0.1)
    assert measures["epochs_run"] == 3 and hooks.measures(tmp_path / "none") == {}


def test_a_tune_search_on_the_test_split_stops_before_any_trial(tmp_path: Path) -> None:
    proc = run_cli(
        ["-m", "experiment=tune", "dataset=digits", "dataset.val_fraction=0", *QUIET],
        cwd=tmp_path,
        timeout=240,
    )
    assert proc.returncode == 2  # a mistake it names, before any trial
    err = proc.stderr.strip().splitlines()[-1]
    assert err.startswith("lrdecay: hydra.sweeper.confirm:") and "val_fraction" in err
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("multirun/*/*/0"))  # no trial's job ran
    (parent,) = experiment_runs(store(tmp_path))
    assert is_sweep_parent(parent) and parent.info.status == "FAILED"


# ---------------------------------------------------------------- slow: real searches

#: Class k: a bright 7x7 block at one of ten places of a 28x28 image, on noise.
PLACES = [(2 + 9 * (k % 3), 2 + 6 * (k // 3)) for k in range(10)]


def _images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = rng.integers(0, 60, (len(labels), 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        r, c = PLACES[int(k)]
        x[i, r : r + 7, c : c + 7] = 250
    return x


def write_disagreeing_mnist(root: Path, n_train: int = 500, n_test: int = 200) -> None:
    """An MNIST-format set that is easy to learn, except that every test label is shifted to
    the next class: a model that learnt the training split scores ~1 on a validation split
    held out of it and ~0 on the test split."""
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    train_y = rng.integers(0, 10, n_train).astype(np.uint8)
    test_y = rng.integers(0, 10, n_test).astype(np.uint8)
    write_idx(raw / "train-images-idx3-ubyte", _images(train_y, rng))
    write_idx(raw / "train-labels-idx1-ubyte", train_y)
    write_idx(raw / "t10k-images-idx3-ubyte", _images(test_y, rng))
    write_idx(raw / "t10k-labels-idx1-ubyte", (test_y + 1) % 10)


def _printed(out: str, label: str) -> float:
    """The number printed after ``label`` in the sweeper's confirmation block."""
    found = re.search(rf"{label}\s+([-+]?\d\.\d+)", out)
    assert found, out[-3000:]
    return float(found.group(1))


@pytest.mark.slow
def test_search_selects_on_held_out_validation_and_confirms_on_test(tmp_path: Path) -> None:
    """Validation and test labels disagree by construction: every trial's objective is high
    (the held-out split), the confirmation's test accuracy near 0 (the test split), and the
    selection optimism says so. A re-launch reuses the finished confirm runs."""
    write_disagreeing_mnist(tmp_path / "data")
    args = [
        "-m",
        "experiment=tune",
        "dataset=mnist",
        f"data.root={tmp_path / 'data'}",
        "data.download=false",
        *QUIET,
        "report.enabled=true",
        "trainer.max_epochs=3",
        "optimizer.lr=0.05",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=0",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.confirm.seeds=3",
    ]
    proc = run_cli(args, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    study = optuna.load_study(study_name="tune-mnist", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert len(study.trials) == 3  # the confirm runs were not told to the study
    assert all(t.state == TrialState.COMPLETE and t.value > 0.9 for t in study.trials)

    client = store(tmp_path)
    runs = experiment_runs(client, "lrdecay-mnist")
    (parent,) = [r for r in runs if is_sweep_parent(r)]
    trials = [r for r in runs if r.data.tags.get("lrdecay.stage") == "search"]
    confirms = [r for r in runs if r.data.tags.get("lrdecay.stage") == "confirm"]
    (band,) = [r for r in runs if is_summary_run(r)]  # the winner over its confirm seeds
    assert len(trials) == 3 and len(confirms) == 3 and len(runs) == 8
    assert band.info.run_name == f"{confirms[0].data.tags['setting']} (mean of 3)"
    for run in trials:  # the objective came from the held-out split, not the test split
        assert run.data.metrics["summary/test_acc"] < 0.2
        assert run.data.metrics["summary/final_val_acc"] > 0.9
    best = study.best_trial
    assert {r.data.tags["seed"] for r in trials} == {"42"}
    assert sorted(r.data.tags["seed"] for r in confirms) == ["43", "44", "45"]
    for run in confirms:
        assert run.data.tags["lrdecay.confirms_trial"] == str(best.number)
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert "optuna.trial" not in run.data.tags
        assert run.data.params["optimizer.lr"] == "0.05"
        assert run.data.params["sequence.name"] == best.params["sequence"]

    tests = [r.data.metrics["summary/test_acc"] for r in confirms]
    expected = Stat.of(tests)
    assert expected is not None and expected.mean < 0.2 and expected.half is not None
    assert _printed(out, "search   val_acc") == pytest.approx(best.value, abs=1e-4)
    assert _printed(out, "confirm  test_acc") == pytest.approx(expected.mean, abs=1e-4)
    assert f"± {expected.half:.4f}  (mean ± 95 % CI, n=3)" in out
    optimism = _printed(out, "selection optimism")
    assert optimism == pytest.approx(best.value - expected.mean, abs=1e-4) and optimism > 0.7
    assert out.rstrip().count("selection optimism") == 2  # and again under the jobs' table
    metrics = client.get_run(parent.info.run_id).data.metrics
    assert metrics["confirm_test_acc_mean"] == pytest.approx(expected.mean)
    assert metrics["confirm_test_acc_ci95"] == pytest.approx(expected.half)
    assert metrics["search_val_acc"] == pytest.approx(best.value)
    assert metrics["selection_optimism"] == pytest.approx(optimism, abs=1e-4)
    assert metrics["confirm_val_acc_mean"] > 0.9

    sweep = next(tmp_path.glob("multirun/*/*/optimization_results.yaml")).parent
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    (point,) = results["confirmation"]
    assert point["trial"] == best.number and point["held_out"] == "test_acc"
    assert point["confirm"]["test_acc"]["mean"] == pytest.approx(expected.mean)
    rows = list(csv.DictReader((sweep / "confirmation.csv").open()))
    assert sorted(r["overrides"] for r in rows) == ["seed=43", "seed=44", "seed=45"]
    assert {r["mlflow_run_id"] for r in rows} == {r.info.run_id for r in confirms}
    logged = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"confirmation.csv", "trials.csv", "optimization_results.yaml"} <= logged
    report = (sweep / "report" / "report.md").read_text()
    assert "### Confirmation" in report and f"{expected.mean:.4f} ± {expected.half:.4f}" in report
    assert "3 trial run(s) of an Optuna search are left out" in report
    assert "(n=3)" in report.split("## Results")[1].split("\n\n")[1]  # the confirm runs only
    assert (sweep / "report" / "search_history.png").stat().st_size > 10_000

    again = run_cli(args, cwd=tmp_path, timeout=600)  # the study resumes: nothing new to run
    assert again.returncode == 0, again.stderr[-3000:]
    assert "skipped: FINISHED" in again.stdout
    runs_after = experiment_runs(client, "lrdecay-mnist")
    assert len(runs_after) == len(runs) + 1  # one more sweep parent, no new training run
    (relaunch,) = [
        r for r in runs_after if is_sweep_parent(r) and r.info.run_id != parent.info.run_id
    ]
    (moved,) = [r for r in runs_after if is_summary_run(r)]  # the band went with its seeds
    assert moved.data.tags["mlflow.parentRunId"] == relaunch.info.run_id
    study = optuna.load_study(study_name="tune-mnist", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert len(study.trials) == 3


@pytest.mark.slow
def test_tune_on_digits_ends_with_the_confirmation_over_five_seeds(tmp_path: Path) -> None:
    """The acceptance command, shortened (fewer trials and epochs): the winner over 5 fresh
    seeds, mean ± CI printed, logged on the parent run and shown in the report."""
    proc = run_cli(
        [
            "-m",
            "experiment=tune",
            "dataset=digits",
            *QUIET,
            "trainer.max_epochs=3",
            "hydra.sweeper.n_trials=6",
        ],
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "with 5 fresh seed(s) (seed=43 seed=44 seed=45 seed=46 seed=47): 5 finished" in out
    mean = _printed(out, "confirm  test_acc")
    assert "(mean ± 95 % CI, n=5)  <- data the search never saw" in out
    client = store(tmp_path)
    (parent,) = [r for r in experiment_runs(client) if is_sweep_parent(r)]
    metrics = parent.data.metrics
    assert metrics["confirm_test_acc_mean"] == pytest.approx(mean, abs=1e-4)
    assert metrics["confirm_runs"] == 5 and "confirm_test_acc_ci95" in metrics
    report = next(tmp_path.glob("multirun/*/*/report/report.md")).read_text()
    assert "### Confirmation" in report and f"{mean:.4f} ± " in report
    assert "![Search history](search_history.png)" in report


def test_a_pareto_front_is_confirmed_up_to_max_points_best_first() -> None:
    """Several objectives: the first ``max_points`` points of the front, by the first one."""
    from hydra_plugins.lrdecay_optuna_sweeper._confirm import winners
    from hydra_plugins.lrdecay_optuna_sweeper._impl import OptunaSweeperImpl

    sweeper = OptunaSweeperImpl(
        sampler=None,
        pruner=None,
        direction=None,
        storage=None,
        study_name=None,
        n_trials=4,
        n_jobs=1,
        max_failures=1,
        params=None,
        custom_search_space=None,
        confirm={"enabled": True, "seeds": 3, "max_points": 2},
    )
    study = optuna.create_study(directions=["maximize", "minimize"])
    for acc, epoch in [(0.90, 3), (0.95, 6), (0.80, 2), (0.97, 9), (0.85, 8)]:  # last: dominated
        study.add_trial(optuna.trial.create_trial(values=[acc, epoch]))
    chosen = winners(study, ["maximize", "minimize"], sweeper.confirm_points)
    assert [t.values for t in chosen] == [[0.97, 9], [0.95, 6]]
    assert sweeper.confirm and sweeper.confirm_seeds == 3


@pytest.mark.slow
def test_a_search_on_the_test_split_without_confirmation_warns_and_reports_the_search_only(
    tmp_path: Path,
) -> None:
    """confirm.enabled=false with val_fraction=0: the search runs, warned at its start and in
    its summary; its report shows the search, says it is unconfirmed, and makes no per-setting
    numbers of its trials (nor does an experiment-wide report)."""
    proc = run_cli(
        [
            "-m",
            "experiment=tune",
            "dataset=digits",
            "dataset.val_fraction=0",
            "hydra.sweeper.confirm.enabled=false",
            *QUIET,
            "trainer.max_epochs=2",
            "hydra.sweeper.n_trials=3",
        ],
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert out.count("this search selects on the test split") == 2  # at its start, and...
    assert "WARNING: this search selects on the test split" in out  # ...in its summary
    assert "Confirmation (" not in proc.stdout
    report = next(tmp_path.glob("multirun/*/*/report/report.md")).read_text()
    assert "## The search and its confirmation" in report and "No confirmation" in report
    assert "## Results" not in report and "3 trial run(s) of an Optuna search" in report
    whole = subprocess.run(
        [sys.executable, "-m", "lrdecay.report", "--experiment", "lrdecay-digits"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert whole.returncode == 1 and "only the trials of Optuna searches" in whole.stderr


def test_launchers_sharing_a_study_confirm_each_winner_once() -> None:
    """A live launcher's claim on a winner's confirmation is left alone; a dead one's is taken
    over; a released claim is free again for a later launch."""
    study = optuna.create_study()
    other = f"{socket.gethostname()}:{os.getppid()}"  # a live process: pytest's parent
    study.set_user_attr(CONFIRM_ATTR.format(number=0), other)
    study.set_user_attr(CONFIRM_ATTR.format(number=1), f"{socket.gethostname()}:999999999")
    holders = claim_confirmations(study, [0, 1, 2])
    assert holders == {0: other, 1: launcher_id(), 2: launcher_id()}
    release_confirmations(study, [1, 2])
    assert study.user_attrs[CONFIRM_ATTR.format(number=0)] == other
    assert study.user_attrs[CONFIRM_ATTR.format(number=2)] == ""
