"""Structured configs: the schema every composed run is checked against before data loads.

Types are enforced by OmegaConf when Hydra composes; ranges and choices are checked in each
dataclass's ``__post_init__``, which runs when :func:`validate` turns the config into objects.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from lrdecay.core.metrics import CONVERGENCE_THRESHOLD, CONVERGENCE_WINDOW, EVAL_BATCH_SIZE
from lrdecay.core.objectives import OBJECTIVES
from lrdecay.core.schedules import SEQUENCES, STRATEGIES
from lrdecay.errors import ConfigError
from lrdecay.tracking.credentials import PASSWORD_ENV, USERNAME_ENV, split_credentials
from lrdecay.tracking.store import DEFAULT_STORE_DIR

DEVICES = ("auto", "cpu", "cuda", "mps")
DATASETS = ("mnist", "fashion_mnist", "cifar10", "digits")
MODELS = ("mnist_cnn", "cifar_cnn")
OPTIMIZERS = ("sgd", "adam")


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


def _finite(node: Any, key: str) -> None:
    """Reject ``inf`` and ``nan`` anywhere in ``node`` (a config object, list or value): no
    setting of this project means anything at a non-finite value."""
    if is_dataclass(node):
        for f in fields(node):
            _finite(getattr(node, f.name), f"{key}.{f.name}" if key else f.name)
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
class DatasetConfig:
    """Where the samples come from, their shape, and how they are split and batched."""

    name: str = "mnist"
    channels: int = 1
    height: int = 28
    width: int = 28
    num_classes: int = 10
    batch_size: int = 64
    eval_batch_size: int = EVAL_BATCH_SIZE
    epochs: int = 50
    val_fraction: float = 0.0
    split_seed: int = 0
    target_accuracy: float = 0.98

    def __post_init__(self) -> None:
        _one_of(self.name, DATASETS, "dataset.name")
        for key in (
            "channels",
            "height",
            "width",
            "num_classes",
            "batch_size",
            "eval_batch_size",
            "epochs",
        ):
            _check(getattr(self, key) >= 1, f"dataset.{key}", "must be >= 1")
        _check(0.0 <= self.val_fraction < 1.0, "dataset.val_fraction", "must be in [0, 1)")
        _check(0.0 < self.target_accuracy <= 1.0, "dataset.target_accuracy", "must be in (0, 1]")


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
class ModelConfig:
    """One of the reference CNNs."""

    name: str = "mnist_cnn"
    dropout: float = 0.25

    def __post_init__(self) -> None:
        _one_of(self.name, MODELS, "model.name")
        _check(0.0 <= self.dropout < 1.0, "model.dropout", "must be in [0, 1)")


@dataclass
class OptimizerConfig:
    """Optimizer class and its initial learning rate r0."""

    name: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])

    def __post_init__(self) -> None:
        _one_of(self.name, OPTIMIZERS, "optimizer.name")
        _check(self.lr > 0, "optimizer.lr", f"must be > 0, got {self.lr}")
        _check(0.0 <= self.momentum < 1.0, "optimizer.momentum", "must be in [0, 1)")
        _check(self.weight_decay >= 0, "optimizer.weight_decay", "must be >= 0")
        _check(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "optimizer.betas",
            "must be two numbers in [0, 1)",
        )


@dataclass
class SequenceConfig:
    """The learning-rate sequence r_n; constants of seq3 (gamma) and seq4 (period). With
    ``scheduler`` set (a ``_target_`` and its arguments), any PyTorch LR scheduler instead,
    named by ``name`` and stepped per ``interval``; see :mod:`lrdecay.scheduler_config`."""

    name: str = "seq3"
    gamma: float = 0.9
    period: int = 10
    scheduler: dict[str, Any] | None = None
    interval: str = "epoch"  # epoch | batch: when the scheduler steps
    steps_per_epoch: int | None = None  # set by the run from its data (a per-batch budget)

    def __post_init__(self) -> None:
        if self.scheduler is None:
            _one_of(self.name, SEQUENCES, "sequence.name")
        else:  # the class itself is checked by the run (lrdecay.scheduler_config): torch-free here
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


@dataclass
class ReportConfig:
    """The study report a multirun writes for its own sweep when it ends."""

    enabled: bool = True
    target: float | None = None  # epochs-to-target threshold; null: dataset.target_accuracy

    def __post_init__(self) -> None:
        _check(self.target is None or 0 < self.target <= 1, "report.target", "must be in (0, 1]")


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

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
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

    def __post_init__(self) -> None:
        _one_of(self.device, DEVICES, "device")
        _check(len(self.objective) >= 1, "objective", "name at least one objective")
        for name in self.objective:
            _one_of(name, OBJECTIVES, "objective")
        _check(self.threads is None or self.threads >= 1, "threads", "must be >= 1 or null")
        _check(0 <= self.seed <= MAX_SEED, "seed", f"must be in [0, {MAX_SEED}], got {self.seed}")
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
