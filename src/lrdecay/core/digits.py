"""scikit-learn's bundled 8×8 digits as a fixed stratified train/test pair: no files, no
network. The split is computed once per machine and kept in a cache folder."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import platformdirs
import torch

from lrdecay.atomic import replacing
from lrdecay.core.splits import Split, normalise

#: The folder that keeps the digits split once computed (default: the platform's user cache
#: folder, ``$XDG_CACHE_HOME/lrdecay`` or ``~/.cache/lrdecay`` on Linux; safe to delete).
#: Importing scikit-learn costs a process about a second, and each run of the embedded default
#: would pay it to rebuild the same 1 797 images.
DIGITS_CACHE_ENV = "LRDECAY_CACHE"


def _digits_cache(test_fraction: float, seed: int) -> Path | None:
    """The cache file of this digits split (named by scikit-learn's version, which owns the data
    and the split), or None when scikit-learn is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        sklearn = version("scikit-learn")
    except PackageNotFoundError:
        return None
    if os.environ.get(DIGITS_CACHE_ENV):
        folder = Path(os.environ[DIGITS_CACHE_ENV]).expanduser()
    else:
        folder = platformdirs.user_cache_path("lrdecay", appauthor=False)
        if not folder.is_absolute():  # no home directory to resolve
            return None
    return folder / f"digits-sklearn{sklearn}-test{test_fraction}-seed{seed}.npz"


def _split_digits(test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """scikit-learn's digits split into a stratified train/test pair, as raw uint8 arrays."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = bunch.images[:, None, :, :].astype(np.uint8)  # integer pixel values 0..16
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, bunch.target, test_size=test_fraction, random_state=seed, stratify=bunch.target
    )
    return {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}


def _cached_digits(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a digits cache file, or None if it is missing or not a well-formed one
    (read with ``allow_pickle=False``: the file holds plain arrays only)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, ValueError, KeyError, EOFError):
        return None
    well_formed = all(
        arrays[f"x_{part}"].shape[1:] == (1, 8, 8)
        and arrays[f"x_{part}"].dtype == np.uint8
        and arrays[f"y_{part}"].shape == arrays[f"x_{part}"].shape[:1]
        for part in ("train", "test")
    )
    return arrays if well_formed else None


def read_digits(test_fraction: float = 0.2, seed: int = 0) -> tuple[Split, Split]:
    """scikit-learn's bundled 8×8 digits, split once into a fixed stratified train/test pair.

    The split is computed once per machine and kept (see :data:`DIGITS_CACHE_ENV`); a cache that
    cannot be read or written only costs the recomputation."""
    path = _digits_cache(test_fraction, seed)
    arrays = _cached_digits(path) if path is not None else None
    if arrays is None:
        arrays = _split_digits(test_fraction, seed)
        if path is not None:
            with contextlib.suppress(OSError), replacing(path) as tmp, tmp.open("wb") as out:
                np.savez(out, allow_pickle=False, **arrays)

    def as_split(part: str) -> Split:
        return Split(
            normalise(arrays[f"x_{part}"], 16.0),
            torch.as_tensor(arrays[f"y_{part}"], dtype=torch.int64),
        )

    return as_split("train"), as_split("test")
