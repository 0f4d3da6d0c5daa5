"""MNIST, Fashion-MNIST and CIFAR-10 read through torchvision's data-set classes.

Files are found under ``data.root`` (Fashion-MNIST also in Debian's ``dataset-fashion-mnist``
copy), downloaded when allowed (from torchvision's hosts or ``data.mirror``, every network call
bounded by ``data.download_timeout``), or refused with one line that names each fix. CIFAR-10's
pickled batches are md5-checked before anything unpickles them.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lrdecay.atomic import replacing
from lrdecay.core.datafiles import (
    CIFAR10_NPZ,
    DEBIAN_FASHION_MNIST,
    IDX_FILES,
    idx_raw_folder,
)
from lrdecay.core.splits import Split, channels_first, normalise
from lrdecay.errors import DataError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Bound every network call inside (torchvision's downloads set no timeout of their own)."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _stage_idx_files(raw_dir: Path, fallbacks: tuple[Path, ...]) -> None:
    """Unpack IDX files that are present only gzipped, in ``raw_dir`` or a fallback folder."""
    from torchvision.datasets.utils import extract_archive

    for name in IDX_FILES:
        target = raw_dir / name
        if target.exists():
            continue
        for folder in (raw_dir, *fallbacks):
            packed = folder / f"{name}.gz"
            if packed.is_file():
                log.info("unpacking %s into %s", packed, raw_dir)
                # parallel jobs race: each unpacks into a folder of its own, then moves it in
                with (
                    replacing(target) as tmp,
                    tempfile.TemporaryDirectory(dir=raw_dir, prefix=f".{name}.") as work,
                ):
                    shutil.move(extract_archive(packed, work), tmp)
                break


@contextlib.contextmanager
def _from_mirror(cls: type[Any], mirror: str | None) -> Iterator[None]:
    """Download ``cls``'s files from ``mirror`` (a base URL) instead of torchvision's hosts,
    for the duration only. A mirror may recompress the IDX files (Debian's copies differ from
    the official ``.gz`` by md5), so their md5 is not required: gzip's CRC and the IDX reader's
    size check still refuse a damaged file. CIFAR-10's archive keeps its md5 (its batches are
    pickles)."""
    if mirror is None:
        yield
        return
    base = mirror.rstrip("/") + "/"
    if hasattr(cls, "mirrors"):
        changed = {"mirrors": [base], "resources": [(f, None) for f, _ in cls.resources]}
    else:
        changed = {"url": base + cls.filename}
    saved = {key: cls.__dict__[key] for key in changed if key in cls.__dict__}
    for key, value in changed.items():
        setattr(cls, key, value)
    try:
        yield
    finally:
        for key in changed:
            if key in saved:
                setattr(cls, key, saved[key])
            else:
                delattr(cls, key)


def _torchvision_class(name: str) -> type[Any]:
    """The torchvision dataset class for ``name``, imported only when needed (it is slow)."""
    from torchvision.datasets import CIFAR10, MNIST, FashionMNIST

    return {"mnist": MNIST, "fashion_mnist": FashionMNIST, "cifar10": CIFAR10}[name]


def verify_cifar10(root: Path) -> None:
    """Refuse any CIFAR-10 file under ``root`` whose md5 is not torchvision's for the official
    file, before anything unpickles it: a crafted pickle runs code when loaded."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    folder = root / CIFAR10.base_folder
    expected = [
        *CIFAR10.train_list,
        *CIFAR10.test_list,
        (CIFAR10.meta["filename"], CIFAR10.meta["md5"]),
    ]
    for name, md5 in expected:
        path = folder / name
        if path.exists() and not check_integrity(str(path), md5):
            raise DataError(
                f"{path} is not the official CIFAR-10 file (its md5 differs); refusing to "
                f"unpickle it. Fix: delete {folder} and load it again with data.download=true"
            )


#: CIFAR-10 as a NumPy archive under ``data.root`` (:data:`CIFAR10_NPZ`): arrays
#: ``x_train``/``x_test`` (N, 32, 32, 3) uint8 and ``y_train``/``y_test``, read with
#: ``allow_pickle=False``. A form of the data set that needs no unpickling, for copies that are
#: not the official (md5-checked) pickled batches.
NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def _read_npz(path: Path) -> tuple[Split, Split]:
    """The train and test splits of a NumPy archive of images (N, H, W, C) and labels."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            x_tr, y_tr, x_te, y_te = (np.asarray(archive[k]) for k in NPZ_ARRAYS)
    except (KeyError, ValueError, OSError) as exc:
        raise DataError(
            f"{path} is not an archive of arrays {', '.join(NPZ_ARRAYS)} "
            f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
            "fix or delete it"
        ) from exc

    def split(x: np.ndarray, y: np.ndarray) -> Split:
        return Split(
            normalise(channels_first(x), 255.0), torch.as_tensor(y.reshape(-1).astype(np.int64))
        )

    return split(x_tr, y_tr), split(x_te, y_te)


@dataclass(frozen=True)
class Fetch:
    """Where a shipped data set's files are, and whether (and from where) they may be
    downloaded: the ``data.*`` settings its factory is given."""

    root: Path
    download: bool = True
    timeout: float = 10.0
    mirror: str | None = None


def read_torchvision(name: str, fetch: Fetch) -> tuple[Split, Split]:
    """Read the official train and test splits of a torchvision data set, downloading if allowed
    (CIFAR-10 from a NumPy archive instead when the root holds one); a corrupt file is one
    :class:`DataError` naming the fix."""
    try:
        return _read_torchvision_files(name, fetch)
    except (AssertionError, ValueError, KeyError, EOFError, OSError, pickle.UnpicklingError) as exc:
        raise DataError(
            f"a {name} file under {fetch.root} is unreadable or corrupt "
            f"({exc or type(exc).__name__}); delete it and load again"
        ) from exc


def _read_torchvision_files(name: str, fetch: Fetch) -> tuple[Split, Split]:
    """:func:`read_torchvision`'s reading, without its catch-all for corrupt files."""
    root = fetch.root
    if root.exists() and not root.is_dir():
        raise DataError(f"data.root={root} is a file, not a directory; point data.root at a folder")
    if name == "cifar10" and (root / CIFAR10_NPZ).is_file():
        return _read_npz(root / CIFAR10_NPZ)
    cls = _torchvision_class(name)
    if name == "cifar10":
        verify_cifar10(root)
    else:
        # a named mirror is the source the user chose: Debian's copy is not used then
        debian = name == "fashion_mnist" and fetch.mirror is None
        _stage_idx_files(idx_raw_folder(root, name), (DEBIAN_FASHION_MNIST,) if debian else ())
    splits = []
    for train in (True, False):
        try:
            with _socket_timeout(fetch.timeout), _from_mirror(cls, fetch.mirror):
                ds = cls(root=str(root), train=train, download=fetch.download)
        except RuntimeError as exc:  # torchvision's "not found" and "error downloading"
            raise _missing_data_error(name, root, fetch.download, exc) from exc
        except OSError as exc:
            why = _unwritable(root) if fetch.download else None
            if why is None:
                raise
            raise DataError(
                f"data.root={root} cannot be written ({why}), so {name} cannot be "
                "downloaded into it. Fix: point data.root at a writable folder, or "
                "put the files there and set data.download=false"
            ) from exc
        images = channels_first(ds.data if isinstance(ds.data, np.ndarray) else ds.data.numpy())
        labels = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
        splits.append(Split(normalise(images, 255.0), labels))
    return splits[0], splits[1]


def _unwritable(root: Path) -> str | None:
    """Why files cannot be created under ``root`` (made if missing), or None if they can."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=root).close()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def _missing_data_error(name: str, root: Path, download: bool, exc: Exception) -> DataError:
    """One line naming every fix: the files, the download, a data set that needs no network."""
    hint = f"put the {name} files under data.root=... (now {root})"
    if name == "fashion_mnist":
        hint += " or install Debian's dataset-fashion-mnist package"
    offline = "train offline on dataset=digits (bundled)" + (
        ""
        if name == "fashion_mnist"
        else " or dataset=fashion_mnist (Debian's dataset-fashion-mnist package)"
    )
    if download:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = lines[-1] if lines else type(exc).__name__
        return DataError(
            f"{name} is not under {root} and downloading it failed ({detail}). "
            f"Fix: {hint}, allow the download (data.download=true) from a machine that "
            f"reaches its host or a mirror (data.mirror=<base URL>), or {offline}."
        )
    return DataError(
        f"{name} not found under {root} and data.download=false. "
        f"Fix: {hint}, allow the download with data.download=true, or {offline}."
    )
