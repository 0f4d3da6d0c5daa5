"""A sweep's data prepared once, in the launching process, before any job starts or any run is
created: the data sets a sweep's jobs use."""

from __future__ import annotations

from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import DictConfig

from lrdecay.config import LrdecayConfig, validate
from lrdecay.sweep.datasets import data_choices, job_config, sweep_data_configs
from tests.helpers import (
    CONF_DIR,
)

#: A sweep's quiet, cheap settings (no report, no curves, no progress bars).
QUIET = ["trainer.progress=off", "tracking.log_plot=false", "report.enabled=false"]


def _multirun_config(overrides: list[str]) -> DictConfig:
    """The config a ``python train.py -m <overrides>`` launcher composes (swept keys left at
    their base values); Hydra stays initialised for the sweep's own compositions."""
    loader = GlobalHydra.instance().config_loader()
    return loader.load_configuration("config", overrides, run_mode=RunMode.MULTIRUN)


def _sweep_data(overrides: list[str]) -> list[LrdecayConfig]:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        config = _multirun_config(overrides)
        return sweep_data_configs(config, validate(job_config(config)))


def test_only_the_overrides_that_can_change_the_data_are_enumerated() -> None:
    choices, swept = data_choices(
        [
            "seed=0,1,2",
            "sequence=seq1,seq2",
            "optimizer.lr=0.1,0.01",
            "dataset=mnist,fashion_mnist",
            "data.root=/x",
            "+setting=seq1-epoch,sgd-fixed",
            "dataset.val_fraction=interval(0, 0.5)",  # not enumerable: its base value stands
            "hydra.launcher.n_jobs=2",
        ]
    )
    assert choices == [
        ["dataset=mnist", "dataset=fashion_mnist"],
        ["data.root=/x"],
        ["+setting=seq1-epoch", "+setting=sgd-fixed"],
    ]
    assert swept
    assert data_choices(["seed=0,1", "dataset=digits", "data.root=/x"]) == (
        [["dataset=digits"], ["data.root=/x"]],
        False,
    )


def test_a_data_set_swept_over_one_value_is_still_a_sweep() -> None:
    """A swept key is left at its base value by the launcher's own config: compose it."""
    (conf,) = _sweep_data(["dataset=choice(digits)", "seed=0,1"])
    assert conf.dataset.name == "digits"


def test_a_sweep_that_varies_no_data_uses_its_base_config() -> None:
    (conf,) = _sweep_data(["sequence=seq1,seq2,seq3,seq4", "strategy=epoch,cutoff", "seed=0,1"])
    assert conf.dataset.name == "mnist"


def test_each_data_set_a_sweep_swaps_in_is_composed_once() -> None:
    """The base config's data set (mnist) is no job's here: only the swept ones count."""
    confs = _sweep_data(["dataset=digits,fashion_mnist", "seed=0,1,2", "data.root=/d1,/d2"])
    assert sorted((c.dataset.name, c.data.root) for c in confs) == [
        ("digits", "/d1"),
        ("digits", "/d2"),
        ("fashion_mnist", "/d1"),
        ("fashion_mnist", "/d2"),
    ]


def test_the_papers_fourteen_settings_share_one_data_set() -> None:
    (conf,) = _sweep_data(["experiment=paper", "dataset=digits"])
    assert conf.dataset.name == "digits"


def test_an_optuna_search_adds_the_data_sets_of_its_search_space() -> None:
    confs = _sweep_data(
        [
            "hydra/sweeper=optuna",
            "hydra.sweeper.n_trials=2",
            "dataset=choice(digits,fashion_mnist)",
            "optimizer.lr=tag(log, interval(1e-4, 1e-1))",
        ]
    )
    assert sorted(c.dataset.name for c in confs) == ["digits", "fashion_mnist"]
