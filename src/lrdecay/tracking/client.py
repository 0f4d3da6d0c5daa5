"""The MLflow client every part of the project talks to a store through: opened under the
store's lock, its calls never cut in half by a stop signal, retried with a short backoff, and an
HTTP server's health checked in seconds."""

from __future__ import annotations

import base64
import functools
import inspect
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from mlflow.tracking import MlflowClient
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from lrdecay.core.interrupts import stop_deferred
from lrdecay.errors import TrackingError
from lrdecay.tracking.credentials import PASSWORD_ENV, USERNAME_ENV
from lrdecay.tracking.redact import redact_uri
from lrdecay.tracking.store import sqlite_path, store_damage, store_lock

T = TypeVar("T")


#: The longest wait between two tries of a store call, seconds.
MAX_RETRY_DELAY = 8.0


def with_retry(fn: Callable[[], T], attempts: int, first_delay: float = 0.5) -> T:
    """Call ``fn`` up to ``attempts`` times, waiting ``first_delay`` seconds after the first
    failure and twice as long after each next (at most :data:`MAX_RETRY_DELAY`); re-raise the
    last failure. Only errors are retried: a stop signal (a ``KeyboardInterrupt``) ends it."""
    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=first_delay, max=MAX_RETRY_DELAY),
        retry=retry_if_exception_type(Exception),
        reraise=True,
    )
    return retrying(fn)


class StopSafeClient(MlflowClient):
    """An :class:`MlflowClient` whose public calls a stop signal never cuts in half: the
    signal's :class:`~lrdecay.core.interrupts.Interrupted` is raised as the call returns."""

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        if name.startswith("_") or not inspect.ismethod(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            with stop_deferred():
                return attr(*args, **kwargs)

        return call


def open_client(uri: str) -> MlflowClient:
    """An MLflow client on ``uri``. MLflow creates and upgrades a SQLite store's schema when the
    client is made; the store's lock keeps processes that start together from racing there,
    and a stop signal waits for the upgrade to end."""
    with store_lock(uri), stop_deferred():
        try:
            return StopSafeClient(tracking_uri=uri)
        except Exception as exc:
            db = sqlite_path(uri)
            damage = store_damage(db) if db is not None else None
            if damage is not None:
                raise damage from exc
            raise


def check_server(uri: str) -> None:
    """Fail in seconds, with one clear line, when an HTTP tracking server is not there."""
    if not uri.startswith(("http://", "https://")):
        return
    parts = urlsplit(uri)
    host = f"{parts.hostname}:{parts.port}" if parts.port else (parts.hostname or "")
    request = urllib.request.Request(
        urlunsplit(parts._replace(netloc=host)).rstrip("/") + "/health"
    )
    user = parts.username or os.environ.get(USERNAME_ENV)
    if user:
        password = parts.password or os.environ.get(PASSWORD_ENV, "")
        token = base64.b64encode(f"{user}:{password}".encode())
        request.add_header("Authorization", f"Basic {token.decode()}")
    try:
        with urllib.request.urlopen(request, timeout=5):
            pass
    except urllib.error.HTTPError:
        return  # something answers; MLflow's own calls will tell if it is not MLflow
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"the MLflow server at {redact_uri(uri)} is unreachable "
            f"({reason}). Fix: start it (mlflow server --host 127.0.0.1 "
            "--port ...), or point tracking.uri at another store"
        ) from exc
