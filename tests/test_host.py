"""What ``lrdecay.host`` does to the process it runs in."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import ROOT, cli_env

#: Registers a reporter first (atexit runs handlers last-registered first, so it runs last),
#: then asks twice for the exit freeze; prints how much was frozen before the exit.
EXIT = """
import atexit, gc, json
atexit.register(lambda: print(json.dumps({"at_exit": gc.get_freeze_count()})))
import torch
from lrdecay.host import skip_final_collection
skip_final_collection()
skip_final_collection()
print(json.dumps({"before_exit": gc.get_freeze_count()}))
"""


def test_the_heap_is_frozen_at_exit_and_only_then() -> None:
    """The run's objects stay collectable while it runs; at its exit they are frozen, so the
    interpreter's last collection does not walk them (what ``train.py`` asks for)."""
    done = subprocess.run(
        [sys.executable, "-c", EXIT], cwd=ROOT, env=cli_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = {k: v for line in done.stdout.splitlines() for k, v in json.loads(line).items()}
    assert seen["before_exit"] == 0
    assert seen["at_exit"] > 100_000  # torch's heap, frozen by the handler that ran before
