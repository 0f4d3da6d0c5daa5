"""The job configs of a sweep that can differ in their data: one per distinct data set in use.

A sweep's jobs are the product of its swept overrides, as Hydra's basic sweeper enumerates them.
Only the overrides that can change the data matter here (``dataset=...``, ``data.root=...``, a
``setting`` or ``experiment`` that might set them); each distinct choice of those is composed
once, the way Hydra's sweepers compose a job. An Optuna search contributes the discrete choices
in its search space (``choice``, ``range``, lists); its intervals, conditions and custom search
space are not enumerated (no shipped data-set setting is continuous).
"""

from __future__ import annotations

import copy
import itertools
import logging
from collections.abc import Iterable

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, open_dict

from lrdecay.config import LrdecayConfig, validate

log = logging.getLogger("lrdecay")

#: The config's top-level keys that never change which data a job reads.
DATA_NEUTRAL = frozenset(
    (
        "seed",
        "sequence",
        "strategy",
        "optimizer",
        "model",
        "trainer",
        "tracking",
        "report",
        "objective",
        "sweep",
        "trial",
        "resume",
        "device",
        "threads",
        "hydra",
    )
)


def job_config(config: DictConfig) -> DictConfig:
    """The run's part of a composed config (without the ``hydra`` node)."""
    cfg = copy.deepcopy(config)
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg


def _touches_data(override: Override) -> bool:
    """Whether ``override`` may change the data a job reads (its key is not data-neutral)."""
    head = override.key_or_group.replace("/", ".").split(".")[0]
    return head not in DATA_NEUTRAL


def data_choices(arguments: Iterable[str]) -> tuple[list[list[str]], bool]:
    """Each data-relevant key of a sweep with its alternatives, as Hydra's basic sweeper lists
    them (later overrides of a key replace earlier ones), and whether any of them is swept. A
    sweep that cannot be enumerated (an interval) is left out: the key keeps its base value."""
    choices: dict[str, list[str]] = {}
    swept: set[str] = set()
    for override in OverridesParser.create().parse_overrides(list(arguments)):
        if not _touches_data(override):
            continue
        key = override.get_key_element()
        swept.discard(key)
        if not override.is_sweep_override():
            choices[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep():
            choices[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
            swept.add(key)
        else:
            choices.pop(key, None)
    return list(choices.values()), bool(swept)


def sweep_arguments(hc: DictConfig) -> list[str]:
    """The sweep's overrides in the order Hydra's sweepers read them: ``hydra.sweeper.params``,
    then the command line's (so the command line's value of a key given in both wins)."""
    params = hc.sweeper.get("params") or {}
    return [*(f"{k}={v}" for k, v in params.items()), *hc.overrides.task]


def _data_identity(conf: LrdecayConfig) -> str:
    return repr((conf.dataset, conf.data))


def sweep_data_configs(config: DictConfig, base: LrdecayConfig) -> list[LrdecayConfig]:
    """One validated job config per distinct (dataset, data) pair among the sweep's jobs.

    ``config`` is the sweep's composed config (with ``hydra``), ``base`` its validated job part.
    A choice whose config does not compose or validate is left to its job, which reports it."""
    choices, swept = data_choices(sweep_arguments(config.hydra))
    if not swept:
        return [base]  # nothing data-related is swept: the base config is every job's
    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    distinct: dict[str, LrdecayConfig] = {}
    for overrides in itertools.product(*choices):
        try:
            conf = validate(job_config(loader.load_sweep_config(config, list(overrides))))
        except Exception as exc:  # a config error of its own: the job reports it
            log.debug("data of %s not prepared: %s", " ".join(overrides), exc)
            continue
        distinct.setdefault(_data_identity(conf), conf)
    return list(distinct.values())
