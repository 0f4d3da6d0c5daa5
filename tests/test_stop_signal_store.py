"""A stop signal never cuts a write to the tracking store in half.

A job turns SIGTERM into an exception raised wherever the main thread is. Raised inside
SQLAlchemy during a write, it left the SQLite store locked: the run's later writes, and the
write that marks it KILLED, waited out SQLite's lock for a minute and failed. Here SIGTERM
arrives at random moments of real writes to a real store; after each write, stopped or not,
another connection must be able to write at once.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import threading
from pathlib import Path
from types import FrameType

from lrdecay.core import interrupts
from lrdecay.core.interrupts import Interrupted, raise_interrupted
from lrdecay.tracking.tracker import MlflowTracker
from tests.helpers import new_store

WRITES = 150


def _store_is_free(db: Path) -> bool:
    """Whether another connection can take the store's write lock right now."""
    con = sqlite3.connect(str(db), timeout=0)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        con.close()


def test_sigterm_during_store_writes_never_leaves_the_store_locked(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    tracker = MlflowTracker(new_store(db), "stop-signal", log_plot=False, retry_delay=0.01)
    tracker.start("run", tags={}, params={})
    armed = [False]  # the job's handler runs only while a write is under way

    def handler(signum: int, frame: FrameType | None) -> None:
        if armed[0]:
            raise_interrupted(signum, frame)

    previous = signal.signal(signal.SIGTERM, handler)
    done = threading.Event()

    def send_sigterm() -> None:
        rng = random.Random(0)
        while not done.wait(rng.uniform(0.0005, 0.01)):
            os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=send_sigterm, daemon=True)
    stopped, locked = 0, []
    try:
        sender.start()
        for step in range(1, WRITES + 1):
            try:
                armed[0] = True
                tracker.log_metrics({"a": 1.0, "b": 2.0}, step, attempts=1)
                armed[0] = False
            except Interrupted:
                armed[0] = False
                stopped += 1
            if not _store_is_free(db):
                locked.append(step)
                break
    finally:
        done.set()
        sender.join()
        signal.signal(signal.SIGTERM, previous)
        interrupts.RECEIVED.clear()  # what later in-process runs would stop on
    assert stopped > 0, "no signal arrived during the writes"
    assert not locked, f"the store stayed locked after the write of step {locked[0]}"
