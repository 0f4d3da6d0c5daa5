"""Optuna's pruners as sweeper settings (``hydra/sweeper/pruner=<name>``) and each one built.

(Hydra's plugin scan imports this module through ``config``: no Optuna at import, and no
postponed annotations, which the scan's way of importing breaks for dataclasses.)
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import optuna


@dataclass
class PrunerSettings:
    """An Optuna pruner by name with its arguments: the sweeper's ``hydra/sweeper/pruner``
    options, which it stores on each trial for the job to rebuild the pruner from. This base is
    ``none`` (no pruning); each subclass is one pruner, its fields the Optuna class's keyword
    arguments."""

    optuna_class: ClassVar[str] = "NopPruner"
    name: str = "none"


@dataclass
class MedianPrunerSettings(PrunerSettings):
    """Stop a trial whose value at an epoch is worse than the median of the finished trials'
    values at that epoch, once ``n_startup_trials`` have finished and after the warm-up."""

    optuna_class: ClassVar[str] = "MedianPruner"
    name: str = "median"
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class HyperbandPrunerSettings(PrunerSettings):
    """Hyperband over epochs: ``max_resource`` ``auto`` takes the longest finished trial."""

    optuna_class: ClassVar[str] = "HyperbandPruner"
    name: str = "hyperband"
    min_resource: int = 1
    max_resource: Any = "auto"
    reduction_factor: int = 3
    bootstrap_count: int = 0


@dataclass
class PercentilePrunerSettings(MedianPrunerSettings):
    """Keep the trials in the top ``percentile`` percent at each epoch (75.0: prune the
    bottom quarter; 50.0 is the median pruner, whose other settings it shares)."""

    optuna_class: ClassVar[str] = "PercentilePruner"
    name: str = "percentile"
    percentile: float = 75.0


@dataclass
class SuccessiveHalvingPrunerSettings(PrunerSettings):
    """Asynchronous successive halving (one Hyperband bracket)."""

    optuna_class: ClassVar[str] = "SuccessiveHalvingPruner"
    name: str = "successive_halving"
    min_resource: Any = "auto"
    reduction_factor: int = 4
    min_early_stopping_rate: int = 0
    bootstrap_count: int = 0


#: The pruners, by the names ``hydra/sweeper/pruner`` and ``trial.pruner`` take: the one list
#: the sweeper's options and the jobs' :func:`make_pruner` read.
PRUNERS: dict[str, type[PrunerSettings]] = {
    settings.name: settings
    for settings in (
        PrunerSettings,
        MedianPrunerSettings,
        HyperbandPrunerSettings,
        PercentilePrunerSettings,
        SuccessiveHalvingPrunerSettings,
    )
}

#: Trial system attribute holding the pruner's settings, written by the sweeper.
PRUNER_ATTR = "lrdecay:pruner"


def make_pruner(spec: "str | Mapping[str, Any]") -> "optuna.pruners.BasePruner":
    """The pruner named by ``spec``: a name (``none``, ``median``, ``hyperband``, …) or a
    mapping ``{"name": ..., **keyword arguments of the Optuna pruner}``."""
    import optuna

    settings = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = str(settings.pop("name", "none"))
    if name not in PRUNERS:
        raise ValueError(f"trial.pruner: '{name}' is not one of {', '.join(PRUNERS)}")
    return getattr(optuna.pruners, PRUNERS[name].optuna_class)(**settings)
