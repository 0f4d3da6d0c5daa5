"""The study's storage: an Optuna RDB storage opened safely by several launchers and jobs.

Its user's password comes from :data:`STORAGE_PASSWORD_ENV`, put back into the URL only to
connect; SQLite waits long for locks; PostgreSQL tables and studies are created under an
advisory lock, so launchers may start on one fresh database at once.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import optuna

#: The password of ``hydra.sweeper.storage``'s user, put back into the URL only to connect.
STORAGE_PASSWORD_ENV = "LRDECAY_STORAGE_PASSWORD"


def storage_url(url: str, environ: MutableMapping[str, str]) -> str:
    """``url`` with :data:`STORAGE_PASSWORD_ENV`'s password put back for its user (only to
    connect: never log or save the result)."""
    parts = urlsplit(url)
    password = environ.get(STORAGE_PASSWORD_ENV)
    if not password or not parts.username or parts.password is not None:
        return url
    from sqlalchemy.engine import make_url

    return make_url(url).set(password=password).render_as_string(hide_password=False)


#: Seconds a SQLite writer waits for a lock: parallel jobs and the sweeper share one file.
SQLITE_TIMEOUT_S = 60
#: The PostgreSQL advisory lock under which launchers create Optuna's tables and their study
#: ("lrdecay" in ASCII): one constant, so that every launcher on a database takes the same lock.
CREATION_LOCK_KEY = 0x6C7264656361_79
#: Seconds a launcher waits for another one's creation before it gives up with one line.
CREATION_LOCK_TIMEOUT_S = 120


def open_storage(url: str, create_tables: bool = True) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage at ``url`` (its user's password from
    :data:`STORAGE_PASSWORD_ENV`); SQLite files get a long lock timeout, because the
    sweeper and its parallel jobs write to the same file."""
    import optuna

    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
    return optuna.storages.RDBStorage(
        storage_url(url, os.environ),
        engine_kwargs=engine_kwargs,
        skip_table_creation=not create_tables,
    )


@contextlib.contextmanager
def creation_lock(url: str) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock, on a connection of its own, while the caller creates
    Optuna's tables and its study: launchers that start together on a fresh database would
    otherwise create the same tables at once and collide in PostgreSQL's catalog. Any other
    database: nothing."""
    import sqlalchemy

    if sqlalchemy.engine.make_url(url).get_backend_name() != "postgresql":
        yield
        return
    # NullPool: leaving the block closes the connection, and ending its session releases the
    # lock, whether the creation succeeded or raised.
    engine = sqlalchemy.create_engine(
        storage_url(url, os.environ), poolclass=sqlalchemy.pool.NullPool
    )
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f"SET lock_timeout = '{CREATION_LOCK_TIMEOUT_S}s'")
            lock = sqlalchemy.text("SELECT pg_advisory_lock(:key)")
            connection.execute(lock, {"key": CREATION_LOCK_KEY})
            connection.commit()
            yield
    finally:
        engine.dispose()


def open_study(url: str, **create: Any) -> tuple[optuna.storages.RDBStorage, optuna.Study]:
    """The storage at ``url`` and the study ``optuna.create_study(**create)`` creates or loads
    there, both under :func:`creation_lock`: launchers may start on one fresh database at once."""
    import optuna

    with creation_lock(url):
        storage = open_storage(url)
        return storage, optuna.create_study(storage=storage, load_if_exists=True, **create)
