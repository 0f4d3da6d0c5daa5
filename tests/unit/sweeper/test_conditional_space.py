"""Conditional search spaces in the Optuna sweeper: ``hydra.sweeper.conditions`` (checked at
start-up, parents sampled first, a parameter absent from the trials whose condition fails),
the ``custom_search_space`` hook branching on its own suggestions, and ``experiment=tune``
sampling ``strategy.rate`` only for the cutoff strategy, end to end."""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import optuna
import pytest
import yaml
from hydra import compose, initialize_config_dir
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from hydra_plugins.lrdecay_optuna_sweeper._results import trials_table
from hydra_plugins.lrdecay_optuna_sweeper._space import (
    Condition,
    SweepError,
    conditional_space,
    describe_space,
    order_space,
    parse_condition,
    parse_search_space,
    sample,
)
from tests.helpers import CONF_DIR, ROOT, load_search, run_cli, run_search

APP = ROOT / "tests" / "sweeper_app.py"

#: x continuous, kind a choice, depth an int range: the parents a condition may name.
SPACE_LINES = [
    "x=interval(0.0, 1.0)",
    "kind=choice(a, b, c)",
    "depth=range(1, 4)",
    "width=choice(8, 16)",
]


def _space() -> tuple[dict, dict[str, str]]:
    return parse_search_space([*SPACE_LINES, "fixed=3", "mode=fast"])


# ---------------------------------------------------------------- fast: the pure functions


def test_a_condition_reads_as_a_hydra_override() -> None:
    assert parse_condition("x", "kind=a") == ("kind", ("a",))
    assert parse_condition("x", "kind=a,b") == ("kind", ("a", "b"))
    assert parse_condition("x", "kind=choice(a, c)") == ("kind", ("a", "c"))
    assert parse_condition("x", "depth=range(2, 4)") == ("depth", (2, 3))
    assert parse_condition("x", "width=16") == ("width", (16,))  # a number, as in params
    assert parse_condition("x", "+extra=on") == ("extra", ("on",))
    for bad in ("kind", "kind=interval(0, 1)", "kind=[a,b]"):
        with pytest.raises(SweepError, match=r"hydra\.sweeper\.conditions\.x: .*parent"):
            parse_condition("x", bad)


def test_parents_are_sampled_first_otherwise_in_the_given_order() -> None:
    space = {name: CategoricalDistribution([0, 1]) for name in "abcde"}
    # c depends on e, e on d: d and e move before c; a, b keep their places
    order = order_space(space, {"c": "e", "e": "d"})
    assert list(order) == ["a", "b", "d", "e", "c"]
    assert order["c"] is space["c"]
    assert list(order_space(space, {})) == list(space)
    with pytest.raises(SweepError, match=r"c → e → d → c is a cycle"):
        order_space(space, {"c": "e", "e": "d", "d": "c"})
    with pytest.raises(SweepError, match=r"a → a is a cycle"):
        order_space(space, {"a": "a"})


def test_conditions_give_the_space_in_sampling_order() -> None:
    space, fixed = _space()
    ordered, conditions = conditional_space(
        {"x": "kind=a,b", "width": "depth=3", "kind": "depth=1,3"}, space, fixed
    )
    assert list(ordered) == ["depth", "kind", "x", "width"]  # each parent before its child
    assert conditions == {
        "x": Condition("kind", ("a", "b")),
        "kind": Condition("depth", (1, 3)),
        "width": Condition("depth", (3,)),
    }
    assert describe_space(ordered, conditions) == (
        "depth, kind (if depth=1,3), x (if kind=a,b), width (if depth=3)"
    )
    assert conditional_space(None, space, fixed) == (space, {})
    assert conditional_space({}, space, fixed) == (space, {})


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        ({"y": "kind=a"}, r"conditions: y is not a searched parameter \(searched: x, kind,"),
        ({"x": "colour=red"}, r"conditions\.x: its parent colour is neither searched nor set"),
        ({"x": "kind=a,z"}, r"conditions\.x: z not among kind's values \(a, b, c\)"),
        ({"x": "depth=4"}, r"conditions\.x: 4 not among depth's values \(1, 2, 3\)"),
        ({"kind": "x=0.5"}, r"x is a continuous interval; a condition's parent must be discrete"),
        ({"kind": "width=8", "width": "kind=a"}, r"kind → width → kind is a cycle"),
        ({"x": "kind"}, r"conditions\.x: 'kind' is not 'parent=value'"),
    ],
)
def test_a_wrong_condition_is_refused_at_start_up(conditions: dict, message: str) -> None:
    space, fixed = _space()
    with pytest.raises(SweepError, match=message):
        conditional_space(conditions, space, fixed)


def test_a_fixed_parent_decides_once_and_a_fixed_child_keeps_its_value() -> None:
    """``strategy=cutoff`` on the command line with ``tune``'s condition: the rate is searched
    in every trial; ``strategy=epoch``: in none (with what is conditioned on it)."""
    space, fixed = _space()
    ordered, conditions = conditional_space({"x": "mode=fast,slow"}, space, fixed)
    assert ordered == space and conditions == {}
    ordered, conditions = conditional_space(
        {"kind": "mode=slow", "x": "kind=a", "depth": "fixed=3"}, space, fixed
    )  # kind is never sampled, so neither is x, conditioned on it
    assert list(ordered) == ["depth", "width"] and conditions == {}
    # a searched parameter fixed on the command line is no longer searched: its condition goes
    space, fixed = parse_search_space([*SPACE_LINES, "x=0.25"])
    ordered, conditions = conditional_space({"x": "kind=a"}, space, fixed)
    assert "x" not in ordered and conditions == {} and fixed["x"] == "x=0.25"


def test_a_parameter_is_sampled_only_when_its_condition_holds() -> None:
    """Define-by-run on a real study: a child is absent from the trials whose parent took
    another value, and so is a grandchild whose parent is absent."""
    space, fixed = _space()
    ordered, conditions = conditional_space(
        {"x": "kind=a", "depth": "kind=a,b", "width": "depth=1"}, space, fixed
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(60):
        trial = study.ask()
        sampled = sample(trial, ordered, conditions)
        assert sampled == trial.params
        kind = trial.params["kind"]
        assert ("x" in trial.params) == (kind == "a")
        assert ("depth" in trial.params) == (kind in ("a", "b"))
        assert ("width" in trial.params) == (trial.params.get("depth") == 1)
        seen.add((kind, trial.params.get("depth")))
        study.tell(trial, 0.0)
    assert {("a", 1), ("b", 2), ("c", None)} <= seen
    # a retried trial (its parameters queued) samples the same subset again
    first = study.trials[0]
    study.enqueue_trial(dict(first.params))
    retry = study.ask()
    assert sample(retry, ordered, conditions) == first.params


def test_tpe_samples_a_conditional_space_without_warnings() -> None:
    """The TPE defaults (``hydra/sweeper/sampler=tpe``): past its start-up trials it models the
    conditional parameter from the trials that have it, and warns of nothing."""
    space, fixed = parse_search_space(
        [
            "optimizer.lr=tag(log, interval(1e-4, 1e-1))",
            "strategy=choice(epoch, cutoff)",
            "strategy.rate=tag(log, interval(1e-3, 1e-1))",
        ]
    )
    ordered, conditions = conditional_space({"strategy.rate": "strategy=cutoff"}, space, fixed)
    cfg = _compose("hydra/sweeper=optuna")
    settings = {k: v for k, v in cfg.hydra.sweeper.sampler.items() if k != "_target_"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampler = optuna.samplers.TPESampler(**{**settings, "n_startup_trials": 3, "seed": 0})
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for _ in range(12):
            trial = study.ask()
            params = sample(trial, ordered, conditions)
            assert ("strategy.rate" in params) == (params["strategy"] == "cutoff")
            study.tell(trial, params.get("strategy.rate", 0.0) - params["optimizer.lr"])
    assert sum("strategy.rate" in t.params for t in study.trials) >= 3


def test_the_trials_table_leaves_absent_parameters_empty(tmp_path: Path) -> None:
    """``trials.csv`` has an empty cell where a trial has no such parameter, and Optuna's
    parameter importances (what a report plots) take the trials as they are."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for i in range(12):
        trial = study.ask({"strategy": CategoricalDistribution(["epoch", "cutoff"])})
        if trial.params["strategy"] == "cutoff":
            trial.suggest_float("strategy.rate", 1e-3, 1e-1, log=True)
        study.tell(trial, 0.9 - i / 100)
    table = trials_table(study, ["val_acc"], ["maximize"])
    table.to_csv(tmp_path / "trials.csv", index=False)
    lines = (tmp_path / "trials.csv").read_text().splitlines()
    assert lines[0] == "trial,state,val_acc,strategy,strategy.rate"
    epoch = [line for line in lines[1:] if ",epoch" in line]
    assert epoch and all(line.endswith(",epoch,") for line in epoch)  # empty, not made up
    assert len(epoch) < 12
    importances = optuna.importance.get_param_importances(study)
    assert "strategy" in importances and sum(importances.values()) == pytest.approx(1.0)


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def test_tune_samples_the_cutoff_rate_only_for_cutoff() -> None:
    """``experiment=tune`` states the condition, and its space orders and checks it."""
    sweeper = _compose("experiment=tune", "dataset=digits").hydra.sweeper
    assert dict(sweeper.conditions) == {"strategy.rate": "strategy=cutoff"}
    lines = [f"{k}={v}" for k, v in sweeper.params.items()]
    space, fixed = parse_search_space([*lines, "strategy=epoch,cutoff,oscillate"])
    ordered, conditions = conditional_space(sweeper.conditions, space, fixed)
    assert conditions == {"strategy.rate": Condition("strategy", ("cutoff",))}
    assert list(ordered).index("strategy") < list(ordered).index("strategy.rate")
    assert ordered["strategy.rate"] == FloatDistribution(1e-3, 1e-1, log=True)
    assert ordered["dataset.batch_size"] == CategoricalDistribution([32, 64, 128])
    # no conditions in a plain search; null clears the preset's
    assert dict(_compose("hydra/sweeper=optuna").hydra.sweeper.conditions) == {}
    cleared = _compose("experiment=tune", "hydra.sweeper.conditions=null").hydra.sweeper
    assert cleared.conditions is None
    added = _compose("hydra/sweeper=optuna", "++hydra.sweeper.conditions={x: 'y=1,2'}")
    assert dict(added.hydra.sweeper.conditions) == {"x": "y=1,2"}


# ---------------------------------------------------------------- slow: through the CLI


def _run_app(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python tests/sweeper_app.py -m`` a search of study ``app`` in ``cwd`` (the basic
    launcher: each job in the sweeper's process, so seconds a search)."""
    basic = ["hydra/launcher=basic", "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=0"]
    return run_search(APP, "app", [*basic, *args], cwd)


def _job_overrides(sweep_dir: Path, number: int) -> list[str]:
    """The overrides the job of trial ``number`` was composed with."""
    return yaml.safe_load((sweep_dir / str(number) / ".hydra" / "overrides.yaml").read_text())


@pytest.mark.slow
def test_conditions_and_a_custom_space_through_the_cli(tmp_path: Path) -> None:
    """The documented syntax from the command line, and the custom_search_space hook doing the
    same in Python: x is sampled only when y is 1 (or 2), and only then passed to the job."""
    searches = {
        "conditions": (
            ["x=interval(-2, 2)", "y=range(0, 3)", '++hydra.sweeper.conditions={x: "y=1,2"}'],
            (1, 2),
        ),
        "custom": (["hydra.sweeper.custom_search_space=sweeper_app.conditional_space"], (1,)),
    }
    for name, (args, when) in searches.items():
        cwd = tmp_path / name
        cwd.mkdir()
        proc = _run_app([*args, "hydra.sweeper.n_trials=8"], cwd)
        assert proc.returncode == 0, proc.stderr[-3000:]
        study = load_search(cwd, "app")
        trials = study.trials
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 8
        assert {t.params["y"] in when for t in trials} == {True, False}  # both kinds drawn
        for t in trials:
            overrides = _job_overrides(cwd / "multirun", t.number)
            assert ("x" in t.params) == (t.params["y"] in when), (name, t.params)
            assert any(o.startswith("x=") for o in overrides) == ("x" in t.params)
            x = t.params.get("x", 0.0)  # the app's default when x is not sampled
            assert t.value == pytest.approx((x - 1) ** 2 + (t.params["y"] - 1) ** 2)
        results = yaml.safe_load((cwd / "multirun" / "optimization_results.yaml").read_text())
        assert results["best_params"] == study.best_trial.params
        rows = (cwd / "multirun" / "trials.csv").read_text().splitlines()
        assert rows[0] == "trial,state,value0,x,y" and any(",," in r for r in rows[1:])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hydra/sweeper/sampler=grid"], "the grid sampler gives every trial a value of every"),
        (['++hydra.sweeper.conditions={x: "y=5"}'], "5 not among y's values (0, 1, 2)"),
        (['++hydra.sweeper.conditions={z: "y=1"}'], "z is not a searched parameter"),
    ],
)
def test_a_search_with_a_wrong_condition_stops_with_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    base = ["x=range(-2, 3)", "y=range(0, 3)", '++hydra.sweeper.conditions={x: "y=1"}']
    proc = _run_app([*base, *args, "hydra.sweeper.n_trials=2"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr  # a mistake it names
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("lrdecay: hydra.sweeper.conditions") and message in last, last
    assert not (tmp_path / "multirun" / "0").exists()  # refused before any trial ran


@pytest.mark.slow
def test_tune_gives_only_cutoff_trials_a_rate(tmp_path: Path) -> None:
    """``experiment=tune`` with its TPE sampler (start-up trials, seeded): trials whose strategy
    is not cutoff have no ``strategy.rate`` in the study and none in their job's overrides."""
    proc = run_cli(
        [
            "-m",
            "experiment=tune",
            "dataset=digits",
            "trainer.progress=off",
            "tracking.log_plot=false",
            "report.enabled=false",
            "trainer.max_epochs=2",
            "hydra.sweeper.n_trials=6",
            "hydra.sweeper.sampler.seed=0",
            "strategy=epoch,cutoff,oscillate",
        ],
        cwd=tmp_path,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "strategy.rate (if strategy=cutoff)" in out
    assert "Warning" not in out, out[-3000:]
    study = optuna.load_study(study_name="tune-digits", storage=f"sqlite:///{tmp_path}/optuna.db")
    trials = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(trials) == 6
    strategies = {t.params["strategy"] for t in trials}
    assert "cutoff" in strategies and strategies - {"cutoff"}  # both kinds drawn
    (sweep_dir,) = tmp_path.glob("multirun/*/*")
    for t in trials:
        cutoff = t.params["strategy"] == "cutoff"
        assert ("strategy.rate" in t.params) == cutoff, t.params
        overrides = _job_overrides(sweep_dir, t.number)
        assert f"strategy={t.params['strategy']}" in overrides
        rates = [o for o in overrides if o.startswith("strategy.rate=")]
        if cutoff:
            assert rates == [f"strategy.rate={t.params['strategy.rate']!r}"]
        else:
            assert rates == []
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["best_params"] == study.best_trial.params
    header = (sweep_dir / "trials.csv").read_text().splitlines()[0].split(",")
    assert "strategy.rate" in header
