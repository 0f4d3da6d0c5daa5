"""Files written whole or not at all: a reader, or a parallel job writing the same file, never
sees half of one. The one helper for every such write (job results, checkpoints, unpacked data).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A fresh temporary path beside ``path`` to write to; moved over ``path`` in one step when
    the block ends, removed if it raises. The folder is created if needed.

    Example::

        with replacing(out / "result.json") as tmp:
            tmp.write_text(text)
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
