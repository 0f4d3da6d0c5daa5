"""The retry of store calls (``tracking.client.with_retry``): how often, with what backoff, and
that a stop signal is never retried."""

from __future__ import annotations

import signal
import time

import pytest

from lrdecay.core.interrupts import Interrupted
from lrdecay.tracking.client import with_retry


class Flaky:
    """Fails its first ``failures`` calls with a numbered error, then returns ``"done"``;
    records when each call came."""

    def __init__(self, failures: int, error: BaseException | None = None) -> None:
        self.failures = failures
        self.error = error
        self.calls: list[float] = []

    def __call__(self) -> str:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.failures:
            raise self.error or OSError(f"database is locked (try {len(self.calls)})")
        return "done"


def test_failures_are_retried_with_a_doubling_wait() -> None:
    fn = Flaky(failures=2)
    assert with_retry(fn, attempts=3, first_delay=0.05) == "done"
    assert len(fn.calls) == 3
    first, second = (b - a for a, b in zip(fn.calls, fn.calls[1:], strict=False))
    assert first >= 0.05 and second >= 0.1


def test_the_last_failure_is_raised_itself_after_the_last_attempt() -> None:
    fn = Flaky(failures=5)
    with pytest.raises(OSError, match=r"try 3\)"):
        with_retry(fn, attempts=3, first_delay=0.0)
    assert len(fn.calls) == 3


def test_a_stop_signal_is_never_retried() -> None:
    fn = Flaky(failures=5, error=Interrupted(signal.SIGTERM))
    with pytest.raises(Interrupted):
        with_retry(fn, attempts=5, first_delay=0.0)
    assert len(fn.calls) == 1
