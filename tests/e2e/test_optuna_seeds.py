"""Trials scored over seeds (``hydra.sweeper.seeds_per_trial``): each trial's configuration runs
with K seeds, the study is told their mean (or pessimistic 95 % bound), pruning reads the seeds'
mean and stops them all, a failed seed fails the trial, and a resumed study runs only its
missing trials. Searches run ``tests/noisy_app.py`` (a known true value plus seed noise, no
training): seconds each."""

from __future__ import annotations

import math
import re
import statistics
import subprocess
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState
from scipy import stats

from hydra_plugins.lrdecay_optuna_sweeper._impl import OptunaSweeperImpl
from hydra_plugins.lrdecay_optuna_sweeper._jobs import Outcome, combine
from hydra_plugins.lrdecay_optuna_sweeper._space import SweepError
from hydra_plugins.lrdecay_optuna_sweeper._study import open_checked
from hydra_plugins.lrdecay_optuna_sweeper.seeds import (
    ONE_RUN,
    PRUNED_ATTR,
    SEEDS_ATTR,
    VALUE_PREFIX,
    Scoring,
    TrialReporter,
    pruned_at,
    settle_means,
    step_means,
    trial_id,
)
from hydra_plugins.lrdecay_optuna_sweeper.trial_hooks import StudyInfo
from lrdecay.sweep.trials import LrdecayTrials
from tests.helpers import ROOT, load_search, run_search
from tests.noisy_app import EPOCHS_FILE, value_at

APP = ROOT / "tests" / "noisy_app.py"
STUDY = "seeds"
T3 = float(stats.t.ppf(0.975, 2))  # the t multiplier of three seeds, computed here on its own


def run_noisy(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``tests/noisy_app.py`` searched over ``x`` (:func:`~tests.helpers.run_search`) in
    ``cwd``."""
    return run_search(APP, STUDY, ["x=interval(-3, 3)", *args], cwd)


def load_study(cwd: Path) -> optuna.Study:
    """The study a search run by :func:`run_noisy` in ``cwd`` left."""
    return load_search(cwd, STUDY)


def launched(out: str) -> list[int]:
    """The job numbers Hydra's launchers logged (``#4 : x=...``)."""
    return [int(n) for n in re.findall(r"\t#(\d+) : ", out)]


# ---------------------------------------------------------------- fast: no search


def test_scoring_is_the_mean_or_the_pessimistic_end_of_the_t_interval() -> None:
    values = [1.0, 2.5, 0.2]
    mean = statistics.mean(values)
    half = T3 * statistics.stdev(values) / math.sqrt(3)
    assert Scoring(3, "mean").value(values, maximize=True) == pytest.approx(mean)
    assert Scoring(3, "lcb").value(values, maximize=True) == pytest.approx(mean - half)
    assert Scoring(3, "lcb").value(values, maximize=False) == pytest.approx(mean + half)
    assert Scoring(3).seeds_from(42) == [42, 43, 44] and ONE_RUN.seeds_from(42) == []
    assert ONE_RUN.problem() is None and Scoring(3, "lcb").problem() is None
    assert "seeds_per_trial >= 2" in (Scoring(1, "lcb").problem() or "")
    assert "not one of mean, lcb" in (Scoring(3, "median").problem() or "")
    assert ">= 1" in (Scoring(0).problem() or "")
    assert Scoring(3, "lcb").describe() == "pessimistic 95 % bound over 3 seeds"


def test_a_trial_is_failed_by_one_seed_and_scored_per_objective() -> None:
    """A failed seed fails the trial, naming it; a pruned one prunes it; otherwise each
    objective is scored over the seeds in its own direction."""
    ok = [Outcome(TrialState.COMPLETE, [v, -v]) for v in (1.0, 2.0, 4.0)]
    broken = Outcome(TrialState.FAIL, reason="RuntimeError: boom")
    failed = combine([ok[0], broken, ok[2]], [7, 8, 9], Scoring(3), ["maximize", "minimize"])
    assert failed.state == TrialState.FAIL and failed.reason == "seed 8: RuntimeError: boom"
    pruned = combine([ok[0], Outcome(TrialState.PRUNED)], [7, 8], Scoring(2), ["maximize"])
    assert pruned.state == TrialState.PRUNED and pruned.values is None
    both = combine(ok, [7, 8, 9], Scoring(3, "lcb"), ["maximize", "minimize"])
    mean, half = 7 / 3, T3 * statistics.stdev([1.0, 2.0, 4.0]) / math.sqrt(3)
    assert both.state == TrialState.COMPLETE and len(both.parts) == 3
    assert both.values == pytest.approx([mean - half, -mean + half])  # each on its worse side


def _study_with_a_finished_trial(url: str) -> optuna.Study:
    """A maximising study (median pruner from one finished trial) whose trial 0 scored 0.0 at
    step 1."""
    study = optuna.create_study(
        study_name=STUDY,
        storage=url,
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
    )
    study.add_trial(optuna.trial.create_trial(value=0.0, intermediate_values={1: 0.0}))
    return study


def test_seed_reports_give_the_trial_their_mean_and_one_prune_stops_them_all(
    tmp_path: Path,
) -> None:
    """Three seed jobs of one trial report through the real storage: the trial's value at a step
    is the mean of the seeds that reached it, the pruner judges that mean, and once one seed
    pruned the trial the others stop at their next report without recording."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = _study_with_a_finished_trial(url)
    trial = study.ask()
    trial.set_user_attr(SEEDS_ATTR, [0, 1, 2])
    storage = optuna.storages.RDBStorage(url)
    ident = trial_id(storage, STUDY, trial.number)
    seeds = {s: TrialReporter(storage, study, ident, s) for s in (0, 1, 2)}
    assert seeds[0].report(1, 3.0) is False  # mean 3.0: above the median 0.0
    assert seeds[1].report(1, -1.0) is False  # alone it would be pruned; the mean 1.0 is not
    assert storage.get_trial(ident).intermediate_values == {1: pytest.approx(1.0)}
    assert seeds[2].report(1, -8.0) is True  # mean -2.0: pruned, and flagged
    assert seeds[0].report(2, 3.0) is True and seeds[1].pruned()  # the others stop
    attrs = storage.get_trial_system_attrs(ident)
    assert pruned_at(attrs) == 1 and step_means(attrs) == {1: pytest.approx(-2.0)}
    assert sorted(k for k in attrs if k.startswith(VALUE_PREFIX)) == [
        f"{VALUE_PREFIX}{s}:1" for s in (0, 1, 2)
    ]  # seed 0's step 2 was never recorded
    storage.set_trial_intermediate_value(ident, 1, 3.0)  # a crossed write, as two seeds may
    settle_means(storage, ident)
    assert storage.get_trial(ident).intermediate_values == {1: pytest.approx(-2.0)}
    with pytest.raises(ValueError, match="not seed 5"):
        TrialReporter(storage, study, ident, 5)


def test_a_lone_job_reports_as_optuna_and_flags_its_prune(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = _study_with_a_finished_trial(url)
    storage = optuna.storages.RDBStorage(url)
    ident = trial_id(storage, STUDY, study.ask().number)
    reporter = TrialReporter(storage, study, ident, seed=42)  # no seeds: its seed is unused
    assert reporter.report(1, 5.0) is False and reporter.report(2, -9.0, last=True) is False
    assert storage.get_trial(ident).intermediate_values == {1: 5.0, 2: -9.0}
    assert PRUNED_ATTR not in storage.get_trial_system_attrs(ident)
    lone = trial_id(storage, STUDY, study.ask().number)
    assert TrialReporter(storage, study, lone).report(1, -9.0) is True
    assert storage.get_trial_system_attrs(lone)[PRUNED_ATTR] == 1


def test_a_study_keeps_the_scoring_of_its_trials(tmp_path: Path) -> None:
    """A study scored over 3 seeds takes no one-run trials (nor an older one-run study seeded
    trials); a study with only queued trials takes any."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    scored = Scoring(3, "lcb")
    _, study = open_checked(url, "a", {"name": "none"}, ["maximize"], None, scored)
    study.add_trial(optuna.trial.create_trial(value=1.0))
    open_checked(url, "a", {"name": "none"}, ["maximize"], None, scored)  # the same: fine
    with pytest.raises(SweepError, match=r"seeds_per_trial=3 trial_score=lcb .*another"):
        open_checked(url, "a", {"name": "none"}, ["maximize"], None, ONE_RUN)
    _, old = open_checked(url, "b", {"name": "none"}, ["maximize"], None, ONE_RUN)
    old.enqueue_trial({"x": 1.0})  # queued, not scored yet
    open_checked(url, "b", {"name": "none"}, ["maximize"], None, scored)
    _, old = open_checked(url, "c", {"name": "none"}, ["maximize"], None)
    old.add_trial(optuna.trial.create_trial(value=1.0))
    with pytest.raises(SweepError, match="seeds_per_trial=1"):
        open_checked(url, "c", {"name": "none"}, ["maximize"], None, Scoring(2))


def _sweeper(**settings: object) -> OptunaSweeperImpl:
    return OptunaSweeperImpl(
        sampler=None,
        pruner=None,
        direction=None,
        storage=None,
        study_name=None,
        n_trials=1,
        n_jobs=1,
        max_failures=1,
        params=None,
        custom_search_space=None,
        **settings,  # type: ignore[arg-type]
    )


def test_trial_seeds_start_at_the_configs_seed_key() -> None:
    sweeper = _sweeper(seeds_per_trial=3, seed_key="train.seed")
    sweeper.config = OmegaConf.create({"train": {"seed": 7}})
    assert sweeper._trial_seeds() == [7, 8, 9]
    sweeper.config = OmegaConf.create({"seed": 7})
    with pytest.raises(SweepError, match=r"lacks\. Fix: hydra\.sweeper\.seed_key="):
        sweeper._trial_seeds()
    one = _sweeper()
    one.config = OmegaConf.create({})
    assert one._trial_seeds() == []  # one seed: the config's, untouched


def test_the_confirm_stage_uses_none_of_the_trials_seeds(tmp_path: Path) -> None:
    """This project's confirm seeds come after the config's seed and skip every trial's."""
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=1.0))
    hooks = LrdecayTrials(OmegaConf.create({"seed": 42}), tmp_path, tmp_path)
    info = StudyInfo(study, storage, "sqlite://", {"name": "none"}, "seed", (42, 43, 44))
    assert hooks.confirm_overrides(info, study.best_trial, 2) == [["seed=45"], ["seed=46"]]
    alone = StudyInfo(study, storage, "sqlite://", {"name": "none"})
    assert hooks.confirm_overrides(alone, study.best_trial, 2) == [["seed=43"], ["seed=44"]]


def _sweep_size(*overrides: str) -> int | None:
    """How many jobs the progress line counts for ``train.py -m hydra/sweeper=optuna ...``."""
    from hydra import compose, initialize_config_dir

    from lrdecay.sweep.launcher import sweep_size
    from tests.helpers import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        config = compose("config", ["hydra/sweeper=optuna", *overrides], return_hydra_config=True)
    return sweep_size(config.hydra)


def test_the_sweeps_size_counts_every_seed_of_every_trial() -> None:
    """ "n/N done" counts jobs: K per trial with seeds_per_trial=K, then the confirm stage's."""
    assert _sweep_size("hydra.sweeper.n_trials=4") == 4
    assert _sweep_size("hydra.sweeper.n_trials=4", "hydra.sweeper.seeds_per_trial=3") == 12
    confirmed = ("hydra.sweeper.confirm.enabled=true", "hydra.sweeper.confirm.seeds=5")
    assert (
        _sweep_size("hydra.sweeper.n_trials=4", "hydra.sweeper.seeds_per_trial=3", *confirmed) == 17
    )


# ---------------------------------------------------------------- slow: real searches


def check_seed_values(trial: optuna.trial.FrozenTrial, pair: bool = False) -> list[float]:
    """Assert that ``trial`` ran seeds 0, 1, 2, each its own job, and recorded each one's value
    as the app computes it; returns those values."""
    expected = [value_at(trial.params["x"], s, 1.0, 0, 0) for s in (0, 1, 2)]
    recorded = trial.user_attrs["seed_values"]
    assert trial.user_attrs["seeds"] == [0, 1, 2]
    assert ([v[0] for v in recorded] if pair else recorded) == pytest.approx(expected)
    return expected


def sweep_job(cwd: Path, number: int, seed: int) -> Path:
    """The folder of trial ``number``'s job with ``seed``, checked to have run with it."""
    job = cwd / "multirun" / f"{number}-seed{seed}"
    assert f"seed={seed}" in (job / ".hydra" / "overrides.yaml").read_text()
    return job


@pytest.mark.slow
def test_lcb_scores_each_objective_on_its_worse_side_and_confirms_on_fresh_seeds(
    tmp_path: Path,
) -> None:
    """trial_score=lcb over 3 seeds, two objectives (the value maximised, its negative
    minimised): each trial's values are mean − t·sd/√3 and −mean + t·sd/√3. The confirm stage
    runs the winner with seeds no trial ran."""
    proc = run_noisy(
        [
            "hydra.sweeper.trial_hooks=noisy_app.NoisyTrials",
            "hydra.sweeper.confirm.enabled=true",
            "hydra.sweeper.confirm.seeds=2",
            "hydra/sweeper/sampler=random",
            "hydra.sweeper.sampler.seed=0",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.seeds_per_trial=3",
            "hydra.sweeper.trial_score=lcb",
            "hydra.sweeper.direction=[maximize,minimize]",
            "pair=true",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = load_study(tmp_path).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    for t in trials:
        values = check_seed_values(t, pair=True)
        mean = statistics.mean(values)
        half = T3 * statistics.stdev(values) / math.sqrt(3)
        assert t.values == pytest.approx([mean - half, -mean + half])
        assert all(sweep_job(tmp_path, t.number, s).is_dir() for s in (0, 1, 2))
    out = proc.stdout + proc.stderr
    assert "pessimistic 95 % bound over 3 seeds" in out
    rows = (tmp_path / "multirun" / "confirmation.csv").read_text().splitlines()
    assert [r.split(",")[1] for r in rows[1:]] == ["seed=3", "seed=4"]  # fresh: not 0, 1, 2
    assert "trial 0's configuration with 2 fresh seed(s)" in out or "trial 1's" in out
    assert re.search(r"search   value0 .*\(trial \d, pessimistic 95 % bound over 3 seeds\)", out)


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_a_pruned_trial_stops_all_its_seeds(launcher: str, tmp_path: Path) -> None:
    """x = 1 first, then the hopeless x = -2: the median pruner reads the seeds' mean at epoch 1
    and prunes the second trial; all three of its seeds stop there (run side by side, or one
    after the other: the later ones stop at their first epoch)."""
    study = optuna.create_study(
        study_name=STUDY, storage=f"sqlite:///{tmp_path / 'optuna.db'}", direction="maximize"
    )
    study.enqueue_trial({"x": 1.0})
    study.enqueue_trial({"x": -2.0})
    proc = run_noisy(
        [
            f"hydra/launcher={launcher}",
            "hydra.sweeper.trial_hooks=noisy_app.NoisyTrials",
            "hydra/sweeper/pruner=median",
            "hydra.sweeper.pruner.n_startup_trials=1",
            "hydra.sweeper.direction=maximize",
            "hydra.sweeper.seeds_per_trial=3",
            "hydra.sweeper.n_trials=2",
            "epochs=4",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    good, hopeless = load_study(tmp_path).trials
    assert good.state == TrialState.COMPLETE and hopeless.state == TrialState.PRUNED
    assert good.intermediate_values == {
        e: pytest.approx(statistics.mean(value_at(1.0, s, 1.0, e, 4) for s in (0, 1, 2)))
        for e in (1, 2, 3, 4)
    }
    sweep = tmp_path / "multirun"
    ran = [int((sweep / f"1-seed{s}" / EPOCHS_FILE).read_text()) for s in (0, 1, 2)]
    assert max(ran) < 4, ran  # every seed stopped early
    reported = {
        tuple(map(int, k[len(VALUE_PREFIX) :].split(":"))): v
        for k, v in hopeless.system_attrs.items()
        if k.startswith(VALUE_PREFIX)
    }
    assert reported and all(
        v == pytest.approx(value_at(-2.0, s, 1.0, e, 4)) for (s, e), v in reported.items()
    )
    for step, value in hopeless.intermediate_values.items():  # the mean of who got there
        there = [v for (_, e), v in reported.items() if e == step]
        assert value == pytest.approx(statistics.mean(there))
    if launcher == "basic":  # one after the other: seed 0 alone reached epoch 1
        assert list(reported) == [(0, 1)] and ran == [1, 1, 1]
    assert "trial 1 pruned" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_a_failed_seed_fails_its_trial(tmp_path: Path) -> None:
    proc = run_noisy(
        [
            "hydra.sweeper.seeds_per_trial=3",
            "hydra.sweeper.direction=maximize",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.max_failures=2",
            "fail_seed=1",
        ],
        tmp_path,
    )
    assert proc.returncode == 1  # the search failed
    last = proc.stderr.strip().splitlines()[-1]
    assert "stopped after 2 failed trials" in last
    assert "first job error: seed 1: RuntimeError: seed 1 fails" in last
    assert [t.state for t in load_study(tmp_path).trials] == [TrialState.FAIL] * 2
    assert sweep_job(tmp_path, 0, 2).is_dir()  # its other seeds ran


@pytest.mark.slow
def test_trials_are_their_seeds_mean_and_a_resumed_search_runs_only_missing_ones(
    tmp_path: Path,
) -> None:
    """Three seeds per trial, each its own job (numbered trial × 3 + the seed's index) and
    folder; the trial's value is the mean of the values its seeds recorded. n_trials counts
    trials: 2, then 3 runs one more trial (its 3 seeds) and leaves the first two alone."""
    scored = [
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=0",
        "hydra.sweeper.direction=maximize",
        "hydra.sweeper.seeds_per_trial=3",
    ]
    first = run_noisy([*scored, "hydra.sweeper.n_trials=2"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert launched(first.stdout + first.stderr) == list(range(6))
    ended = {t.number: t.datetime_complete for t in load_study(tmp_path).trials}
    more = run_noisy([*scored, "hydra.sweeper.n_trials=3"], tmp_path)
    assert more.returncode == 0, more.stderr[-3000:]
    out = more.stdout + more.stderr
    assert "2 finished trial(s), 1 to run" in out and "mean of 3 seeds" in out
    assert launched(out) == [6, 7, 8]  # trial 2's three seeds, nothing else
    trials = load_study(tmp_path).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert {t.number: t.datetime_complete for t in trials[:2]} == ended
    for t in trials:
        assert t.value == pytest.approx(statistics.mean(check_seed_values(t)))
        assert all(sweep_job(tmp_path, t.number, s).is_dir() for s in (0, 1, 2))
    header = (tmp_path / "multirun" / "trials.csv").read_text().splitlines()[0]
    assert header.split(",")[:4] == ["trial", "state", "value0", "x"]
    assert "seed_values" in header and "seeds" in header
