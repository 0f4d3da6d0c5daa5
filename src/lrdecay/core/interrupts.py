"""SIGTERM (what SLURM, Kubernetes and ``timeout`` send first) handled like Ctrl-C.

A job turns SIGTERM into :class:`Interrupted`, a ``KeyboardInterrupt``, so the paths that
Ctrl-C already takes run: the MLflow run ends KILLED, its checkpoint stays for a resume and
``result.json`` says killed. A sweep's launcher installs its own handler, which also closes
the sweep's parent run.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from lrdecay.core.listeners import Listener
from lrdecay.core.records import EpochRecord

#: The signals that stop a sweep's launcher cleanly; a job handles SIGINT as Python does.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(KeyboardInterrupt):
    """A stop signal received: carries its number for the exit status (128 + number)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


#: Stop signals received by this process (an exception raised while Python runs a finalizer
#: is printed and dropped; the next epoch's end raises it again).
RECEIVED: list[int] = []

#: Stop signals received inside :func:`stop_deferred` blocks and not raised yet, what a
#: launcher's stop handler left to run then (:func:`install_stop_handlers`), and how deep the
#: main thread is in such blocks.
_HELD: list[int] = []
_DUE: list[Callable[[], None]] = []
_DEPTH = [0]


def raise_interrupted(signum: int, frame: FrameType | None) -> None:
    """Signal handler: stop whatever the main thread runs, as Ctrl-C would (inside a
    :func:`stop_deferred` block: as that block ends)."""
    RECEIVED.append(signum)
    if _DEPTH[0]:
        _HELD.append(signum)
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_deferred() -> Iterator[None]:
    """A block a stop signal must not cut in half (a write to the tracking store: raised inside
    SQLAlchemy, it left the SQLite store locked for every later write). A stop signal that
    arrives meanwhile is raised as the outermost block ends, in place of any error it ends
    with: the stop was asked for, the error is its context."""
    _DEPTH[0] += 1
    try:
        yield
    finally:
        _DEPTH[0] -= 1
        if _HELD and not _DEPTH[0]:
            signum = _HELD[0]
            _HELD.clear()
            while _DUE:
                _DUE.pop(0)()
            raise Interrupted(signum)


class StopAtEpochEnd(Listener):
    """Raises a stop signal again at an epoch's end, should its first raise have been lost."""

    def on_epoch_end(self, record: EpochRecord) -> None:
        if RECEIVED:
            raise Interrupted(RECEIVED[0])


def stop_on_sigterm() -> None:
    """In a job: SIGTERM stops the run like Ctrl-C. A handler already installed (a sweep's
    launcher running jobs in its own process) is left in place."""
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    ):
        signal.signal(signal.SIGTERM, raise_interrupted)


def install_stop_handlers(on_stop: Callable[[], None]) -> None:
    """In a sweep's launcher: on SIGTERM or SIGINT, run ``on_stop`` once (further stop signals
    are ignored meanwhile), then stop the main thread with :class:`Interrupted`. Inside a
    :func:`stop_deferred` block both wait for the block's end: ``on_stop`` writes to the store,
    and run inside the main thread's own write it would wait on the lock that write holds."""

    def handler(signum: int, frame: FrameType | None) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        if _DEPTH[0]:
            _DUE.append(on_stop)
        else:
            on_stop()
        raise_interrupted(signum, frame)

    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            signal.signal(sig, handler)


def exit_status(exc: KeyboardInterrupt) -> int:
    """The shell's convention for a process stopped by a signal: 128 + its number."""
    return 128 + getattr(exc, "signum", signal.SIGINT)
