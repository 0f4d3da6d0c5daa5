"""Whether a process named by its pid still runs on this host: how the sweeper (and the app's
sweep launcher) tell a live launcher from one that died without cleaning up."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True
