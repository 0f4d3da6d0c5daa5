"""MLflow's settings a process of this project starts with: set by each entry point (``train.py``,
the report's commands) before it talks to a store, never on import; a user's own value wins."""

from __future__ import annotations

import os
from collections.abc import MutableMapping

#: MLflow's HTTP client retries a dead server for minutes per call; the run logger retries with
#: its own, shorter backoff and keeps training meanwhile. MLflow also prints each run's URL,
#: credentials included; our own log line names the run instead.
MLFLOW_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


def set_mlflow_defaults(environ: MutableMapping[str, str] = os.environ) -> None:
    """Put :data:`MLFLOW_DEFAULTS` into ``environ`` where it has no value of its own (launcher
    workers and cluster jobs inherit them from the process that starts them)."""
    for name, value in MLFLOW_DEFAULTS.items():
        environ.setdefault(name, value)
