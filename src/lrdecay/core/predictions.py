"""A run's predictions on the split that scores it, and the small file that keeps them.

The scoring split is the test split when validation is held out (``dataset.val_fraction`` > 0),
else the validation split (which is then the test split). Its predicted class per item is what a
paired analysis over test items needs: two runs scored on the same items (the same labels hash)
can be compared item by item. Plain NumPy, no torch: the report reads these files too. The file
holds only arrays of numbers and fixed-width text, written and read without pickling.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The artifact a run logs its predictions under, and the file name of one run's predictions.
PREDICTIONS_FILE = "predictions.npz"
#: The splits a run may be scored on.
SCORED_SPLITS = ("test", "val")
#: Hex digits of the labels' hash: short, and enough to tell apart the splits a study uses.
HASH_DIGITS = 16


def class_dtype(num_classes: int) -> np.dtype:
    """The smallest integer type that holds class indices below ``num_classes``."""
    if num_classes <= 256:
        return np.dtype(np.uint8)
    return np.dtype(np.int16) if num_classes <= 32768 else np.dtype(np.int32)


def labels_hash(labels: np.ndarray) -> str:
    """A short hash of ``labels`` in order, whatever their integer type: runs whose labels hash
    alike were scored on the same items."""
    data = np.ascontiguousarray(np.asarray(labels), dtype="<i8").tobytes()
    return hashlib.sha256(data).hexdigest()[:HASH_DIGITS]


@dataclass(frozen=True, eq=False)
class Predictions:
    """The predicted class of each item of the scoring ``split`` and the item's label, both in
    the split's order, in the smallest integer type that holds the classes."""

    split: str
    predicted: np.ndarray
    labels: np.ndarray

    @classmethod
    def of(cls, split: str, predicted: np.ndarray, labels: np.ndarray) -> Predictions:
        """Predictions of ``split`` from class indices of any integer type, stored compactly."""
        if split not in SCORED_SPLITS:
            raise ValueError(f"split must be one of {SCORED_SPLITS}, got {split!r}")
        predicted, labels = np.asarray(predicted).reshape(-1), np.asarray(labels).reshape(-1)
        if predicted.shape != labels.shape:
            raise ValueError(f"{predicted.size} predictions for {labels.size} labels")
        top = int(max(predicted.max(initial=0), labels.max(initial=0)))
        dtype = class_dtype(top + 1)
        return cls(split, predicted.astype(dtype), labels.astype(dtype))

    @property
    def n(self) -> int:
        """How many items were scored."""
        return int(self.labels.size)

    @property
    def labels_hash(self) -> str:
        """See :func:`labels_hash`."""
        return labels_hash(self.labels)

    def accuracy(self) -> float:
        """The share of items predicted right."""
        return float(np.mean(self.predicted == self.labels)) if self.n else float("nan")

    def save(self, path: Path) -> Path:
        """Write ``path`` (a compressed ``.npz``): ``predicted``, ``labels``, ``n``,
        ``labels_hash`` and ``split``."""
        with path.open("wb") as handle:
            np.savez_compressed(
                handle,
                predicted=self.predicted,
                labels=self.labels,
                n=np.int64(self.n),
                labels_hash=np.str_(self.labels_hash),
                split=np.str_(self.split),
            )
        return path

    @classmethod
    def load(cls, path: Path) -> Predictions:
        """Read a file :meth:`save` wrote (never unpickling); raises :class:`ValueError` when it
        is not one, or its count or hash disagrees with its labels."""
        try:
            with np.load(path, allow_pickle=False) as archive:
                predicted, labels = archive["predicted"], archive["labels"]
                n, digest, split = (
                    int(archive["n"]),
                    str(archive["labels_hash"]),
                    str(archive["split"]),
                )
        except (KeyError, OSError, ValueError) as exc:
            raise ValueError(f"{path} is not a predictions file ({exc})") from exc
        found = cls(split, predicted, labels)
        if n != found.n or digest != found.labels_hash or predicted.shape != labels.shape:
            raise ValueError(f"{path}: its item count or labels hash disagrees with its labels")
        return found
