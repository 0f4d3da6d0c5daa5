"""A study's runs exported as publishable files (``lrdecay.report.export``) and read back with no
store: a real tiny sweep (digits, the control and one decayed setting × 2 seeds × 2 epochs, test
split held out), exported by the CLI, whose report rebuilt from the files equals the store's."""

from __future__ import annotations

import csv
import gzip
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from lrdecay.core.data import digits
from lrdecay.core.predictions import labels_hash
from lrdecay.core.records import summary_key
from lrdecay.report.command import main as report_main
from lrdecay.report.export import (
    HISTORIES_FILE,
    MANIFEST_FILE,
    RUNS_FILE,
    STUDY_PREDICTIONS_FILE,
    export,
    load_exported,
    load_predictions,
)
from lrdecay.report.export import main as export_main
from lrdecay.report.publish import PAGE_FILE
from lrdecay.report.publish import main as publish_main
from lrdecay.report.runs import ReportError, load_runs
from lrdecay.report.stats import default_target, summarise
from lrdecay.report.tables import build_table, to_csv, to_markdown
from tests.helpers import ROOT, cli_env, new_store, run_cli, store_uri, table_rows

EXPERIMENT = "export-digits"
SETTINGS = ("sgd-fixed-r0", "seq3-epoch")
SWEEP = [
    "-m",
    "dataset=digits",
    "dataset.val_fraction=0.2",
    f"setting={','.join(SETTINGS)}",
    "seed=0,1",
    "trainer.max_epochs=2",
    "trainer.progress=off",
    "tracking.log_plot=false",
    "report.enabled=false",
    f"tracking.experiment={EXPERIMENT}",
]
FILES = (RUNS_FILE, HISTORIES_FILE, STUDY_PREDICTIONS_FILE, MANIFEST_FILE)


@dataclass
class Exported:
    cwd: Path
    uri: str
    data: Path


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """Run the sweep, then export it with the command ``make results`` runs."""
    cwd = tmp_path_factory.mktemp("export")
    done = run_cli(SWEEP, cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    uri, data = store_uri(cwd), cwd / "data"
    command = [sys.executable, "-m", "lrdecay.report.export", "--experiment", EXPERIMENT]
    command += ["--out", str(data), "--tracking-uri", uri]
    out = subprocess.run(command, cwd=ROOT, env=cli_env(), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    for name in FILES:
        assert f"exported {data / name}" in out.stdout
    return Exported(cwd, uri, data)


def _rows(path: Path) -> list[dict[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_the_files_hold_every_run_epoch_and_test_prediction(exported: Exported) -> None:
    runs = _rows(exported.data / RUNS_FILE)
    assert sorted((r["setting"], r["seed"]) for r in runs) == sorted(
        (s, seed) for s in SETTINGS for seed in ("0", "1")
    )
    control = [r for r in runs if r["setting"] == "sgd-fixed-r0"]
    assert {(r["lr"], r["final_lr"], r["rate_moves"]) for r in control} == {("0.01", "0.01", "0")}
    assert all(r["epochs_run"] == "2" and r["run_id"] and r["status"] == "finished" for r in runs)
    history = _rows(exported.data / HISTORIES_FILE)
    assert len(history) == 4 * 2 and {h["epoch"] for h in history} == {"1", "2"}
    assert all(h["train_loss"] and h["val_acc"] and h["lr"] for h in history)

    labels = digits()[1].y.numpy()  # the data set's own test split
    study = load_predictions(exported.data)
    assert study.split == "test" and study.labels_hash == labels_hash(labels)
    assert np.array_equal(study.labels, labels)
    by_run = {r["run_id"]: r for r in runs}
    for setting in SETTINGS:
        arm = study.arms[setting]
        assert arm.predicted.dtype == np.uint8 and arm.predicted.shape == (2, 360)
        assert arm.seeds == ["0", "1"]
        for row, run_id in zip(arm.predicted, arm.run_ids, strict=True):
            assert float(np.mean(row == labels)) == float(by_run[run_id]["test_acc"])
            assert by_run[run_id]["labels_hash"] == study.labels_hash
    assert sum((exported.data / name).stat().st_size for name in FILES) < 20_000


@pytest.mark.slow
def test_the_report_rebuilt_from_the_files_equals_the_store_s(
    exported: Exported, tmp_path: Path
) -> None:
    """The same run records, the same table, and the same report files, with no store."""
    stored = load_runs(MlflowClient(exported.uri), experiment=EXPERIMENT)
    files = load_exported(exported.data)
    assert [r.outcome for r in files.runs] == [r.outcome for r in stored.runs]
    assert [r.history for r in files.runs] == [r.history for r in stored.runs]
    tables = []
    for runset in (stored, files):
        target = default_target(runset.runs)
        rows = summarise(runset.runs, target)
        tables.append((to_markdown(build_table(rows, target)), to_csv(rows, target)))
    assert tables[0] == tables[1]

    from_store, from_files = tmp_path / "store", tmp_path / "files"
    uri = ["--tracking-uri", exported.uri, "--no-log"]
    assert report_main(["--experiment", EXPERIMENT, "--out", str(from_store), *uri]) == 0
    assert report_main(["--data", str(exported.data), "--out", str(from_files)]) == 0
    for name in ("table.md", "table.csv", "table.tex"):
        assert (from_files / name).read_text() == (from_store / name).read_text(), name
    written = re.compile(r" Written \d{4}-\d\d-\d\d \d\d:\d\d UTC\.")
    reports = [written.sub("", (d / "report.md").read_text()) for d in (from_store, from_files)]
    assert reports[0] == reports[1]
    assert {p.name for p in from_files.glob("*.png")} == {p.name for p in from_store.glob("*.png")}


@pytest.mark.slow
def test_an_export_of_the_same_runs_is_the_same_bytes(exported: Exported, tmp_path: Path) -> None:
    """Exporting again changes no byte, so a published folder changes only with its runs."""
    export(MlflowClient(exported.uri), EXPERIMENT, tmp_path)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (exported.data / name).read_bytes(), name


@pytest.mark.slow
def test_the_published_page_links_its_per_run_files(exported: Exported, tmp_path: Path) -> None:
    page = tmp_path / "page"
    export(MlflowClient(exported.uri), EXPERIMENT, page / "data")
    args = ["--experiment", EXPERIMENT, "--out", str(page), "--tracking-uri", exported.uri]
    assert publish_main(args) == 0
    text = (page / PAGE_FILE).read_text()
    files = {row[0]: row[1] for row in table_rows(text)}["Per-run files"]
    assert files.startswith("[data/](data/): `runs.csv`, `histories.csv.gz`")
    assert f"--data {(page / 'data').as_posix()}` rebuilds the report" in text


def test_runs_trained_before_runs_kept_predictions_are_exported_and_named(
    tmp_path: Path, capsys
) -> None:
    """A finished run without a predictions artifact still gets its row; the export says how
    many runs have none, and leaves no predictions file behind."""
    uri = new_store(tmp_path / "mlflow.db")
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("old", artifact_location=(tmp_path / "art").as_uri())
    tags = {"setting": "sgd-fixed", "optimizer": "sgd", "sequence": "constant"}
    tags |= {"strategy": "fixed", "seed": "0", "dataset": "digits"}
    run_id = client.create_run(exp, tags=tags).info.run_id
    client.log_batch(run_id, metrics=[Metric(summary_key("test_acc"), 0.5, 0, 0)])
    client.set_terminated(run_id)
    out = tmp_path / "data"
    out.mkdir()
    (out / STUDY_PREDICTIONS_FILE).write_bytes(b"an earlier export's")
    assert export_main(["--experiment", "old", "--out", str(out), "--tracking-uri", uri]) == 0
    assert "1 of 1 runs have no predictions" in capsys.readouterr().err
    (row,) = _rows(out / RUNS_FILE)
    assert row["run_id"] == run_id and row["test_acc"] == "0.5" and row["labels_hash"] == ""
    assert not (out / STUDY_PREDICTIONS_FILE).exists()
    assert load_exported(out).runs[0].metric("test_acc") == 0.5


def test_a_folder_that_holds_no_export_is_one_line(tmp_path: Path, capsys) -> None:
    with pytest.raises(ReportError, match=f"no {MANIFEST_FILE} in"):
        load_exported(tmp_path)
    with pytest.raises(ReportError, match=f"no {STUDY_PREDICTIONS_FILE} in"):
        load_predictions(tmp_path)
    assert report_main(["--data", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an exported study" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("sweep_status", [0, 1], ids=["sweep-ok", "sweep-stopped"])
def test_make_results_exports_what_finished_before_the_page(
    tmp_path: Path, sweep_status: int
) -> None:
    """``make results`` restores the exported runs before the sweep, exports after it even when
    it stopped short, and rewrites the page only after a sweep that ended well (each command
    of the recipe logged, not run)."""
    log, fake = tmp_path / "calls.log", tmp_path / "python"
    fake.write_text(
        f'#!/bin/sh\necho "$*" >> {log}\ncase "$1" in *train.py) exit {sweep_status};; esac\n'
    )
    fake.chmod(0o755)
    stamp = tmp_path / "installed"  # newer than the lock: setup has nothing to do
    stamp.touch()
    done = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "results", f"PY={fake}", f"STAMP={stamp}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    calls = [line.split()[0:2] for line in log.read_text().splitlines()]
    before = ["lrdecay.report.restore", "train.py"]  # restore first: the sweep skips its runs
    steps = [c[1] if c[0] == "-m" else Path(c[0]).name for c in calls]
    if sweep_status == 0:
        assert done.returncode == 0, done.stderr
        assert steps == [*before, "lrdecay.report.export", "lrdecay.report.publish"]
    else:
        assert done.returncode == 2  # make's status for a recipe that failed
        assert steps == [*before, "lrdecay.report.export"]
    assert "--out docs/results/fashion_mnist/data" in log.read_text()
    assert "--data docs/results/fashion_mnist/data" in log.read_text()
