"""Console listeners: one log line per epoch always, a progress bar in an interactive terminal."""

from __future__ import annotations

import logging
import sys

from tqdm import tqdm

from lrdecay.core.listeners import FitStart, Listener
from lrdecay.core.outcome import RunOutcome
from lrdecay.core.records import EpochRecord

log = logging.getLogger("lrdecay")
#: The logger of per-epoch lines: a sweep keeps it off the terminal (see keep_epochs_off_console).
EPOCH_LOGGER = "lrdecay.epochs"
epoch_log = logging.getLogger(EPOCH_LOGGER)


class _NoEpochLines(logging.Filter):
    """Drops per-epoch lines (they still reach every other handler, e.g. the job's log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name != EPOCH_LOGGER


def keep_epochs_off_console() -> None:
    """Per-epoch lines go to the job's log file only, not to the terminal: parallel jobs
    would otherwise interleave hundreds of them there."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            handler.addFilter(_NoEpochLines())


class EpochLogLine(Listener):
    """Logs one line per epoch and one at the end: what a user tails in a log file."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.max_epochs = 0

    def on_fit_start(self, start: FitStart) -> None:
        self.max_epochs = start.max_epochs

    def on_epoch_end(self, r: EpochRecord) -> None:
        epoch_log.info(
            "%s epoch %d/%d  train_loss %.4f  train_acc %.4f  val_loss %.4f  "
            "val_acc %.4f  lr %.3g  advances %d  %.1fs",
            self.label,
            r.epoch,
            self.max_epochs,
            r.train_loss,
            r.train_acc,
            r.val_loss,
            r.val_acc,
            r.lr,
            r.lr_advances,
            r.epoch_seconds,
        )

    def on_fit_end(self, s: RunOutcome) -> None:
        test = f"  test_acc {s.test_acc:.4f}" if s.test_acc is not None else ""
        log.info(
            "%s %s after %d epochs: final val_acc %.4f  best %.4f  convergence epoch %d%s  "
            "%.1fs  %.0f samples/s",
            self.label,
            s.status,
            s.epochs_run,
            s.final_val_acc,
            s.best_val_acc,
            s.convergence_epoch,
            test,
            s.train_seconds,
            s.samples_per_second,
        )


class ProgressBar(Listener):
    """A tqdm bar over epochs, shown only where stderr is a terminal (or when forced)."""

    def __init__(self, mode: str = "auto") -> None:
        self.enabled = mode == "bar" or (mode == "auto" and sys.stderr.isatty())
        self.bar: tqdm | None = None

    def on_fit_start(self, start: FitStart) -> None:
        if self.enabled:
            self.bar = tqdm(
                total=start.max_epochs,
                initial=start.epochs_done,
                unit="epoch",
                leave=False,
            )

    def on_epoch_end(self, r: EpochRecord) -> None:
        if self.bar is not None:
            self.bar.set_postfix(val_acc=f"{r.val_acc:.4f}", lr=f"{r.lr:.2g}")
            self.bar.update(1)

    def on_fit_end(self, outcome: RunOutcome) -> None:
        if self.bar is not None:
            self.bar.close()
