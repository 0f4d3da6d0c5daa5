"""The schema of the config nodes built by ``_target_`` (``dataset``, ``model``,
``optimizer``): the class or factory to build, its arguments, and the keys the run itself reads,
each checked before anything is imported or loaded."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any, TypeGuard

from lrdecay.config_checks import check, is_folder_name, typed
from lrdecay.core.metrics import EVAL_BATCH_SIZE

#: Keys of a ``_target_`` node that Hydra reads itself, not arguments of the class.
HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")


@dataclass
class Component:
    """A config node that Hydra's ``instantiate`` builds: the class or factory its ``_target_``
    names, the keyword arguments it is called with (every other key but ``name``; Hydra's own
    ``_partial_`` and friends included), and the option's ``name`` (tags, run names; the class's
    name when the node has none)."""

    target: str = ""
    name: str = ""
    args: dict[str, Any] = field(default_factory=dict)

    def node(self) -> dict[str, Any]:
        """The config node this was read from: ``_target_``, the own keys, the arguments."""
        own = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("target", "args")
        }
        return {"_target_": self.target, **own, **self.args}

    def check(self, key: str) -> None:
        """Raise unless ``_target_`` and ``name`` are usable (the class is checked by the run)."""
        check(bool(self.target), f"{key}._target_", "name the class or factory to build")
        check(is_folder_name(self.name), f"{key}.name", f"{self.name!r} is not a name")


def split_component(node: Any, key: str, fields_: Iterable[str] = ()) -> tuple[dict, dict]:
    """``node`` (a mapping) as (the run's own keys ``fields_`` plus ``_target_``/``name``,
    the target's arguments); a :class:`ConfigError` if it is not a mapping."""
    check(isinstance(node, dict), key, f"must be a config node with a _target_, got {node!r}")
    own = {"name", *fields_}
    target = node.get("_target_")
    name = node.get("name") or (str(target).rsplit(".", 1)[-1] if target else "")
    kept = {k: v for k, v in node.items() if k in own and k != "name"}
    args = {k: v for k, v in node.items() if k not in own and k != "_target_"}
    return {"target": target if isinstance(target, str) else "", "name": name, **kept}, args


#: Keys of a component that its option itself must give.
NOT_DEFAULTS = ("target", "name", "args")


@dataclass
class DatasetConfig(Component):
    """Where the samples come from (``_target_``: a data-set factory, see
    :mod:`lrdecay.core.data`), their shape, and how they are split and batched. ``channels``,
    ``height``, ``width`` and ``num_classes`` left null are read off the data."""

    target: str = "lrdecay.core.data.mnist"
    name: str = "mnist"
    channels: int | None = None
    height: int | None = None
    width: int | None = None
    num_classes: int | None = None
    batch_size: int = 64
    eval_batch_size: int = EVAL_BATCH_SIZE
    epochs: int = 50
    val_fraction: float = 0.0
    split_seed: int = 0
    target_accuracy: float = 0.98

    def __post_init__(self) -> None:
        self.check("dataset")
        for key in ("channels", "height", "width", "num_classes"):
            value = getattr(self, key)
            check(value is None or value >= 1, f"dataset.{key}", "must be >= 1 or null")
        for key in ("batch_size", "eval_batch_size", "epochs"):
            check(getattr(self, key) >= 1, f"dataset.{key}", "must be >= 1")
        check(0.0 <= self.val_fraction < 1.0, "dataset.val_fraction", "must be in [0, 1)")
        check(0.0 < self.target_accuracy <= 1.0, "dataset.target_accuracy", "must be in (0, 1]")

    @property
    def shape(self) -> tuple[int, int, int] | None:
        """The declared input shape (C, H, W), or None where the data decide it."""
        dims = (self.channels, self.height, self.width)
        return None if any(d is None for d in dims) else dims  # type: ignore[return-value]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The run's own keys with their defaults: what every ``dataset`` option starts from
        (its factory, name and arguments come from the option)."""
        return {f.name: getattr(cls, f.name) for f in fields(cls) if f.name not in NOT_DEFAULTS}

    @classmethod
    def of(cls, node: Any) -> DatasetConfig:
        """The typed dataset config of a composed ``dataset`` node."""
        own = [f.name for f in fields(cls) if f.name not in ("target", "args")]
        values, args = split_component(node, "dataset", own)
        obj = typed(cls, values, "dataset")
        obj.args = args
        return obj


@dataclass
class ModelConfig(Component):
    """A ``torch.nn.Module`` class, called with ``input_shape`` (C, H, W) and ``num_classes``
    (filled in by the run from the data) and its own arguments."""

    target: str = "lrdecay.core.models.MnistCNN"
    name: str = "mnist_cnn"

    def __post_init__(self) -> None:
        self.check("model")
        if "dropout" in self.args:
            dropout = self.args["dropout"]
            check(
                isinstance(dropout, int | float) and 0.0 <= dropout < 1.0,
                "model.dropout",
                "must be in [0, 1)",
            )

    @classmethod
    def of(cls, node: Any) -> ModelConfig:
        """The typed model config of a composed ``model`` node."""
        values, args = split_component(node, "model")
        return cls(args=args, **values)


def _number_in(value: Any, low: float, high: float) -> TypeGuard[float]:
    """Whether ``value`` is a number (not a bool) in ``[low, high)``."""
    return isinstance(value, int | float) and not isinstance(value, bool) and low <= value < high


def _check_optimizer_args(args: dict[str, Any]) -> None:
    """Ranges of the arguments every ``torch.optim`` class reads the same way, checked wherever
    an option has them, before anything is built."""
    lr = args.get("lr")
    check(
        _number_in(lr, 0.0, math.inf) and lr > 0,
        "optimizer.lr",
        f"must be > 0 (r0, the sequences' first rate), got {lr}",
    )
    if "momentum" in args:
        check(_number_in(args["momentum"], 0.0, 1.0), "optimizer.momentum", "must be in [0, 1)")
    if "weight_decay" in args:
        wd = args["weight_decay"]
        check(_number_in(wd, 0.0, math.inf), "optimizer.weight_decay", "must be >= 0")
    if "betas" in args:
        betas = args["betas"]
        check(
            isinstance(betas, list | tuple)
            and len(betas) == 2
            and all(_number_in(b, 0.0, 1.0) for b in betas),
            "optimizer.betas",
            "must be two numbers in [0, 1)",
        )


@dataclass
class OptimizerConfig(Component):
    """A ``torch.optim.Optimizer`` class, built on the model's parameters with its own
    arguments; ``lr`` is r0, the first term of the sequence the run moves the rate along."""

    target: str = "torch.optim.SGD"
    name: str = "sgd"

    def __post_init__(self) -> None:
        self.check("optimizer")
        _check_optimizer_args(self.args)

    @property
    def lr(self) -> float:
        """r0: the initial learning rate."""
        return float(self.args["lr"])

    @classmethod
    def of(cls, node: Any) -> OptimizerConfig:
        """The typed optimizer config of a composed ``optimizer`` node."""
        values, args = split_component(node, "optimizer")
        return cls(args=args, **values)
