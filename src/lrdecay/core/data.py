"""Data sets as normalised tensors resident on the run's device, batched by index.

Each data set is read once through its canonical reader (torchvision's dataset classes for
MNIST, Fashion-MNIST and CIFAR-10, scikit-learn's bundled ``load_digits``), normalised with
ToTensor + Normalize(0.5, 0.5) semantics, and held whole as tensors: the epoch loop does no
per-sample Python work.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import pickle
import pydoc
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import platformdirs
import torch

from lrdecay.atomic import replacing
from lrdecay.core.datafiles import (
    CIFAR10_NPZ,
    DEBIAN_FASHION_MNIST,
    IDX_FILES,
    idx_raw_folder,
)
from lrdecay.errors import DataError

if TYPE_CHECKING:  # the core takes the config objects, never the config machinery
    from lrdecay.config import DataConfig, DatasetConfig

log = logging.getLogger(__name__)


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


@dataclass
class DataBundle:
    """The splits of one run: ``val`` steers the schedule; ``test`` is set when val is held out."""

    name: str
    train: Split
    val: Split
    test: Split | None
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])  # type: ignore[return-value]


def normalise(images: np.ndarray | torch.Tensor, scale: float) -> torch.Tensor:
    """Map raw pixel values in [0, scale] to ToTensor + Normalize(0.5, 0.5): (x/scale − 0.5)/0.5."""
    x = torch.as_tensor(images, dtype=torch.float32)
    return (x / scale - 0.5) / 0.5


# --------------------------------------------------------------------------- readers


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
def _from_mirror(cls: type, mirror: str | None) -> Iterator[None]:
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


def _torchvision_class(name: str) -> type:
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


def channels_first(images: np.ndarray) -> np.ndarray:
    """Images as (N, C, H, W): MNIST's (N, H, W) get one channel, CIFAR's (N, H, W, C) are
    transposed."""
    if images.ndim == 3:
        return images[:, None, :, :]
    return images.transpose(0, 3, 1, 2)


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


def _read_torchvision(name: str, fetch: Fetch) -> tuple[Split, Split]:
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
    """:func:`_read_torchvision`'s reading, without its catch-all for corrupt files."""
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


# --------------------------------------------------------------------------- the shipped factories


def mnist(
    root: str, download: bool = True, download_timeout: float = 10.0, mirror: str | None = None
) -> tuple[Split, Split]:
    """MNIST (the study's Table 1): 60 000 train / 10 000 test 28×28 digits."""
    return _read_torchvision(
        "mnist", Fetch(Path(root).expanduser(), download, download_timeout, mirror)
    )


def fashion_mnist(
    root: str, download: bool = True, download_timeout: float = 10.0, mirror: str | None = None
) -> tuple[Split, Split]:
    """Fashion-MNIST: MNIST's format, ten kinds of clothing (also from Debian's package)."""
    fetch = Fetch(Path(root).expanduser(), download, download_timeout, mirror)
    return _read_torchvision("fashion_mnist", fetch)


def cifar10(
    root: str, download: bool = True, download_timeout: float = 10.0, mirror: str | None = None
) -> tuple[Split, Split]:
    """CIFAR-10 (the study's Table 2): 50 000 train / 10 000 test 32×32 colour images."""
    return _read_torchvision(
        "cifar10", Fetch(Path(root).expanduser(), download, download_timeout, mirror)
    )


def digits() -> tuple[Split, Split]:
    """scikit-learn's bundled 8×8 digits, a fixed stratified 80/20 split: no files, no network."""
    return _read_digits()


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


def _read_digits(test_fraction: float = 0.2, seed: int = 0) -> tuple[Split, Split]:
    """scikit-learn's bundled 8×8 digits, split once into a fixed stratified train/test pair.

    The split is computed once per machine and kept (see :data:`DIGITS_CACHE_ENV`); a cache that
    cannot be read or written only costs the recomputation."""
    path = _digits_cache(test_fraction, seed)
    arrays = _cached_digits(path) if path is not None else None
    if arrays is None:
        arrays = _split_digits(test_fraction, seed)
        if path is not None:
            with contextlib.suppress(OSError), replacing(path) as tmp, tmp.open("wb") as out:
                np.savez(out, **arrays)

    def as_split(part: str) -> Split:
        return Split(
            normalise(arrays[f"x_{part}"], 16.0),
            torch.as_tensor(arrays[f"y_{part}"], dtype=torch.int64),
        )

    return as_split("train"), as_split("test")


def hold_out(train: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Split ``fraction`` of ``train`` off as a validation split, reproducibly by ``seed``."""
    n_val = max(1, round(len(train) * fraction))
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:n_val], order[n_val:]
    return (
        Split(train.x[train_idx], train.y[train_idx]),
        Split(train.x[val_idx], train.y[val_idx]),
    )


#: The last bundle this process loaded, by :func:`_cache_key`. Launcher workers run job after
#: job in one process; a sweep's jobs mostly share their data, and re-reading and normalising
#: it costs each job 0.5 s (Fashion-MNIST) to seconds (CIFAR-10). One entry only: a worker
#: never holds more than the data of the job it runs, plus the one it ran.
_last: tuple[tuple, DataBundle] | None = None


def _files_stamp(root: Path) -> tuple:
    """Name, size and mtime of every file under ``root``: replaced files mean a fresh read."""
    if not root.is_dir():
        return ()
    stamp = []
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            st = (Path(folder) / name).stat()
            stamp.append((folder, name, st.st_size, st.st_mtime_ns))
    return tuple(stamp)


def _cache_key(dataset: DatasetConfig, data: DataConfig, device: torch.device) -> tuple:
    """What a bundle depends on: the data set's config, the device, and (for a factory that
    reads files under ``data.root``) the root and the files in it."""
    if "root" not in data_keywords(locate_factory(dataset), data):
        return repr(dataset), str(device)
    root = Path(data.root).expanduser().resolve()
    return repr(dataset), str(device), str(root), _files_stamp(root)


def load_data(dataset: DatasetConfig, data: DataConfig, device: torch.device) -> DataBundle:
    """Load ``dataset`` as tensors on ``device``; validation is the official test split unless
    ``dataset.val_fraction`` > 0 holds part of the training split out (then test is reported too).

    The same data asked for again in this process (the next job of a sweep worker) come from
    memory: the tensors are read-only for the trainer, so jobs can share them.
    """
    global _last
    cached = _last is not None and _last[0] == _cache_key(dataset, data, device)
    if _last is not None and cached:
        bundle = _last[1]
    else:
        _last = None  # let the previous bundle go before the next one is read
        bundle = _read_bundle(dataset, data, device)
        _last = (_cache_key(dataset, data, device), bundle)  # after reading: files may be new
    log.info(
        "data %s: train %d, val %d%s on %s%s",
        dataset.name,
        len(bundle.train),
        len(bundle.val),
        f", test {len(bundle.test)}" if bundle.test else "",
        device,
        " (already in memory)" if cached else "",
    )
    return bundle


# --------------------------------------------------------------------------- any factory


def locate_factory(dataset: DatasetConfig) -> Callable[..., Any]:
    """The callable ``dataset._target_`` names (checked by the run before anything loads)."""
    factory = pydoc.locate(dataset.target)
    if not callable(factory):
        raise DataError(f"dataset._target_: '{dataset.target}' is not an importable callable")
    return factory


def data_keywords(factory: Callable[..., Any], data: DataConfig) -> dict[str, Any]:
    """The ``data.*`` settings (``root``, ``download``, ...) that ``factory``'s signature names,
    by name: what the run fills in besides the data set's own arguments."""
    params = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    offered = {f.name: getattr(data, f.name) for f in dataclass_fields(data)}
    return {k: v for k, v in offered.items() if takes_any or k in params}


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


def _read_bundle(dataset: DatasetConfig, data: DataConfig, device: torch.device) -> DataBundle:
    """Call the data set's factory, check, split and place its data (a :func:`load_data` miss)."""
    factory = locate_factory(dataset)
    parts = factory(**dataset.args, **data_keywords(factory, data))
    if not (isinstance(parts, tuple | list) and len(parts) == 2):
        raise DataError(f"{dataset.target} must return (train, test), got {type(parts).__name__}")
    train, test = (
        as_split(p, w, dataset.target) for p, w in zip(parts, ("train", "test"), strict=True)
    )
    if dataset.shape is not None and tuple(train.x.shape[1:]) != dataset.shape:
        raise DataError(
            f"{dataset.name} images have shape {tuple(train.x.shape[1:])}, "
            f"the dataset config says {dataset.shape}"
        )
    num_classes = dataset.num_classes or int(max(train.y.max(), test.y.max())) + 1
    if dataset.val_fraction > 0:
        train, val = hold_out(train, dataset.val_fraction, dataset.split_seed)
        return DataBundle(
            dataset.name, train.to(device), val.to(device), test.to(device), num_classes
        )
    return DataBundle(dataset.name, train.to(device), test.to(device), None, num_classes)
