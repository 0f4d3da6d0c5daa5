"""A setting's summary run: the mean of its seeds and the bounds of the mean's 95 % t-interval,
per epoch and run-level, recomputed here from the seeds' own values; written into a real store
(runs logged by the tracker itself), kept, rewritten and deleted as the seeds change; never a
run to the report or to resume. The last test does it all through the CLI, re-launch included.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from optuna.trial import TrialState
from scipy import stats

from hydra_plugins.lrdecay_optuna_sweeper.trial_hooks import JobReport
from lrdecay.core.outcome import SUMMARY_METRICS, RunOutcome, RunStatus
from lrdecay.core.records import EPOCH_METRICS, EpochRecord, bound_keys, epoch_key, summary_key
from lrdecay.report.bands import epoch_stats, seeds_per_epoch
from lrdecay.report.figure_common import mean_curve
from lrdecay.report.runs import RunRecord, load_runs
from lrdecay.report.stats import summarise
from lrdecay.report.summary_runs import summary_metrics, write_summaries
from lrdecay.sweep.folder import write_parent
from lrdecay.sweep.trials import LrdecayTrials
from lrdecay.tracking.resume import FINGERPRINT_TAG, REPLACED_BY_TAG, find_prior
from lrdecay.tracking.run_logger import MlflowTracker
from lrdecay.tracking.ui import ROLE_TAG, SWEEP_ROLE, TRIAL_TAG
from tests.helpers import (
    experiment_runs,
    is_job,
    is_summary_run,
    new_store,
    run_cli,
    seed_store,
    store,
)

EXPERIMENT = "bands"


def _interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and the bounds of its 95 % t-interval, straight from scipy's t and standard error."""
    xs = np.array(values)
    half = stats.t.ppf(0.975, len(xs) - 1) * stats.sem(xs)
    return float(xs.mean()), float(xs.mean() - half), float(xs.mean() + half)


def _record(seed: int, accs: list[float], setting: str = "seq3-epoch") -> RunRecord:
    """A finished run of ``setting`` whose validation accuracy was ``accs``, epoch by epoch."""
    history = {
        "val_acc": dict(enumerate(accs, 1)),
        "lr": {e: 0.01 for e in range(1, len(accs) + 1)},
    }
    return RunRecord(
        outcome=RunOutcome(
            RunStatus.FINISHED,
            setting=setting,
            run_id=f"{setting}-{seed}",
            final_val_acc=accs[-1],
            epochs_run=len(accs),
        ),
        optimizer="sgd",
        sequence=setting.split("-")[0],
        strategy=setting.split("-")[1],
        seed=str(seed),
        dataset="digits",
        params={},
        history=history,
    )


SEEDS = [[0.5, 0.7, 0.8], [0.6, 0.72, 0.83], [0.55, 0.69]]  # the third seed stopped at epoch 2


def test_each_epochs_band_is_the_mean_and_t_interval_of_the_seeds_that_reached_it() -> None:
    runs = [_record(seed, accs) for seed, accs in enumerate(SEEDS)]
    bands = epoch_stats(runs, "val_acc")
    assert list(bands) == [1, 2, 3]
    for epoch in (1, 2):
        mean, lo, hi = _interval([accs[epoch - 1] for accs in SEEDS])
        assert bands[epoch].n == 3 and bands[epoch].mean == pytest.approx(mean, rel=1e-12)
        assert bands[epoch].interval == pytest.approx((lo, hi), rel=1e-12)
    mean, lo, hi = _interval([0.8, 0.83])  # two seeds reached epoch 3
    assert bands[3].n == 2 and bands[3].interval == pytest.approx((lo, hi), rel=1e-12)
    assert seeds_per_epoch(runs) == {1: 3, 2: 3, 3: 2}
    lonely = epoch_stats([*runs, _record(3, [0.1, 0.2, 0.3, 0.9])], "val_acc")
    assert lonely[4].n == 1 and lonely[4].mean == 0.9 and lonely[4].interval is None


def test_a_summary_holds_every_number_under_its_seeds_keys_with_bounds_and_counts() -> None:
    runs = [_record(seed, accs) for seed, accs in enumerate(SEEDS)]
    runs[0].history["val_acc"][2] = float("nan")  # a value that is no number is left out
    logged = {(key, step): value for key, value, step in summary_metrics(runs)}
    val_acc, (lower, upper) = epoch_key("val_acc"), bound_keys(epoch_key("val_acc"))
    assert (lower, upper) == ("epoch/val_acc_lo", "epoch/val_acc_hi")
    mean, lo, hi = _interval([0.72, 0.69])
    assert logged[val_acc, 2] == pytest.approx(mean) and logged[lower, 2] == pytest.approx(lo)
    assert logged[upper, 2] == pytest.approx(hi)
    assert [logged[epoch_key("n_seeds"), e] for e in (1, 2, 3)] == [3, 3, 2]
    assert logged[epoch_key("lr"), 1] == 0.01 and logged[bound_keys(epoch_key("lr"))[0], 1] == 0.01
    final = summary_key("final_val_acc")
    mean, lo, hi = _interval([0.8, 0.83, 0.69])  # run-level, at the last epoch
    assert logged[final, 3] == pytest.approx(mean)
    assert (logged[final + "_lo", 3], logged[final + "_hi", 3]) == pytest.approx((lo, hi))
    assert logged[summary_key("n_seeds"), 3] == 3
    assert not any(key.startswith(summary_key("test_acc")) for key, _ in logged)  # none logged


def test_the_figures_draw_the_numbers_the_summary_run_holds() -> None:
    runs = [_record(seed, accs) for seed, accs in enumerate(SEEDS)]
    (row,) = summarise(runs, None)
    epochs, mean, lo, hi = mean_curve(row, "val_acc")
    logged = {(key, step): value for key, value, step in summary_metrics(row.ok_runs)}
    lower, upper = bound_keys(epoch_key("val_acc"))
    for i, epoch in enumerate(epochs):
        assert mean[i] == logged[epoch_key("val_acc"), epoch]
        assert (lo[i], hi[i]) == (logged[lower, epoch], logged[upper, epoch])
    final = summary_key("final_val_acc")
    assert row.final_acc.mean == logged[final, 3]  # the table's cell, mean ± half
    assert row.final_acc.interval == (logged[final + "_lo", 3], logged[final + "_hi", 3])


# ------------------------------------------------------------------ in a real store


def _log_run(
    uri: str,
    parent: str,
    setting: str,
    seed: int,
    accs: list[float],
    diverged: bool = False,
    trial: int | None = None,
) -> str:
    """A run as a sweep's job logs it (as a seed of search trial ``trial``, when given),
    through the tracker: its tags, every epoch, its end."""
    tracker = MlflowTracker(uri, EXPERIMENT, log_plot=False)
    tags = {"setting": setting, "seed": str(seed), "dataset": "digits", "sequence": "seq3"}
    tags |= {"strategy": "epoch", "optimizer": "sgd", FINGERPRINT_TAG: f"{setting}-{seed}"}
    if trial is not None:
        tags |= {TRIAL_TAG: str(trial), "optuna.study": "s", FINGERPRINT_TAG: f"{trial}-{seed}"}
    tracker.start(f"{setting} s{seed}", tags, {"seed": str(seed), "optimizer.lr": "0.01"}, parent)
    for epoch, acc in enumerate(accs, 1):
        tracker.on_epoch_end(EpochRecord(epoch, 1 - acc, acc, 1 - acc, acc, 0.01, 0, 0.1))
    status = RunStatus.DIVERGED if diverged else RunStatus.FINISHED
    tracker.on_fit_end(
        RunOutcome(status, setting, final_val_acc=accs[-1], epochs_run=len(accs), history=[])
    )
    tracker.end(status.mlflow)
    assert tracker.run_id is not None
    return tracker.run_id


def _parent(client: MlflowClient) -> str:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        experiment_id = client.create_experiment(EXPERIMENT)
    else:
        experiment_id = experiment.experiment_id
    return client.create_run(experiment_id, tags={ROLE_TAG: SWEEP_ROLE}).info.run_id


def _summaries(client: MlflowClient) -> dict[str, object]:
    """The active summary runs by setting."""
    runs = [r for r in experiment_runs(client, EXPERIMENT) if is_summary_run(r)]
    return {r.data.tags["setting"]: r for r in runs}


def test_summaries_are_kept_rewritten_moved_and_never_a_run(tmp_path: Path) -> None:
    uri = new_store(tmp_path / "mlflow.db")
    client = MlflowClient(uri)
    first = _parent(client)
    for seed, accs in enumerate(SEEDS[:2]):
        _log_run(uri, first, "seq3-epoch", seed, accs)
    _log_run(uri, first, "seq3-epoch", 7, [0.1, 0.1, 0.1], diverged=True)  # never averaged
    _log_run(uri, first, "adam-fixed", 0, [0.9, 0.9, 0.9])  # one seed: no band
    written = write_summaries(client, first)
    (band,) = _summaries(client).values()
    assert written == [band.info.run_id] and band.info.run_name == "seq3-epoch (mean of 2)"
    assert band.info.status == "FINISHED" and band.data.tags["lrdecay.seeds"] == "0,1"
    assert band.data.tags["mlflow.parentRunId"] == first and "seed" not in band.data.params
    assert band.data.params["optimizer.lr"] == "0.01"  # what the seeds share

    assert write_summaries(client, first) == written  # nothing changed: the same run
    seed2 = _log_run(uri, first, "seq3-epoch", 2, SEEDS[2])
    (rewritten,) = write_summaries(client, first)
    assert rewritten != band.info.run_id
    assert _summaries(client)["seq3-epoch"].info.run_name == "seq3-epoch (mean of 3)"
    old = client.get_run(band.info.run_id)
    assert old.info.lifecycle_stage == "deleted"
    assert old.data.tags[REPLACED_BY_TAG] == rewritten

    # neither the report nor resume sees a summary, even one with a seed's fingerprint
    client.set_tag(rewritten, FINGERPRINT_TAG, "seq3-epoch-2")
    assert find_prior(client, old.info.experiment_id, "seq3-epoch-2").run.info.run_id == seed2
    runset = load_runs(client, parent_run_id=first)
    assert len(runset.runs) == 5 and runset.untagged == 0

    # another sweep of the setting, on seeds of its own: its band stays as it is
    other = _parent(client)
    for seed in (5, 6):
        _log_run(uri, other, "seq3-epoch", seed, SEEDS[seed - 5])
    (untouched,) = write_summaries(client, other)

    # a re-launch took seeds 0 and 1 over: this sweep's band has 2, the first's 1 (none)
    second = _parent(client)
    for run in experiment_runs(client, EXPERIMENT):
        if is_job(run) and run.data.tags["seed"] in ("0", "1"):
            client.set_tag(run.info.run_id, "mlflow.parentRunId", second)
    (moved,) = write_summaries(client, second)
    bands = [r for r in experiment_runs(client, EXPERIMENT) if is_summary_run(r)]
    assert sorted(r.info.run_id for r in bands) == sorted([moved, untouched])
    assert client.get_run(moved).data.tags["mlflow.parentRunId"] == second
    deleted = client.search_runs([old.info.experiment_id], run_view_type=ViewType.DELETED_ONLY)
    assert rewritten in {r.info.run_id for r in deleted}


def test_each_trial_of_a_search_over_seeds_gets_a_summary_of_its_own_seeds(
    tmp_path: Path,
) -> None:
    """Seeds of search trials share their setting tag; each trial's summary, written by the
    hooks as the trial ends, averages that trial's seeds alone, and recomputes from their
    logged values; a one-seed trial has none, and the report never counts a summary."""
    uri = new_store(tmp_path / "mlflow.db")
    client = MlflowClient(uri)
    parent = _parent(client)
    experiment_id = client.get_run(parent).info.experiment_id
    write_parent(tmp_path, parent, experiment_id, uri)
    config = OmegaConf.create({"tracking": {"enabled": True, "uri": uri, "store_dir": "mlruns"}})
    hooks = LrdecayTrials(config, tmp_path, tmp_path)
    trials = {0: SEEDS[:2], 1: [[0.2, 0.3, 0.4], [0.3, 0.5, 0.6], [0.1, 0.2, 0.2]], 2: SEEDS[:1]}
    for number, seeds in trials.items():
        for seed, accs in enumerate(seeds):
            _log_run(uri, parent, "seq3-epoch", seed, accs, trial=number)
        reports = [JobReport() for _ in seeds]
        hooks.trial_told(number, TrialState.COMPLETE, reports)
    written = _summaries(client)
    assert set(written) == {"trial 0", "trial 1"}  # trial 2: one seed, no interval
    summary = written["trial 1"]
    assert summary.info.run_name == "trial 1 (mean of 3)"
    assert summary.data.tags[TRIAL_TAG] == "1" and summary.data.tags["lrdecay.seeds"] == "0,1,2"
    key = epoch_key("val_acc")
    seeds = experiment_runs(client, EXPERIMENT, filter_string=f"tags.`{TRIAL_TAG}` = '1'")
    members = [r.info.run_id for r in seeds if is_job(r)]
    assert sorted(summary.data.tags["lrdecay.summary_of"].split(",")) == sorted(members)
    logged = [_history(client, run_id, key) for run_id in members]
    mean = _history(client, summary.info.run_id, key)
    for epoch in (1, 2, 3):
        expected = float(np.mean([values[epoch] for values in logged]))
        assert mean[epoch] == pytest.approx(expected, rel=1e-12)
    # the end of the sweep writes them again: the same runs, nothing rewritten
    ids = {s.info.run_id for s in written.values()}
    assert set(write_summaries(client, parent)) == ids
    runset = load_runs(client, parent_run_id=parent)
    assert runset.runs == [] and runset.search_trials == 6  # the seeds, no summary


# ------------------------------------------------------------------ through the CLI

SWEEP = [
    "-m",
    "dataset=digits",
    "setting=seq3-epoch,adam-fixed",
    "trainer.max_epochs=2",
    "trainer.progress=off",
    "tracking.log_plot=false",
    "hydra.launcher.n_jobs=2",
]


def _history(client: MlflowClient, run_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


def _assert_recomputed(client: MlflowClient, summary, seeds: int) -> None:
    """Every number of ``summary`` equals the mean and t-interval of its seeds' logged values,
    recomputed here from the store, and its seeds are its setting's finished jobs."""
    tags = summary.data.tags
    members = tags["lrdecay.summary_of"].split(",")
    group = TRIAL_TAG if TRIAL_TAG in tags else "setting"  # a search trial's, or a setting's
    jobs = [
        r
        for r in experiment_runs(client)
        if is_job(r)
        and r.data.tags.get(group) == tags[group]
        and r.data.tags["mlflow.parentRunId"] == tags["mlflow.parentRunId"]
    ]
    assert sorted(members) == sorted(r.info.run_id for r in jobs) and len(members) == seeds
    assert summary.info.run_name == f"{tags['setting']} (mean of {seeds})"
    run_id = summary.info.run_id
    for key in (*EPOCH_METRICS, *(summary_key(name) for name in SUMMARY_METRICS)):
        by_epoch: dict[int, list[float]] = defaultdict(list)
        for member in members:
            for step, value in _history(client, member, key).items():
                by_epoch[step].append(value)
        mean, (lower, upper) = _history(client, run_id, key), bound_keys(key)
        lo, hi = _history(client, run_id, lower), _history(client, run_id, upper)
        assert len(mean) == len(by_epoch), key  # one value per step: nothing appended twice
        for step, values in by_epoch.items():
            expected = _interval(values)
            assert (mean[step], lo[step], hi[step]) == pytest.approx(expected, rel=1e-12), key
    reached = _history(client, run_id, epoch_key("n_seeds"))
    assert reached == {1: seeds, 2: seeds}
    assert summary.data.metrics[summary_key("n_seeds")] == seeds


def _assert_table_agrees(table: Path, summaries: dict) -> None:
    """The report's ``table.csv`` holds the numbers the summary runs hold (to its 6 digits)."""
    rows = {r["setting"]: r for r in csv.DictReader(table.open())}
    assert set(rows) == set(summaries)
    for setting, summary in summaries.items():
        metrics, row = summary.data.metrics, rows[setting]
        final = summary_key("final_val_acc")
        half = (metrics[final + "_hi"] - metrics[final + "_lo"]) / 2
        assert float(row["final_acc_mean"]) == pytest.approx(metrics[final], rel=1e-5)
        assert float(row["final_acc_ci95"]) == pytest.approx(half, rel=1e-5)
        assert int(row["final_acc_n"]) == metrics[summary_key("n_seeds")] == int(row["runs"])


@pytest.mark.slow
def test_a_sweep_and_its_relaunch_with_one_more_seed_keep_every_band_exact(
    tmp_path: Path,
) -> None:
    seed_store(tmp_path)
    first = run_cli([*SWEEP, "seed=0,1"], cwd=tmp_path, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "4 jobs: 4 finished" in first.stdout  # the sweep's table: jobs, never summaries
    client = store(tmp_path)
    before = {r.data.tags["setting"]: r for r in experiment_runs(client) if is_summary_run(r)}
    assert sorted(before) == ["adam-fixed", "seq3-epoch"]
    for summary in before.values():
        _assert_recomputed(client, summary, seeds=2)
    (report,) = sorted(tmp_path.glob("multirun/*/*/report/table.csv"))
    _assert_table_agrees(report, before)

    again = run_cli([*SWEEP, "seed=0,1,2"], cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "6 jobs: 6 finished" in again.stdout
    assert again.stdout.count("skipped: FINISHED as run") == 4  # no summary taken for a seed
    after = {r.data.tags["setting"]: r for r in experiment_runs(client) if is_summary_run(r)}
    assert sorted(after) == ["adam-fixed", "seq3-epoch"]
    for setting, summary in after.items():
        _assert_recomputed(client, summary, seeds=3)
        assert client.get_run(before[setting].info.run_id).info.lifecycle_stage == "deleted"
    *_, report = sorted(tmp_path.glob("multirun/*/*/report/table.csv"))  # the re-launch's
    _assert_table_agrees(report, after)


@pytest.mark.slow
def test_a_search_over_seeds_gets_one_band_per_trial(tmp_path: Path) -> None:
    """train.py searching with seeds_per_trial=2: each trial's summary averages its two seeds
    (recomputed from the store); the progress and the sweep's table count jobs, never
    summaries."""
    seed_store(tmp_path)
    proc = run_cli(
        [
            "-m",
            "hydra/sweeper=optuna",
            "dataset=digits",
            "trainer.max_epochs=2",
            "trainer.progress=off",
            "tracking.log_plot=false",
            "report.enabled=false",
            "hydra/sweeper/sampler=random",
            "hydra.sweeper.sampler.seed=0",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.seeds_per_trial=2",
            "optimizer.lr=interval(0.01, 0.1)",
        ],
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sweep: 4/4 done" in proc.stdout and "4 jobs: 4 finished" in proc.stdout
    client = store(tmp_path)
    summaries = {r.data.tags["setting"]: r for r in experiment_runs(client) if is_summary_run(r)}
    assert sorted(summaries) == ["trial 0", "trial 1"]
    for summary in summaries.values():
        _assert_recomputed(client, summary, seeds=2)
