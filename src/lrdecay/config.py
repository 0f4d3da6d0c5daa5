"""Structured configs: the schema every composed run is checked against before data loads.

Types are enforced by OmegaConf when Hydra composes; ranges and choices are checked in each
dataclass's ``__post_init__``, which runs when :func:`validate` turns the config into objects.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from lrdecay.core.metrics import CONVERGENCE_THRESHOLD, CONVERGENCE_WINDOW, EVAL_BATCH_SIZE
from lrdecay.core.objectives import OBJECTIVES
from lrdecay.core.sequences import SEQUENCES
from lrdecay.core.strategies import STRATEGIES
from lrdecay.errors import ConfigError
from lrdecay.palette import STUDY_OPTIMIZERS as STUDY_OPTIMIZERS  # the one definition
from lrdecay.tracking.credentials import PASSWORD_ENV, USERNAME_ENV, split_credentials
from lrdecay.tracking.store import DEFAULT_STORE_DIR

DEVICES = ("auto", "cpu", "cuda", "mps")
#: Keys of a ``_target_`` node that Hydra reads itself, not arguments of the class.
HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")


PRECISIONS = ("fp32", "bf16")  # see lrdecay.acceleration
#: Spellings of a three-way switch (a bare ``true``/``false`` from the command line included).
SWITCHES = {
    "auto": "auto",
    "on": "on",
    "true": "on",
    "yes": "on",
    "off": "off",
    "false": "off",
    "no": "off",
}


def _check(ok: bool, key: str, message: str) -> None:
    """Raise a :class:`ConfigError` naming the dotted ``key`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}: {message}")


#: Seeds go to torch, NumPy and Python's ``random``; torch takes at most a 64-bit integer.
MAX_SEED = 2**63 - 1
#: A setting's explicit name (``setting_name``): it becomes a tag, part of run names (joined to
#: the seed by a space) and a Hydra override (``setting=<name>``), so a plain word.
SETTING_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")


def _finite(node: Any, key: str) -> None:
    """Reject ``inf`` and ``nan`` anywhere in ``node`` (a config object, list or value): no
    setting of this project means anything at a non-finite value."""
    if is_dataclass(node):
        for f in fields(node):
            inner = key if f.name == "args" else f"{key}.{f.name}" if key else f.name
            _finite(getattr(node, f.name), inner)
    elif isinstance(node, dict):  # a component's arguments
        for name, value in node.items():
            _finite(value, f"{key}.{name}")
    elif isinstance(node, list | tuple):
        for item in node:
            _finite(item, key)
    elif isinstance(node, float):
        _check(math.isfinite(node), key, f"must be a finite number, got {node}")


def _one_of(value: str, options: Iterable[str], key: str) -> None:
    """Raise unless ``value`` is one of ``options`` (a tuple, or a registry's names)."""
    options = tuple(options)
    _check(value in options, key, f"'{value}' is not one of {', '.join(options)}")


def is_folder_name(name: str) -> bool:
    """Whether ``name`` is one plain folder name: it can never lead outside the folder it is
    joined to (no separators, no leading dot, so no ``..``, no control characters)."""
    return (
        bool(name)
        and not name.startswith(".")
        and "/" not in name
        and "\\" not in name
        and all(ch.isprintable() for ch in name)
    )


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
        _check(bool(self.target), f"{key}._target_", "name the class or factory to build")
        _check(is_folder_name(self.name), f"{key}.name", f"{self.name!r} is not a name")


def split_component(node: Any, key: str, fields_: Iterable[str] = ()) -> tuple[dict, dict]:
    """``node`` (a mapping) as (the run's own keys ``fields_`` plus ``_target_``/``name``,
    the target's arguments); a :class:`ConfigError` if it is not a mapping."""
    _check(isinstance(node, dict), key, f"must be a config node with a _target_, got {node!r}")
    own = {"name", *fields_}
    target = node.get("_target_")
    name = node.get("name") or (str(target).rsplit(".", 1)[-1] if target else "")
    kept = {k: v for k, v in node.items() if k in own and k != "name"}
    args = {k: v for k, v in node.items() if k not in own and k != "_target_"}
    return {"target": target if isinstance(target, str) else "", "name": name, **kept}, args


def _typed(cls: type, values: dict[str, Any], key: str) -> Any:
    """``cls(**values)`` with OmegaConf's type checks and conversions, errors naming ``key``."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), values)
        return OmegaConf.to_object(merged)
    except ConfigError:
        raise
    except Exception as exc:  # OmegaConf's ValidationError and friends carry the key
        inner = getattr(exc, "full_key", None)
        msg = (getattr(exc, "msg", None) or str(exc)).strip().splitlines()[0]
        raise ConfigError(f"{key}.{inner}: {msg}" if inner else f"{key}: {msg}") from exc


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
            _check(value is None or value >= 1, f"dataset.{key}", "must be >= 1 or null")
        for key in ("batch_size", "eval_batch_size", "epochs"):
            _check(getattr(self, key) >= 1, f"dataset.{key}", "must be >= 1")
        _check(0.0 <= self.val_fraction < 1.0, "dataset.val_fraction", "must be in [0, 1)")
        _check(0.0 < self.target_accuracy <= 1.0, "dataset.target_accuracy", "must be in (0, 1]")

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
        obj = _typed(cls, values, "dataset")
        obj.args = args
        return obj


@dataclass
class DataConfig:
    """Where data files live, whether they may be downloaded, and from where."""

    root: str = "data"
    download: bool = True
    download_timeout: float = 10.0
    mirror: str | None = None  # a base URL replacing torchvision's download hosts

    def __post_init__(self) -> None:
        _check(bool(self.root), "data.root", "must be a directory path")
        _check(self.download_timeout > 0, "data.download_timeout", "must be > 0")
        _check(
            self.mirror is None or self.mirror.startswith(("http://", "https://", "file://")),
            "data.mirror",
            f"{self.mirror!r} is not a base URL (http://, https:// or file://), or null",
        )


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
            _check(
                isinstance(dropout, int | float) and 0.0 <= dropout < 1.0,
                "model.dropout",
                "must be in [0, 1)",
            )

    @classmethod
    def of(cls, node: Any) -> ModelConfig:
        """The typed model config of a composed ``model`` node."""
        values, args = split_component(node, "model")
        return cls(args=args, **values)


def _number_in(value: Any, low: float, high: float) -> bool:
    """Whether ``value`` is a number (not a bool) in ``[low, high)``."""
    return isinstance(value, int | float) and not isinstance(value, bool) and low <= value < high


def _check_optimizer_args(args: dict[str, Any]) -> None:
    """Ranges of the arguments every ``torch.optim`` class reads the same way, checked wherever
    an option has them, before anything is built."""
    lr = args.get("lr")
    _check(
        _number_in(lr, 0.0, math.inf) and lr > 0,
        "optimizer.lr",
        f"must be > 0 (r0, the sequences' first rate), got {lr}",
    )
    if "momentum" in args:
        _check(_number_in(args["momentum"], 0.0, 1.0), "optimizer.momentum", "must be in [0, 1)")
    if "weight_decay" in args:
        wd = args["weight_decay"]
        _check(_number_in(wd, 0.0, math.inf), "optimizer.weight_decay", "must be >= 0")
    if "betas" in args:
        betas = args["betas"]
        _check(
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


@dataclass
class SequenceConfig:
    """The learning-rate sequence r_n; constants of seq3 (gamma) and seq4 (period). With
    ``scheduler`` set (a ``_target_`` and its arguments), any PyTorch LR scheduler instead,
    named by ``name`` and stepped per ``interval``; see :mod:`lrdecay.components`."""

    name: str = "seq3"
    gamma: float = 0.9
    period: int = 10
    scheduler: dict[str, Any] | None = None
    interval: str = "epoch"  # epoch | batch: when the scheduler steps
    steps_per_epoch: int | None = None  # set by the run from its data (a per-batch budget)

    def __post_init__(self) -> None:
        if self.scheduler is None:
            _one_of(self.name, SEQUENCES, "sequence.name")
        else:  # the class itself is checked by the run (lrdecay.components): torch-free here
            _check(is_folder_name(self.name), "sequence.name", f"{self.name!r} is not a name")
            target = self.scheduler.get("_target_")
            _check(
                isinstance(target, str) and bool(target),
                "sequence.scheduler._target_",
                "name the scheduler class, e.g. torch.optim.lr_scheduler.CosineAnnealingLR",
            )
            _one_of(self.interval, ("epoch", "batch"), "sequence.interval")
        _check(0.0 < self.gamma <= 1.0, "sequence.gamma", "must be in (0, 1]")
        _check(self.period >= 1, "sequence.period", "must be >= 1")


@dataclass
class StrategyConfig:
    """When the sequence advances; constants of the cutoff rule."""

    name: str = "epoch"
    rate: float = 0.01
    shrink: float = 0.2

    def __post_init__(self) -> None:
        _one_of(self.name, STRATEGIES, "strategy.name")
        _check(self.rate > 0, "strategy.rate", "must be > 0")
        _check(0.0 < self.shrink <= 1.0, "strategy.shrink", "must be in (0, 1]")


@dataclass
class TrainerConfig:
    """Epoch budget, early stop and the convergence-epoch definition."""

    max_epochs: int = 50
    early_stop_tol: float | None = None
    # the study's rule; conf/config.yaml shows the same values (a test keeps the two equal)
    convergence_window: int = CONVERGENCE_WINDOW
    convergence_threshold: float = CONVERGENCE_THRESHOLD
    progress: str = "auto"
    checkpoint: bool = True
    keep_checkpoint: bool = False
    precision: str = "fp32"  # speed options: see lrdecay.acceleration
    channels_last: str = "auto"  # auto | on | off (true/false accepted)
    compile: bool = False

    def __post_init__(self) -> None:
        _check(self.max_epochs >= 1, "trainer.max_epochs", f"must be >= 1, got {self.max_epochs}")
        _check(
            self.early_stop_tol is None or self.early_stop_tol > 0,
            "trainer.early_stop_tol",
            "must be > 0 or null (off)",
        )
        _check(self.convergence_window >= 1, "trainer.convergence_window", "must be >= 1")
        _check(self.convergence_threshold > 0, "trainer.convergence_threshold", "must be > 0")
        _one_of(self.progress, ("auto", "bar", "off"), "trainer.progress")
        _one_of(self.precision, PRECISIONS, "trainer.precision")
        self.channels_last = SWITCHES.get(str(self.channels_last).lower(), self.channels_last)
        _one_of(self.channels_last, ("auto", "on", "off"), "trainer.channels_last")


@dataclass
class TrackingConfig:
    """MLflow store and experiment; ``uri: null`` means the embedded SQLite store."""

    enabled: bool = True
    uri: str | None = None
    store_dir: str = DEFAULT_STORE_DIR
    experiment: str | None = None
    run_name: str | None = None
    log_plot: bool = True

    def __post_init__(self) -> None:
        _check(bool(self.store_dir), "tracking.store_dir", "must be a directory path")
        _check(
            not self.experiment or is_folder_name(self.experiment),
            "tracking.experiment",
            f"{self.experiment!r} names the experiment's artifact folder: use no '/', '\\', "
            "leading '.' or control characters",
        )
        _check(
            not self.uri or split_credentials(self.uri)[2] is None,
            "tracking.uri",
            f"holds a password; set {USERNAME_ENV} and {PASSWORD_ENV} instead (a password in "
            "a config file ends up in every saved copy of the config)",
        )


@dataclass
class SweepConfig:
    """How a re-launched sweep treats settings it has already run."""

    rerun: bool = False  # true: train every setting again, even those already FINISHED
    console_epochs: bool = False  # true: jobs print per-epoch lines on the terminal too


#: The widest equivalence margin accepted: 20 points. Anything above is a margin given in points
#: by mistake (0.5 meant as half a point would declare a 50-point margin).
MAX_MARGIN = 0.2


@dataclass
class ReportConfig:
    """The study report a multirun writes for its own sweep when it ends."""

    enabled: bool = True
    target: float | None = None  # epochs-to-target threshold; null: dataset.target_accuracy
    #: The equivalence margin a study declares before its runs, as an accuracy difference like
    #: every accuracy stored (0.005 is half a point); null: the report's own (claims.LITTLE).
    margin: float | None = None

    def __post_init__(self) -> None:
        _check(self.target is None or 0 < self.target <= 1, "report.target", "must be in (0, 1]")
        _check(
            self.margin is None or 0 < self.margin <= MAX_MARGIN,
            "report.margin",
            f"must be an accuracy difference in (0, {MAX_MARGIN}] (0.005 is half a point), "
            f"got {self.margin}",
        )


#: The config key of :class:`TrialConfig`: the sweeper's bookkeeping for one job, not a swept
#: value (the sweep's table leaves ``trial.*`` overrides out).
TRIAL_KEY = "trial"


@dataclass
class TrialConfig:
    """Set by the Optuna sweeper on each job: which trial of which study this run is, so that
    the run can report per-epoch values and be pruned. Users leave it alone."""

    storage: str | None = None
    study_name: str | None = None
    number: int | None = None
    pruner: str = "none"
    metric: str = "val_acc"


@dataclass
class LrdecayConfig:
    """The root of every composed run."""

    # Components built by ``_target_``: open nodes in the schema Hydra composes (any class's
    # arguments), typed objects once validated (see :meth:`__post_init__`).
    dataset: Any = field(default_factory=DatasetConfig.defaults)
    data: DataConfig = field(default_factory=DataConfig)
    model: Any = field(default_factory=dict)
    optimizer: Any = field(default_factory=dict)
    sequence: SequenceConfig = field(default_factory=SequenceConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    trial: TrialConfig = field(default_factory=TrialConfig)
    objective: list[str] = field(default_factory=lambda: ["val_acc"])
    resume: bool = False
    seed: int = 42
    device: str = "auto"
    threads: int | None = None
    # the setting's name in tags, run names, tables and the report; null: derived from its
    # options (run.run_name). Not part of the run's fingerprint.
    setting_name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.dataset, DatasetConfig):
            self.dataset = DatasetConfig.of(self.dataset)
        if not isinstance(self.model, ModelConfig):
            self.model = ModelConfig.of(self.model)
        if not isinstance(self.optimizer, OptimizerConfig):
            self.optimizer = OptimizerConfig.of(self.optimizer)
        _one_of(self.device, DEVICES, "device")
        _check(len(self.objective) >= 1, "objective", "name at least one objective")
        for name in self.objective:
            _one_of(name, OBJECTIVES, "objective")
        _check(self.threads is None or self.threads >= 1, "threads", "must be >= 1 or null")
        _check(0 <= self.seed <= MAX_SEED, "seed", f"must be in [0, {MAX_SEED}], got {self.seed}")
        _check(
            self.setting_name is None or SETTING_NAME.fullmatch(self.setting_name) is not None,
            "setting_name",
            f"{self.setting_name!r} is not a plain name (letters, digits, '_.+-', at most 64)",
        )
        _finite(self, "")


def register_configs() -> None:
    """Register the schema, so Hydra type-checks every config and override."""
    ConfigStore.instance().store(name="lrdecay_schema", node=LrdecayConfig)


def validate(cfg: DictConfig | dict[str, Any]) -> LrdecayConfig:
    """Check types and ranges of a composed config and return it as typed objects.

    Raises :class:`ConfigError` naming the offending field, before anything is loaded.
    """
    try:
        merged = OmegaConf.merge(OmegaConf.structured(LrdecayConfig), cfg)
        obj = OmegaConf.to_object(merged)
    except ConfigError:
        raise
    except Exception as exc:  # OmegaConf's ValidationError and friends carry the key
        key = getattr(exc, "full_key", None)
        msg = (getattr(exc, "msg", None) or str(exc)).strip().splitlines()[0]
        raise ConfigError(f"{key}: {msg}" if key else msg) from exc
    assert isinstance(obj, LrdecayConfig)
    return obj
