"""What this host offers and runs: its CPU cores, whether a process is alive (torch-free, so the
sweep's launcher can ask)."""

from __future__ import annotations

import atexit
import gc
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


def skip_final_collection() -> None:
    """Spare this process the garbage collector's last pass over its whole heap when it exits.

    With torch and MLflow imported that pass walks millions of objects that die with the process
    anyway: ~1.3 CPU-seconds at the end of every run, job and sweep. Frozen at exit (a public
    :func:`gc.freeze`), they are left to the operating system; the atexit handlers (MLflow's,
    logging's) and the flushes of open streams still run. Registered once per process.
    """
    if not _SKIPPING:
        atexit.register(gc.freeze)
        _SKIPPING.append(True)


#: Whether :func:`skip_final_collection` has registered its exit handler in this process.
_SKIPPING: list[bool] = []
