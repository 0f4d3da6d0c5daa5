"""Structured configs: the schema every composed run is checked against before data loads.

Types are enforced by OmegaConf when Hydra composes; ranges and choices are checked in each
dataclass's ``__post_init__``, which runs when :func:`validate` turns the config into objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from lrdecay.component_config import DatasetConfig, ModelConfig, OptimizerConfig
from lrdecay.config_checks import check, finite, is_folder_name, one_of, typed
from lrdecay.core.metrics import CONVERGENCE_THRESHOLD, CONVERGENCE_WINDOW
from lrdecay.core.objectives import OBJECTIVES
from lrdecay.core.sequences import SEQUENCES
from lrdecay.core.strategies import STRATEGIES
from lrdecay.palette import STUDY_OPTIMIZERS as STUDY_OPTIMIZERS  # the one definition
from lrdecay.tracking.credentials import PASSWORD_ENV, USERNAME_ENV, split_credentials
from lrdecay.tracking.store import DEFAULT_STORE_DIR

DEVICES = ("auto", "cpu", "cuda", "mps")


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


#: Seeds go to torch, NumPy and Python's ``random``; torch takes at most a 64-bit integer.
MAX_SEED = 2**63 - 1
#: A setting's explicit name (``setting_name``): it becomes a tag, part of run names (joined to
#: the seed by a space) and a Hydra override (``setting=<name>``), so a plain word.
SETTING_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")


@dataclass
class DataConfig:
    """Where data files live, whether they may be downloaded, and from where."""

    root: str = "data"
    download: bool = True
    download_timeout: float = 10.0
    mirror: str | None = None  # a base URL replacing torchvision's download hosts

    def __post_init__(self) -> None:
        check(bool(self.root), "data.root", "must be a directory path")
        check(self.download_timeout > 0, "data.download_timeout", "must be > 0")
        check(
            self.mirror is None or self.mirror.startswith(("http://", "https://", "file://")),
            "data.mirror",
            f"{self.mirror!r} is not a base URL (http://, https:// or file://), or null",
        )


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
            one_of(self.name, SEQUENCES, "sequence.name")
        else:  # the class itself is checked by the run (lrdecay.components): torch-free here
            check(is_folder_name(self.name), "sequence.name", f"{self.name!r} is not a name")
            target = self.scheduler.get("_target_")
            check(
                isinstance(target, str) and bool(target),
                "sequence.scheduler._target_",
                "name the scheduler class, e.g. torch.optim.lr_scheduler.CosineAnnealingLR",
            )
            one_of(self.interval, ("epoch", "batch"), "sequence.interval")
        check(0.0 < self.gamma <= 1.0, "sequence.gamma", "must be in (0, 1]")
        check(self.period >= 1, "sequence.period", "must be >= 1")


@dataclass
class StrategyConfig:
    """When the sequence advances; constants of the cutoff rule."""

    name: str = "epoch"
    rate: float = 0.01
    shrink: float = 0.2

    def __post_init__(self) -> None:
        one_of(self.name, STRATEGIES, "strategy.name")
        check(self.rate > 0, "strategy.rate", "must be > 0")
        check(0.0 < self.shrink <= 1.0, "strategy.shrink", "must be in (0, 1]")


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
        check(self.max_epochs >= 1, "trainer.max_epochs", f"must be >= 1, got {self.max_epochs}")
        check(
            self.early_stop_tol is None or self.early_stop_tol > 0,
            "trainer.early_stop_tol",
            "must be > 0 or null (off)",
        )
        check(self.convergence_window >= 1, "trainer.convergence_window", "must be >= 1")
        check(self.convergence_threshold > 0, "trainer.convergence_threshold", "must be > 0")
        one_of(self.progress, ("auto", "bar", "off"), "trainer.progress")
        one_of(self.precision, PRECISIONS, "trainer.precision")
        self.channels_last = SWITCHES.get(str(self.channels_last).lower(), self.channels_last)
        one_of(self.channels_last, ("auto", "on", "off"), "trainer.channels_last")


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
        check(bool(self.store_dir), "tracking.store_dir", "must be a directory path")
        check(
            not self.experiment or is_folder_name(self.experiment),
            "tracking.experiment",
            f"{self.experiment!r} names the experiment's artifact folder: use no '/', '\\', "
            "leading '.' or control characters",
        )
        check(
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
        check(self.target is None or 0 < self.target <= 1, "report.target", "must be in (0, 1]")
        check(
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
        one_of(self.device, DEVICES, "device")
        check(len(self.objective) >= 1, "objective", "name at least one objective")
        for name in self.objective:
            one_of(name, OBJECTIVES, "objective")
        check(self.threads is None or self.threads >= 1, "threads", "must be >= 1 or null")
        check(0 <= self.seed <= MAX_SEED, "seed", f"must be in [0, {MAX_SEED}], got {self.seed}")
        check(
            self.setting_name is None or SETTING_NAME.fullmatch(self.setting_name) is not None,
            "setting_name",
            f"{self.setting_name!r} is not a plain name (letters, digits, '_.+-', at most 64)",
        )
        finite(self, "")


def register_configs() -> None:
    """Register the schema, so Hydra type-checks every config and override."""
    ConfigStore.instance().store(name="lrdecay_schema", node=LrdecayConfig)


def validate(cfg: DictConfig | dict[str, Any]) -> LrdecayConfig:
    """Check types and ranges of a composed config and return it as typed objects.

    Raises :class:`ConfigError` naming the offending field, before anything is loaded.
    """
    obj = typed(LrdecayConfig, cfg)
    assert isinstance(obj, LrdecayConfig)
    return obj
