"""The report's section "Differences: seeds and test items" (``lrdecay.report.item_differences``):
its families from synthetic runs, and a real tiny digits sweep whose report, from the store and
from the exported files, states differences recomputed here from the runs' predictions."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from lrdecay.core.outcome import RunOutcome, RunStatus
from lrdecay.report.command import main as report_main
from lrdecay.report.export import export
from lrdecay.report.item_differences import FIGURE, TITLE, Kept, analyse, markdown
from lrdecay.report.runs import RunRecord, load_runs
from lrdecay.report.stats import SEQUENCES, STRATEGY_GROUP
from tests.helpers import run_cli, store_uri, table_rows

N_ITEMS = 300


def _record(setting: str, seed: str, val: float) -> RunRecord:
    sequence, _, strategy = setting.partition("-")
    optimizer = "sgd"
    if strategy == "fixed" or strategy == "fixed-r0":
        optimizer, sequence, strategy = sequence, "constant", "fixed"
    return RunRecord(
        outcome=RunOutcome(
            RunStatus.FINISHED, setting=setting, run_id=f"{setting}-{seed}", final_val_acc=val
        ),
        optimizer=optimizer,
        sequence=sequence,
        strategy=strategy,
        seed=seed,
        dataset="digits",
        params={},
    )


def _study(settings: list[str], seeds: dict[str, list[str]] | None = None) -> tuple[list, Kept]:
    """Runs and their predictions: each arm right on a share of the items that grows with its
    position, so arms differ; ``seeds`` names each setting's seeds (default 0, 1, 2)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, N_ITEMS)
    kept = Kept("test", labels)
    runs = []
    for k, setting in enumerate(settings):
        own = rng.random(N_ITEMS)  # which items the arm gets right is mostly its own
        for seed in (seeds or {}).get(setting, ["0", "1", "2"]):
            right = 0.8 * own + 0.2 * rng.random(N_ITEMS) < 0.5 + 0.01 * k
            kept.arms.setdefault(setting, {})[seed] = np.where(right, labels, (labels + 1) % 10)
            runs.append(_record(setting, seed, 0.5 + 0.01 * k))
    return runs, kept


GRID = [f"{q}-{s}" for q in SEQUENCES for s in STRATEGY_GROUP]


def test_every_family_and_the_two_factors_when_the_whole_grid_ran(tmp_path: Path) -> None:
    runs, kept = _study(["sgd-fixed", "sgd-fixed-r0", *GRID, "adamw-fixed"])
    section = analyse(runs, kept, 0.005, n_boot=200)
    names = [r.name for r in section.results]
    assert names == ["vs sgd-fixed", "vs sgd-fixed-r0", "scheme vs modern"]
    assert len(section.results[0].differences) == 14
    assert {d.arm for d in section.results[1].differences} == set(GRID)
    assert len(section.results[2].differences) == 12 and section.results[2].margin == 0.5
    assert section.factors is not None
    text = "\n".join(markdown(section, tmp_path))
    assert f"## {TITLE}" in text and "Which factor matters more:" in text
    assert (tmp_path / FIGURE).is_file()
    # the estimate is the mean over seeds of the per-seed accuracy differences, in points
    d = section.results[1].differences[0]
    acc = {
        s: {seed: np.mean(p == kept.labels) for seed, p in kept.arms[s].items()}
        for s in (d.arm, d.control)
    }
    direct = 100 * np.mean([acc[d.arm][s] - acc[d.control][s] for s in ("0", "1", "2")])
    assert d.estimate == pytest.approx(direct, abs=1e-9)


def test_a_large_modern_family_is_each_arm_against_the_best_scheme_on_validation() -> None:
    modern = ["adamw-fixed", "sgd_schedulefree-fixed", "prodigy-fixed"]  # 36 pairs with the grid
    runs, kept = _study(["sgd-fixed", *GRID, *modern])
    section = analyse(runs, kept, None, n_boot=100)
    family = section.results[-1]
    assert family.name == "modern vs best scheme"
    best = GRID[-1]  # the highest validation accuracy of the grid
    assert {d.control for d in family.differences} == {best} and "validation" in family.question
    assert "Skipped (decay vs the same rate held fixed: sgd-fixed-r0 did not run)." in section.notes


def test_fewer_than_two_shared_seeds_say_why_the_section_is_absent(tmp_path: Path) -> None:
    runs, kept = _study(["sgd-fixed", "seq1-epoch"], seeds={"seq1-epoch": ["0"]})
    section = analyse(runs, kept, None, n_boot=100)
    assert section.results == []
    text = "\n".join(markdown(section, tmp_path))
    assert "Absent: no family of comparisons has at least 2 seeds" in text
    assert "share 1 seed(s)" in text and not (tmp_path / FIGURE).exists()


# --------------------------------------------------------------------------- a real sweep

EXPERIMENT = "differences-digits"
SETTINGS = ("seq3-epoch", "seq1-epoch", "sgd-fixed")
SWEEP = [
    "-m",
    "dataset=digits",
    f"setting={','.join(SETTINGS)}",
    "seed=0,1",
    "trainer.max_epochs=2",
    "trainer.progress=off",
    "tracking.log_plot=false",
    "report.margin=0.005",
    f"tracking.experiment={EXPERIMENT}",
]


@dataclass
class Swept:
    cwd: Path
    uri: str


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Swept:
    cwd = tmp_path_factory.mktemp("differences")
    done = run_cli(SWEEP, cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    return Swept(cwd, store_uri(cwd))


def _direct(uri: str, arm: str, control: str) -> float:
    """arm − control recomputed from the runs' predictions artifacts: the mean over seeds of the
    accuracy differences, in points."""
    client = MlflowClient(uri)
    acc: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in load_runs(client, experiment=EXPERIMENT).runs:
            local = client.download_artifacts(run.run_id, "predictions.npz", tmp)
            with np.load(local, allow_pickle=False) as kept:
                acc[run.setting, run.seed] = float(np.mean(kept["predicted"] == kept["labels"]))
    return 100 * float(np.mean([acc[arm, s] - acc[control, s] for s in ("0", "1")]))


def _row(report: str, arm: str, control: str) -> float:
    label = [f"vs {control}", f"{arm} − {control}"]
    found = [row[2] for row in table_rows(report) if row[:2] == label]
    assert len(found) == 1 and re.fullmatch(r"[+-]\d+\.\d\d", found[0]), report
    return float(found[0])


@pytest.mark.slow
def test_the_report_states_differences_recomputed_from_the_predictions(
    swept: Swept, tmp_path: Path
) -> None:
    direct = _direct(swept.uri, "seq3-epoch", "sgd-fixed")
    # the sweep's own report, with the preset's margin
    (sweep_report,) = swept.cwd.glob("multirun/**/report/report.md")
    own = sweep_report.read_text()
    assert f"## {TITLE}" in own and "±0.5 points declared before the runs" in own
    assert (sweep_report.parent / FIGURE).is_file()

    from_store, from_files, data = tmp_path / "store", tmp_path / "files", tmp_path / "data"
    args = ["--experiment", EXPERIMENT, "--tracking-uri", swept.uri, "--no-log"]
    assert report_main([*args, "--out", str(from_store), "--margin", "0.005"]) == 0
    export(MlflowClient(swept.uri), EXPERIMENT, data)
    assert report_main(["--data", str(data), "--out", str(from_files), "--margin", "0.005"]) == 0
    sections = []
    for folder in (from_store, from_files):
        text = (folder / "report.md").read_text()
        assert f"## {TITLE}" in text
        assert _row(text, "seq3-epoch", "sgd-fixed") == pytest.approx(round(direct, 2), abs=1e-9)
        assert (folder / FIGURE).is_file()
        assert "Skipped (decay vs the same rate held fixed: sgd-fixed-r0 did not run)." in text
        sections.append(text[text.index(f"## {TITLE}") :])
    assert sections[0] == sections[1]
