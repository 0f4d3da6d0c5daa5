"""A data set's split as tensors (images and labels), and the ways a split is made.

Every reader (:mod:`lrdecay.core.image_sets`, :mod:`lrdecay.core.digits`, a user's factory
through :func:`as_split`) ends in a :class:`Split`: normalised float32 images (N, C, H, W) and
int64 labels, batched by index so the epoch loop does no per-sample Python work.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lrdecay.errors import DataError


@dataclass
class Split:
    """One split: images ``x`` (N, C, H, W) float32, normalised, and labels ``y`` (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: torch.device) -> Split:
        """The split moved to ``device`` (a no-op when it is already there)."""
        return Split(self.x.to(device, non_blocking=True), self.y.to(device, non_blocking=True))

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        """Yield ``(x, y)`` batches; shuffled by a fresh permutation when ``generator`` is given."""
        n = len(self)
        if generator is None:
            for start in range(0, n, batch_size):
                yield self.x[start : start + batch_size], self.y[start : start + batch_size]
            return
        order = torch.randperm(n, generator=generator).to(self.x.device)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            yield self.x.index_select(0, idx), self.y.index_select(0, idx)


def normalise(images: np.ndarray | torch.Tensor, scale: float) -> torch.Tensor:
    """Map raw pixel values in [0, scale] to ToTensor + Normalize(0.5, 0.5): (x/scale − 0.5)/0.5."""
    x = torch.as_tensor(images, dtype=torch.float32)
    return (x / scale - 0.5) / 0.5


def channels_first(images: np.ndarray) -> np.ndarray:
    """Images as (N, C, H, W): MNIST's (N, H, W) get one channel, CIFAR's (N, H, W, C) are
    transposed."""
    if images.ndim == 3:
        return images[:, None, :, :]
    return images.transpose(0, 3, 1, 2)


def hold_out(train: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Split ``fraction`` of ``train`` off as a validation split, reproducibly by ``seed``."""
    n_val = max(1, round(len(train) * fraction))
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:n_val], order[n_val:]
    return (
        Split(train.x[train_idx], train.y[train_idx]),
        Split(train.x[val_idx], train.y[val_idx]),
    )


def as_split(part: Any, which: str, target: str) -> Split:
    """One split a factory returned, as a :class:`Split`: a Split, an ``(images, labels)`` pair
    of tensors or arrays, or a map-style data set of ``(image, label)`` samples."""
    if isinstance(part, Split):
        return part
    if isinstance(part, tuple | list) and len(part) == 2:
        x, y = part
    elif hasattr(part, "__len__") and hasattr(part, "__getitem__"):
        samples = [part[i] for i in range(len(part))]
        x = torch.stack([torch.as_tensor(s[0]) for s in samples])
        y = torch.as_tensor([int(s[1]) for s in samples])
    else:
        raise DataError(
            f"{target} returned {type(part).__name__} as its {which} split; return "
            "(train, test), each an (images, labels) pair or a data set of (image, label)"
        )
    x, y = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y).to(torch.int64)
    if x.ndim != 4 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise DataError(
            f"{target}'s {which} split has images {tuple(x.shape)} and labels {tuple(y.shape)}; "
            "images must be (N, C, H, W) and labels (N,)"
        )
    return Split(x, y)
