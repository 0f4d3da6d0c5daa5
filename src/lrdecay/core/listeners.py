"""The listeners that observe a run, what they are told, and how one of them asks it to stop.

Listeners are handed plain records, never the engine: :class:`FitStart` before the first epoch,
an :class:`~lrdecay.core.records.EpochRecord` after each, the
:class:`~lrdecay.core.outcome.RunOutcome` at the end. A listener that may end a run early (a
search's pruner) is given the run's :class:`StopFlag`, which the engine reads after each epoch's
listeners have all run. Plain data, no torch: a sweep's launching process imports this too.
"""

from __future__ import annotations

from dataclasses import dataclass

from lrdecay.core.outcome import RunOutcome, RunStatus
from lrdecay.core.records import EpochRecord


@dataclass(frozen=True)
class FitStart:
    """What a fit is about to do: its epoch budget, the epochs already trained (a resumed
    run), the training split's size and the device it trains on."""

    max_epochs: int
    epochs_done: int
    train_samples: int
    device: str


@dataclass
class StopFlag:
    """A request to end the run after the current epoch, with the status it ends with; the
    first request wins."""

    status: RunStatus | None = None
    reason: str = ""

    def request(self, status: RunStatus, reason: str = "") -> None:
        """Ask the engine to stop after this epoch, ending the run as ``status``."""
        if self.status is None:
            self.status, self.reason = status, reason or str(status)

    def __bool__(self) -> bool:
        return self.status is not None


class Listener:
    """Hooks the engine calls; override what you need."""

    def on_fit_start(self, start: FitStart) -> None:
        """Before the first epoch."""

    def on_epoch_end(self, record: EpochRecord) -> None:
        """After each epoch's scheduler step."""

    def on_fit_end(self, outcome: RunOutcome) -> None:
        """After the last epoch (not called when the loop raises)."""
