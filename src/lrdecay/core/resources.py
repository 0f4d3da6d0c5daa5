"""Device choice, torch threads and seeds: the per-run state a job must set for itself.

Launcher workers are reused between jobs, so every run sets all of these anew rather than
trusting what an earlier job left behind.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING

from lrdecay.errors import ConfigError
from lrdecay.host import available_cores

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def resolve_device(name: str, job_num: int | None = None) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; an explicit device must exist.

    On CUDA, job ``k`` of a sweep uses GPU ``k % device_count`` so parallel jobs spread out.
    """
    import torch  # here, not at module level: the CLI's error paths should start fast

    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                "device: 'cuda' asked for but no CUDA GPU is visible; use device=auto"
            )
        index = (job_num or 0) % torch.cuda.device_count()
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device: 'mps' asked for but MPS is not available; use device=auto")
    return torch.device(name)


def threads_per_worker(n_workers: int) -> int:
    """Torch threads for each of ``n_workers`` concurrent jobs: the cores shared out evenly.

    Left at torch's default, concurrent jobs each take every core and oversubscribe the CPU.
    """
    return max(1, available_cores() // max(1, n_workers))


def set_threads(threads: int | None, n_workers: int = 1) -> int:
    """Set torch's intra-op threads (default: this worker's share of the cores, and never more
    than the cores this process may use: more only adds OS threads that wait); return it."""
    cores = available_cores()
    if threads is not None and threads > cores:
        log.warning(
            "threads=%d is more than the %d core(s) available; using %d", threads, cores, cores
        )
    n = min(threads, cores) if threads is not None else threads_per_worker(n_workers)
    import torch

    torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU) so a run repeats."""
    random.seed(seed)
    import numpy as np
    import torch

    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
