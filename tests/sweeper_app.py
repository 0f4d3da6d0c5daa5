"""A tiny Hydra app for the Optuna sweeper's tests: a cheap objective in place of training.

python tests/sweeper_app.py -m hydra/sweeper=lrdecay_optuna 'x=interval(-2, 2)' 'y=range(-2, 3)'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

if TYPE_CHECKING:
    import optuna

#: ``error``: every job raises, as a job with a bug would.
ConfigStore.instance().store(name="quadratic", node={"x": 0.0, "y": 0, "error": False})


@hydra.main(version_base="1.3", config_path=None, config_name="quadratic")
def main(cfg: DictConfig) -> float:
    """(x - 1)² + (y - 1)², minimal at x = y = 1; raises when ``error`` is set."""
    if cfg.error:
        raise RuntimeError("cfg.error is True")
    return (float(cfg.x) - 1.0) ** 2 + (float(cfg.y) - 1.0) ** 2


def conditional_space(cfg: DictConfig, trial: optuna.Trial) -> None:
    """A define-by-run space (``hydra.sweeper.custom_search_space=sweeper_app.conditional_space``
    with this file as the app): y always, x only in trials whose y is 1."""
    if trial.suggest_categorical("y", [0, 1]) == 1:
        trial.suggest_float("x", -2.0, 2.0)


if __name__ == "__main__":
    main()
