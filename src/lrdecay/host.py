"""What this host offers and runs: its CPU cores, whether a process is alive (torch-free, so the
sweep's launcher can ask)."""

from __future__ import annotations

import os


def available_cores() -> int:
    """CPU cores this process may use (respects affinity masks and cgroup-limited sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True
