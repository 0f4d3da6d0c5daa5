"""A sweep's data sets, ready before any job starts: found on disk, else fetched once.

Left to its jobs, each job fetches its data set itself: N downloads into one folder at once
online, N identical failures offline. The launching process, which never imports torch, checks
the shipped data sets by their files (:data:`lrdecay.core.datafiles.ON_DISK`); one that is
missing, or that it cannot check by files, is loaded once by ``python -m lrdecay.fetch_data``
(download or verify), holding a lock in ``data.root`` so that sweeps launched at once fetch it
once between them.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

from filelock import FileLock, Timeout
from omegaconf import OmegaConf

from lrdecay.config import LrdecayConfig
from lrdecay.core.datafiles import ON_DISK
from lrdecay.errors import DataError

log = logging.getLogger("lrdecay")

#: The module that loads one data set in a process of its own (it imports torch).
FETCH_MODULE = "lrdecay.fetch_data"
#: The lock file in ``data.root`` held while its data are checked and fetched.
LOCK_FILE = ".lrdecay-data.lock"


def data_root(conf: LrdecayConfig, cwd: Path) -> Path:
    """``data.root`` as an absolute path (a relative one is relative to the launch folder)."""
    root = Path(conf.data.root).expanduser()
    return root if root.is_absolute() else cwd / root


def on_disk(conf: LrdecayConfig, cwd: Path) -> bool:
    """Whether the run's data set is known, by its files, to be there (never for one not in
    :data:`~lrdecay.core.datafiles.ON_DISK`)."""
    present = ON_DISK.get(conf.dataset.target)
    return present is not None and present(data_root(conf, cwd), conf.data.mirror)


def _fetch_key(conf: LrdecayConfig, cwd: Path) -> str:
    """What one fetch covers: a shipped data set's files under one root from one source, or,
    for any other data set, its whole config."""
    if conf.dataset.target in ON_DISK:
        data = conf.data
        return repr((conf.dataset.target, data_root(conf, cwd), data.mirror, data.download))
    return repr((conf.dataset, conf.data))


def prepare_data(configs: Iterable[LrdecayConfig], cwd: Path) -> None:
    """Make each distinct data set of ``configs`` ready; raise :class:`DataError` (one line)
    for the first that cannot be."""
    seen: set[str] = set()
    for conf in configs:
        key = _fetch_key(conf, cwd)
        if key not in seen:
            seen.add(key)
            _prepare(conf, cwd)


def _prepare(conf: LrdecayConfig, cwd: Path) -> None:
    if on_disk(conf, cwd):
        return
    lock = _locked(data_root(conf, cwd))
    try:
        if not on_disk(conf, cwd):  # another launcher may have fetched it while we waited
            fetch(conf, cwd)
    finally:
        if lock is not None:
            lock.release()


def _locked(root: Path) -> FileLock | None:
    """``root``'s lock, held; None where it cannot be made (the fetch then says why)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(root / LOCK_FILE)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log.info("waiting for another process that prepares the data in %s", root)
            lock.acquire()
    except OSError:
        return None
    return lock


def fetch(conf: LrdecayConfig, cwd: Path) -> None:
    """Load the run's data set once in a process that may import torch (this one must not);
    its download progress shows on stderr, its error becomes a :class:`DataError` here."""
    name = conf.dataset.name
    log.info("data: %s is not in %s yet; fetching it once for the sweep", name, conf.data.root)
    done = subprocess.run(
        [sys.executable, "-m", FETCH_MODULE],
        input=OmegaConf.to_yaml({"dataset": conf.dataset.node(), "data": asdict(conf.data)}),
        stdout=subprocess.PIPE,
        text=True,
        cwd=cwd,
        check=False,
    )
    if done.returncode != 0:
        lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
        raise DataError(
            lines[-1]
            if done.returncode == 2 and lines
            else f"preparing {name} failed (exit status {done.returncode}); see the lines above"
        )
