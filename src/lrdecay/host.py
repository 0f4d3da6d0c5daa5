"""What this host offers: its CPU cores, and how a process spends its garbage collector on the
libraries it imports (torch-free, so the sweep's launcher can ask)."""

from __future__ import annotations

import gc
import importlib
import os
import sys
from collections.abc import Iterable


def available_cores() -> int:
    """CPU cores this process may use (respects affinity masks and cgroup-limited sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def import_frozen(modules: Iterable[str]) -> None:
    """Import ``modules`` with the garbage collector paused, then freeze what they built.

    Imported modules live as long as the process, yet while torch, MLflow and SQLAlchemy load,
    the collector walks the growing heap again and again (8 full collections, ~0.9 CPU-seconds,
    before a run's first epoch), and once more at the process's exit (~1.2 CPU-seconds).
    Paused, then frozen (:func:`gc.freeze`), they are walked by no later collection, the exit's
    included. The small heap before them is collected first, so no garbage is frozen; a no-op
    when all are imported already (a sweep worker's next job).
    """
    missing = [name for name in modules if name not in sys.modules]
    if not missing:
        return
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for name in missing:
            importlib.import_module(name)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
