"""Search space and settings of the Optuna sweeper: Hydra's sweep syntax to Optuna
distributions, sampled values back to override text, directions, storage URLs.

Pure functions (no study, no launcher), so they are tested on their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import Trial

from lrdecay.core.objectives import OBJECTIVES
from lrdecay.errors import LrdecayError

#: The natural direction of each objective a run can return (``objective`` in the config).
OBJECTIVE_DIRECTIONS = {name: objective.direction for name, objective in OBJECTIVES.items()}


class SweepError(LrdecayError):
    """A search that cannot start or go on; its message names the fix."""


# ---------------------------------------------------------------- search space


def distribution_of(override: Override) -> BaseDistribution | None:
    """The Optuna distribution of a sweep override (None for a plain value).

    ``a,b`` / ``choice(a,b)`` → categorical; ``range(lo,hi,step)`` → the ordered values
    lo, lo+step, … below hi (as in Hydra), ints or stepped floats; ranges with a negative step
    and ``shuffle(...)`` → categorical of their values; ``interval(lo,hi)`` → float,
    ``int(interval(...))`` → int, ``tag(log, interval(...))`` → log scale.
    """
    if not override.is_sweep_override():
        return None
    value = override.value()
    key = override.get_key_element()
    if isinstance(value, IntervalSweep):
        assert value.start is not None and value.end is not None
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log_scale)
        return FloatDistribution(float(value.start), float(value.end), log=log_scale)
    if isinstance(value, RangeSweep) and not value.shuffle and value.step > 0:
        ordered = stepped_range(value)
        if ordered is not None:
            return ordered
    if isinstance(value, ChoiceSweep | RangeSweep):
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        for choice in choices:
            if not isinstance(choice, str | int | float | bool):
                raise SweepError(
                    f"{key}: a searched choice must be a string, number or bool, got {choice!r}"
                )
        if not choices:
            raise SweepError(f"{key}: the sweep has no values")
        return CategoricalDistribution(choices)
    raise SweepError(
        f"{key}: {override.input_line or key} is not supported by the Optuna "
        "sweeper; use choice(...), range(...), interval(...), "
        "tag(log, interval(...)) or int(interval(...))"
    )


def stepped_range(sweep: RangeSweep) -> IntDistribution | FloatDistribution | None:
    """An increasing ``range(...)`` as an ordered distribution from its first to its last value
    (Hydra's own values: the stop is excluded), so that samplers keep the order; None when the
    range is empty."""
    values = list(sweep.range())
    if not values:
        return None
    if all(isinstance(v, int) for v in values):
        return IntDistribution(values[0], values[-1], step=int(sweep.step))
    return FloatDistribution(values[0], values[-1], step=float(sweep.step))


def parse_search_space(lines: Iterable[str]) -> tuple[dict[str, BaseDistribution], dict[str, str]]:
    """Split overrides into the searched distributions and the fixed overrides, by key; a
    later line for the same key wins (the command line over ``hydra.sweeper.params``)."""
    lines = list(lines)
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except Exception as exc:
        raise SweepError(str(exc).splitlines()[0]) from exc
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for override, line in zip(parsed, lines, strict=True):
        key = override.get_key_element()
        dist = distribution_of(override)
        space.pop(key, None)
        fixed.pop(key, None)
        if dist is None:
            fixed[key] = override.input_line or line
        else:
            space[key] = dist
    return space, fixed


def format_value(value: Any) -> str:
    """A sampled value as Hydra override text (choices already come escaped)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def suggest(trial: Trial, name: str, dist: BaseDistribution) -> Any:
    """Sample ``name`` from ``dist`` through the trial's public ``suggest_*`` methods (a queued
    trial's fixed value, when it has one)."""
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    raise SweepError(f"{name}: no suggest method for {type(dist).__name__}")


def grid_values(name: str, dist: BaseDistribution) -> list[Any]:
    """Every value of a discrete distribution, for the grid sampler."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution) and not dist.log:
        return list(range(dist.low, dist.high + 1, dist.step))
    if isinstance(dist, FloatDistribution) and dist.step and not dist.log:
        # in decimal, so that range(0.1, 1, 0.1) gives 0.3, not 0.30000000000000004
        low, step = Decimal(repr(dist.low)), Decimal(repr(dist.step))
        n = round((Decimal(repr(dist.high)) - low) / step)
        return [float(low + i * step) for i in range(n + 1)]
    raise SweepError(
        f"{name}: the grid sampler needs discrete values (choice(...), "
        "range(...) or int(interval(...))), not a continuous interval"
    )


def resolve_directions(direction: Any, objectives: Sequence[str] | None) -> list[str]:
    """One direction per objective: as given, or each objective's natural one."""
    if direction is None:
        if not objectives:
            return ["minimize"]
        return [OBJECTIVE_DIRECTIONS.get(name, "maximize") for name in objectives]
    given = [direction] if isinstance(direction, str) else list(direction)
    dirs = [str(getattr(d, "name", d)).lower() for d in given]
    for d in dirs:
        if d not in ("minimize", "maximize"):
            raise SweepError(f"hydra.sweeper.direction: '{d}' is not minimize or maximize")
    if objectives and len(dirs) != len(objectives):
        raise SweepError(
            f"hydra.sweeper.direction: {len(dirs)} direction(s) for "
            f"{len(objectives)} objective(s) {list(objectives)}; give one each, "
            "or leave direction null to take each objective's natural direction"
        )
    return dirs


def sqlite_absolute(url: str, base: Path) -> str:
    """A relative ``sqlite:///file.db`` made absolute against the launch directory, so jobs
    that change directory still find it; other URLs unchanged."""
    prefix = "sqlite:///"
    if url in ("sqlite://", "sqlite:///:memory:"):
        raise SweepError(
            "hydra.sweeper.storage: an in-memory study cannot be shared with the "
            "jobs; use a file, e.g. sqlite:///optuna.db"
        )
    if url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
        return prefix + str((base / url[len(prefix) :]).resolve())
    return url
