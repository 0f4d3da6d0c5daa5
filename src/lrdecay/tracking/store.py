"""Where the default MLflow store lives: SQLite at ``<store_dir>/mlflow.db``, ``store_dir``
``mlruns`` unless ``tracking.store_dir`` says otherwise. The one definition that the config's
default, the runs, the sweep and the report's default all read; import-light (no MLflow)."""

from __future__ import annotations

from pathlib import Path

#: ``tracking.store_dir``'s default, relative to the launch directory.
DEFAULT_STORE_DIR = "mlruns"
#: The SQLite file of the store inside ``store_dir``.
STORE_FILE = "mlflow.db"


def sqlite_uri(store_dir: Path | str) -> str:
    """The URI of the SQLite store in ``store_dir``, made absolute (jobs change directory)."""
    return f"sqlite:///{(Path(store_dir) / STORE_FILE).resolve()}"
