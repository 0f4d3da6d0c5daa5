"""A run's data: the shipped data-set factories, any factory named by ``dataset._target_``,
and the bundle of splits a run trains, steers and scores on, held on the run's device.

A factory returns ``(train, test)``; :func:`load_data` checks and splits its result (holding
``dataset.val_fraction`` of train out for validation when asked) and keeps the last bundle in
memory for the next job of the same sweep worker.
"""

from __future__ import annotations

import inspect
import logging
import os
import pydoc
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lrdecay.core.digits import read_digits
from lrdecay.core.image_sets import Fetch, read_torchvision
from lrdecay.core.splits import Split, as_split, hold_out
from lrdecay.errors import DataError

if TYPE_CHECKING:  # the core takes the config objects, never the config machinery
    from lrdecay.component_config import DatasetConfig
    from lrdecay.config import DataConfig

log = logging.getLogger(__name__)


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


# --------------------------------------------------------------------------- the shipped factories


def mnist(
    root: str, download: bool = True, download_timeout: float = 10.0, mirror: str | None = None
) -> tuple[Split, Split]:
    """MNIST (the study's Table 1): 60 000 train / 10 000 test 28×28 digits."""
    return read_torchvision(
        "mnist", Fetch(Path(root).expanduser(), download, download_timeout, mirror)
    )


def fashion_mnist(
    root: str, download: bool = True, download_timeout: float = 10.0, mirror: str | None = None
) -> tuple[Split, Split]:
    """Fashion-MNIST: MNIST's format, ten kinds of clothing (also from Debian's package)."""
    fetch = Fetch(Path(root).expanduser(), download, download_timeout, mirror)
    return read_torchvision("fashion_mnist", fetch)


def cifar10(
    root: str, download: bool = True, download_timeout: float = 10.0, mirror: str | None = None
) -> tuple[Split, Split]:
    """CIFAR-10 (the study's Table 2): 50 000 train / 10 000 test 32×32 colour images."""
    return read_torchvision(
        "cifar10", Fetch(Path(root).expanduser(), download, download_timeout, mirror)
    )


def digits() -> tuple[Split, Split]:
    """scikit-learn's bundled 8×8 digits, a fixed stratified 80/20 split: no files, no network."""
    return read_digits()


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
