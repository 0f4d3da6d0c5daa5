"""Imported last by the sweep's forkserver (:data:`lrdecay.sweep.workers.PRELOAD`): freezes what
the imports before it built, as Python's :func:`gc.freeze` documentation advises for a process
that forks without exec.

The frozen objects (torch's, MLflow's, the training code's) live as long as the forkserver and
its workers do. No collection walks them again: not a worker's, whose pages then stay shared
with the forkserver instead of being copied, and not the forkserver's last one at its exit
(~1.3 CPU-seconds of every sweep).
"""

from __future__ import annotations

import gc

gc.freeze()
