"""The rate of every batch, for schedulers that move it inside an epoch (one-cycle, warm-up).

Logged under :data:`~lrdecay.core.schedulers.BATCH_LR_METRIC` at step = the optimizer step
counted over the whole run, beside the per-epoch ``lr`` (the rate the epoch started with), so
the two are never confused.
"""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING

from mlflow.entities import Metric

from lrdecay.core.listeners import Listener
from lrdecay.core.records import EpochRecord
from lrdecay.core.schedulers import BATCH_LR_METRIC
from lrdecay.tracking.client import with_retry

if TYPE_CHECKING:
    from lrdecay.core.schedulers import TorchScheduler
    from lrdecay.tracking.run_logger import MlflowTracker

#: MLflow's limit of metrics per ``log_batch`` call.
METRIC_BATCH = 1000


class BatchRates(Listener):
    """After each epoch, logs the rate each of its batches trained with (a store that is away
    costs those points only: the per-epoch metrics and the checkpoint hold the run)."""

    def __init__(self, tracker: MlflowTracker, scheduler: TorchScheduler) -> None:
        self.tracker = tracker
        self.scheduler = scheduler

    def on_epoch_end(self, record: EpochRecord) -> None:
        run_id, lrs = self.tracker.run_id, list(self.scheduler.batch_lrs)
        if run_id is None or not lrs:
            return
        first, now = self.scheduler.batches - len(lrs) + 1, int(time.time() * 1000)
        points = [Metric(BATCH_LR_METRIC, lr, now, first + i) for i, lr in enumerate(lrs)]
        client = self.tracker.client
        try:
            for i in range(0, len(points), METRIC_BATCH):
                chunk = points[i : i + METRIC_BATCH]
                with_retry(partial(client.log_batch, run_id, metrics=chunk), attempts=3)
        except Exception:  # the tracker itself warns about a store that is away
            return
