"""Atomic per-epoch checkpoints and resuming from them.

A checkpoint holds everything the next epoch depends on — model, optimizer, scheduler, every
RNG, the metric history, elapsed seconds — plus the MLflow run id, as tensors and plain Python
values only, so that it loads with ``torch.load(weights_only=True)`` (no arbitrary unpickling).
A schedule-free optimizer's model is saved with its averaged weights, the optimizer in its
evaluation mode; the next epoch switches it back to training. It is written to a temporary file
and renamed, so a kill at any moment leaves either the old or the new checkpoint, never half of
one.
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lrdecay.atomic import replacing
from lrdecay.core.engine import Engine
from lrdecay.core.listeners import Listener
from lrdecay.core.records import EpochRecord
from lrdecay.errors import LrdecayError

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT_VERSION = 1


def _rng_state(engine: Engine) -> dict[str, Any]:
    """Every random source a later epoch draws from, as tensors and plain values."""
    legacy = np.random.get_state(legacy=True)
    assert isinstance(legacy, tuple), "NumPy's global generator is an MT19937: a tuple"
    kind, keys, pos, has_gauss, gauss = legacy
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "shuffle": engine.generator.get_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "gauss": gauss,
        },
        "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(engine: Engine, state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    engine.generator.set_state(state["shuffle"])
    npy = state["numpy"]
    np.random.set_state(
        (
            npy["kind"],
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["gauss"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, engine: Engine, run_id: str | None) -> Path:
    """Write the engine's state after its last epoch to ``path``, atomically; a schedule-free
    optimizer's averaged weights are the ones saved (its mode with them, so training resumes)."""
    engine.modes.evaluation()
    payload = {
        "version": FORMAT_VERSION,
        "run_id": run_id,
        "elapsed": engine.elapsed,
        "history": [asdict(r) for r in engine.history],
        "model": engine.model.state_dict(),
        "optimizer": engine.optimizer.state_dict(),
        "scheduler": engine.scheduler.state_dict(),
        "rng": _rng_state(engine),
    }
    with replacing(path) as tmp:
        torch.save(payload, tmp)
    return path


#: The entries a checkpoint of this format holds, and their types (checked before restoring).
FIELDS: dict[str, type | tuple[type, ...]] = {
    "version": int,
    "run_id": (str, type(None)),
    "elapsed": (int, float),
    "history": list,
    "model": dict,
    "optimizer": dict,
    "scheduler": dict,
    "rng": dict,
}


def _unusable(path: Path, why: str) -> LrdecayError:
    return LrdecayError(f"checkpoint {path} {why}; delete it to start that run afresh")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint safely (tensors and plain values only) and check its structure."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise _unusable(path, f"is unreadable ({type(exc).__name__})") from exc
    if not isinstance(state, dict):
        raise _unusable(path, f"holds a {type(state).__name__}, not a checkpoint")
    if state.get("version") != FORMAT_VERSION:
        raise _unusable(path, f"has format {state.get('version')}, expected {FORMAT_VERSION}")
    wrong = [k for k, kind in FIELDS.items() if not isinstance(state.get(k), kind)]
    if wrong:
        raise _unusable(path, f"lacks or has malformed entries: {', '.join(wrong)}")
    return state


def restore(engine: Engine, state: dict[str, Any], path: Path) -> None:
    """Put ``engine`` back where the checkpoint at ``path`` left it: the next epoch continues
    the run. A checkpoint that does not fit this model, optimizer or schedule is one error."""
    try:
        engine.model.load_state_dict(state["model"])
        engine.optimizer.load_state_dict(state["optimizer"])
        engine.scheduler.load_state_dict(state["scheduler"])
        engine.history = [EpochRecord(**r) for r in state["history"]]
        engine.elapsed = float(state["elapsed"])
        _set_rng_state(engine, state["rng"])
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise _unusable(path, f"does not fit this run ({type(exc).__name__}: {detail})") from exc


class CheckpointListener(Listener):
    """Saves ``engine``'s state after every epoch (put before tracking, so nothing logged is
    ever missing from the checkpoint)."""

    def __init__(self, path: Path, engine: Engine, run_id: str | None = None) -> None:
        self.path = path
        self.engine = engine
        self.run_id = run_id

    def on_epoch_end(self, record: EpochRecord) -> None:
        save_checkpoint(self.path, self.engine, self.run_id)
