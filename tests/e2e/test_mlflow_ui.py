"""What a run shows in the MLflow UI: its params, tags, colour, name, and the experiment's kind.

Tag names are MLflow's own (``mlflow.runColor``, ``mlflow.experimentKind``,
``mlflow.sharedViewState.<key>``), spelled here as MLflow's UI spells them, so a test fails if
the project ever writes a name the UI ignores.
"""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from lrdecay.config import validate
from lrdecay.run import RunContext, run, run_name
from lrdecay.sweep.launcher import ui_command
from tests.helpers import (
    compose_config,
    experiment_runs,
    is_job,
    is_summary_run,
    is_sweep_parent,
    run_cli,
    store,
)

SETTINGS = [p.stem for p in (Path(__file__).resolve().parents[2] / "conf" / "setting").glob("*")]


def _only_run(uri: str):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("lrdecay-digits")
    (found,) = client.search_runs([exp.experiment_id])
    return client, exp, found


def test_a_run_logs_only_the_params_it_uses_and_no_dangling_checkpoint(
    make_cfg, tracking_uri: str, tmp_path: Path
) -> None:
    run(
        make_cfg("setting=seq1-epoch", "trainer.max_epochs=1"),
        RunContext(base_dir=tmp_path, output_dir=tmp_path / "job"),
    )
    _, _, found = _only_run(tracking_uri)
    params = found.data.params
    assert params["optimizer.name"] == "sgd" and params["optimizer.momentum"] == "0.9"
    for absent in (
        "optimizer.betas",
        "sequence.gamma",
        "sequence.period",
        "strategy.rate",
        "strategy.shrink",
    ):
        assert absent not in params, absent
    assert not [k for k in params if k.startswith(("report.", "trial.", "sweep."))]
    assert params["trainer.max_epochs"] == "1"  # what the report reads stays
    assert not (tmp_path / "job" / "checkpoint.pt").exists()
    assert "lrdecay.checkpoint" not in found.data.tags  # the file was deleted at FINISHED


def test_adam_keeps_its_betas_and_seq3_its_gamma(
    make_cfg, tracking_uri: str, tmp_path: Path
) -> None:
    run(
        make_cfg("optimizer=adam", "sequence=seq3", "strategy=cutoff", "trainer.max_epochs=1"),
        RunContext(base_dir=tmp_path),
    )
    params = _only_run(tracking_uri)[2].data.params
    assert params["optimizer.betas"] == "[0.9, 0.999]" and "optimizer.momentum" not in params
    assert params["sequence.gamma"] == "0.9" and "sequence.period" not in params
    assert params["strategy.rate"] == "0.01" and params["strategy.shrink"] == "0.2"


def test_run_is_coloured_by_its_setting_and_experiment_is_model_training(
    make_cfg, tracking_uri: str, tmp_path: Path
) -> None:
    run(make_cfg("setting=seq4-cutoff", "trainer.max_epochs=1"), RunContext(base_dir=tmp_path))
    _, exp, found = _only_run(tracking_uri)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    colour = found.data.tags["mlflow.runColor"]
    assert colour == "#761516"  # seq4's hue, shaded for the cutoff strategy


def test_a_setting_named_explicitly_is_tagged_named_and_coloured_by_that_name(
    make_cfg, tracking_uri: str, tmp_path: Path
) -> None:
    """The control at r0 is SGD at a fixed rate like sgd-fixed; its own name, not the derived
    one, is its setting tag, run name, outcome and colour."""
    from lrdecay.palette import BASELINE_COLORS, CONTROL_SGD_R0

    outcome = run(
        make_cfg("setting=sgd-fixed-r0", "trainer.max_epochs=1"), RunContext(base_dir=tmp_path)
    )
    found = _only_run(tracking_uri)[2]
    assert outcome.setting == found.data.tags["setting"] == CONTROL_SGD_R0
    assert found.info.run_name == CONTROL_SGD_R0
    assert found.data.tags["mlflow.runColor"] == BASELINE_COLORS[CONTROL_SGD_R0]
    assert found.data.params["optimizer.lr"] == "0.01"


def _rgb(colour: str) -> tuple[int, ...]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def test_every_setting_gets_its_own_distinguishable_colour() -> None:
    """The study's 14 settings, the control at r0 and the 9 modern baselines: 24 colours."""
    from lrdecay.palette import BASELINE_COLORS, CONTROL_SGD_R0, MODERN_COLORS, SEQUENCE_COLORS
    from lrdecay.tracking.ui import setting_colour

    colours = {}
    for setting in SETTINGS:
        conf = validate(compose_config([f"setting={setting}"]))
        colours[setting] = setting_colour(run_name(conf), conf.sequence.name, conf.strategy.name)
    study = [s for s in SETTINGS if s not in MODERN_COLORS]
    assert len(study) == 15 and len({colours[s] for s in study}) == 15
    assert sorted(set(SETTINGS) - set(study)) == sorted(MODERN_COLORS)
    assert len(set(colours.values())) == len(SETTINGS) == 24
    assert colours["seq2-epoch"] == SEQUENCE_COLORS["seq2"]  # the report figures' own hue
    assert colours["cosine"] == MODERN_COLORS["cosine"]
    assert colours[CONTROL_SGD_R0] == BASELINE_COLORS[CONTROL_SGD_R0]
    rgbs = [_rgb(c) for c in colours.values()]
    closest = min(
        sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) ** 0.5
        for i, a in enumerate(rgbs)
        for b in rgbs[i + 1 :]
    )
    assert closest > 40, closest


def test_names_tell_apart_what_the_sweep_varies() -> None:
    from lrdecay.tracking.ui import name_suffix, swept_keys

    swept = swept_keys(
        [
            "dataset=digits",
            "seed=0,1,2",
            "+setting=seq1-epoch,sgd-fixed",
            "optimizer.lr=0.05,0.1",
            "hydra.launcher.n_jobs=2",
        ]
    )
    assert swept == ["seed", "setting", "optimizer.lr"]
    assert (
        name_suffix(swept, ["+setting=seq3-epoch", "seed=1", "optimizer.lr=0.05"]) == "s1 lr=0.05"
    )
    assert name_suffix(["optimizer.lr"], ["optimizer.lr=0.0034567891"]) == "lr=0.003457"
    assert name_suffix(["setting"], ["setting=seq3-epoch", "seed=4"]) == ""


def test_printed_url_opens_the_classic_runs_view() -> None:
    local = ui_command("sqlite:////tmp/x/mlflow.db", "3")
    assert local.endswith(
        "http://127.0.0.1:5000/#/experiments/3/runs"
        "?workflowType=machine_learning&viewStateShareKey=lrdecay-runs"
    )
    assert "this sweep's runs" not in local  # no parent run, no sweep line
    remote = ui_command("http://127.0.0.1:5001", "7")
    assert remote == (
        "open http://127.0.0.1:5001/#/experiments/7/runs"
        "?workflowType=machine_learning&viewStateShareKey=lrdecay-runs"
    )
    swept = ui_command("sqlite:////tmp/x/mlflow.db", "3", "abc")
    assert swept.endswith(
        "best final accuracy first: http://127.0.0.1:5000/#/experiments/3/runs"
        "?workflowType=machine_learning&viewStateShareKey=lrdecay-sweep-abc"
    )
    bands = ui_command("sqlite:////tmp/x/mlflow.db", "3", "abc", bands=True)
    assert bands.endswith(  # a sweep with summary runs opens on its charts
        "one band each (mean and 95 % interval over seeds): http://127.0.0.1:5000/#/experiments"
        "/3/runs?workflowType=machine_learning&viewStateShareKey=lrdecay-sweep-abc"
        "&compareRunsMode=CHART"
    )


def _shared_view(tags: dict[str, str], key: str) -> dict:
    """The runs view MLflow's UI loads for ``viewStateShareKey=key`` (the JSON its Share
    button writes, deflated and in base64 after ``deflate;``, as that button writes a long
    one): what columns the table shows and how many runs the charts draw."""
    value = tags[f"mlflow.sharedViewState.{key}"]
    assert value.startswith("deflate;")
    return json.loads(zlib.decompress(base64.b64decode(value[len("deflate;") :])))


def _band_cards(view: dict) -> dict[str, list[str] | None]:
    """The chart cards of a view, shown ones by what they draw, deleted ones as None."""
    return {
        c["metricKey"]: None if c["deleted"] else c["selectedMetricKeys"]
        for c in view["compareRunCharts"]
    }


def test_experiment_carries_the_view_its_printed_url_opens(
    make_cfg, tracking_uri: str, tmp_path: Path
) -> None:
    MlflowClient(tracking_uri).create_experiment("lrdecay-digits")  # as before the views
    run(make_cfg("setting=seq1-epoch", "trainer.max_epochs=1"), RunContext(base_dir=tmp_path))
    _, exp, _ = _only_run(tracking_uri)
    view = _shared_view(exp.tags, "lrdecay-runs")
    assert view["selectedColumns"][:2] == [
        "metrics.`summary/final_val_acc`",
        "metrics.`summary/convergence_epoch`",
    ]
    assert {"tags.`seed`", "tags.`setting`"} <= set(view["selectedColumns"])
    assert view["runsHiddenMode"] == "SHOW_ALL"  # the UI's default charts the first 10 runs
    assert view["searchFilter"] == ""  # every run: summaries charted, the rest folded by role
    assert view["groupBy"]["groupByKeys"] == [{"mode": "tag", "groupByData": "lrdecay.role"}]
    assert view["useGroupedValuesInCharts"] is False  # each summary drawn, not a group average
    cards = _band_cards(view)
    assert cards["epoch/val_acc"] == ["epoch/val_acc", "epoch/val_acc_lo", "epoch/val_acc_hi"]
    assert cards["epoch/val_acc_lo"] is None and cards["epoch/val_acc_hi"] is None
    assert cards["summary/final_val_acc"] == [
        "summary/final_val_acc",
        "summary/final_val_acc_lo",
        "summary/final_val_acc_hi",
    ]
    assert "epoch/n_seeds" in cards and "summary/n_seeds" in cards  # how many seeds each
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"


@pytest.mark.slow
def test_a_sweep_names_seeds_apart_and_shows_its_progress_not_every_epoch(tmp_path) -> None:
    proc = run_cli(
        [
            "-m",
            "dataset=digits",
            "setting=seq3-epoch,adam-fixed",
            "seed=0,1",
            "trainer.max_epochs=2",
            "report.enabled=false",
            "tracking.log_plot=false",
            "hydra.launcher.n_jobs=2",
            f"data.root={tmp_path}/data",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    terminal = proc.stdout + proc.stderr
    assert "sweep: 4/4 done (0 failed), 0 running" in terminal
    assert " epoch 1/2 " not in terminal  # per-epoch lines stay in each job's log
    (job_log,) = (tmp_path / "multirun").glob("*/*/0/*.log")
    assert " epoch 1/2 " in job_log.read_text()
    client = store(tmp_path)
    exp = client.get_experiment_by_name("lrdecay-digits")
    runs = experiment_runs(client)
    names = sorted(r.info.run_name for r in runs if is_job(r))
    assert names == ["adam-fixed s0", "adam-fixed s1", "seq3-epoch s0", "seq3-epoch s1"]
    bands = {r.info.run_name: r.data.tags for r in runs if is_summary_run(r)}
    assert sorted(bands) == ["adam-fixed (mean of 2)", "seq3-epoch (mean of 2)"]
    seeds = {r.data.tags["setting"]: r.data.tags["mlflow.runColor"] for r in runs if is_job(r)}
    for tags in bands.values():  # in its setting's colour, a child of the sweep
        assert tags["mlflow.runColor"] == seeds[tags["setting"]] and tags["lrdecay.seeds"] == "0,1"
    (parent,) = [r for r in runs if is_sweep_parent(r)]
    assert not parent.data.metrics  # counters are tags: nothing for the chart view to plot
    assert parent.data.tags["children_finished"] == "4"
    view = _shared_view(exp.tags, f"lrdecay-sweep-{parent.info.run_id}")
    assert view["searchFilter"] == f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    assert "orderByKey" not in view  # newest first: the summaries, all on the UI's first page
    assert view["groupBy"]["groupByKeys"] == [{"mode": "tag", "groupByData": "lrdecay.role"}]
    assert view["runsHiddenMode"] == "SHOW_ALL"
    assert f"viewStateShareKey=lrdecay-sweep-{parent.info.run_id}&compareRunsMode=CHART" in (
        terminal
    )
