"""One run end to end in-process: composed config → training → what MLflow holds."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from lrdecay.config import validate
from lrdecay.core.records import EPOCH_METRICS, FINAL_ACC_METRIC, epoch_key, summary_key
from lrdecay.errors import ConfigError
from lrdecay.run import run


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


def test_baseline_name_plot_artifact_and_seeded_repeat(make_cfg, tracking_uri) -> None:
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
    assert summary.test_acc is not None
    _, r = _only_run(tracking_uri)
    assert summary_key("test_acc") in r.data.metrics and summary_key("test_loss") in r.data.metrics
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
