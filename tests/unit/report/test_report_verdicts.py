"""The report's verdicts on synthetic MLflow stores whose truth is known.

Each store holds the study's 14 settings with many seeds, written through the MLflow client as
training runs write them (tags, run metrics, per-epoch history). Final accuracies are drawn from
known distributions with a per-seed effect shared by every setting (as a shared initialisation
and batch order would give), so the tests know which verdict is right and check that the report
reaches it: no difference claimed where there is none, a wide true difference found after
correction, a small one under the noise left as "cannot tell", convergence counted as censored,
and a strategy whose rate never moved flagged.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from lrdecay.core.records import epoch_key, summary_key
from lrdecay.palette import BASELINE_ADAM, BASELINE_COLORS, BASELINE_SGD, SEQUENCE_COLORS
from lrdecay.report.claim_wording import Claim
from lrdecay.report.claims import check_claims
from lrdecay.report.curve_figures import curves_figure
from lrdecay.report.figure_common import plain_log_ticks
from lrdecay.report.inference import compare_means, compare_times, holm
from lrdecay.report.rate_figure import RATE_ALPHA, rates_figure
from lrdecay.report.report_files import write_report
from lrdecay.report.runs import load_runs
from lrdecay.report.scatter_figure import required_censored, scatter_figure
from lrdecay.report.search_section import ROUGH_IMPORTANCES, Search, search_markdown
from lrdecay.report.stats import SettingSummary, summarise
from tests.helpers import new_store, table_rows

BUDGET = 20
R0 = 0.01
SEQUENCES = ("seq1", "seq2", "seq3", "seq4")
STRATEGIES = ("epoch", "cutoff", "oscillate")
GRID = [f"{q}-{s}" for s in STRATEGIES for q in SEQUENCES]
SETTINGS = ["sgd-fixed", "adam-fixed", *GRID]


@dataclass
class Truth:
    """What a synthetic store holds: mean final accuracy per setting, noise, and behaviour."""

    seeds: int
    noise: float
    means: dict[str, float] = field(default_factory=dict)
    seed_sd: float = 0.004
    #: convergence epoch per setting and seed index (None: never met the rule)
    convergence: Callable[[str, int], int | None] = lambda setting, seed: 8
    #: settings whose rate never moves (their strategy never fired)
    still: tuple[str, ...] = ()

    def mean(self, setting: str) -> float:
        return self.means.get(setting, 0.97)


def _tags(setting: str, seed: int, dataset: str) -> dict[str, str]:
    first, strategy = setting.split("-")
    optimizer, sequence = (first, "constant") if strategy == "fixed" else ("sgd", first)
    return {
        "setting": setting,
        "optimizer": optimizer,
        "sequence": sequence,
        "strategy": strategy,
        "seed": str(seed),
        "dataset": dataset,
    }


def _rates(setting: str, truth: Truth) -> list[float]:
    """The rate used in each epoch: fixed for baselines and still settings, else decaying."""
    if setting.endswith("-fixed") or setting in truth.still:
        return [R0] * BUDGET
    return [R0 * 0.9**e for e in range(BUDGET)]


def _history(final: float, conv: int | None) -> list[float]:
    """Validation accuracy per epoch: climbs, then flat from ``conv`` on (or keeps moving)."""
    if conv is None:  # never settles: ±0.01 zig-zag around the final value to the end
        return [final - 0.01 * (e % 2) for e in range(BUDGET - 1)] + [final]
    ramp = [final - 0.2 * (conv - e) / conv for e in range(conv)]
    return ramp + [final] * (BUDGET - conv)


def write_store(
    root: Path, truth: Truth, dataset: str, rng_seed: int, test_mean: float | None = None
) -> MlflowClient:
    """A SQLite store at ``root`` with one run per setting and seed drawn from ``truth``; with
    ``test_mean`` every run also held out its validation split and scored a test accuracy
    drawn around ``test_mean`` whatever its setting (the schedules differ only on validation)."""
    client = MlflowClient(tracking_uri=new_store(root / "mlflow.db"))
    exp = client.create_experiment("synthetic", artifact_location=(root / "art").as_uri())
    rng = np.random.default_rng(rng_seed)
    seed_effect = rng.normal(0, truth.seed_sd, truth.seeds)
    for setting in SETTINGS:
        for seed in range(truth.seeds):
            final = float(truth.mean(setting) + seed_effect[seed] + rng.normal(0, truth.noise))
            conv = truth.convergence(setting, seed)
            run_id = client.create_run(exp, tags=_tags(setting, seed, dataset)).info.run_id
            accs, rates = _history(final, conv), _rates(setting, truth)
            # the logged advance count also counts an advance after the last epoch
            advances = [0 if rates[0] == rates[-1] else e + 1 for e in range(BUDGET)]
            if setting in truth.still:
                advances[-1] = 1
            metrics = [
                Metric(key, value, 0, epoch + 1)
                for epoch in range(BUDGET)
                for key, value in (
                    (epoch_key("val_acc"), accs[epoch]),
                    (epoch_key("val_loss"), 1.0 - accs[epoch]),
                    (epoch_key("lr"), rates[epoch]),
                    (epoch_key("lr_advances"), float(advances[epoch])),
                )
            ]
            metrics += [
                Metric(summary_key("final_val_acc"), final, 0, 0),
                Metric(summary_key("best_val_acc"), max(accs), 0, 0),
                Metric(
                    summary_key("convergence_epoch"),
                    float(conv if conv is not None else BUDGET),
                    0,
                    0,
                ),
                Metric(summary_key("epochs_run"), float(BUDGET), 0, 0),
            ]
            if test_mean is not None:
                test = float(test_mean + seed_effect[seed] + rng.normal(0, truth.noise))
                metrics.append(Metric(summary_key("test_acc"), test, 0, 0))
            client.log_batch(run_id, metrics=metrics)
            client.log_param(run_id, "trainer.max_epochs", str(BUDGET))
            client.set_terminated(run_id)
    return client


def verdicts(client: MlflowClient, margin: float | None = None) -> dict[str, Claim]:
    """The report's claims on the store, read back through the MLflow client."""
    rows = summarise(load_runs(client, experiment="synthetic").runs, target=0.95)
    claims = check_claims(rows) if margin is None else check_claims(rows, margin)
    return {c.key: c for c in claims}


def _claims_a_difference(claim: Claim) -> bool:
    return claim.verdict.startswith(("supported", "not supported", "partly"))


@pytest.fixture(scope="module")
def null_store(tmp_path_factory: pytest.TempPathFactory) -> MlflowClient:
    """14 settings drawn from one distribution, 10 seeds: no setting differs from another."""
    truth = Truth(seeds=10, noise=0.002)
    return write_store(tmp_path_factory.mktemp("null"), truth, "mnist", rng_seed=1)


def test_same_distribution_no_verdict_claims_a_difference(null_store: MlflowClient) -> None:
    claims = verdicts(null_store)
    for key in ("seq3_epoch", "seq1_fast", "cutoff"):
        assert claims[key].verdict.startswith("cannot tell"), claims[key]
    # and the table's SGD comparisons, Holm-corrected, find nothing either
    rows = summarise(load_runs(null_store, experiment="synthetic").runs, target=None)
    tested = [s.comparison for s in rows if s.comparison and s.comparison.p is not None]
    assert len(tested) == 13 and not any(c.decided for c in tested)


def test_matters_little_follows_the_margin(null_store: MlflowClient) -> None:
    """Same runs: within a wide margin the equivalence is shown, within a tight one it is not
    (and the runs never show a pair beyond it: 'cannot tell', not 'not supported')."""
    assert verdicts(null_store, margin=0.01)["mnist_little"].verdict.startswith("supported")
    tight = verdicts(null_store, margin=0.0005)["mnist_little"]
    assert tight.verdict.startswith("cannot tell"), tight


@pytest.fixture(scope="module")
def wide_store(tmp_path_factory: pytest.TempPathFactory) -> MlflowClient:
    """seq3-epoch truly 2 points above every other setting, noise 0.2 points, 8 seeds."""
    truth = Truth(seeds=8, noise=0.002, means={"seq3-epoch": 0.99})
    return write_store(tmp_path_factory.mktemp("wide"), truth, "cifar10", rng_seed=2)


def test_truly_better_setting_is_found_after_correction(wide_store: MlflowClient) -> None:
    claims = verdicts(wide_store)
    assert claims["seq3_epoch"].verdict.startswith("supported: ahead of every rival")
    assert "Holm" in claims["seq3_epoch"].verdict and "large effect" in claims["seq3_epoch"].verdict
    little = claims["mnist_little"]
    assert little.verdict.startswith("not supported") and "seq3-epoch" in little.verdict


def test_held_out_runs_are_scored_on_the_test_split(tmp_path: Path) -> None:
    """seq3-epoch is 2 points ahead on the validation split that steered it, and level with
    every rival on the untouched test split: the verdict, the p-values and the bold cell follow
    the test split."""
    truth = Truth(seeds=8, noise=0.002, means={"seq3-epoch": 0.99})
    client = write_store(tmp_path, truth, "cifar10", rng_seed=2, test_mean=0.97)
    rows = summarise(load_runs(client, experiment="synthetic").runs, target=None)
    assert {s.scored_by for s in rows} == {"test_acc"}
    claim = {c.key: c for c in check_claims(rows)}["seq3_epoch"]
    assert claim.verdict.startswith("cannot tell"), claim
    seq3 = next(s for s in rows if s.setting == "seq3-epoch")
    assert seq3.comparison is not None and not seq3.comparison.decided
    out = tmp_path / "report"
    assert (
        "Scored on the test split"
        in write_report(client, experiment="synthetic", out_dir=out).read_text()
    )
    cells = _table_cells(out).values()
    assert not any("**" in row["Final accuracy"] for row in cells)
    assert any("**" in row["Test accuracy"] for row in cells)


def test_runs_without_a_test_accuracy_are_scored_on_validation(wide_store: MlflowClient) -> None:
    rows = summarise(load_runs(wide_store, experiment="synthetic").runs, target=None)
    assert {s.scored_by for s in rows} == {"final_acc"}


def test_small_difference_under_the_noise_with_three_seeds_cannot_tell(tmp_path: Path) -> None:
    """seq3-epoch truly 0.3 points ahead, seed-to-seed noise 0.5 points, 3 seeds."""
    truth = Truth(seeds=3, noise=0.005, means={"seq3-epoch": 0.973})
    client = write_store(tmp_path, truth, "cifar10", rng_seed=3)
    claim = verdicts(client)["seq3_epoch"]
    assert claim.verdict.startswith("cannot tell"), claim


def _never_or_late(setting: str, seed: int) -> int | None:
    """seq1-epoch never converges; seq2-epoch converges in 1 of 3 runs; others at 6 + seed."""
    if setting == "seq1-epoch":
        return None
    if setting == "seq2-epoch":
        return 5 if seed == 0 else None
    return 6 + seed


@pytest.fixture(scope="module")
def censored_store(tmp_path_factory: pytest.TempPathFactory) -> MlflowClient:
    """A 3-seed store where some settings never converge and by oscillate never moves."""
    still = tuple(f"{q}-oscillate" for q in SEQUENCES)
    truth = Truth(seeds=3, noise=0.003, convergence=_never_or_late, still=still)
    return write_store(tmp_path_factory.mktemp("censored"), truth, "cifar10", rng_seed=4)


@pytest.fixture(scope="module")
def censored_report(censored_store: MlflowClient, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of :func:`censored_store`, written once."""
    out = tmp_path_factory.mktemp("censored-report")
    write_report(censored_store, experiment="synthetic", out_dir=out)
    return out


def _table_cells(out: Path) -> dict[tuple[str, str], dict[str, str]]:
    """Markdown table cells by (group, row label), keyed by column header."""
    lines = [ln for ln in (out / "table.md").read_text().splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    cells, group = {}, ""
    for line in lines[1:]:
        row = [c.strip() for c in line.strip("|").split("|")]
        group = row[0].strip("*") or group
        cells[(group, row[1].split(" ")[0])] = dict(zip(header, row, strict=True))
    return cells


def test_never_converged_runs_show_k_of_n_and_no_mean(censored_report: Path) -> None:
    cells = _table_cells(censored_report)
    assert cells[("By Epoch", "seq1")]["Convergence epoch"] == "≥ 20 (0/3)"
    assert cells[("By Epoch", "seq2")]["Convergence epoch"] == "≥ 20 (1/3)"
    assert cells[("By Epoch", "seq3")]["Convergence epoch"].strip("*") == "7 (3/3)"
    for row in cells.values():
        assert "±" not in row["Convergence epoch"]
    with (censored_report / "table.csv").open() as f:
        seq1 = next(r for r in csv.DictReader(f) if r["setting"] == "seq1-epoch")
    assert (seq1["convergence_epoch_median"], seq1["convergence_epoch_reached"]) == ("", "0")


def test_strategy_that_never_moved_is_flagged(censored_report: Path) -> None:
    cells = _table_cells(censored_report)
    for q in SEQUENCES:
        row = cells[("By Oscillate", q)]
        assert row["Setting"].endswith("§") and row["Rate moves"] == "0 §"
    # logged lr_advances says 1 (an advance after the last epoch); the rate never moved
    assert cells[("By Epoch", "seq3")]["Rate moves"] == "19.0"
    report = (censored_report / "report.md").read_text()
    assert "The rate never moved in any run of seq1-oscillate, seq2-oscillate" in report
    assert "seq1-oscillate (rate never moved: same as a fixed r0 run)" in report
    assert "0/" not in cells[("By Cutoff", "seq1")]["Rate moves"]


def test_report_states_its_method(censored_report: Path) -> None:
    report = (censored_report / "report.md").read_text()
    method = next(line for line in report.splitlines() if line.startswith("**Method.**"))
    for needle in ("paired t-test", "Holm", "TOST", "Kaplan–Meier", "log-rank", "1 accuracy point"):
        assert needle in method, needle


def test_paired_test_uses_the_seed_pairing() -> None:
    """A shift of 0.1 point on every seed, hidden under 1 point of seed-to-seed spread: the
    paired test sees it, Welch's unpaired test (run on the same numbers) does not."""
    base = {str(i): 0.95 + 0.01 * i for i in range(5)}
    shifted = {k: v + 0.001 + 0.0001 * (int(k) % 2) for k, v in base.items()}
    paired = compare_means(shifted, base)
    assert paired.test == "paired t" and paired.p is not None and paired.p < 0.001
    unpaired = compare_means(shifted, {f"other{k}": v for k, v in base.items()})
    assert unpaired.test == "welch" and unpaired.p is not None and unpaired.p > 0.5


def test_holm_adjusts_only_tested_comparisons() -> None:
    base = {str(i): 0.9 + 0.01 * (i % 3) for i in range(6)}
    noisy = [{k: v + d + 0.001 * (int(k) % 2) for k, v in base.items()} for d in (0.002, 0.003)]
    tests = holm([compare_means(base, base), *(compare_means(x, base) for x in noisy)])
    assert tests[0].p is None and tests[0].p_holm is None  # identical per seed: not a test
    raw = sorted(c.p for c in tests[1:] if c.p is not None)
    holm_p = sorted(c.p_holm for c in tests[1:] if c.p_holm is not None)
    smallest = min(1.0, 2 * raw[0])  # Holm: the smallest of two p-values times 2, then monotone
    assert holm_p == pytest.approx([smallest, max(smallest, raw[1])])


def test_censored_times_compare_by_order_within_seed() -> None:
    fast = {str(i): (5.0, True) for i in range(6)}
    never = {str(i): (20.0, False) for i in range(6)}
    c = compare_times(fast, never)
    assert c.test == "log-rank" and c.p is not None and c.p < 0.05 and c.diff == -np.inf
    assert compare_times(never, never).p is None


# --------------------------------------------------------------------------- figures


@pytest.fixture(scope="module")
def censored_rows(censored_store: MlflowClient) -> list[SettingSummary]:
    return summarise(load_runs(censored_store, experiment="synthetic").runs, target=0.95)


def _outside(fig: Figure, inner: Bbox, ax: Axes) -> bool:
    """True when ``inner`` (a legend's box, drawn) does not overlap the plotting area of ``ax``."""
    fig.canvas.draw()
    return not inner.overlaps(ax.get_window_extent())


def test_scatter_has_no_labels_in_the_plot_and_stays_within_the_budget(
    censored_rows: list[SettingSummary],
) -> None:
    fig = scatter_figure(censored_rows)
    ax = fig.axes[0]
    try:
        assert not ax.texts  # names live in the legend, where no bar can cross them
        assert _outside(fig, ax.get_legend().get_window_extent(), ax)
        assert BUDGET <= ax.get_xlim()[1] <= BUDGET * 1.04 + 0.5  # fits the points, a margin
        bar_xs = [
            x
            for c in ax.collections
            for seg in c.get_segments()
            for x, _ in seg
            if isinstance(c, LineCollection)
        ]
        assert bar_xs and min(bar_xs) >= 1 and max(bar_xs) <= BUDGET
    finally:
        plt.close(fig)


def test_scatter_bars_run_from_the_fastest_to_the_slowest_seed_and_nowhere_else(
    censored_rows: list[SettingSummary],
) -> None:
    """The markers of one strategy's sequences are dodged apart; their horizontal bars are not:
    each spans exactly its seeds' epochs, and a setting whose seeds all stopped at one epoch
    (one run, or all at the budget) gets no bar that would read as a spread."""
    shown = [s for s in censored_rows if s.scored is not None and s.convergence is not None]
    spans = [(required_censored(s).lo, required_censored(s).horizon) for s in shown]
    spread = sorted((lo, hi) for lo, hi in spans if hi > lo)
    assert spread and len(spread) < len(spans)  # the store has settings of both kinds
    fig = scatter_figure(censored_rows)
    try:
        bars = sorted(
            (float(a[0]), float(b[0]))
            for c in fig.axes[0].collections
            if isinstance(c, LineCollection)
            for a, b in c.get_segments()
            if a[1] == b[1] and a[0] != b[0]
        )
        assert bars == spread
    finally:
        plt.close(fig)


def test_curves_tell_sequences_apart_and_zoom_on_the_top(
    censored_rows: list[SettingSummary],
) -> None:
    fig = curves_figure(censored_rows, "val_acc", "validation accuracy", "acc", zoom=True)
    try:
        assert len(fig.axes) == 6  # the three strategies, and their zoomed row
        for ax in fig.axes[:3]:
            grid = [ln for ln in ax.get_lines() if ln.get_label().startswith("seq")]
            looks = {(str(ln.get_linestyle()), ln.get_marker()) for ln in grid}
            assert len(grid) == 4 and len(looks) == 4, ax.get_title()
            assert ax.get_xlim()[1] <= BUDGET + 0.5
        for full, zoom in zip(fig.axes[:3], fig.axes[3:], strict=True):
            assert zoom.get_ylim()[0] > full.get_ylim()[0]  # the zoom starts higher up
        assert len({ax.get_ylim() for ax in fig.axes[3:]}) == 1  # zooms compare on one scale
        fig.canvas.draw()
        (legend,) = fig.legends
        below = min(ax.get_tightbbox().y0 for ax in fig.axes)  # axis labels included
        assert legend.get_window_extent().y1 <= below  # covers no panel's axis labels
    finally:
        plt.close(fig)


def test_a_log_axis_within_one_decade_still_reads(tmp_path: Path) -> None:
    """Validation losses between 0.5 and 0.7 (a fifth of a decade): the log-scaled panels label
    several ticks, not only the one 2x/5x tick that falls inside."""
    truth = Truth(seeds=2, noise=0.001, means={s: 0.5 for s in SETTINGS})
    rows = summarise(load_runs(write_store(tmp_path, truth, "mnist", 0), "synthetic").runs, None)
    fig = curves_figure(rows, "val_loss", "validation loss", "loss", log_y=True)
    try:
        fig.canvas.draw()
        for ax in fig.axes:
            low, high = ax.get_ylim()
            ticks = [*ax.yaxis.get_major_ticks(), *ax.yaxis.get_minor_ticks()]
            shown = {
                t.label1.get_text()
                for t in ticks
                if t.label1.get_visible() and t.label1.get_text() and low <= t.get_loc() <= high
            }
            assert len(shown) >= 3, (ax.get_title(), sorted(shown))
    finally:
        plt.close(fig)


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.45, 0.75, {"0.5", "0.6", "0.7"}),  # a fifth of a decade: every tick
        (0.15, 2.3, {"0.2", "0.3", "0.4", "0.6", "1", "2"}),  # two decade ticks: some
        (1e-8, 0.02, {f"{10.0**-e:g}".replace("-", "\N{MINUS SIGN}") for e in range(2, 9)}),
    ],
)
def test_log_axis_labels_are_plain_numbers_that_never_overlap(
    low: float, high: float, expected: set[str]
) -> None:
    """A loss within a decade reads at every tick; a rate over ten decades (as in the published
    learning-rate figure) only at its decades, each label clear of the others."""
    fig, ax = plt.subplots(figsize=(4.5, 5.4))
    try:
        ax.plot([1, 2], [low, high])
        plain_log_ticks(ax)
        ax.set_ylim(low, high)
        fig.canvas.draw()
        ticks = [*ax.yaxis.get_major_ticks(), *ax.yaxis.get_minor_ticks()]
        shown = [t.label1 for t in ticks if t.label1.get_text() and low <= t.get_loc() <= high]
        assert {label.get_text() for label in shown} == expected
        boxes = sorted((label.get_window_extent() for label in shown), key=lambda b: b.y0)
        assert all(a.y1 <= b.y0 for a, b in itertools.pairwise(boxes))
    finally:
        plt.close(fig)


def test_rate_legends_sit_outside_the_data(censored_rows: list[SettingSummary]) -> None:
    fig = rates_figure(censored_rows)
    try:
        for ax in fig.axes:
            assert _outside(fig, ax.get_legend().get_window_extent(), ax), ax.get_title()
    finally:
        plt.close(fig)


def _inked(fig: Figure, ax: Axes, colours: list[str]) -> dict[str, int]:
    """How many pixels of ``ax``'s plotting area (off its frame and its pale grid) are nearest
    each of ``colours`` as drawn at the rate lines' alpha on white: what a reader can see."""
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(float)
    box, height = ax.get_window_extent(), pixels.shape[0]
    inner = pixels[
        int(height - box.y1) + 4 : int(height - box.y0) - 4, int(box.x0) + 4 : int(box.x1) - 4
    ].reshape(-1, 3)
    ink = inner[(inner < 225).any(axis=1)]
    drawn = np.array(
        [
            [RATE_ALPHA * int(c[i : i + 2], 16) + (1 - RATE_ALPHA) * 255 for i in (1, 3, 5)]
            for c in colours
        ]
    )
    nearest = np.linalg.norm(ink[:, None, :] - drawn[None], axis=-1).argmin(axis=1)
    return {c: int((nearest == i).sum()) for i, c in enumerate(colours)}


def test_settings_sharing_a_rate_all_stay_visible(censored_rows: list[SettingSummary]) -> None:
    """SGD and Adam run at one fixed rate, and the four still oscillate settings at another: a
    line drawn later must not hide the one below it, or a legend entry has nothing to point at."""
    fig = rates_figure(censored_rows)
    try:
        panels = {ax.get_title(): ax for ax in fig.axes}
        for title, colours in (
            (
                "Benchmark and other",
                [BASELINE_COLORS[BASELINE_SGD], BASELINE_COLORS[BASELINE_ADAM]],
            ),
            ("By Oscillate", [SEQUENCE_COLORS[q] for q in SEQUENCES]),
        ):
            seen = _inked(fig, panels[title], colours)
            assert min(seen.values()) >= 20, (title, seen)
    finally:
        plt.close(fig)


@pytest.mark.parametrize(("complete", "rough"), [(6, True), (ROUGH_IMPORTANCES, False)])
def test_importances_from_a_few_trials_are_called_a_rough_ranking(
    tmp_path: Path, complete: int, rough: bool
) -> None:
    """fANOVA's importances from a handful of trials move with every trial: the report says so
    instead of letting three decimals suggest a measurement."""
    search = Search(
        objectives=["val_acc"],
        directions=["maximize"],
        study_name="study",
        trials=[{"number": str(i), "state": "COMPLETE", "value": "0.5"} for i in range(complete)],
        importances=[("optimizer.lr", 0.6), ("sequence", 0.4)],
    )
    text = "\n".join(search_markdown(search, [], tmp_path))
    assert ["optimizer.lr", "0.600"] in table_rows(text)
    assert ("rough ranking" in text) is rough
