"""Search space and settings of the Optuna sweeper: Hydra's sweep syntax to Optuna
distributions, conditions under which a parameter is sampled, sampled values back to override
text, directions, storage URLs.

Pure functions (no study, no launcher), so they are tested on their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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


class SweepError(Exception):
    """A search that cannot start or go on; its message names the fix (exit status 2)."""


class SearchFailed(SweepError):
    """A search that ran and failed (too many failed trials): exit status 1, as failed jobs."""


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
        choices: list[str | int | float | bool] = []
        for choice in override.sweep_iterator(transformer=Transformer.encode):
            if not isinstance(choice, str | int | float | bool):
                raise SweepError(
                    f"{key}: a searched choice must be a string, number or bool, got {choice!r}"
                )
            choices.append(choice)
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


def resolve_directions(
    direction: Any, objectives: Sequence[str] | None, natural: Mapping[str, str] | None = None
) -> list[str]:
    """One direction per objective: as given, or each objective's ``natural`` one (maximize
    for a name it lacks; minimize for one unnamed value)."""
    if direction is None:
        if not objectives:
            return ["minimize"]
        return [(natural or {}).get(name, "maximize") for name in objectives]
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


# ---------------------------------------------------------------- conditions


@dataclass(frozen=True)
class Condition:
    """When a searched parameter is sampled: once ``parent`` took one of ``values`` in the
    same trial (``hydra.sweeper.conditions``, e.g. ``{strategy.rate: strategy=cutoff}``)."""

    parent: str
    values: tuple[Any, ...]

    def holds(self, sampled: Mapping[str, Any]) -> bool:
        """Whether the parameters sampled so far in a trial meet the condition (an absent
        parent, itself not sampled, does not)."""
        return self.parent in sampled and sampled[self.parent] in self.values

    def __str__(self) -> str:
        return f"{self.parent}={','.join(format_value(v) for v in self.values)}"


def _bare(key: str) -> str:
    """A key without Hydra's ``+``/``++``/``~`` prefix, as conditions name parameters."""
    return key.lstrip("+~")


def parse_condition(name: str, text: str) -> tuple[str, tuple[Any, ...]]:
    """``parent=a`` or ``parent=a,b`` (``choice(a,b)`` and ``range(...)`` too: Hydra's
    override syntax, so values read as in ``params``) → the parent's key and the values under
    which ``name`` is sampled."""
    where = f"hydra.sweeper.conditions.{name}"
    try:
        (override,) = OverridesParser.create().parse_overrides([str(text)])
    except Exception as exc:
        raise SweepError(
            f"{where}: '{text}' is not 'parent=value' or 'parent=value1,value2' "
            f"({str(exc).splitlines()[0]})"
        ) from exc
    value = override.value()
    if isinstance(value, ChoiceSweep | RangeSweep):
        values: tuple[Any, ...] = tuple(override.sweep_iterator(transformer=Transformer.encode))
    elif override.is_sweep_override() or isinstance(value, list | dict):
        raise SweepError(f"{where}: '{text}' must list the parent's values: parent=a or a,b")
    else:
        values = (value,)
    if not values or override.is_delete():
        raise SweepError(f"{where}: '{text}' names no value of its parent")
    return _bare(override.get_key_element()), values


def choices_of(name: str, dist: BaseDistribution) -> list[Any]:
    """The values a condition may test ``name`` for: its choices, or its range's values."""
    try:
        return grid_values(name, dist)
    except SweepError:
        raise SweepError(
            f"hydra.sweeper.conditions: {name} is a continuous interval; a condition's "
            "parent must be discrete (choice(...) or range(...))"
        ) from None


def order_space(
    space: Mapping[str, BaseDistribution], parents: Mapping[str, str]
) -> dict[str, BaseDistribution]:
    """``space`` in the order its parameters are sampled: each one after the parent its
    condition names (``parents``: child → parent, both in ``space``), otherwise as given; a
    cycle of conditions is an error."""
    ordered: dict[str, BaseDistribution] = {}
    visiting: list[str] = []

    def place(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            cycle = " → ".join([*visiting[visiting.index(name) :], name])
            raise SweepError(
                f"hydra.sweeper.conditions: {cycle} is a cycle; each parameter is sampled "
                "after its condition's parent, so a parent cannot depend on its child"
            )
        visiting.append(name)
        if name in parents:
            place(parents[name])
        visiting.pop()
        ordered[name] = space[name]

    for name in space:
        place(name)
    return ordered


def conditional_space(
    conditions: Mapping[str, Any] | None,
    space: Mapping[str, BaseDistribution],
    fixed: Mapping[str, str],
) -> tuple[dict[str, BaseDistribution], dict[str, Condition]]:
    """Check ``hydra.sweeper.conditions`` against the search space and return the space in
    sampling order (each parent first) with the conditions that remain to test per trial.

    A condition names a searched parameter and a searched, discrete parent among whose
    values it lists only existing ones. A parameter fixed on the command line (not searched)
    keeps its fixed value and loses its condition; a parent fixed there decides once: the
    parameter is searched in every trial, or in none (dropped from the space, with the
    parameters conditioned on it).
    """
    conditions = dict(conditions or {})
    bare_space = {_bare(k): k for k in space}
    bare_fixed = {_bare(k): k for k in fixed}
    parents: dict[str, str] = {}  # child -> parent, both searched
    static: dict[str, bool] = {}  # child -> whether its fixed parent's value meets it
    kept: dict[str, Condition] = {}
    for raw_name, text in conditions.items():
        name = _bare(str(raw_name))
        parent, values = parse_condition(name, text)
        if name not in bare_space:
            if name in bare_fixed:
                continue  # fixed on the command line: one value for every trial
            raise SweepError(
                f"hydra.sweeper.conditions: {name} is not a searched parameter "
                f"(searched: {', '.join(bare_space) or 'none'})"
            )
        child = bare_space[name]
        if parent in bare_space:
            key = bare_space[parent]
            choices = choices_of(key, space[key])
            missing = [v for v in values if v not in choices]
            if missing:
                raise SweepError(
                    f"hydra.sweeper.conditions.{name}: {', '.join(map(format_value, missing))} "
                    f"not among {parent}'s values "
                    f"({', '.join(format_value(c) for c in choices)})"
                )
            parents[child] = key
            kept[child] = Condition(key, values)
        elif parent in bare_fixed:
            (override,) = OverridesParser.create().parse_overrides([fixed[bare_fixed[parent]]])
            static[child] = override.value() in values
        else:
            raise SweepError(
                f"hydra.sweeper.conditions.{name}: its parent {parent} is neither searched "
                "nor set; search it (hydra.sweeper.params or the command line) or drop the "
                "condition"
            )
    ordered = order_space(space, parents)
    dropped: set[str] = set()
    for name in list(ordered):
        if static.get(name) is False or (name in parents and parents[name] in dropped):
            dropped.add(name)
            del ordered[name]
            kept.pop(name, None)
    return ordered, kept


def sample(
    trial: Trial, space: Mapping[str, BaseDistribution], conditions: Mapping[str, Condition]
) -> dict[str, Any]:
    """Suggest the parameters of ``space`` in order, each whose condition holds on the values
    sampled before it (define-by-run: a parameter whose condition fails is absent from the
    trial, and its job keeps the config's value); returns what was sampled."""
    sampled: dict[str, Any] = {}
    for name, dist in space.items():
        condition = conditions.get(name)
        if condition is None or condition.holds(sampled):
            sampled[name] = suggest(trial, name, dist)
    return sampled


def describe_space(
    space: Mapping[str, BaseDistribution], conditions: Mapping[str, Condition]
) -> str:
    """The searched parameters in sampling order, each conditional one with its condition."""
    return ", ".join(
        f"{name} (if {conditions[name]})" if name in conditions else name for name in space
    )
