"""The report's figures on synthetic runs whose truth is known: the best setting chosen on the
validation split, legends clear of every axis label, a rate axis that fits the decaying arms,
and a scatter whose axes fit its points."""

from __future__ import annotations

from collections.abc import Iterator

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from lrdecay.core.outcome import RunOutcome, RunStatus
from lrdecay.report.best_figure import best_figure, best_per_strategy
from lrdecay.report.curve_figures import curves_figure
from lrdecay.report.rate_figure import RATE_DECADES, rates_figure
from lrdecay.report.runs import RunRecord
from lrdecay.report.scatter_figure import scatter_figure
from lrdecay.report.stats import SettingSummary, summarise
from lrdecay.report.tables import build_table, to_markdown
from tests.helpers import table_rows

EPOCHS = 30
R0 = 0.01
PLATEAU = "torch.optim.lr_scheduler.ReduceLROnPlateau"


def _record(
    setting: str,
    seed: int,
    val: float,
    test: float,
    rates: dict[int, float] | None = None,
    convergence: int = 8,
    scheduler: str = "",
) -> RunRecord:
    """A run ending at validation accuracy ``val`` and test accuracy ``test``, its rate per
    epoch ``rates`` (default: fixed at r0, or 0.001 for a fixed-rate baseline)."""
    first, _, strategy = setting.partition("-")
    optimizer, sequence = ("sgd", first)
    if strategy.startswith("fixed"):
        optimizer, sequence, strategy = first, "constant", "fixed"
    if scheduler:
        strategy = "epoch"
    base = 0.001 if setting in ("sgd-fixed", "adam-fixed") else R0
    rates = rates or {e: base for e in range(1, EPOCHS + 1)}
    return RunRecord(
        outcome=RunOutcome(
            RunStatus.FINISHED,
            setting=setting,
            run_id=f"{setting}-{seed}",
            final_val_acc=val,
            best_val_acc=val,
            convergence_epoch=convergence,
            epochs_run=EPOCHS,
            test_acc=test,
        ),
        optimizer=optimizer,
        sequence=sequence,
        strategy=strategy,
        seed=str(seed),
        dataset="mnist",
        params={"trainer.max_epochs": str(EPOCHS)},
        history={
            "val_acc": {e: val * min(1.0, 0.5 + e / 20) for e in range(1, EPOCHS + 1)},
            "val_loss": {e: 0.3 + abs(e - 9) / 40 for e in range(1, EPOCHS + 1)},
            "lr": rates,
        },
        scheduler=scheduler,
    )


def _study() -> list[SettingSummary]:
    """Three seeds of the baselines, the 12 schemes and two PyTorch schedulers: by epoch, seq1
    is best on validation and seq3 on test; plateau cuts its rate tenfold every 4 epochs,
    down to 1e-9; each epoch scheme moves its rate every epoch; prodigy logs its lr of 1."""
    every = {e: R0 / e for e in range(1, EPOCHS + 1)}
    plateau = {e: R0 * 10 ** -((e - 1) // 4) for e in range(1, EPOCHS + 1)}
    settings: dict[str, tuple[float, float, dict[int, float] | None, str]] = {
        "sgd-fixed": (0.90, 0.90, None, ""),
        "adam-fixed": (0.91, 0.91, None, ""),
        "seq1-epoch": (0.95, 0.90, every, ""),  # best on validation, worst on test
        "seq2-epoch": (0.92, 0.92, every, ""),
        "seq3-epoch": (0.93, 0.96, every, ""),  # best on test
        "seq4-epoch": (0.91, 0.91, every, ""),
        **{f"seq{q}-{s}": (0.93, 0.93, None, "") for q in (1, 2, 3, 4) for s in ("cutoff",)},
        **{f"seq{q}-oscillate": (0.93, 0.93, every, "") for q in (1, 2, 3, 4)},
        "plateau": (0.94, 0.94, plateau, PLATEAU),
        "prodigy-fixed": (0.94, 0.94, {e: 1.0 for e in range(1, EPOCHS + 1)}, ""),
    }
    records = [
        _record(name, seed, val + 0.001 * seed, test + 0.001 * seed, rates, scheduler=sched)
        for name, (val, test, rates, sched) in settings.items()
        for seed in range(3)
    ]
    return summarise(records, None)


@pytest.fixture(scope="module")
def rows() -> list[SettingSummary]:
    return _study()


@pytest.fixture
def close_all() -> Iterator[None]:
    yield
    plt.close("all")


def test_the_best_setting_is_chosen_on_validation_and_labelled_with_the_tables_numbers(
    rows: list[SettingSummary], close_all: None
) -> None:
    """Test and validation disagree on the best by-epoch scheme: the figure takes the
    validation split's (seq1), and its legend quotes the table's cells for it."""
    assert rows[0].scored_by == "test_acc"  # the test split scores the table
    best = {s.group: s.setting for s in best_per_strategy(rows)}
    assert best["By Epoch"] == "seq1-epoch"
    fig = best_figure(rows)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    (seq1,) = [label for label in labels if label.startswith("seq1-epoch")]
    assert seq1 == "seq1-epoch (final val 0.9510, test 0.9010)"
    table = to_markdown(build_table(rows, None))
    row = next(r for r in table_rows(table) if r[:2] == ["**By Epoch**", "seq1"])
    assert any(c.startswith("0.9510 ±") for c in row) and any(c.startswith("0.9010 ±") for c in row)
    assert not any(label.startswith("seq3-epoch") for label in labels)


def _legends_clear_of_labels(fig: Figure) -> None:
    """Every legend of ``fig`` lies wholly below the lowest tick label or axis label of the
    panels above it (the axes its horizontal extent overlaps)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    assert legends
    for legend in legends:
        box = legend.get_window_extent(renderer)
        above = [
            ax
            for ax in fig.axes
            if ax.get_window_extent().x0 < box.x1 and box.x0 < ax.get_window_extent().x1
        ]
        assert above
        bottom = min(ax.xaxis.get_tightbbox(renderer).y0 for ax in above)  # ticks, label
        assert box.y1 <= bottom, (legend.get_texts()[0].get_text(), box.y1, bottom)


@pytest.mark.parametrize("which", ["accuracy", "loss", "rates", "best"])
def test_no_legend_covers_an_axis_label(
    rows: list[SettingSummary], which: str, close_all: None
) -> None:
    fig = {
        "accuracy": lambda: curves_figure(rows, "val_acc", "accuracy", "acc", zoom=True),
        "loss": lambda: curves_figure(rows, "val_loss", "loss", "loss", log_y=True),
        "rates": lambda: rates_figure(rows),
        "best": lambda: best_figure(rows),
    }[which]()
    _legends_clear_of_labels(fig)


def test_zoomed_panels_share_one_range(rows: list[SettingSummary], close_all: None) -> None:
    fig = curves_figure(rows, "val_acc", "accuracy", "acc", zoom=True)
    zooms = [ax for ax in fig.axes if ax.get_title().endswith("top of the range")]
    assert len(zooms) == 4 and len({ax.get_ylim() for ax in zooms}) == 1


def test_the_rate_axis_fits_the_decaying_arms_and_points_at_the_rest(
    rows: list[SettingSummary], close_all: None
) -> None:
    """Plateau falls to 1e-9 and prodigy logs 1: the axis spans r0 down three decades, an
    arrow marks each, and their legend entries say where they went; a rate that moves every
    epoch carries no ▼ (it would draw a band of them), a rarely moving one does."""
    fig = rates_figure(rows)
    panels = {ax.get_title(): ax for ax in fig.axes}
    low, high = panels["By Epoch"].get_ylim()
    assert R0 <= high <= 1.5 * R0
    assert R0 / 10**RATE_DECADES / 1.5 <= low <= R0 / 10**RATE_DECADES
    modern = panels["Modern baselines"]
    labels = [t.get_text() for t in modern.get_legend().get_texts()]
    assert "plateau: 7 moves each (below the axis from epoch 17, to 1e-09)" in labels
    assert "prodigy-fixed (above the axis, to 1)" in labels
    assert len(modern.texts) == 2  # the two arrows (annotations), one per setting
    for title in ("By Epoch", "By Oscillate"):
        marks = [
            ln for ln in panels[title].get_lines() if ln.get_marker() == "v" and len(ln.get_xdata())
        ]
        assert not marks, title
    plateau_marks = [
        ln for ln in modern.get_lines() if ln.get_marker() == "v" and len(ln.get_xdata())
    ]
    assert len(plateau_marks) == 3  # one set of ▼ per seed: 7 moves in 29 boundaries


def test_the_scatter_axes_fit_the_points(close_all: None) -> None:
    """Every seed converges by epoch 9 of a 30-epoch budget: the epoch axis stops near 9."""
    records = [
        _record(name, seed, 0.9 + 0.01 * i, 0.9 + 0.01 * i, convergence=5 + i + seed)
        for i, name in enumerate(("sgd-fixed", "seq1-epoch", "seq2-epoch"))
        for seed in range(3)
    ]
    fig = scatter_figure(summarise(records, None))
    low, high = fig.axes[0].get_xlim()
    assert 4 <= low < 5 and 9 < high <= 10
