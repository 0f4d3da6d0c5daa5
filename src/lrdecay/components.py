"""Components named by ``_target_``: checked before any data loads, built by Hydra's
``instantiate``.

A model is any ``torch.nn.Module`` class, called with ``input_shape`` (C, H, W) and
``num_classes`` (the run fills both in from the data) plus its own arguments; an optimizer any
``torch.optim.Optimizer`` class, built on the model's parameters with its own arguments; a data
set any callable returning ``(train, test)`` (see :mod:`lrdecay.core.data`). Each mistake is one
:class:`~lrdecay.errors.ConfigError` line naming the key: an unknown ``_target_``, a class of
the wrong kind, a missing or misspelt argument.

The run's scheduler is the study's sequence under its strategy, or, where
``sequence.scheduler`` holds a ``_target_`` (any ``torch.optim.lr_scheduler`` class, or a
user's own ``LRScheduler`` by import path) and its arguments, that scheduler built with the
run's optimizer. The budget is there to interpolate: ``${trainer.max_epochs}`` and
``${sequence.steps_per_epoch}`` (set by the run once the data is loaded), e.g.::

    sequence:
      name: onecycle
      interval: batch
      scheduler:
        _target_: torch.optim.lr_scheduler.OneCycleLR
        max_lr: ${optimizer.lr}
        epochs: ${trainer.max_epochs}
        steps_per_epoch: ${sequence.steps_per_epoch}

A scheduler that cannot run is one line too, before any data loads: a class that is no
LRScheduler, an argument that does not fit, a strategy that cannot time it.
"""

from __future__ import annotations

import inspect
import math
import pydoc
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lrdecay.component_config import HYDRA_KEYS, Component
from lrdecay.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from lrdecay.config import LrdecayConfig, SequenceConfig
    from lrdecay.core.schedulers import SequenceScheduler, TorchScheduler

#: Placeholders for what the run fills in, so a signature can be checked before data loads.
MODEL_GIVEN = {"input_shape": (1, 1, 1), "num_classes": 2}
OPTIMIZER_GIVEN: dict[str, Any] = {"params": []}
#: The config key of a PyTorch scheduler, and what the run passes to every scheduler itself.
SCHEDULER_KEY = "sequence.scheduler"
SCHEDULER_GIVEN = "optimizer"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def locate(path: str) -> object:
    """The object at dotted ``path`` (``pkg.module.Class``), by :func:`pydoc.locate` (quiet,
    unlike Hydra's lookup, which logs an ERROR line of its own); an ImportError when nothing is
    there, ``pydoc.ErrorDuringImport`` when a module on the way fails to import."""
    found = pydoc.locate(path)
    if found is None:
        raise ImportError(f"nothing importable at '{path}'")
    return found


def component_class(target: str, base: type | None, key: str, what: str) -> Any:
    """What ``target`` names: a subclass of ``base`` (any callable when ``base`` is None);
    a :class:`ConfigError` naming ``key`` if it cannot be imported or is of another kind."""
    if not target:
        raise ConfigError(f"{key}._target_: name {what} by its import path")
    try:
        found = locate(target)
    except Exception as exc:  # not there, or its module fails to import
        raise ConfigError(f"{key}._target_: cannot import '{target}' ({first_line(exc)})") from None
    if base is None:
        ok = callable(found)
    else:
        ok = isinstance(found, type) and issubclass(found, base)
    if not ok:
        raise ConfigError(f"{key}._target_: '{target}' is not {what}")
    return found


def check_arguments(
    obj: Any, args: dict[str, Any], given: dict[str, Any], key: str, what: str = ""
) -> None:
    """Raise a one-line :class:`ConfigError` unless ``obj`` can be called with the run's
    ``given`` arguments plus the config's ``args`` (Hydra's own keys aside)."""
    for name in given:
        if name in args:
            raise ConfigError(f"{key}.{name}: the run passes its own {name}; remove this key")
    own = {k: v for k, v in args.items() if k not in HYDRA_KEYS}
    try:
        inspect.signature(obj).bind(**given, **own)
    except TypeError as exc:
        name = what or getattr(obj, "__name__", str(obj))
        raise ConfigError(f"{key}: {name} {first_line(exc)}") from None
    except ValueError:  # no signature to read (a builtin): let the call itself say
        return


def check_components(conf: LrdecayConfig) -> None:
    """Check the run's model, optimizer and data set against their ``_target_``s before any data
    loads: importable, of the right kind, their arguments fitting the signature."""
    import torch

    from lrdecay.core.data import data_keywords

    model = component_class(conf.model.target, torch.nn.Module, "model", "a torch.nn.Module class")
    check_arguments(model, conf.model.args, MODEL_GIVEN, "model")
    opt = component_class(
        conf.optimizer.target, torch.optim.Optimizer, "optimizer", "a torch.optim.Optimizer class"
    )
    check_arguments(opt, conf.optimizer.args, OPTIMIZER_GIVEN, "optimizer")
    factory = component_class(conf.dataset.target, None, "dataset", "a data-set factory")
    check_arguments(factory, conf.dataset.args, data_keywords(factory, conf.data), "dataset")


def build(component: Component, key: str, **given: Any) -> Any:
    """``component`` built by Hydra's ``instantiate`` with the run's ``given`` arguments; a
    failure inside its constructor is one :class:`ConfigError` line naming ``key``."""
    node = {"_target_": component.target, "_convert_": "all", **component.args}
    try:
        return instantiate(node, **given)
    except InstantiationException as exc:
        cause = exc.__cause__ or exc
        why = first_line(cause)
        raise ConfigError(f"{key}: {component.target} cannot be built: {why}") from None


def build_model(
    conf: LrdecayConfig, input_shape: tuple[int, int, int], num_classes: int
) -> torch.nn.Module:
    """The run's model for inputs of ``input_shape`` and ``num_classes`` classes."""
    return build(conf.model, "model", input_shape=input_shape, num_classes=num_classes)


def build_optimizer(
    conf: LrdecayConfig, params: Iterable[torch.nn.Parameter]
) -> torch.optim.Optimizer:
    """The run's optimizer on ``params``, at its initial rate ``optimizer.lr`` (= r0)."""
    return build(conf.optimizer, "optimizer", params=list(params))


def scheduler_class(scheduler: dict[str, Any]) -> type:
    """The LRScheduler class ``scheduler['_target_']`` names; a :class:`ConfigError` if it is
    missing, cannot be imported, or is not an LRScheduler."""
    from torch.optim.lr_scheduler import LRScheduler

    target = scheduler.get("_target_")
    if not isinstance(target, str) or not target:
        raise ConfigError(
            f"{SCHEDULER_KEY}._target_: name the scheduler class, e.g. "
            "torch.optim.lr_scheduler.CosineAnnealingLR"
        )
    return component_class(
        target,
        LRScheduler,
        SCHEDULER_KEY,
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
    check_arguments(cls, args, {SCHEDULER_GIVEN: None}, SCHEDULER_KEY)
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
            f"{SCHEDULER_KEY}: {seq.scheduler['_target_']} cannot be built: {first_line(cause)}"
        ) from None
    return TorchScheduler(built, strategy, seq.interval)
