"""``python -m lrdecay.fetch_data``: load one run's data set once, downloading or verifying it.

A sweep's launching process, which never imports torch, runs this once per data set its jobs
use, before any job starts (:mod:`lrdecay.sweep.prepare`). It reads the run's ``dataset`` and
``data`` nodes as YAML on stdin. A user-fixable error ends it with exit status 2 and its one-line
message as the only line on stdout; everything else it prints (download progress) goes to stderr.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from omegaconf import OmegaConf

from lrdecay.component_config import DatasetConfig
from lrdecay.config import DataConfig
from lrdecay.errors import LrdecayError


def fetch(dataset: DatasetConfig, data: DataConfig) -> None:
    """The data set read once on the CPU, as a job reads it (the one call to the loader)."""
    import torch

    from lrdecay.core.data import load_data

    load_data(dataset, data, torch.device("cpu"))


def main() -> int:
    """Fetch the data set of the ``dataset`` and ``data`` nodes on stdin; 0 when it is ready,
    2 with one line if not."""
    try:
        node: Any = OmegaConf.to_container(OmegaConf.create(sys.stdin.read()))
        dataset, data = DatasetConfig.of(node["dataset"]), DataConfig(**node["data"])
        with contextlib.redirect_stdout(sys.stderr):  # torchvision prints its progress
            fetch(dataset, data)
    except LrdecayError as exc:
        print(exc, flush=True)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
