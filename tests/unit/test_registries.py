"""The registries (sequences, strategies, objectives, pruners) and the shared constants are the one
source of truth: the study's YAML settings, the paper preset, the config defaults and the
sweeper's options all agree with them."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from hydra_plugins.lrdecay_optuna_sweeper import config as sweeper_config
from lrdecay.components import check_components, check_scheduler
from lrdecay.config import STUDY_OPTIMIZERS, validate
from lrdecay.core.metrics import CONVERGENCE_THRESHOLD, CONVERGENCE_WINDOW, EVAL_BATCH_SIZE
from lrdecay.core.objectives import OBJECTIVES
from lrdecay.core.registry import Entry, study_names
from lrdecay.core.sequences import SEQUENCES, Geometric, make_sequence
from lrdecay.core.strategies import FIXED_STRATEGY, STRATEGIES
from lrdecay.errors import ConfigError
from lrdecay.run import run_name
from lrdecay.sweep.pruning import PRUNERS, make_pruner
from lrdecay.tracking.store import DEFAULT_STORE_DIR
from tests.conftest import CONF_DIR, compose_config

SETTING_FILES = sorted(p.stem for p in (CONF_DIR / "setting").glob("*.yaml"))


def _paper_settings() -> list[str]:
    """The settings the ``paper`` preset sweeps, as Hydra composes them."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=paper"], return_hydra_config=True)
    return [s.strip() for s in str(cfg.hydra.sweeper.params.setting).split(",")]


def _setting_name(optimizer: str, sequence: str, strategy: str) -> str:
    """The name the study gives a setting (``seq3-epoch``; ``sgd-fixed`` for a baseline)."""
    return f"{optimizer}-{strategy}" if strategy == FIXED_STRATEGY else f"{sequence}-{strategy}"


@pytest.mark.parametrize("setting", SETTING_FILES)
def test_every_setting_names_registered_options_and_is_named_by_them(setting: str) -> None:
    conf = validate(compose_config([f"setting={setting}"]))
    if conf.setting_name is not None:  # named explicitly: its derived name is another's
        assert run_name(conf) == conf.setting_name == setting
        derived = _setting_name(conf.optimizer.name, conf.sequence.name, conf.strategy.name)
        assert derived in SETTING_FILES and derived != setting
        return
    if conf.sequence.scheduler is not None:  # a PyTorch scheduler raced with the study
        check_scheduler(conf.sequence, conf.strategy.name)
        assert conf.sequence.name not in SEQUENCES and run_name(conf) == setting
        return
    if conf.optimizer.name not in STUDY_OPTIMIZERS:  # a modern optimizer at a fixed rate
        check_components(conf)
        assert (conf.sequence.name, conf.strategy.name) == ("constant", FIXED_STRATEGY)
        assert run_name(conf) == setting == f"{conf.optimizer.name}-{FIXED_STRATEGY}"
        return
    assert conf.sequence.name in SEQUENCES
    assert conf.strategy.name in STRATEGIES
    assert conf.optimizer.name in STUDY_OPTIMIZERS
    assert _setting_name(conf.optimizer.name, conf.sequence.name, conf.strategy.name) == setting


def test_the_paper_preset_lists_existing_settings_the_whole_grid_and_the_baselines() -> None:
    paper = _paper_settings()
    assert set(paper) <= set(SETTING_FILES), f"no such setting: {set(paper) - set(SETTING_FILES)}"
    assert len(paper) == len(set(paper)) == 14
    for setting in paper:
        conf = validate(compose_config([f"setting={setting}"]))  # composes: the file exists
        assert conf.sequence.name in SEQUENCES and conf.strategy.name in STRATEGIES
    grid = {f"{q}-{s}" for q in study_names(SEQUENCES) for s in study_names(STRATEGIES)}
    baselines = {f"{o}-{FIXED_STRATEGY}" for o in STUDY_OPTIMIZERS}
    assert set(paper) == grid | baselines


def test_the_control_is_sgd_fixed_at_the_decayed_settings_r0_under_its_own_name() -> None:
    control = validate(compose_config(["setting=sgd-fixed-r0"]))
    baseline = validate(compose_config(["setting=sgd-fixed"]))
    decayed = validate(compose_config(["setting=seq3-epoch"]))
    assert run_name(control) == "sgd-fixed-r0" and run_name(baseline) == "sgd-fixed"
    assert control.optimizer.lr == decayed.optimizer.lr == 10 * baseline.optimizer.lr
    assert (control.sequence.name, control.strategy.name) == ("constant", FIXED_STRATEGY)
    assert control.optimizer.node() == {**baseline.optimizer.node(), "lr": 0.01}


@pytest.mark.parametrize("name", ["sgd fixed", "a/b", "", ".hidden", "x" * 65])
def test_a_setting_name_that_is_not_a_plain_word_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="setting_name"):
        validate(compose_config([f"setting_name='{name}'"]))


def test_a_preset_naming_a_missing_setting_fails_to_compose() -> None:
    with pytest.raises(Exception, match="seq9-epoch"):
        compose_config(["setting=seq9-epoch"])


def test_config_validation_reads_the_registries() -> None:
    base = compose_config([])
    for key, registry in (("sequence", SEQUENCES), ("strategy", STRATEGIES)):
        for name in registry:
            cfg = OmegaConf.merge(base, {key: {"name": name}})
            assert getattr(validate(cfg), key).name == name
    for name in OBJECTIVES:
        assert validate(OmegaConf.merge(base, {"objective": [name]})).objective == [name]


def test_an_entry_builds_from_the_constants_it_names_and_only_those() -> None:
    assert make_sequence("seq3", gamma=0.5) == Geometric(gamma=0.5)
    assert SEQUENCES["seq1"].build(gamma=0.5, period=3).factor(1) == 0.5
    lazy = Entry("lazy", "lrdecay.core.sequences:Geometric", "r0 gamma^n", ("gamma",))
    assert lazy.build(gamma=0.25, period=3) == Geometric(gamma=0.25)
    constants = {"gamma": 0.9, "period": 10, "rate": 0.01, "shrink": 0.2}
    for registry in (SEQUENCES, STRATEGIES):
        for name, entry in registry.items():  # a built object knows its registered name
            assert entry.build(**constants).name == name


def test_objectives_have_a_direction_and_a_summary_key() -> None:
    assert OBJECTIVES["val_acc"].direction == "maximize"
    assert OBJECTIVES["convergence_epoch"].direction == "minimize"
    for name, objective in OBJECTIVES.items():
        assert objective.name == name
        assert objective.direction in ("maximize", "minimize")
        assert objective.key.startswith("summary/")


def test_the_sweepers_pruner_options_are_the_registry() -> None:
    sweeper_config.register()
    options = ConfigStore.instance().list("hydra/sweeper/pruner")
    assert sorted(o.removesuffix(".yaml") for o in options) == sorted(PRUNERS)
    for name, settings in PRUNERS.items():
        node = OmegaConf.to_container(OmegaConf.structured(settings))
        assert node["name"] == name
        assert type(make_pruner(node)).__name__ == settings.optuna_class


def test_config_defaults_and_the_engine_share_the_constants() -> None:
    from lrdecay.core.engine import TrainerSettings

    conf = validate(compose_config([]))
    assert conf.trainer.convergence_window == CONVERGENCE_WINDOW
    assert conf.trainer.convergence_threshold == CONVERGENCE_THRESHOLD
    assert conf.dataset.eval_batch_size == EVAL_BATCH_SIZE
    engine = TrainerSettings(max_epochs=1, batch_size=1)
    assert (engine.convergence_window, engine.convergence_threshold) == (4, 0.009)
    assert engine.eval_batch_size == 2048


def test_the_report_and_the_runs_default_to_the_same_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lrdecay.report.runs import default_uri
    from lrdecay.tracking.store import resolve_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    conf = validate(compose_config([]))
    assert conf.tracking.store_dir == DEFAULT_STORE_DIR
    assert default_uri() == resolve_uri(conf.tracking.uri, tmp_path / conf.tracking.store_dir)
