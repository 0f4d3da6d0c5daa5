"""Where the tracking store lives and whether it can be used: its URI (SQLite at
``<store_dir>/mlflow.db`` unless ``tracking.uri`` or ``MLFLOW_TRACKING_URI`` says otherwise), the
lock beside a SQLite file, its schema's damage and its writability. The one definition that the
config's default, the runs, the sweep and the report's default all read; import-light (no
MLflow)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock

from lrdecay.errors import TrackingError
from lrdecay.tracking.credentials import URI_ENV
from lrdecay.tracking.redact import redact_uri

#: ``tracking.store_dir``'s default, relative to the launch directory.
DEFAULT_STORE_DIR = "mlruns"
#: The SQLite file of the store inside ``store_dir``.
STORE_FILE = "mlflow.db"
#: The URI schemes MLflow's tracking stores accept.
SCHEMES = ("sqlite", "http", "https", "file", "postgresql", "mysql", "mssql", "databricks")
SQLITE_PREFIX = "sqlite:///"


def sqlite_uri(store_dir: Path | str) -> str:
    """The URI of the SQLite store in ``store_dir``, made absolute (jobs change directory)."""
    return f"{SQLITE_PREFIX}{(Path(store_dir) / STORE_FILE).resolve()}"


def resolve_uri(uri: str | None, store_dir: Path) -> str:
    """The tracking URI: explicit ``uri``, else ``MLFLOW_TRACKING_URI``, else local SQLite."""
    if uri:
        return uri
    if os.environ.get(URI_ENV):
        return os.environ[URI_ENV]
    try:
        store_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrackingError(
            f"tracking.store_dir={store_dir} cannot be created "
            f"({exc.strerror or type(exc).__name__}). Fix: point "
            "tracking.store_dir at a writable folder"
        ) from exc
    return sqlite_uri(store_dir)


def check_scheme(uri: str) -> None:
    """Fail with one line when ``uri``'s scheme names no store MLflow knows."""
    scheme = uri.split(":", 1)[0].split("+", 1)[0] if ":" in uri else "file"
    if scheme not in SCHEMES:
        raise TrackingError(
            f"tracking.uri={redact_uri(uri)} has an unknown scheme "
            f"'{scheme}'; use one of {', '.join(SCHEMES)} "
            "(e.g. sqlite:///mlruns/mlflow.db or http://127.0.0.1:5000)"
        )


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI; None for any other store."""
    return Path(uri[len(SQLITE_PREFIX) :]) if uri.startswith(SQLITE_PREFIX) else None


def default_artifact_root(uri: str) -> str | None:
    """Artifacts of a SQLite store live beside its file (``<db folder>/artifacts``), never in
    the working directory; servers choose their own."""
    db = sqlite_path(uri)
    return (db.resolve().parent / "artifacts").as_uri() if db is not None else None


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<db>.lock`` beside a SQLite store (nothing for other stores),
    so that only one process at a time creates or upgrades its schema."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(db.with_name(db.name + ".lock")):
        yield


def sqlite_tables(db: Path) -> list[str]:
    """The tables of the SQLite database ``db``, read without writing; raises
    :class:`sqlite3.Error` when the file is not a SQLite database."""
    with contextlib.closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)) as con:
        rows = con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return [name for (name,) in rows]


def store_damage(db: Path) -> TrackingError | None:
    """One line for a SQLite store file MLflow could not open: not a database at all, or left
    mid-upgrade by an interrupted migration; None when the file looks sound."""
    if not db.is_file():
        return None
    try:
        tables = sqlite_tables(db)
    except sqlite3.Error as error:
        return TrackingError(
            f"{db} is not an MLflow SQLite store ({error}). Fix: move it aside, or point "
            "tracking.uri (or tracking.store_dir) elsewhere"
        )
    leftovers = [name for name in tables if name.startswith("_alembic_tmp_")]
    if leftovers:
        return TrackingError(
            f"the MLflow store {db} is damaged (an interrupted schema upgrade left "
            f"{', '.join(leftovers)}). Fix: move it aside or restore a backup, or "
            "point tracking.uri at a fresh store"
        )
    return None


def check_writable(uri: str) -> None:
    """Fail with one line when a SQLite store's file or folder cannot be written (a run would
    otherwise fail deep inside MLflow, or after training, when it logs)."""
    db = sqlite_path(uri)
    if db is None:
        return
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=db.parent).close()  # SQLite writes its journal beside it
        if db.exists():
            with db.open("r+b"):
                pass
    except OSError as exc:
        raise TrackingError(
            f"the MLflow store {db} is not writable "
            f"({exc.strerror or type(exc).__name__}). Fix: point "
            "tracking.store_dir (or tracking.uri) at a writable place"
        ) from exc
