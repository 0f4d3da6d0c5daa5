"""The report command on real runs: a small two-seed sweep on digits in a real MLflow store.

The sweep is trained once per module (about 15 short runs): six settings × two seeds as children
of a parent run, one run that diverges and one interrupted (KILLED) run. Tests assert on what a
user sees: the files written, their rows and cells, the exit status and message of the command.
"""

from __future__ import annotations

import csv
import math
import re
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from scipy import stats

from lrdecay.config import register_configs
from lrdecay.core.listeners import Listener
from lrdecay.core.outcome import RunOutcome, RunStatus
from lrdecay.core.records import FINAL_ACC_METRIC, EpochRecord
from lrdecay.report.claims import check_claims
from lrdecay.report.command import main
from lrdecay.report.inference import compare_means
from lrdecay.report.report_files import write_report
from lrdecay.report.runs import RunRecord
from lrdecay.report.stats import Stat, summarise
from lrdecay.run import RunContext, run
from tests.helpers import CONF_DIR, cli_env, new_store, table_rows

EXPERIMENT = "lrdecay-digits"
EPOCHS = 5
SEEDS = (1, 2)
SETTINGS = {
    "sgd-fixed": ["optimizer=sgd", "sequence=constant", "strategy=fixed", "optimizer.lr=0.001"],
    "adam-fixed": ["optimizer=adam", "sequence=constant", "strategy=fixed", "optimizer.lr=0.001"],
    "seq1-epoch": ["sequence=seq1", "strategy=epoch"],
    "seq3-epoch": ["sequence=seq3", "strategy=epoch"],
    "seq1-cutoff": ["sequence=seq1", "strategy=cutoff"],
    "seq1-oscillate": ["sequence=seq1", "strategy=oscillate"],
}
FIGURES = (
    "val_acc.png",
    "val_loss.png",
    "learning_rate.png",
    "best_vs_baselines.png",
    "accuracy_vs_convergence.png",
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

register_configs()


class Interrupt(Listener):
    """Presses Ctrl-C after epoch 2, so the run ends KILLED as a user's interrupted run does."""

    def on_epoch_end(self, record: EpochRecord) -> None:
        if record.epoch == 2:
            raise KeyboardInterrupt


@dataclass
class Sweep:
    uri: str
    client: MlflowClient
    parent_id: str
    out: Path
    diverged_id: str


def _train(
    uri: str, overrides: list[str], parent_id: str, seed: int, listeners: tuple[Listener, ...] = ()
) -> str:
    cfg = compose(
        "config",
        overrides=[
            "dataset=digits",
            f"trainer.max_epochs={EPOCHS}",
            f"tracking.uri={uri}",
            "trainer.progress=off",
            "tracking.log_plot=false",
            f"seed={seed}",
            *overrides,
        ],
    )
    summary = run(cfg, RunContext(parent_run_id=parent_id), extra_listeners=listeners)
    return summary.status


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    """Train the sweep into a fresh SQLite store and write its report once."""
    root = tmp_path_factory.mktemp("report")
    uri = new_store(root / "mlflow.db")
    client = MlflowClient(tracking_uri=uri)
    # artifacts beside the store, not under the working directory
    experiment_id = client.create_experiment(
        EXPERIMENT, artifact_location=(root / "artifacts").as_uri()
    )
    parent_id = client.create_run(experiment_id, run_name="sweep").info.run_id
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for overrides in SETTINGS.values():
            for seed in SEEDS:
                assert _train(uri, overrides, parent_id, seed) == "finished"
        # SGD at a rate of 1e6 blows up to a non-finite loss in the first epoch
        assert (
            _train(uri, ["sequence=seq1", "strategy=epoch", "optimizer.lr=1e6"], parent_id, 3)
            == "diverged"
        )
        with pytest.raises(KeyboardInterrupt):
            _train(uri, SETTINGS["seq3-epoch"], parent_id, 9, (Interrupt(),))
    client.set_terminated(parent_id)
    diverged = client.search_runs([experiment_id], "tags.diverged = 'true'")
    assert len(diverged) == 1 and diverged[0].info.status == "FAILED"
    out = root / "out"
    path = write_report(client, parent_run_id=parent_id, out_dir=out)
    assert path == out / "report.md"
    return Sweep(uri, client, parent_id, out, diverged[0].info.run_id)


def _csv_rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return {row["setting"]: row for row in csv.DictReader(f)}


def _md_row(table: str, group_label: str, label: str) -> list[str]:
    """The cells of the Markdown row labelled ``label`` within group ``group_label``."""
    group = None
    for line in table.splitlines():
        if not line.startswith("| ") or line.startswith("| Group"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        group = cells[0].strip("*") or group
        if group == group_label and cells[1].split(" ")[0] == label:
            return cells
    raise AssertionError(f"no row {group_label}/{label} in\n{table}")


def test_table_has_the_study_layout_with_seed_statistics(sweep: Sweep) -> None:
    table = (sweep.out / "table.md").read_text(encoding="utf-8")
    header = table.splitlines()[0]
    for column in (
        "Final accuracy",
        "Convergence epoch",
        "Best accuracy",
        "Epochs to 0.95",
        "Diverged",
        "p vs SGD",
    ):
        assert column in header
    assert "Test accuracy" not in header  # no run held out a test split
    groups = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| **")]
    assert groups == ["**Benchmark**", "**By Epoch**", "**By Cutoff**", "**By Oscillate**"]
    assert _md_row(table, "Benchmark", "SGD")[-1] == "baseline"
    adam = _md_row(table, "Benchmark", "Adam")
    assert "±" in adam[2] and "(n=2)" in adam[2]
    assert _md_row(table, "By Oscillate", "seq1")
    assert table.count("**") > 2 * len(groups)  # the best cells are bold
    assert "paired t-test" in table and "Holm" in table and "95% confidence interval" in table


def test_csv_has_one_row_per_setting_with_means_over_seeds(sweep: Sweep) -> None:
    rows = _csv_rows(sweep.out / "table.csv")
    assert set(rows) == set(SETTINGS)
    runs = sweep.client.search_runs(
        [sweep.client.get_run(sweep.parent_id).info.experiment_id], "tags.setting = 'adam-fixed'"
    )
    finals = [r.data.metrics[FINAL_ACC_METRIC] for r in runs]
    adam = rows["adam-fixed"]
    assert int(adam["final_acc_n"]) == 2
    assert float(adam["final_acc_mean"]) == pytest.approx(statistics.mean(finals), abs=1e-6)
    half = stats.t.ppf(0.975, 1) * stats.sem(finals)
    assert float(adam["final_acc_ci95"]) == pytest.approx(half, rel=1e-4, abs=1e-9)
    assert 0 <= float(adam["p_vs_sgd"]) <= float(adam["p_vs_sgd_holm"]) <= 1
    assert adam["test"] == "paired t"  # the seeds pair: same initial weights, same batches
    assert sum(row["best_final_acc"] == "true" for row in rows.values()) >= 1


def test_diverged_run_is_counted_but_never_averaged(sweep: Sweep) -> None:
    rows = _csv_rows(sweep.out / "table.csv")
    seq1 = rows["seq1-epoch"]
    assert (seq1["runs"], seq1["diverged"], seq1["final_acc_n"]) == ("3", "1", "2")
    experiment_id = sweep.client.get_run(sweep.parent_id).info.experiment_id
    finished = sweep.client.search_runs(
        [experiment_id], "tags.setting = 'seq1-epoch' and attributes.status = 'FINISHED'"
    )
    expected = statistics.mean(r.data.metrics[FINAL_ACC_METRIC] for r in finished)
    assert float(seq1["final_acc_mean"]) == pytest.approx(expected, abs=1e-6)
    diverged_acc = sweep.client.get_run(sweep.diverged_id).data.metrics.get(FINAL_ACC_METRIC)
    if diverged_acc is not None and math.isfinite(diverged_acc):  # would have moved the mean
        with_it = statistics.mean(
            [*(r.data.metrics[FINAL_ACC_METRIC] for r in finished), diverged_acc]
        )
        assert float(seq1["final_acc_mean"]) != pytest.approx(with_it, abs=1e-6)

    table = (sweep.out / "table.md").read_text(encoding="utf-8")
    cells = _md_row(table, "By Epoch", "seq1")
    assert cells[1] == "seq1 ‡" and "1/3" in cells and "(n=2)" in cells[2]
    assert "‡ Some runs of this setting diverged" in table
    report = (sweep.out / "report.md").read_text(encoding="utf-8")
    assert "1 run(s) diverged" in report and "seq1-epoch (1)" in report


def test_killed_run_is_left_out_and_noted(sweep: Sweep) -> None:
    assert _csv_rows(sweep.out / "table.csv")["seq3-epoch"]["runs"] == "2"
    report = (sweep.out / "report.md").read_text(encoding="utf-8")
    assert "Left out of every number: 1 killed." in report


def test_figures_are_real_pngs_embedded_in_the_report(sweep: Sweep) -> None:
    report = (sweep.out / "report.md").read_text(encoding="utf-8")
    for name in FIGURES:
        data = (sweep.out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE), name
        assert len(data) > 20_000, f"{name} is suspiciously small ({len(data)} bytes)"
        assert f"]({name})" in report
    assert any(row[0] == "**By Cutoff**" for row in table_rows(report))  # the table embedded


def test_report_shows_each_settings_validation_loss_after_its_minimum(sweep: Sweep) -> None:
    """The section's table has one row per setting whose minimum epoch lies in the budget,
    and its generated reading follows the table."""
    report = (sweep.out / "report.md").read_text(encoding="utf-8")
    section = report.split("## Validation loss after its minimum", 1)[1].split("\n## ")[0]
    for setting in SETTINGS:
        (row,) = [ln for ln in section.splitlines() if f"| {setting} |" in ln]
        epoch = float(row.split("|")[4].split()[0])
        assert 1 <= epoch <= EPOCHS, (setting, row)
    assert "arms whose rate moves" in section
    assert "(#validation-loss-after-its-minimum)" in report  # the loss figure points to it


def test_report_weighs_every_claim_of_the_study(sweep: Sweep) -> None:
    report = (sweep.out / "report.md").read_text(encoding="utf-8")
    claims = [line for line in report.splitlines() if line.startswith("- *On ")]
    assert len(claims) == 4
    for needle in (
        "MNIST the decay scheme matters little",
        "seq3 by epoch is the most accurate",
        "seq1 by epoch and seq1 by oscillate converge fastest",
        "'by cutoff' hurts accuracy because the rate rarely moves",
    ):
        assert any(needle in claim for claim in claims), needle
    # the runs are on digits: every claim is flagged as being about another data set
    assert all("these runs are on digits" in claim for claim in claims)
    assert "moves in" in claims[3]  # the mechanism is checked against the logged rate


def test_report_is_logged_to_the_sweep_parent(sweep: Sweep) -> None:
    logged = {a.path for a in sweep.client.list_artifacts(sweep.parent_id, "report")}
    expected = {
        f"report/{n}" for n in ("report.md", "table.md", "table.csv", "table.tex", *FIGURES)
    }
    assert expected <= logged


def test_latex_table_is_well_formed(sweep: Sweep) -> None:
    tex = (sweep.out / "table.tex").read_text(encoding="utf-8")
    assert r"\begin{tabular}" in tex and r"\end{tabular}" in tex
    assert r"$\pm$" in tex and r"\textbf{" in tex and "±" not in tex
    body = tex[tex.index(r"\toprule") : tex.index(r"\bottomrule")]
    data_rows = [
        line
        for line in body.splitlines()
        if line.endswith(r"\\") and not line.startswith(r"\multicolumn")
    ]
    assert len(data_rows) == 1 + len(SETTINGS)  # header + one per setting
    assert len({line.count(" & ") for line in data_rows}) == 1


def test_cli_reports_an_experiment_with_a_chosen_target(
    sweep: Sweep, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "cli"
    code = main(
        [
            "--experiment",
            EXPERIMENT,
            "--tracking-uri",
            sweep.uri,
            "--out",
            str(out),
            "--target",
            "0.5",
            "--no-log",
        ]
    )
    assert code == 0
    assert str(out / "report.md") in capsys.readouterr().out
    table = (out / "table.md").read_text(encoding="utf-8")
    assert "Epochs to 0.5" in table.splitlines()[0]
    rows = _csv_rows(out / "table.csv")
    assert int(rows["adam-fixed"]["epochs_to_target_reached"]) == 2
    assert rows["adam-fixed"]["target"] == "0.5"
    assert "Ignored 1 run(s) without a `setting` tag" in (out / "report.md").read_text()


def test_cli_reports_a_sweep_from_the_environment_store(
    sweep: Sweep, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --tracking-uri: MLFLOW_TRACKING_URI is used; no --out: reports/<experiment>/."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sweep.uri)
    assert main(["--parent-run-id", sweep.parent_id, "--no-log"]) == 0
    report = (tmp_path / "reports" / EXPERIMENT / "report.md").read_text(encoding="utf-8")
    assert f"sweep `{sweep.parent_id}`" in report


def test_unknown_experiment_is_one_line_and_nonzero(
    sweep: Sweep, capsys: pytest.CaptureFixture
) -> None:
    code = main(["--experiment", "no-such-study", "--tracking-uri", sweep.uri, "--no-log"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "no-such-study" in err and "Traceback" not in err


def test_missing_store_is_one_line_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    db = tmp_path / "absent" / "mlflow.db"
    code = main(["--experiment", EXPERIMENT, "--tracking-uri", f"sqlite:///{db}"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "--tracking-uri" in err
    assert not db.exists()


@pytest.mark.slow
def test_a_report_that_cannot_be_written_loads_no_plotting_library(tmp_path: Path) -> None:
    """The command as a user runs it: matplotlib loads only once figures are due, so a report
    that stops early (here: no store) starts no faster than it must."""
    db = tmp_path / "absent" / "mlflow.db"
    proc = subprocess.run(
        [
            *(sys.executable, "-X", "importtime", "-m", "lrdecay.report"),
            *("--experiment", EXPERIMENT, "--tracking-uri", f"sqlite:///{db}"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(),
    )
    assert proc.returncode == 1 and "--tracking-uri" in proc.stderr, proc.stderr[-2000:]
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "lrdecay.report.command" in imported and "matplotlib" not in imported


def test_experiment_without_training_runs_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    uri = new_store(tmp_path / "mlflow.db")
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment("empty", artifact_location=tmp_path.as_uri())
    client.create_run(experiment_id, run_name="sweep")  # a parent with no children yet
    capsys.readouterr()  # drop MLflow's own messages about creating the store
    code = main(["--experiment", "empty", "--tracking-uri", uri, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "no finished or diverged" in err
    assert not (tmp_path / "r").exists()


def test_runs_missing_metrics_get_marked_cells(tmp_path: Path) -> None:
    """Runs logged by an older version or another tool: some metrics and the history missing."""
    uri = new_store(tmp_path / "mlflow.db")
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment("partial", artifact_location=tmp_path.as_uri())

    def logged(setting: str, seed: int, status: str, **metrics: float) -> None:
        sequence, strategy = setting.split("-")
        optimizer = sequence if strategy == "fixed" else "sgd"
        tags = {
            "setting": setting,
            "sequence": "constant" if strategy == "fixed" else sequence,
            "strategy": strategy,
            "optimizer": optimizer,
            "seed": str(seed),
            "dataset": "digits",
        }
        run_id = client.create_run(experiment_id, run_name=setting, tags=tags).info.run_id
        for key, value in metrics.items():
            client.log_metric(run_id, key, value, step=1)
        if status != "RUNNING":
            client.set_terminated(run_id, status=status)

    logged("sgd-fixed", 1, "FINISHED", final_val_acc=0.8, convergence_epoch=5)
    logged("seq2-epoch", 1, "FINISHED", final_val_acc=0.9)  # no convergence, no history
    logged("seq2-epoch", 2, "FINISHED", convergence_epoch=4)  # no accuracy at all
    logged("seq2-epoch", 3, "RUNNING", final_val_acc=0.1)  # still training: left out
    logged("seq2-epoch", 4, "FAILED")  # crashed without diverging: left out
    out = write_report(uri, experiment="partial", out_dir=tmp_path / "out")

    rows = _csv_rows(tmp_path / "out" / "table.csv")
    seq2 = rows["seq2-epoch"]
    assert (seq2["runs"], seq2["final_acc_n"], seq2["final_acc_mean"]) == ("2", "1", "0.9")
    assert (seq2["convergence_epoch_n"], seq2["convergence_epoch_median"]) == ("1", "4")
    table = (tmp_path / "out" / "table.md").read_text(encoding="utf-8")
    cells = _md_row(table, "By Epoch", "seq2")
    # one value per cell, no interval; the missing history leaves epochs-to-target n/a
    assert cells[2].strip("*") == "0.9000" and cells[5] == "n/a"
    assert "±" not in table and "p vs SGD" not in table
    report = out.read_text(encoding="utf-8")
    assert "1 failed (crashed, not diverged), 1 still running" in report
    assert "cannot tell" in report
    for name in FIGURES:
        assert (tmp_path / "out" / name).read_bytes().startswith(PNG_SIGNATURE)


def test_confidence_interval_and_test_choice() -> None:
    three = Stat.of([1.0, 2.0, 3.0])
    assert three is not None and three.n == 3 and three.mean == 2.0
    assert three.half == pytest.approx(stats.t.ppf(0.975, 2) / math.sqrt(3))
    one = Stat.of([0.5, None, float("nan")])
    assert one is not None and one.n == 1 and one.half is None
    assert Stat.of([None, float("nan")]) is None
    assert compare_means({"1": 0.9}, {"1": 0.8, "2": 0.81}).p is None
    unpaired = compare_means({"1": 0.90, "2": 0.91}, {"3": 0.80, "4": 0.81})
    assert unpaired.test == "welch" and unpaired.p is not None
    assert unpaired.p == pytest.approx(
        stats.ttest_ind([0.90, 0.91], [0.80, 0.81], equal_var=False).pvalue
    )
    paired = compare_means({"1": 0.90, "2": 0.93}, {"1": 0.80, "2": 0.84})
    assert paired.test == "paired t"
    assert paired.p == pytest.approx(stats.ttest_rel([0.90, 0.93], [0.80, 0.84]).pvalue)


def _record(setting: str, seed: int, final: float, conv: int, moves: int) -> RunRecord:
    """A CIFAR-10 run of 25 epochs whose rate moved ``moves`` times (its logged ``lr``)."""
    sequence, strategy = setting.split("-")[:2]  # sgd-fixed-r0: SGD at a fixed rate
    optimizer = "sgd"
    if strategy == "fixed":
        optimizer, sequence = sequence, "constant"
    rates = {e: 0.01 * 0.9 ** min(e - 1, moves) for e in range(1, 26)}
    return RunRecord(
        outcome=RunOutcome(
            RunStatus.FINISHED,
            setting=setting,
            run_id=f"{setting}-{seed}",
            final_val_acc=final,
            convergence_epoch=conv,
            epochs_run=25,
        ),
        optimizer=optimizer,
        sequence=sequence,
        strategy=strategy,
        seed=str(seed),
        dataset="cifar10",
        params={"trainer.max_epochs": "25"},
        history={"lr": rates},
    )


def test_the_control_at_r0_is_a_benchmark_row_with_its_own_style() -> None:
    """SGD fixed at the decayed settings' r0 sits between the two baselines, never among the
    decay schemes, and keeps its own colour, line and marker in the figures."""
    from lrdecay.palette import BASELINE_COLORS, CONTROL_SGD_R0
    from lrdecay.report.figure_common import styles
    from lrdecay.report.tables import build_table, to_markdown

    arms = {"sgd-fixed": 0, CONTROL_SGD_R0: 0, "adam-fixed": 0, "seq3-epoch": 24}
    rng = np.random.default_rng(0)
    records = [
        _record(setting, seed, 0.9 + rng.normal(0, 0.001), 10, moves)
        for setting, moves in arms.items()
        for seed in range(3)
    ]
    rows = summarise(records, None)
    assert [(s.group, s.label) for s in rows] == [
        ("Benchmark", "SGD"),
        ("Benchmark", "SGD at r0"),
        ("Benchmark", "Adam"),
        ("By Epoch", "seq3"),
    ]
    table = to_markdown(build_table(rows, None))
    assert ["", "SGD at r0"] in [row[:2] for row in table_rows(table)], table
    style = styles(rows)[CONTROL_SGD_R0]
    assert style.color == BASELINE_COLORS[CONTROL_SGD_R0]
    assert style.label == "SGD at r0 (fixed)"
    others = {s.color for name, s in styles(rows).items() if name != CONTROL_SGD_R0}
    assert style.color not in others


def test_claims_on_their_own_data_set_with_clear_effects() -> None:
    """CIFAR-10-tagged records shaped like the study's Table 2, ten seeds each with a little
    seed-to-seed jitter: every CIFAR-10 claim holds by a wide margin, so each verdict must read
    'supported' (convergence 25 = the budget: never converged, compared by log-rank)."""
    table = {  # setting: (final accuracy, convergence epoch, rate moves per run)
        "sgd-fixed": (0.749, 25, 0),
        "seq3-epoch": (0.780, 11, 24),
        "seq1-epoch": (0.763, 8, 24),
        "seq1-oscillate": (0.767, 8, 12),
        "seq3-cutoff": (0.600, 25, 1),
        "seq3-oscillate": (0.769, 15, 12),
    }
    rng = np.random.default_rng(0)
    records = [
        _record(
            setting,
            seed,
            final + rng.normal(0, 0.001),
            conv if conv == 25 else conv + int(rng.integers(-1, 2)),
            moves,
        )
        for setting, (final, conv, moves) in table.items()
        for seed in range(10)
    ]
    rows = summarise(records, target=None)
    claims = {c.key: c for c in check_claims(rows)}
    for key in ("seq3_epoch", "seq1_fast", "cutoff"):
        assert claims[key].verdict.startswith("supported"), claims[key]
        assert "cannot test it directly" not in claims[key].markdown(["cifar10"])
    assert "cannot test it directly" in claims["mnist_little"].markdown(["cifar10"])


def test_html_report_shows_the_figures_inside_mlflow(sweep: Sweep) -> None:
    """MLflow's artifact viewer shows report.md's images as link text; report.html beside it
    carries them inline."""
    page = (sweep.out / "report.html").read_text(encoding="utf-8")
    # the five figures, and the forest plot of the differences over seeds and test items
    shown = (*FIGURES, "differences.png")
    assert (sweep.out / "differences.png").is_file()
    assert page.count('src="data:image/png;base64,') == len(shown)
    assert "<h2>Results</h2>" in page and "By Cutoff" in page
    assert not any(f"]({name})" in page for name in shown)  # no figure left as link text
    logged = {a.path for a in sweep.client.list_artifacts(sweep.parent_id, "report")}
    assert "report/report.html" in logged


def test_html_report_reads_as_a_page_not_as_markdown(sweep: Sweep) -> None:
    """The page a person opens in MLflow's artifact viewer: the results table is a table, bold
    is bold, and no Markdown syntax is left as text."""
    page = (sweep.out / "report.html").read_text(encoding="utf-8")
    assert "<table>" in page and re.search(r"<th[^>]*>Final accuracy</th>", page)
    assert "<strong>By Cutoff</strong>" in page
    assert not re.search(r"\|\s*Group\s*\|", page) and "**" not in page


def _write_runs(client: MlflowClient, experiment: str, key: Callable[[str, str], str]) -> None:
    """Two settings x two seeds of four epochs, each metric logged under ``key(section, name)``
    (``section`` being ``epoch`` or ``summary``), as one version or another wrote them."""
    experiment_id = client.create_experiment(experiment)
    for setting, rates in (
        ("sgd-fixed", [0.01] * 4),
        ("seq1-epoch", [0.01, 0.005, 0.0025, 0.0025]),
    ):
        sequence, strategy = ("constant", "fixed") if setting == "sgd-fixed" else ("seq1", "epoch")
        for seed in (1, 2):
            accs = [0.5 + 0.1 * e + 0.01 * seed for e in range(4)]
            tags = {
                "setting": setting,
                "sequence": sequence,
                "strategy": strategy,
                "optimizer": "sgd",
                "seed": str(seed),
                "dataset": "digits",
            }
            run_id = client.create_run(experiment_id, run_name=setting, tags=tags).info.run_id
            metrics = [
                Metric(key("epoch", name), value, 0, epoch + 1)
                for epoch in range(4)
                for name, value in (
                    ("val_acc", accs[epoch]),
                    ("val_loss", 1 - accs[epoch]),
                    ("lr", rates[epoch]),
                    ("lr_advances", float(epoch)),
                )
            ]
            metrics += [
                Metric(key("summary", name), value, 0, 4)
                for name, value in (
                    ("final_val_acc", accs[-1]),
                    ("best_val_acc", max(accs)),
                    ("convergence_epoch", 3.0),
                    ("epochs_run", 4.0),
                )
            ]
            client.log_batch(run_id, metrics=metrics, params=[Param("trainer.max_epochs", "4")])
            client.set_terminated(run_id)


def test_a_store_written_before_the_metric_sections_reports_the_same(tmp_path: Path) -> None:
    """Bare keys (``val_acc``, ``final_val_acc``) as stores held them before the chart
    sections, and today's (``epoch/val_acc``, ``summary/final_val_acc``): one report."""
    uri = new_store(tmp_path / "mlflow.db")
    client = MlflowClient(tracking_uri=uri)
    _write_runs(client, "before", lambda section, name: name)
    _write_runs(client, "today", lambda section, name: f"{section}/{name}")
    tables = {}
    for experiment in ("before", "today"):
        write_report(uri, experiment=experiment, out_dir=tmp_path / experiment, target=0.75)
        tables[experiment] = _csv_rows(tmp_path / experiment / "table.csv")
    assert tables["before"] == tables["today"]
    seq1 = tables["today"]["seq1-epoch"]  # read from the histories and the summaries
    assert (seq1["final_acc_n"], seq1["epochs_to_target_reached"]) == ("2", "2")
    assert (seq1["rate_moves_mean"], seq1["convergence_epoch_median"]) == ("2", "3")
    assert float(seq1["final_acc_mean"]) == pytest.approx(0.815)


def test_the_header_counts_one_run_one_setting_and_one_seed_in_the_singular(
    tmp_path: Path,
) -> None:
    uri = new_store(tmp_path / "mlflow.db")
    client = MlflowClient(tracking_uri=uri)
    _write_runs(client, "one", lambda section, name: f"{section}/{name}")
    runs = client.search_runs([client.get_experiment_by_name("one").experiment_id])
    for extra in runs[1:]:
        client.delete_run(extra.info.run_id)
    report = write_report(uri, experiment="one", out_dir=tmp_path / "report", target=0.75)
    seed = runs[0].data.tags["seed"]
    assert f"on digits: 1 run in 1 setting, seed {seed}, target" in report.read_text()
