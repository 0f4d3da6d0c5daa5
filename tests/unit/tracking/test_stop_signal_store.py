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
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import pytest

from lrdecay.core import interrupts
from lrdecay.core.interrupts import Interrupted, raise_interrupted
from lrdecay.tracking.run_logger import MlflowTracker
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


@pytest.fixture
def stop_signals() -> Iterator[None]:
    """The test may install stop handlers: SIGTERM's and SIGINT's are put back afterwards, and
    the signals it received forgotten (later in-process runs would stop on them)."""
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGTERM, previous[0])
    signal.signal(signal.SIGINT, previous[1])
    interrupts.RECEIVED.clear()


@pytest.mark.usefixtures("stop_signals")
def test_sigterm_during_store_writes_never_leaves_the_store_locked(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    tracker = MlflowTracker(new_store(db), "stop-signal", log_plot=False, retry_delay=0.01)
    tracker.start("run", tags={}, params={})
    armed = [False]  # the job's handler runs only while a write is under way

    def handler(signum: int, frame: FrameType | None) -> None:
        if armed[0]:
            raise_interrupted(signum, frame)

    signal.signal(signal.SIGTERM, handler)
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
    assert stopped > 0, "no signal arrived during the writes"
    assert not locked, f"the store stayed locked after the write of step {locked[0]}"


#: Seconds a launcher's stop handler may take to close the sweep's parent run: one store call
#: on a free store takes milliseconds; one that waits on a write lock its own process holds
#: waits out SQLite's busy timeout (20 s) and fails.
CLOSE_S = 5.0

#: Stop signals sent, one per round, each at a random moment of the job's writes.
ROUNDS = 30


@dataclass
class Round:
    """What one stop signal did: whether it came inside a store call, how long the parent's
    close took (None: it never ran), and the parent run's status afterwards."""

    in_store_call: bool
    close_s: float | None
    parent_status: str


def _stop_one_round(job: MlflowTracker, launcher: MlflowTracker, round_: int) -> Round:
    """Open a parent run, let the job write until a SIGTERM sent at a random moment stops it,
    with the launcher's stop handler closing the parent."""
    launcher.start(f"sweep-{round_}", tags={}, params={})
    parent = launcher.run_id
    assert parent is not None
    close_s: list[float] = []
    depth_at_signal: list[int] = []

    def close_parent() -> None:  # what SweepTracking's stop handler does to the store
        started = time.monotonic()
        try:
            launcher.client.set_terminated(parent, status="KILLED")
        finally:
            close_s.append(time.monotonic() - started)

    interrupts.install_stop_handlers(close_parent)
    installed = signal.getsignal(signal.SIGTERM)
    assert callable(installed)

    def observe(signum: int, frame: FrameType | None) -> None:
        depth_at_signal.append(interrupts._DEPTH[0])  # inside a store call or not
        installed(signum, frame)

    signal.signal(signal.SIGTERM, observe)
    delay = random.Random(round_).uniform(0.0005, 0.02)
    sender = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        sender.start()  # inside: on a loaded machine the signal can come before start returns
        for step in range(1, 10**6):
            job.log_metrics({"a": 1.0, "b": 2.0}, 10**6 * round_ + step, attempts=1)
    except Interrupted:
        pass
    finally:
        sender.join()
        interrupts.RECEIVED.clear()
    return Round(
        in_store_call=bool(depth_at_signal and depth_at_signal[0]),
        close_s=close_s[0] if close_s else None,
        parent_status=launcher.client.get_run(parent).info.status,
    )


@pytest.mark.usefixtures("stop_signals")
def test_a_launchers_stop_handler_waits_for_the_store_write_under_way(tmp_path: Path) -> None:
    """A sweep's launcher that runs jobs in its own process (``hydra/launcher=basic``, an
    Optuna sweeper telling trials) closes its parent run from its stop handler. Run inside a
    store write of the main thread, that close waited on the write lock the interrupted write
    held, 20 s, and failed. It must run as the write returns: quickly, leaving the store free."""
    db = tmp_path / "mlflow.db"
    uri = new_store(db)
    job = MlflowTracker(uri, "stop-signal", log_plot=False, retry_delay=0.01)
    job.start("job", tags={}, params={})
    launcher = MlflowTracker(uri, "stop-signal", log_plot=False, retry_delay=0.01)
    rounds: list[Round] = []
    for round_ in range(ROUNDS):
        done = _stop_one_round(job, launcher, round_)
        rounds.append(done)
        assert done.close_s is not None and done.close_s < CLOSE_S, (round_, done)
        assert done.parent_status == "KILLED", (round_, done)
        assert _store_is_free(db), f"the store stayed locked after round {round_}"
    assert any(r.in_store_call for r in rounds), "no signal arrived during a store call"


@pytest.mark.usefixtures("stop_signals")
def test_a_stop_in_a_store_call_runs_the_launchers_close_as_the_call_returns() -> None:
    ran: list[int] = []
    interrupts.install_stop_handlers(lambda: ran.append(interrupts._DEPTH[0]))
    with pytest.raises(Interrupted) as stopped, interrupts.stop_deferred():
        with interrupts.stop_deferred():  # a client call inside another
            signal.raise_signal(signal.SIGTERM)
            assert ran == []  # held: not inside the call
        assert ran == []  # nor inside the outer one
    assert ran == [0] and stopped.value.signum == signal.SIGTERM


@pytest.mark.usefixtures("stop_signals")
def test_a_stop_held_through_a_failing_store_call_still_stops() -> None:
    """The call fails (the store is away, say): the stop asked for is raised, not the error, and
    the launcher's close still runs."""
    ran: list[bool] = []
    interrupts.install_stop_handlers(lambda: ran.append(True))
    with pytest.raises(Interrupted) as stopped, interrupts.stop_deferred():
        signal.raise_signal(signal.SIGINT)
        raise ConnectionError("store away")
    assert ran == [True] and stopped.value.signum == signal.SIGINT
    assert isinstance(stopped.value.__context__, ConnectionError)
    assert not interrupts._HELD and not interrupts._DUE
