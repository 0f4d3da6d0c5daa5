"""Device choice, torch threads and seeds: the per-run state a job must set for itself.

Launcher workers are reused between jobs, so every run sets all of these anew rather than
trusting what an earlier job left behind.
"""

from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch

from lrdecay.errors import ConfigError

log = logging.getLogger(__name__)


def available_cores() -> int:
    """CPU cores this process may use (respects affinity masks and cgroup-limited sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; an explicit device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' asked for but no CUDA GPU is visible; use device=auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device: 'mps' asked for but MPS is not available; use device=auto")
    return torch.device(name)


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads (default: every available core) and return the count."""
    n = threads if threads is not None else available_cores()
    torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU) so a run repeats."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
