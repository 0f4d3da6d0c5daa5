"""A registry of named options: each :class:`Entry` says what builds an option and what the
project says of it; :data:`~lrdecay.core.sequences.SEQUENCES` and
:data:`~lrdecay.core.strategies.STRATEGIES` are the two registries.

They are the one list of each: the config's validation, the MLflow params, the report's grid and
the study's settings all read them. Plain Python, no torch, so that the processes that only
validate, launch or report import them cheaply.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

#: What an entry builds; covariant, so an entry building a Harmonic is an Entry[RateSequence].
T_co = TypeVar("T_co", covariant=True)


@dataclass(frozen=True)
class Entry(Generic[T_co]):
    """One registered sequence or strategy: what builds it, and what the project says of it.

    ``builder`` is called with the config constants named in ``params`` (``Geometric`` with
    ``gamma``). A builder with heavy imports of its own (a PyTorch scheduler, say) is given as
    ``"module:function"`` and imported only when a run builds it, so the registry stays cheap.
    """

    name: str
    builder: Callable[..., T_co] | str
    summary: str  # one line: the formula or the rule
    params: tuple[str, ...] = ()  # the config constants it reads (sequence.gamma, ...)
    study: bool = True  # part of the study's grid (seq1..seq4 by epoch, cutoff, oscillate)
    label: str = ""  # the study's name for it in tables and figure panels ("By Epoch")

    def build(self, **constants: Any) -> T_co:
        """A fresh instance from the constants named in ``params`` (others are ignored)."""
        builder = self.builder
        if isinstance(builder, str):
            module, _, attr = builder.partition(":")
            builder = getattr(importlib.import_module(module), attr)
        return builder(**{key: constants[key] for key in self.params})


def register(registry: dict[str, Entry[T_co]], *entries: Entry[T_co]) -> None:
    """Add ``entries`` to ``registry`` under their names, in order."""
    for entry in entries:
        registry[entry.name] = entry


def lookup(registry: Mapping[str, Entry[T_co]], name: str, kind: str) -> Entry[T_co]:
    """The entry called ``name``; a ValueError listing the choices if there is none."""
    if name not in registry:
        raise ValueError(f"unknown {kind} '{name}'; choose one of {', '.join(registry)}")
    return registry[name]


def study_names(registry: Mapping[str, Entry[Any]]) -> tuple[str, ...]:
    """The names in the study's grid, in registry order (seq1..seq4; epoch, cutoff, oscillate)."""
    return tuple(name for name, entry in registry.items() if entry.study)


def readers(registry: Mapping[str, Entry[Any]]) -> dict[str, tuple[str, ...]]:
    """Each config constant and the entries that read it (``{"gamma": ("seq3",)}``)."""
    out: dict[str, tuple[str, ...]] = {}
    for name, entry in registry.items():
        for param in entry.params:
            out[param] = (*out.get(param, ()), name)
    return out
