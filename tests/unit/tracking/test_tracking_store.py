"""The tracking store's plumbing: MLflow's settings set by entry points, never on import; the
lock that lets one process at a time create or upgrade a SQLite store's schema."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from lrdecay.tracking.environment import MLFLOW_DEFAULTS, set_mlflow_defaults
from lrdecay.tracking.store import STORE_FILE, sqlite_uri, store_lock
from tests.helpers import cli_env, python_json


def test_mlflow_defaults_fill_only_what_the_user_left_unset() -> None:
    environ = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "120"}
    set_mlflow_defaults(environ)
    assert environ == {**MLFLOW_DEFAULTS, "MLFLOW_HTTP_REQUEST_TIMEOUT": "120"}


def test_importing_the_tracking_and_report_modules_sets_no_environment() -> None:
    code = (
        "import json, os\n"
        "from lrdecay.tracking.environment import MLFLOW_DEFAULTS\n"
        "for name in MLFLOW_DEFAULTS: os.environ.pop(name, None)\n"
        "import lrdecay.run, lrdecay.report.command\n"
        "print(json.dumps(sorted(set(MLFLOW_DEFAULTS) & set(os.environ))))"
    )
    assert python_json(code) == []


def test_the_store_lock_waits_for_another_process_holding_it(tmp_path: Path) -> None:
    uri = sqlite_uri(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, uri],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    entered = threading.Event()

    def enter() -> None:
        with store_lock(uri):
            entered.set()

    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        waiter = threading.Thread(target=enter, daemon=True)
        waiter.start()
        assert not entered.wait(0.5)  # the other process holds it
    finally:
        holder.communicate("", timeout=30)  # closing its stdin releases it
    assert entered.wait(10)
    waiter.join(10)
    assert not (tmp_path / STORE_FILE).exists()  # the lock never makes the store itself


#: A process that holds the store's lock from its "held" line until its stdin closes.
HOLD_LOCK = (
    "import sys\n"
    "from lrdecay.tracking.store import store_lock\n"
    "with store_lock(sys.argv[1]):\n"
    "    print('held', flush=True)\n"
    "    sys.stdin.read()\n"
)
