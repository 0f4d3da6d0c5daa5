"""One run end to end in-process: composed config → training → what MLflow holds."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from lrdecay.config import validate
from lrdecay.core.records import (
    EPOCH_METRICS,
    FINAL_ACC_METRIC,
    EpochRecord,
    epoch_key,
    summary_key,
)
from lrdecay.errors import ConfigError
from lrdecay.run import run
from lrdecay.tracking.plots import history_figure


def _only_run(uri: str, experiment: str = "lrdecay-digits"):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    return client, runs[0]


def test_every_epoch_is_logged_with_the_rate_used(make_cfg, tracking_uri) -> None:
    summary = run(make_cfg("trainer.max_epochs=12", "sequence=seq3", "strategy=epoch"))
    client, r = _only_run(tracking_uri)
    assert r.info.status == "FINISHED" and r.info.run_name == "seq3-epoch"
    for name in EPOCH_METRICS:
        steps = [m.step for m in client.get_metric_history(r.info.run_id, name)]
        assert sorted(steps) == list(range(1, 13)), name
    lrs = sorted(client.get_metric_history(r.info.run_id, epoch_key("lr")), key=lambda m: m.step)
    assert [m.value for m in lrs] == pytest.approx([0.01 * 0.9 ** (t - 1) for t in range(1, 13)])
    for name in (
        "final_val_acc",
        "best_val_acc",
        "convergence_epoch",
        "epochs_run",
        "train_seconds",
        "samples_per_second",
    ):
        assert summary_key(name) in r.data.metrics, name
    assert r.data.metrics[summary_key("epochs_run")] == 12
    assert r.data.metrics[FINAL_ACC_METRIC] == pytest.approx(summary.final_val_acc)
    assert summary.final_val_acc > 0.8  # digits learns within 12 epochs
    tags = r.data.tags
    assert (
        tags["dataset"],
        tags["sequence"],
        tags["strategy"],
        tags["optimizer"],
        tags["seed"],
    ) == ("digits", "seq3", "epoch", "sgd", "42")
    assert tags["layout"] == "NHWC"  # what trainer.channels_last=auto chose on this CPU
    assert r.data.params["optimizer.lr"] == "0.01"
    assert r.data.params["trainer.max_epochs"] == "12"
    arts = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"config.yaml", "overrides.txt"} <= arts


def test_curves_come_first_in_the_ui_chart_sections(make_cfg, tracking_uri) -> None:
    """MLflow's UI charts a run by section (the key's prefix before ``/``), sections in
    alphabetical order: the first holds the validation curves and the rate, the run-level
    values are in a later one, nothing is left in the catch-all "Model metrics"."""
    summary = run(make_cfg("trainer.max_epochs=2", "sequence=seq3", "strategy=epoch"))
    client, r = _only_run(tracking_uri)
    sections: dict[str, set[str]] = {}
    for key in r.data.metrics:
        section, _, name = key.rpartition("/")
        sections.setdefault(section, set()).add(name)
    assert "" not in sections, sections  # a key without a section
    first, *later = sorted(sections)
    assert {"val_acc", "val_loss", "lr"} <= sections[first]
    assert [
        ("final_val_acc" in sections[s], "convergence_epoch" in sections[s]) for s in later
    ] == [(True, True)]
    for record_field in ("val_acc", "val_loss", "lr"):  # same values, step = epoch
        history = client.get_metric_history(r.info.run_id, f"{first}/{record_field}")
        assert sorted((m.step, m.value) for m in history) == [
            (e.epoch, pytest.approx(getattr(e, record_field))) for e in summary.history
        ]


def test_baseline_name_plot_artifact_and_seeded_repeat(make_cfg, tracking_uri, tmp_path) -> None:
    overrides = (
        "trainer.max_epochs=3",
        "optimizer=adam",
        "optimizer.lr=0.001",
        "sequence=constant",
        "strategy=fixed",
        "tracking.log_plot=true",
    )
    first = run(make_cfg(*overrides))
    second = run(make_cfg(*overrides))
    assert [r.val_loss for r in first.history] == [r.val_loss for r in second.history]
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("lrdecay-digits")
    runs = client.search_runs([exp.experiment_id])
    assert {r.info.run_name for r in runs} == {"adam-fixed"}
    arts = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert "curves.png" in arts
    curves = client.download_artifacts(runs[0].info.run_id, "curves.png", str(tmp_path))
    with Image.open(curves) as png:  # the figure names its run, not only the experiment
        assert png.text["Title"] == "adam-fixed · lrdecay-digits"
    lrs = {m.value for m in client.get_metric_history(runs[0].info.run_id, epoch_key("lr"))}
    assert lrs == {0.001}


def test_divergence_is_recorded_as_failed_not_raised(make_cfg, tracking_uri) -> None:
    summary = run(make_cfg("trainer.max_epochs=5", "optimizer.lr=1e6", "strategy=fixed"))
    assert summary.status == "diverged" and summary.epochs_run < 5
    _, r = _only_run(tracking_uri)
    assert r.info.status == "FAILED"
    assert r.data.tags["diverged"] == "true"


def test_held_out_validation_also_reports_test(make_cfg, tracking_uri) -> None:
    summary = run(make_cfg("trainer.max_epochs=2", "dataset.val_fraction=0.2"))
    _, r = _only_run(tracking_uri)
    assert r.data.metrics[summary_key("test_acc")] == pytest.approx(summary.test_acc)
    assert r.data.metrics[summary_key("test_loss")] == pytest.approx(summary.test_loss)
    assert r.data.params["dataset.val_fraction"] == "0.2"


def test_early_stop_rule(make_cfg) -> None:
    summary = run(
        make_cfg("trainer.max_epochs=30", "trainer.early_stop_tol=0.5", "tracking.enabled=false")
    )
    assert summary.status == "early_stopped" and summary.epochs_run < 30
    losses = [r.val_loss for r in summary.history]
    gaps = [abs(losses[t] - losses[t - 2]) for t in range(2, len(losses))]
    assert gaps[-1] < 0.5 and all(g >= 0.5 for g in gaps[:-1])  # stopped at the first hit


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("optimizer.lr=-1", "optimizer.lr"),
        ("trainer.max_epochs=0", "trainer.max_epochs"),
        ("device=tpu", "device"),
        ("dataset.val_fraction=1.5", "dataset.val_fraction"),
        ("strategy.shrink=0", "strategy.shrink"),
    ],
)
def test_bad_values_fail_validation_naming_the_field(make_cfg, override, field) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        validate(make_cfg(override))


def _rate_labels(rates: list[float]) -> list[str]:
    """The labels a reader sees on a run figure's learning-rate axis for these epoch rates."""
    history = [
        EpochRecord(epoch, 1.0, 0.5, 1.0, 0.5, rate, 0, 1.0)
        for epoch, rate in enumerate(rates, start=1)
    ]
    fig = history_figure(history, "a run")
    fig.canvas.draw()
    axis = fig.axes[2]
    low, high = axis.get_ylim()
    return [t.get_text() for t in axis.get_yticklabels() if low <= t.get_position()[1] <= high]


@pytest.mark.parametrize(
    ("rates", "labels"),
    [
        ([0.01] * 28 + [0.005] * 2, {"0.01", "0.005"}),  # oscillate: one step within a decade
        ([0.01] * 10 + [0.009] * 20, {"0.01", "0.009"}),  # cutoff: a 10 % step
        ([0.01 * 0.9**i for i in range(30)], {"0.01", "0.005", "0.002", "0.001", "0.0005"}),
    ],
)
def test_a_run_figure_labels_the_rates_it_moves_between(rates, labels) -> None:
    """Every level the rate reaches is read off the axis in plain numbers (a log axis with
    decade ticks alone labelled 0.01 and nothing below it)."""
    assert labels <= set(_rate_labels(rates))
