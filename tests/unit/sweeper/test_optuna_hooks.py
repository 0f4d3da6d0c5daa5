"""The Optuna sweeper's parts on their own: its split from the app (the hooks in
``lrdecay.sweep.trials``), its trials table, public APIs only, and launching from one thread."""

from __future__ import annotations

import ast
import csv
import math
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from hydra_plugins.lrdecay_optuna_sweeper._jobs import consecutive_runs
from hydra_plugins.lrdecay_optuna_sweeper._results import trials_table
from hydra_plugins.lrdecay_optuna_sweeper.trial_hooks import JobReport, StudyInfo, TrialHooks
from lrdecay.core.outcome import RunOutcome
from lrdecay.sweep.folder import write_result
from lrdecay.sweep.pruning import PRUNER_ATTR, open_storage
from lrdecay.sweep.trials import LrdecayTrials, job_report
from tests.conftest import ROOT

SWEEPER_SOURCES = [
    *sorted((ROOT / "src" / "hydra_plugins" / "lrdecay_optuna_sweeper").glob("*.py")),
    ROOT / "src" / "lrdecay" / "sweep" / "trials.py",
]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(path: Path) -> list[str]:
    """Where ``path`` reaches into another package's private parts: an import of a module with
    a ``_name`` in its path (its own package's relative imports aside), or an ``_attribute``
    of anything but ``self`` and ``cls``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import | ast.ImportFrom):
            absolute = not isinstance(node, ast.ImportFrom) or node.level == 0
            modules = (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            )
            for module in modules:
                if absolute and module and any(_private(p) for p in module.split(".")):
                    found.append(f"{path.name}:{node.lineno} import {module}")
        elif isinstance(node, ast.Attribute):
            private = _private(node.attr)
            owner = node.value.id if isinstance(node.value, ast.Name) else None
            if private and owner not in ("self", "cls"):
                found.append(f"{path.name}:{node.lineno} .{node.attr}")
    return found


def test_the_sweeper_uses_public_apis_only() -> None:
    """No ``hydra._internal``, no ``study._storage``, ``trial._trial_id``, ``trial._suggest``
    or ``JobReturn._return_value``: the sweeper survives Hydra and Optuna releases."""
    assert len(SWEEPER_SOURCES) >= 6
    assert [use for path in SWEEPER_SOURCES for use in private_uses(path)] == []


def test_job_report_reads_the_jobs_result(tmp_path: Path) -> None:
    """A pruned run is PRUNED, a diverged or failed one FAIL with its reason, a finished one
    left to its return value; no result (or none readable): nothing known."""
    cases = {
        "pruned": (TrialState.PRUNED, ""),
        "diverged": (TrialState.FAIL, "the run diverged at epoch 3 (non-finite loss)"),
        "failed": (TrialState.FAIL, "ValueError: boom"),
        "killed": (TrialState.FAIL, "the run ended killed"),
        "finished": (None, ""),
        "skipped": (None, ""),
    }
    for status, (state, reason) in cases.items():
        error = "ValueError: boom" if status == "failed" else None
        result = RunOutcome(status, "s", epochs_run=3, run_id=f"run-{status}", error=error)
        write_result(tmp_path / status, result)
        assert job_report(tmp_path / status) == JobReport(state, reason, f"run-{status}", 3)
    assert job_report(tmp_path / "nothing") == JobReport()
    assert job_report(None) == JobReport()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "result.json").write_text("{not json")
    assert job_report(tmp_path / "broken") == JobReport()


def _hooks(tmp_path: Path, **config: object) -> LrdecayTrials:
    return LrdecayTrials(OmegaConf.create(config), tmp_path / "multirun", tmp_path)


def test_trial_overrides_hand_the_run_its_trial_and_pruner(tmp_path: Path) -> None:
    """The run finds its trial from the overrides and its pruner's settings on the trial, where
    the pruning listener reads them."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    study.ask()
    trial = study.ask()
    pruner = {"name": "median", "n_startup_trials": 2}
    info = StudyInfo(study, storage, url, pruner)
    hooks = _hooks(tmp_path, trial={"storage": None}, objective="val_acc")
    assert hooks.trial_overrides(info, trial) == [
        f"trial.storage='{url}'",
        "trial.study_name='s'",
        "trial.number=1",
        "trial.pruner=median",
        "trial.metric=val_acc",
    ]
    reread = optuna.load_study(study_name="s", storage=url).trials[1]
    assert reread.system_attrs[PRUNER_ATTR] == pruner
    assert hooks.objectives() == ["val_acc"]
    assert _hooks(tmp_path, objective=["val_acc", "epochs_run"]).objectives() == [
        "val_acc",
        "epochs_run",
    ]
    plain = _hooks(tmp_path, x=1)  # an app without the trial keys: nothing to add
    assert plain.trial_overrides(info, trial) == [] and plain.objectives() is None


def test_the_plain_hooks_do_nothing(tmp_path: Path) -> None:
    hooks = TrialHooks(OmegaConf.create({}), tmp_path, tmp_path)
    assert hooks.objectives() is None and hooks.default_study_name() == "search"
    assert hooks.job_report(tmp_path) == JobReport()


def test_trials_table_puts_the_best_first() -> None:
    """Complete trials best first, then pruned ones by their last value, then the rest; the
    objective by its name, parameters by their keys, the MLflow run id last."""
    study = optuna.create_study(direction="maximize")
    plan = [
        (TrialState.COMPLETE, 0.5),
        (TrialState.FAIL, None),
        (TrialState.COMPLETE, 0.9),
        (TrialState.PRUNED, 0.2),
        (TrialState.COMPLETE, 0.7),
    ]
    for i, (state, value) in enumerate(plan):
        trial = study.ask()
        trial.suggest_float("optimizer.lr", 1e-4, 1e-1, log=True)
        trial.set_user_attr("mlflow_run_id", f"run{i}")
        if state == TrialState.PRUNED:
            trial.report(value, 1)
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    table = trials_table(study, ["val_acc"], ["maximize"])
    assert list(table.columns) == ["trial", "state", "val_acc", "optimizer.lr", "mlflow_run_id"]
    assert list(table["trial"]) == [2, 4, 0, 3, 1]
    assert list(table["state"]) == ["COMPLETE"] * 3 + ["PRUNED", "FAIL"]
    assert list(table["mlflow_run_id"]) == ["run2", "run4", "run0", "run3", "run1"]
    assert table["val_acc"].iloc[3] == pytest.approx(0.2) and math.isnan(table["val_acc"].iloc[4])

    two = optuna.create_study(directions=["maximize", "minimize"])
    for values in ([0.5, 3], [0.9, 5]):
        trial = two.ask()
        trial.suggest_int("trainer.max_epochs", 1, 9)
        two.tell(trial, values)
    table = trials_table(two, ["val_acc", "convergence_epoch"], ["maximize", "minimize"])
    assert list(table.columns) == [
        "trial",
        "state",
        "val_acc",
        "convergence_epoch",
        "trainer.max_epochs",
    ]
    assert list(table["trial"]) == [1, 0]
    empty = trials_table(optuna.create_study(), ["value0"], ["minimize"])
    assert list(empty.columns) == ["trial", "state", "value0"] and empty.empty


def test_a_batch_is_launched_in_runs_of_consecutive_trial_numbers() -> None:
    """Job numbers are trial numbers, and a launch numbers its jobs from one start on."""
    study = optuna.create_study()
    trials = [study.ask() for _ in range(5)]

    class Item:
        def __init__(self, trial: optuna.Trial) -> None:
            self.trial = trial

    batch = [Item(trials[i]) for i in (0, 1, 3, 4, 2)]
    runs = consecutive_runs(batch)  # type: ignore[arg-type]
    assert [[item.trial.number for item in run] for run in runs] == [[0, 1], [3, 4], [2]]


#: A Hydra app whose jobs fail unless the launcher was called from the main thread (the basic
#: launcher runs its jobs in the calling thread).
THREAD_APP = """
import threading

import hydra
from hydra.core.config_store import ConfigStore

ConfigStore.instance().store(name="app", node={"x": 0})


@hydra.main(version_base="1.3", config_path=None, config_name="app")
def main(cfg) -> float:
    thread = threading.current_thread()
    if thread is not threading.main_thread():
        raise RuntimeError(f"launched from thread {thread.name}")
    return (float(cfg.x) - 1.0) ** 2


if __name__ == "__main__":
    main()
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "hooks", [[], ["hydra.sweeper.trial_hooks=lrdecay.sweep.trials.LrdecayTrials"]]
)
def test_the_sweeper_launches_from_its_main_thread(tmp_path: Path, hooks: list[str]) -> None:
    """Hydra's launchers are not documented as safe to call from several threads: the sweeper
    calls ``launch`` from its one thread (here the basic launcher runs the job in it). The
    plain hooks (the default) drive an app as well as this project's, named."""
    app = tmp_path / "thread_app.py"
    app.write_text(THREAD_APP)
    proc = subprocess.run(
        [
            sys.executable,
            str(app),
            "-m",
            "hydra/sweeper=lrdecay_optuna",
            "hydra/launcher=basic",
            "hydra/sweeper/sampler=grid",
            "hydra.sweeper.study_name=thread",
            f"hydra.sweep.dir={tmp_path}/multirun",
            "hydra.sweeper.n_jobs=1",
            "hydra.sweeper.n_trials=3",
            "x=choice(0,1,2)",
            *hooks,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="thread", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert sorted(t.params["x"] for t in study.trials) == [0, 1, 2]
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    rows = list(csv.reader((tmp_path / "multirun" / "trials.csv").open()))
    assert rows[0] == ["trial", "state", "value0", "x"] and rows[1][:3] == ["1", "COMPLETE", "0.0"]
    assert sorted(p.name for p in (tmp_path / "multirun").iterdir() if p.name.isdigit()) == [
        "0",
        "1",
        "2",
    ]
