"""A study's exported files restored into a fresh store (``lrdecay.report.restore``): a real tiny
sweep (digits, the control and one decayed setting × 2 seeds × 2 epochs, test split held out)
exported, restored by the CLI into an empty store, and exported again; the same sweep re-launched
there trains nothing."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.entities import Metric, Run, RunTag
from mlflow.tracking import MlflowClient

from lrdecay.core.predictions import PREDICTIONS_FILE
from lrdecay.core.records import EPOCH_METRICS, epoch_key, summary_key
from lrdecay.report.export import (
    HISTORIES_FILE,
    MANIFEST_FILE,
    RESTORE_COLUMNS,
    RUNS_FILE,
    STUDY_PREDICTIONS_FILE,
    export,
    load_exported,
)
from lrdecay.report.restore import main as restore_main
from lrdecay.report.runs import load_runs
from lrdecay.tracking.resume import FINGERPRINT_TAG, RESTORED_FROM_TAG
from lrdecay.tracking.ui import ROLE_TAG, SWEEP_ROLE, is_summary
from tests.helpers import (
    cli_env,
    experiment_runs,
    is_sweep_parent,
    new_store,
    run_cli,
    seed_store,
    store_uri,
)

EXPERIMENT = "restore-digits"
SWEEP = [
    "-m",
    "dataset=digits",
    "dataset.val_fraction=0.2",
    "setting=sgd-fixed-r0,seq3-epoch",
    "seed=0,1",
    "trainer.max_epochs=2",
    "trainer.progress=off",
    "tracking.log_plot=false",
    "report.enabled=false",
    f"tracking.experiment={EXPERIMENT}",
]
#: What a restored run cannot have: the files hold no epoch's seconds.
NOT_IN_FILES = {epoch_key("epoch_seconds")}
#: What an export says of the store, not of its runs: the experiment's id there.
STORE_ONLY = "experiment_id"


@dataclass
class Restored:
    origin: str  # the store the sweep trained into
    first: Path  # its export
    fresh: Path  # the folder whose default store the export was restored into
    second: Path  # that store's export
    said: str  # what the restore printed


def _restore_cli(data: Path, cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "lrdecay.report.restore", "--data", str(data), *extra]
    return subprocess.run(command, cwd=cwd, env=cli_env(), capture_output=True, text=True)


@pytest.fixture(scope="module")
def restored(tmp_path_factory: pytest.TempPathFactory) -> Restored:
    """Train and export the sweep; restore the files with the CLI into the empty default store of
    another folder (no ``--tracking-uri``: ``mlruns/`` as the runs use), and export that store."""
    origin = tmp_path_factory.mktemp("origin")
    done = run_cli(SWEEP, origin)
    assert done.returncode == 0, done.stderr[-3000:]
    first, fresh = origin / "data", tmp_path_factory.mktemp("fresh")
    export(MlflowClient(store_uri(origin)), EXPERIMENT, first)
    seed_store(fresh)  # an empty store where the runs' default is, skipping seconds of migrations
    out = _restore_cli(first, fresh, "--experiment", EXPERIMENT)
    assert out.returncode == 0, out.stderr[-3000:]
    second = fresh / "data"
    export(MlflowClient(store_uri(fresh)), EXPERIMENT, second)
    return Restored(store_uri(origin), first, fresh, second, out.stdout)


@pytest.mark.slow
def test_a_restored_study_exports_as_the_same_files(restored: Restored) -> None:
    """Runs, histories and predictions come back byte for byte (the runs named by the ids they
    trained as); the manifest, launches included, differs only in the experiment's id."""
    assert "restored 4 of 4 runs (0 already there) and 1 of 1 launches" in restored.said
    assert f"{restored.fresh / 'mlruns' / 'mlflow.db'}" in restored.said
    for name in (RUNS_FILE, HISTORIES_FILE, STUDY_PREDICTIONS_FILE):
        assert (restored.second / name).read_bytes() == (restored.first / name).read_bytes(), name
    manifests = [
        json.loads((d / MANIFEST_FILE).read_text()) for d in (restored.first, restored.second)
    ]
    assert len(manifests[0]["launches"]) == manifests[0]["untagged"] == 1
    for manifest in manifests:
        manifest.pop(STORE_ONLY)
    assert manifests[0] == manifests[1]


def _trained(run: Run) -> bool:
    """Whether ``run`` is a training run (a setting's, not its summary over seeds)."""
    return "setting" in run.data.tags and not is_summary(run.data.tags)


def _points(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    """The (step, value) points of a run's metric ``key``, by step."""
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


@pytest.mark.slow
def test_each_restored_run_is_its_original_as_the_store_holds_it(restored: Restored) -> None:
    """Same status, times, fingerprint, tags the report reads, params, metric keys (but epoch
    seconds) and histories, and its predictions artifact; tagged with the id it trained as."""
    source, target = MlflowClient(restored.origin), MlflowClient(store_uri(restored.fresh))
    originals = {r.info.run_id: r for r in experiment_runs(source, EXPERIMENT) if _trained(r)}
    copies = [r for r in experiment_runs(target, EXPERIMENT) if _trained(r)]
    assert sorted(r.data.tags[RESTORED_FROM_TAG] for r in copies) == sorted(originals)
    for copy in copies:
        original = originals[copy.data.tags[RESTORED_FROM_TAG]]
        assert copy.info.run_id != original.info.run_id
        assert (copy.info.status, copy.info.run_name) == ("FINISHED", original.info.run_name)
        assert (copy.info.start_time, copy.info.end_time) == (
            original.info.start_time,
            original.info.end_time,
        )
        for tag in (FINGERPRINT_TAG, "setting", "seed", "optimizer", "sequence", "strategy"):
            assert copy.data.tags[tag] == original.data.tags[tag], tag
        assert copy.data.tags["outcome"] == "finished" and copy.data.tags["diverged"] == "false"
        assert copy.data.params.items() <= original.data.params.items()
        assert "optimizer.lr" in copy.data.params
        assert set(copy.data.metrics) == set(original.data.metrics) - NOT_IN_FILES
        assert copy.data.metrics == {k: original.data.metrics[k] for k in copy.data.metrics}
        for key in set(EPOCH_METRICS) - NOT_IN_FILES:
            copied = _points(target, copy.info.run_id, key)
            assert copied == _points(source, original.info.run_id, key) and copied, key
        assert PREDICTIONS_FILE in {a.path for a in target.list_artifacts(copy.info.run_id)}
    (launch,) = [r for r in experiment_runs(source, EXPERIMENT) if is_sweep_parent(r)]
    (relaunch,) = [r for r in experiment_runs(target, EXPERIMENT) if is_sweep_parent(r)]
    assert relaunch.data.tags[RESTORED_FROM_TAG] == launch.info.run_id
    assert (relaunch.info.status, relaunch.info.run_name) == ("FINISHED", launch.info.run_name)
    assert (relaunch.info.start_time, relaunch.info.end_time) == (
        launch.info.start_time,
        launch.info.end_time,
    )
    report = load_runs(target, experiment=EXPERIMENT)
    assert [r.outcome.test_acc for r in report.runs] == [
        r.outcome.test_acc for r in load_exported(restored.first).runs
    ]


@pytest.mark.slow
def test_a_sweep_relaunched_on_the_restored_store_trains_nothing(restored: Restored) -> None:
    """Every job of the same sweep, launched where the files were restored, is skipped as the
    restored run of its fingerprint: no run is trained or created but the sweep's parent."""
    target = MlflowClient(store_uri(restored.fresh))
    before = {r.info.run_id for r in experiment_runs(target, EXPERIMENT) if _trained(r)}
    done = run_cli(SWEEP, restored.fresh)
    assert done.returncode == 0, done.stderr[-3000:]
    skipped = re.findall(r"skipped: FINISHED as run (\w+)", done.stdout)
    assert sorted(skipped) == sorted(before)
    assert "4 jobs: 4 finished, 0 diverged, 0 failed" in done.stdout
    after = [r for r in experiment_runs(target, EXPERIMENT) if _trained(r)]
    assert {r.info.run_id for r in after} == before
    assert all(r.info.status == "FINISHED" and RESTORED_FROM_TAG in r.data.tags for r in after)
    assert sum(map(is_sweep_parent, experiment_runs(target, EXPERIMENT))) == 2  # and this one


@pytest.mark.slow
def test_restoring_again_adds_nothing(restored: Restored, capsys: pytest.CaptureFixture) -> None:
    uri = store_uri(restored.fresh)
    before = sorted(r.info.run_id for r in experiment_runs(MlflowClient(uri), EXPERIMENT))
    args = ["--data", str(restored.first), "--tracking-uri", uri]  # the export's experiment
    assert restore_main(args) == 0
    said = capsys.readouterr().out
    assert "restored 0 of 4 runs (4 already there) and 0 of 1 launches" in said
    after = sorted(r.info.run_id for r in experiment_runs(MlflowClient(uri), EXPERIMENT))
    assert after == before


def _rewrite_runs(folder: Path, change) -> None:
    """Rewrite ``folder``'s runs.csv through ``change`` (rows in, rows out)."""
    with open(folder / RUNS_FILE, newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows = change(rows)
    with open(folder / RUNS_FILE, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.slow
def test_an_export_without_fingerprints_reads_but_is_refused(
    restored: Restored, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """An export written before runs carried their fingerprint still rebuilds the report, but
    restores nothing (its runs could not be matched): one line, exit 1, the store untouched."""
    old = tmp_path / "old"
    shutil.copytree(restored.first, old)
    _rewrite_runs(
        old, lambda rows: [{k: v for k, v in r.items() if k not in RESTORE_COLUMNS} for r in rows]
    )
    assert [r.outcome for r in load_exported(old).runs] == [
        r.outcome for r in load_exported(restored.first).runs
    ]
    uri = new_store(tmp_path / "mlflow.db")
    capsys.readouterr()  # MLflow's lines, when it made the store now
    assert restore_main(["--data", str(old), "--tracking-uri", uri]) == 1
    (err,) = capsys.readouterr().err.splitlines()
    assert "has no run_name, fingerprint, threads column" in err and "nothing restored" in err
    assert MlflowClient(uri).get_experiment_by_name(EXPERIMENT) is None


@pytest.mark.slow
def test_a_run_without_a_fingerprint_is_left_to_the_sweep(
    restored: Restored, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = tmp_path / "data"
    shutil.copytree(restored.first, data)
    _rewrite_runs(data, lambda rows: [{**rows[0], "fingerprint": ""}, *rows[1:]])
    uri = new_store(tmp_path / "mlflow.db")
    assert restore_main(["--data", str(data), "--tracking-uri", uri]) == 0
    out = capsys.readouterr()
    assert "restored 3 of 4 runs" in out.out
    assert "1 runs have no fingerprint" in out.err and "a sweep trains them again" in out.err
    runs = experiment_runs(MlflowClient(uri), EXPERIMENT)
    assert sum(map(_trained, runs)) == 3


def test_a_folder_without_an_export_restores_nothing(tmp_path: Path, capsys) -> None:
    """Nothing exported yet (a study's first launch): nothing to do, said, exit 0; a runs.csv
    without its manifest is no export: one line, exit 1."""
    uri = new_store(tmp_path / "mlflow.db")
    assert restore_main(["--data", str(tmp_path / "data"), "--tracking-uri", uri]) == 0
    assert "nothing to restore" in capsys.readouterr().out
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / RUNS_FILE).write_text("setting\n")
    assert restore_main(["--data", str(tmp_path / "data"), "--tracking-uri", uri]) == 1
    assert f"no {MANIFEST_FILE} in" in capsys.readouterr().err


def test_a_diverged_run_without_predictions_comes_back_diverged(tmp_path: Path) -> None:
    """A diverged run (FAILED, tagged diverged, no predictions) is restored as it ended, so the
    report counts it as diverged; the export of the restored store is the same files."""
    uri = new_store(tmp_path / "a.db")
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("div", artifact_location=(tmp_path / "art").as_uri())
    tags = {"setting": "seq1-epoch", "optimizer": "sgd", "sequence": "seq1", "strategy": "epoch"}
    tags |= {"seed": "3", "dataset": "digits", FINGERPRINT_TAG: "f" * 16}
    run_id = client.create_run(exp, tags=tags, start_time=1_000_000).info.run_id
    history = [Metric(epoch_key("val_acc"), 0.25, 0, 1), Metric(epoch_key("lr"), 0.01, 0, 1)]
    summary = [Metric(summary_key("epochs_run"), 1.0, 0, 1)]
    client.log_batch(
        run_id,
        metrics=history + summary,
        tags=[RunTag("outcome", "diverged"), RunTag("diverged", "true")],
    )
    client.set_terminated(run_id, status="FAILED", end_time=2_000_500)
    first, second = tmp_path / "first", tmp_path / "second"
    export(client, "div", first)
    assert not (first / STUDY_PREDICTIONS_FILE).exists()

    target = new_store(tmp_path / "b.db")
    assert restore_main(["--data", str(first), "--tracking-uri", target]) == 0
    (copy,) = experiment_runs(MlflowClient(target), "div")
    assert copy.info.status == "FAILED" and copy.data.tags["diverged"] == "true"
    assert (copy.info.start_time, copy.info.end_time) == (1_000_000, 2_000_500)
    (record,) = load_runs(MlflowClient(target), experiment="div").runs
    assert record.diverged
    export(MlflowClient(target), "div", second)
    for name in (RUNS_FILE, HISTORIES_FILE):
        assert (second / name).read_bytes() == (first / name).read_bytes(), name
    assert restore_main(["--data", str(first), "--tracking-uri", target]) == 0  # diverged: there
    assert len(experiment_runs(MlflowClient(target), "div")) == 1


def test_a_launch_still_running_when_exported_comes_back_killed(tmp_path: Path) -> None:
    """A sweep's parent exported while it ran (no end) is restored KILLED, its launcher not
    running here, and still without an end: the page times it by its jobs' ends."""
    uri = new_store(tmp_path / "a.db")
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("live", artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(exp, tags={ROLE_TAG: SWEEP_ROLE}, start_time=5_000, run_name="p")
    tags = {"setting": "sgd-fixed", "optimizer": "sgd", "sequence": "constant", "seed": "0"}
    tags |= {"strategy": "fixed", "dataset": "digits", FINGERPRINT_TAG: "0" * 16}
    job = client.create_run(exp, tags=tags, start_time=6_000).info.run_id
    client.log_batch(job, metrics=[Metric(summary_key("epochs_run"), 1.0, 0, 1)])
    client.set_terminated(job, end_time=7_000)
    export(client, "live", tmp_path / "data")

    target = new_store(tmp_path / "b.db")
    assert restore_main(["--data", str(tmp_path / "data"), "--tracking-uri", target]) == 0
    (launch,) = [r for r in experiment_runs(MlflowClient(target), "live") if is_sweep_parent(r)]
    assert launch.data.tags[RESTORED_FROM_TAG] == parent.info.run_id
    assert (launch.info.status, launch.info.start_time, launch.info.end_time) == (
        "KILLED",
        5_000,
        None,
    )
