"""Publishing a study as a repository page (``lrdecay.report.publish``): a real sweep with a
held-out validation split, launched twice as ``make results`` does, then published."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from statistics import mean

import pytest
from mlflow.tracking import MlflowClient

from lrdecay.config import validate
from lrdecay.core.records import FINAL_ACC_METRIC, summary_key
from lrdecay.errors import ConfigError
from lrdecay.report.publish import PAGE_FILE, READING_FILE, declared_margin, main, planned
from tests.helpers import (
    compose_config,
    experiment_runs,
    is_job,
    run_cli,
    store_uri,
    table_rows,
)

EXPERIMENT = "pub-digits"
TEST_ACC = summary_key("test_acc")
SWEEP = [
    "-m",
    "dataset=digits",
    "dataset.val_fraction=0.2",
    "setting=sgd-fixed,seq3-epoch",
    "seed=0,1",
    "trainer.max_epochs=2",
    "trainer.progress=off",
    "report.enabled=false",
    f"tracking.experiment={EXPERIMENT}",
]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Launch the sweep, launch it again (everything reused), then publish with a reading."""
    cwd = tmp_path_factory.mktemp("publish")
    for _ in range(2):
        done = run_cli(SWEEP, cwd)
        assert done.returncode == 0, done.stderr[-2000:]
    out = cwd / "docs" / "results"
    out.mkdir(parents=True)
    (out / READING_FILE).write_text("Hand-written: seq3 by epoch and SGD, two seeds.\n")
    uri = store_uri(cwd)
    assert main(["--experiment", EXPERIMENT, "--out", str(out), "--tracking-uri", uri]) == 0
    return out


@pytest.mark.slow
def test_page_names_runs_launches_commit_and_machine(page: Path) -> None:
    text = (page / PAGE_FILE).read_text()
    assert "4 runs, 2 settings × seeds 0, 1, scored by test accuracy" in text
    assert "`make results`" in text
    assert "over 2 launch(es)" in text  # the second launch reused all four runs
    facts = {row[0]: row[1] for row in table_rows(text) if len(row) == 2}
    assert "cores" in facts["Machine"]
    assert "Hand-written: seq3 by epoch" in text
    assert "[report.md](report.md)" in text and (page / "report.md").exists()
    assert "**cannot tell" in text  # two seeds of two epochs decide nothing
    assert facts["Status"] == "complete"
    # the generated reading of the validation loss after its minimum, linked to its numbers
    section = text.split("## Validation loss after its minimum", 1)[1].split("## Reading")[0]
    assert "arms whose rate moves" in section and "At a fixed rate" in section
    assert "(report.md#validation-loss-after-its-minimum)" in section


@pytest.mark.slow
def test_page_numbers_are_the_report_numbers(page: Path) -> None:
    """Each setting's accuracies on the page are the means of its runs' own values in MLflow:
    the CSV to six digits, the report's table and its verdict line to the four they show."""
    rows = {r["setting"]: r for r in csv.DictReader((page / "table.csv").open())}
    assert set(rows) == {"sgd-fixed", "seq3-epoch"}
    assert {r["scored_by"] for r in rows.values()} == {"test_acc"}
    assert all(r["runs"] == "2" and r["test_acc_n"] == "2" for r in rows.values())
    report = (page / "report.md").read_text()
    assert "Scored on the test split" in report

    # the runs' own numbers, read back from the store the sweep wrote
    client = MlflowClient(store_uri(page.parent.parent))
    runs = [r for r in experiment_runs(client, EXPERIMENT) if is_job(r)]
    own: dict[str, dict[str, list[float]]] = {}
    for r in runs:
        for column, key in (("test_acc", TEST_ACC), ("final_acc", FINAL_ACC_METRIC)):
            own.setdefault(r.data.tags["setting"], {}).setdefault(column, [])
            own[r.data.tags["setting"]][column].append(r.data.metrics[key])
    assert set(own) == set(rows)
    for setting, row in rows.items():
        for column, values in own[setting].items():
            assert len(values) == 2, (setting, column)
            assert float(row[f"{column}_mean"]) == pytest.approx(mean(values), abs=1e-6)

    # the report's table: "mean ± half-width (n=k)" cells, as the CSV rounds them to 4 digits
    cell = r"\*{0,2}(\d+\.\d{4}) ± (\d+\.\d{4}) \(n=(\d+)\)\*{0,2}"
    names = next(row for row in table_rows(report) if row[0] == "Group")
    labels = {row["label"]: setting for setting, row in rows.items()}
    shown = 0
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != len(names) or cells[1] not in labels:
            continue
        row = rows[labels[cells[1]]]
        for name, column in (("Final accuracy", "final_acc"), ("Test accuracy", "test_acc")):
            found = re.fullmatch(cell, cells[names.index(name)])
            assert found, (cells[1], name, cells[names.index(name)])
            expected = (row[f"{column}_mean"], row[f"{column}_ci95"], row[f"{column}_n"])
            assert (float(found[1]), float(found[2]), found[3]) == (
                round(float(expected[0]), 4),
                round(float(expected[1]), 4),
                expected[2],
            ), (cells[1], name)
        shown += 1
    assert shown == len(rows)

    # the verdict line quotes each setting's test accuracy with the same numbers
    quoted = re.findall(r"([\w-]+) (\d+\.\d{4}) ± (\d+\.\d{4}) \(n=(\d+)\)", report)
    assert {name for name, *_ in quoted} == set(rows)
    for name, m, half, n in quoted:
        row = rows[name]
        assert float(m) == round(float(row["test_acc_mean"]), 4), name
        assert float(half) == round(float(row["test_acc_ci95"]), 4), name
        assert n == row["test_acc_n"], name


@pytest.mark.slow
def test_published_folder_is_small(page: Path) -> None:
    """No HTML copy (it embeds the figures again); palette PNGs, a few hundred KB in all."""
    assert not (page / "report.html").exists()
    pngs = list(page.glob("*.png"))
    assert pngs
    assert sum(p.stat().st_size for p in pngs) < 400_000


#: The published study's arms: the reference study's 14 settings, the control at r0, and the
#: modern arms of paper_plus_modern but AdamW at a fixed rate.
STUDY_ARMS = {
    *(f"seq{i}-{s}" for i in range(1, 5) for s in ("epoch", "cutoff", "oscillate")),
    "sgd-fixed",
    "adam-fixed",
    "sgd-fixed-r0",
    "cosine",
    "onecycle",
    "warmup_cosine",
    "step",
    "plateau",
    "wsd",
    "sgd_schedulefree-fixed",
    "prodigy-fixed",
}


def test_the_published_preset_plans_23_arms_with_ten_seeds_seed_by_seed() -> None:
    plan = planned("fashion_mnist_study")
    assert len(plan) == 230 and len(set(plan)) == 230
    assert [seed for _, seed in plan[:23]] == ["0"] * 23  # whole seeds first
    assert {s for s, _ in plan} == STUDY_ARMS
    assert sorted({seed for _, seed in plan}, key=int) == [str(i) for i in range(10)]


def test_the_published_preset_keeps_the_protocol_and_declares_its_margin() -> None:
    conf = validate(compose_config(["experiment=fashion_mnist_study"]))
    assert (conf.dataset.name, conf.model.name) == ("fashion_mnist", "mnist_cnn")
    assert (conf.dataset.batch_size, conf.trainer.max_epochs) == (64, 50)
    assert conf.dataset.val_fraction == 0.1
    assert conf.tracking.experiment == "lrdecay-fashion_mnist-study"
    assert declared_margin("fashion_mnist_study") == conf.report.margin == 0.005
    control = validate(compose_config(["experiment=fashion_mnist_study", "setting=sgd-fixed-r0"]))
    assert control.optimizer.lr == 0.01 and control.dataset.val_fraction == 0.1


def test_a_margin_given_in_points_by_mistake_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"report.margin: .*0.005 is half a point"):
        validate(compose_config(["report.margin=0.5"]))
