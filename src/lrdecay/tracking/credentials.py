"""Credentials out of URIs before Hydra saves anything: into the environment, where MLflow
(and Optuna's storage, through :func:`storage_url`) read them, and launcher workers inherit them.

Hydra writes ``.hydra/*.yaml`` and ``multirun.yaml`` from the command line before any job runs,
so ``train.py`` calls :func:`move_credentials` on ``sys.argv`` before Hydra parses it.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from urllib.parse import unquote, urlsplit, urlunsplit

# the sweeper owns its storage's password variable and reads it back (one definition)
from hydra_plugins.lrdecay_optuna_sweeper.storage import STORAGE_PASSWORD_ENV, storage_url

__all__ = [
    "PASSWORD_ENV",
    "STORAGE_PASSWORD_ENV",
    "URI_ENV",
    "USERNAME_ENV",
    "move_credentials",
    "split_credentials",
    "storage_url",
]

#: The variables MLflow reads for HTTP basic auth, and its tracking URI variable.
USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"
URI_ENV = "MLFLOW_TRACKING_URI"

_TRACKING = re.compile(r"^(?P<key>\+{0,2}tracking\.uri=)(?P<q>['\"]?)(?P<uri>.*)(?P=q)$")
_STORAGE = re.compile(r"^(?P<key>\+{0,2}hydra\.sweeper\.storage=)(?P<q>['\"]?)(?P<uri>.*)(?P=q)$")


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """``uri`` without ``user:password@``, and its (decoded) user and password; ``uri``
    unchanged and two Nones when it holds no password."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri, None, None
    host = parts.netloc.rsplit("@", 1)[1]
    bare = urlunsplit(parts._replace(netloc=host))
    return bare, unquote(parts.username or ""), unquote(parts.password)


def _strip_password(uri: str) -> tuple[str, str | None]:
    """``uri`` with its password (not its user) removed, and the password."""
    bare, _, password = split_credentials(uri)
    if password is None:
        return uri, None
    parts = urlsplit(bare)
    return urlunsplit(parts._replace(netloc=f"{urlsplit(uri).username}@{parts.netloc}")), password


def _move_tracking(uri: str, environ: MutableMapping[str, str]) -> str:
    """``uri`` without credentials; they go to MLflow's username and password variables."""
    bare, user, password = split_credentials(uri)
    if password is not None:
        environ[USERNAME_ENV], environ[PASSWORD_ENV] = user or "", password
    return bare


def _move_storage(uri: str, environ: MutableMapping[str, str]) -> str:
    """``uri`` without its password, which goes to :data:`STORAGE_PASSWORD_ENV`."""
    kept, password = _strip_password(uri)
    if password is not None:
        environ[STORAGE_PASSWORD_ENV] = password
    return kept


def move_credentials(
    argv: list[str], environ: MutableMapping[str, str]
) -> tuple[list[str], list[str]]:
    """``argv`` with the passwords of ``tracking.uri=`` and ``hydra.sweeper.storage=``
    overrides (and of ``MLFLOW_TRACKING_URI`` in ``environ``) moved into ``environ``;
    also the names of the settings that held one."""
    moved: list[str] = []
    if environ.get(URI_ENV):  # first: a tracking.uri on the command line wins over it
        uri = _move_tracking(environ[URI_ENV], environ)
        if uri != environ[URI_ENV]:
            environ[URI_ENV] = uri
            moved.append(URI_ENV)
    out = []
    for arg in argv:
        for pattern, move in ((_TRACKING, _move_tracking), (_STORAGE, _move_storage)):
            match = pattern.match(arg)
            if match:
                uri = move(match["uri"], environ)
                if uri != match["uri"]:
                    moved.append(match["key"].lstrip("+").rstrip("="))
                    arg = f"{match['key']}{match['q']}{uri}{match['q']}"
        out.append(arg)
    return out, moved
