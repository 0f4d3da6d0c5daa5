"""The checks every config schema runs in ``__post_init__``: one :class:`ConfigError` naming
the dotted key of the first value out of range, before anything is loaded."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import fields, is_dataclass
from typing import Any

from omegaconf import OmegaConf

from lrdecay.errors import ConfigError


def check(ok: bool, key: str, message: str) -> None:
    """Raise a :class:`ConfigError` naming the dotted ``key`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}: {message}")


def finite(node: Any, key: str) -> None:
    """Reject ``inf`` and ``nan`` anywhere in ``node`` (a config object, list or value): no
    setting of this project means anything at a non-finite value."""
    if is_dataclass(node):
        for f in fields(node):
            inner = key if f.name == "args" else f"{key}.{f.name}" if key else f.name
            finite(getattr(node, f.name), inner)
    elif isinstance(node, dict):  # a component's arguments
        for name, value in node.items():
            finite(value, f"{key}.{name}")
    elif isinstance(node, list | tuple):
        for item in node:
            finite(item, key)
    elif isinstance(node, float):
        check(math.isfinite(node), key, f"must be a finite number, got {node}")


def one_of(value: str, options: Iterable[str], key: str) -> None:
    """Raise unless ``value`` is one of ``options`` (a tuple, or a registry's names)."""
    options = tuple(options)
    check(value in options, key, f"'{value}' is not one of {', '.join(options)}")


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


def typed(cls: type, values: Any, key: str = "") -> Any:
    """``cls`` built from ``values`` (a mapping or config) with OmegaConf's type checks and
    conversions; any error is one :class:`ConfigError` naming the dotted key (under ``key``)."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), values)
        return OmegaConf.to_object(merged)
    except ConfigError:
        raise
    except Exception as exc:  # OmegaConf's ValidationError and friends carry the key
        inner = getattr(exc, "full_key", None)
        msg = (getattr(exc, "msg", None) or str(exc)).strip().splitlines()[0]
        where = ".".join(str(k) for k in (key, inner) if k)
        raise ConfigError(f"{where}: {msg}" if where else msg) from exc
