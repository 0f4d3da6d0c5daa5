"""Where the shipped data sets' files live, and whether they are there: plain file checks.

Torch-free, so that a sweep's launching process can look before any job starts; the loader
(:mod:`lrdecay.core.data`) reads the same names.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

#: Where Debian's ``dataset-fashion-mnist`` package puts its (gzipped) IDX files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
#: The folder under ``data.root`` that torchvision keeps each IDX data set's files in.
IDX_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}

#: CIFAR-10 as a NumPy archive under ``data.root`` (see :mod:`lrdecay.core.data`).
CIFAR10_NPZ = "cifar10.npz"
#: torchvision's folder of the official pickled batches, and its files.
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_FILES = (
    *(f"data_batch_{i}" for i in range(1, 6)),
    "test_batch",
    "batches.meta",
)


def idx_raw_folder(root: Path, name: str) -> Path:
    """The folder torchvision reads the IDX files of ``name`` (mnist, fashion_mnist) from."""
    return root / IDX_FOLDERS[name] / "raw"


def has_idx_files(folder: Path) -> bool:
    """Whether ``folder`` holds the four IDX files, each plain or gzipped."""
    return all((folder / name).is_file() or (folder / f"{name}.gz").is_file() for name in IDX_FILES)


def _mnist(root: Path, mirror: str | None) -> bool:
    return has_idx_files(idx_raw_folder(root, "mnist"))


def _fashion_mnist(root: Path, mirror: str | None) -> bool:
    """Under ``root``, or Debian's copy (unless a mirror is named: the user chose that source)."""
    return has_idx_files(idx_raw_folder(root, "fashion_mnist")) or (
        mirror is None and has_idx_files(DEBIAN_FASHION_MNIST)
    )


def _cifar10(root: Path, mirror: str | None) -> bool:
    folder = root / CIFAR10_FOLDER
    return (root / CIFAR10_NPZ).is_file() or all((folder / f).is_file() for f in CIFAR10_FILES)


#: Whether each shipped data set, by its factory (``dataset._target_``), is on disk for
#: ``(data.root, data.mirror)``. Any other factory cannot be checked by its files: it is called
#: to find out.
ON_DISK: dict[str, Callable[[Path, str | None], bool]] = {
    "lrdecay.core.data.digits": lambda root, mirror: True,  # bundled with scikit-learn
    "lrdecay.core.data.mnist": _mnist,
    "lrdecay.core.data.fashion_mnist": _fashion_mnist,
    "lrdecay.core.data.cifar10": _cifar10,
}
