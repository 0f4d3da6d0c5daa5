"""The one module the sweep's forkserver imports (``workers.FORKSERVER_PRELOAD``): it imports
what a job needs (:data:`~lrdecay.sweep.workers.PRELOAD`) with the garbage collector
paused and freezes it, as Python's :func:`gc.freeze` documentation advises for a process that
forks without exec.

The frozen objects (torch's, MLflow's, the training code's) live as long as the forkserver and
its workers do. No collection walks them again: not while they load, not a worker's (whose
pages then stay shared with the forkserver instead of being copied), and not the forkserver's
last one at its exit (together ~2 CPU-seconds of every sweep).
"""

from __future__ import annotations

from lrdecay.host import import_frozen
from lrdecay.sweep.workers import PRELOAD

import_frozen(PRELOAD)
