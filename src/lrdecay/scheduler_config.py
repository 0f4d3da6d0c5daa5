"""A PyTorch LR scheduler from the ``sequence`` config: checked, sized by the budget, built.

``sequence.scheduler`` holds a ``_target_`` (any ``torch.optim.lr_scheduler`` class, or a
user's own ``LRScheduler`` by import path) and its arguments; Hydra's ``instantiate`` builds it
with the run's optimizer. The budget is there to interpolate: ``${trainer.max_epochs}`` and
``${sequence.steps_per_epoch}`` (set by the run once the data is loaded), e.g.::

    sequence:
      name: onecycle
      interval: batch
      scheduler:
        _target_: torch.optim.lr_scheduler.OneCycleLR
        max_lr: ${optimizer.lr}
        epochs: ${trainer.max_epochs}
        steps_per_epoch: ${sequence.steps_per_epoch}

Every mistake is one :class:`~lrdecay.errors.ConfigError` line, raised while the config is
validated (before any data loads): an unknown ``_target_``, a class that is no LRScheduler, a
missing or unknown argument, a strategy that cannot time the scheduler.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lrdecay.components import check_arguments, component_class, first_line
from lrdecay.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from lrdecay.config import LrdecayConfig, SequenceConfig
    from lrdecay.core.schedulers import SequenceScheduler, TorchScheduler

KEY = "sequence.scheduler"
#: What the run passes to every scheduler itself.
GIVEN = "optimizer"


def scheduler_class(scheduler: dict[str, Any]) -> type:
    """The LRScheduler class ``scheduler['_target_']`` names; a :class:`ConfigError` if it is
    missing, cannot be imported, or is not an LRScheduler."""
    from torch.optim.lr_scheduler import LRScheduler

    target = scheduler.get("_target_")
    if not isinstance(target, str) or not target:
        raise ConfigError(
            f"{KEY}._target_: name the scheduler class, e.g. "
            "torch.optim.lr_scheduler.CosineAnnealingLR"
        )
    return component_class(
        target,
        LRScheduler,
        KEY,
        "a PyTorch LR scheduler (a subclass of torch.optim.lr_scheduler.LRScheduler)",
    )


def is_plateau(cls: type) -> bool:
    """Whether ``cls`` steps on a metric (``ReduceLROnPlateau``) rather than on a count."""
    from torch.optim.lr_scheduler import ReduceLROnPlateau

    return issubclass(cls, ReduceLROnPlateau)


def check_scheduler(sequence: SequenceConfig, strategy: str) -> None:
    """Raise a one-line :class:`ConfigError` unless ``sequence.scheduler`` can be built and
    timed: its class imports and is an LRScheduler, its arguments fit its signature, and
    ``strategy`` can time it (only ``epoch`` for a per-batch or plateau scheduler)."""
    from lrdecay.core.schedulers import INTERVALS

    assert sequence.scheduler is not None
    if sequence.interval not in INTERVALS:
        raise ConfigError(
            f"sequence.interval: '{sequence.interval}' is not one of {', '.join(INTERVALS)}"
        )
    cls = scheduler_class(sequence.scheduler)
    args = {k: v for k, v in sequence.scheduler.items() if k != "_target_"}
    check_arguments(cls, args, {GIVEN: None}, KEY)
    if strategy != "epoch" and (sequence.interval == "batch" or is_plateau(cls)):
        how = "every batch" if sequence.interval == "batch" else "on the validation loss itself"
        raise ConfigError(
            f"strategy: '{strategy}' cannot time sequence '{sequence.name}' ({cls.__name__} "
            f"steps {how}); use strategy=epoch"
        )


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer steps in one epoch: the last batch may be short (none are dropped)."""
    return max(1, math.ceil(n_train / batch_size))


def with_budget(cfg: DictConfig, conf: LrdecayConfig, n_train: int) -> DictConfig:
    """``cfg`` with ``sequence.steps_per_epoch`` set from the training split, for a scheduler
    to size itself by; unchanged for the study's own sequences."""
    if conf.sequence.scheduler is not None:
        conf.sequence.steps_per_epoch = steps_per_epoch(n_train, conf.dataset.batch_size)
    return sized(cfg, conf)


def sized(cfg: DictConfig, conf: LrdecayConfig) -> DictConfig:
    """``cfg`` with the steps per epoch ``conf`` was sized with (:func:`with_budget`): what the
    run's params and saved config show; unchanged for the study's own sequences."""
    if conf.sequence.scheduler is None:
        return cfg
    merged = OmegaConf.merge(cfg, {"sequence": {"steps_per_epoch": conf.sequence.steps_per_epoch}})
    assert isinstance(merged, DictConfig)
    return merged


def build_scheduler(
    cfg: DictConfig, conf: LrdecayConfig, optimizer: torch.optim.Optimizer
) -> SequenceScheduler | TorchScheduler:
    """The run's scheduler: the study's sequence under its strategy, or the configured PyTorch
    scheduler built by Hydra's ``instantiate`` with ``optimizer`` (``cfg`` sized by
    :func:`with_budget`)."""
    from lrdecay.core.schedulers import SequenceScheduler, TorchScheduler
    from lrdecay.core.sequences import make_sequence
    from lrdecay.core.strategies import make_strategy

    strategy = make_strategy(conf.strategy.name, conf.strategy.rate, conf.strategy.shrink)
    seq = conf.sequence
    if seq.scheduler is None:
        return SequenceScheduler(
            optimizer, make_sequence(seq.name, seq.gamma, seq.period), strategy
        )
    try:
        built = instantiate(cfg.sequence.scheduler, optimizer=optimizer, _convert_="all")
    except InstantiationException as exc:
        cause = exc.__cause__ or exc
        raise ConfigError(
            f"{KEY}: {seq.scheduler['_target_']} cannot be built: {first_line(cause)}"
        ) from None
    return TorchScheduler(built, strategy, seq.interval)
