"""The epoch loop: train, evaluate, record, then ``scheduler.step(val_loss)``.

The engine knows nothing of MLflow or Hydra: tracking, progress display and checkpointing are
:class:`~lrdecay.core.listeners.Listener` objects it hands plain records at fixed points; a listener
ends a run early through the run's :class:`~lrdecay.core.listeners.StopFlag`, read after each epoch.
What an epoch and a run produce (:mod:`lrdecay.core.records`, :mod:`lrdecay.core.outcome`) is
torch-free. Losses and hit counts accumulate on the device and are read once per epoch, so the
step never waits on the host. The pass that scores a run (the test split at its end, or without
one the last epoch's validation pass) also keeps each item's predicted class, handed back in the
outcome (:mod:`lrdecay.core.predictions`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

import torch
import torch.nn.functional as F
from torch import nn

from lrdecay.core.acceleration import autocast
from lrdecay.core.data import DataBundle
from lrdecay.core.listeners import FitStart, Listener, StopFlag
from lrdecay.core.metrics import (
    CONVERGENCE_THRESHOLD,
    CONVERGENCE_WINDOW,
    EVAL_BATCH_SIZE,
    convergence_epoch,
    should_early_stop,
)
from lrdecay.core.outcome import RunOutcome, RunStatus
from lrdecay.core.predictions import Predictions
from lrdecay.core.records import EpochRecord
from lrdecay.core.schedule_free import BN_BATCHES, WeightModes
from lrdecay.core.schedulers import SequenceScheduler, TorchScheduler
from lrdecay.core.splits import Split


@dataclass
class TrainerSettings:
    """The loop's knobs, independent of any config system."""

    max_epochs: int
    batch_size: int
    eval_batch_size: int = EVAL_BATCH_SIZE
    early_stop_tol: float | None = None
    convergence_window: int = CONVERGENCE_WINDOW
    convergence_threshold: float = CONVERGENCE_THRESHOLD
    seed: int = 0
    precision: str = "fp32"  # or "bf16": forward and loss under autocast
    bn_batches: int = BN_BATCHES  # training batches that re-estimate BatchNorm (schedule-free)


class Engine:
    """Trains ``model`` on ``data`` with ``optimizer`` under ``scheduler``; listeners observe,
    and ``stop`` (a fresh flag unless given) ends the run after the epoch it is raised in.

    A schedule-free optimizer (:mod:`lrdecay.core.schedule_free`) trains in its training mode
    and is evaluated and saved in its averaged one; the run ends holding the averaged weights.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: SequenceScheduler | TorchScheduler,
        data: DataBundle,
        settings: TrainerSettings,
        listeners: Iterable[Listener] = (),
        stop: StopFlag | None = None,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.data = data
        self.settings = settings
        self.listeners = list(listeners)
        self.stop = stop if stop is not None else StopFlag()
        self.history: list[EpochRecord] = []
        # the last validation pass's predicted classes, while the validation split scores the run
        self._val_predicted: torch.Tensor | None = None
        self.elapsed = 0.0  # seconds of fitting so far, across resumes
        self.generator = torch.Generator().manual_seed(settings.seed)
        # called after every optimizer step: a PyTorch scheduler defined per batch steps there
        self.batch_step = scheduler.step_batch if isinstance(scheduler, TorchScheduler) else None
        device = data.train.x.device
        self.modes = WeightModes(
            model, optimizer, self._bn_batches, lambda: autocast(device, settings.precision)
        )

    def _bn_batches(self) -> Iterator[torch.Tensor]:
        """Training inputs that re-estimate BatchNorm statistics: the same ``bn_batches``
        shuffled batches each time, drawn without touching the training shuffle's generator."""
        order = torch.Generator().manual_seed(self.settings.seed)
        batches = self.data.train.batches(self.settings.batch_size, order)
        return (x for x, _ in islice(batches, self.settings.bn_batches))

    def _train_epoch(self) -> tuple[float, float]:
        """One pass over the shuffled training split; returns mean loss and accuracy."""
        self.modes.training()
        train = self.data.train
        device = train.x.device
        loss_sum = torch.zeros((), device=device)
        hits = torch.zeros((), dtype=torch.int64, device=device)
        amp = autocast(device, self.settings.precision)
        for x, y in train.batches(self.settings.batch_size, self.generator):
            self.optimizer.zero_grad(set_to_none=True)
            with amp:
                logits = self.model(x)
                loss = F.cross_entropy(logits, y)
            loss.backward()
            self.optimizer.step()
            if self.batch_step is not None:
                self.batch_step()
            loss_sum.add_(loss.detach(), alpha=y.shape[0])  # one kernel, no host sync
            hits += (logits.detach().argmax(1) == y).sum()
        n = len(train)
        return loss_sum.item() / n, hits.item() / n

    def evaluate(self, split: Split) -> tuple[float, float]:
        """Mean loss and accuracy of the model on ``split``, in large no-grad batches (a
        schedule-free optimizer's averaged weights)."""
        loss, acc, _ = self._evaluate(split, keep=False)
        return loss, acc

    def _evaluate(self, split: Split, keep: bool) -> tuple[float, float, torch.Tensor | None]:
        """:meth:`evaluate`, and with ``keep`` the predicted class of every item of ``split``
        (on the device, in the split's order) from the same pass."""
        self.modes.evaluation()
        device = split.x.device
        loss_sum = torch.zeros((), device=device)
        hits = torch.zeros((), dtype=torch.int64, device=device)
        kept: list[torch.Tensor] = []
        with torch.inference_mode(), autocast(device, self.settings.precision):
            for x, y in split.batches(self.settings.eval_batch_size):
                logits = self.model(x)
                loss_sum += F.cross_entropy(logits, y, reduction="sum")
                predicted = logits.argmax(1)
                hits += (predicted == y).sum()
                if keep:
                    kept.append(predicted)
        n = len(split)
        predictions = torch.cat(kept) if kept else None
        return loss_sum.item() / n, hits.item() / n, predictions

    def _predictions(self, split: str, data: Split, predicted: torch.Tensor) -> Predictions:
        """The record of ``predicted`` classes of the scoring split ``data``, on the host."""
        return Predictions.of(split, predicted.cpu().numpy(), data.y.cpu().numpy())

    def fit(self) -> RunOutcome:
        """Run epochs until the budget, the stop flag, divergence or the early-stop rule ends
        the run; returns its outcome (status, run-level numbers, every epoch's record)."""
        s = self.settings
        start_record = FitStart(
            max_epochs=s.max_epochs,
            epochs_done=len(self.history),
            train_samples=len(self.data.train),
            device=str(self.data.train.x.device),
        )
        for listener in self.listeners:
            listener.on_fit_start(start_record)
        status = RunStatus.FINISHED
        start, base = time.perf_counter(), self.elapsed
        for epoch in range(len(self.history) + 1, s.max_epochs + 1):
            t0 = time.perf_counter()
            lr = float(self.scheduler.get_last_lr()[0])
            train_loss, train_acc = self._train_epoch()
            # the validation split scores the run when no test split is held out: keep its
            # last epoch's predictions from this pass (on the device; read once, at the end)
            val_loss, val_acc, self._val_predicted = self._evaluate(
                self.data.val, keep=self.data.test is None
            )
            finite = math.isfinite(train_loss) and math.isfinite(val_loss)
            if finite:
                self.scheduler.step(val_loss)
            record = EpochRecord(
                epoch,
                train_loss,
                train_acc,
                val_loss,
                val_acc,
                lr,
                self.scheduler.advances,
                time.perf_counter() - t0,
            )
            self.history.append(record)
            self.elapsed = base + time.perf_counter() - start
            for listener in self.listeners:
                listener.on_epoch_end(record)
            if self.stop.status is not None:
                status = self.stop.status
                break
            if not finite:
                status = RunStatus.DIVERGED
                break
            if should_early_stop([r.val_loss for r in self.history], s.early_stop_tol):
                status = RunStatus.EARLY_STOPPED
                break
        self.elapsed = base + time.perf_counter() - start
        outcome = self._summarise(status, self.elapsed)
        for listener in self.listeners:
            listener.on_fit_end(outcome)
        return outcome

    def _summarise(self, status: RunStatus, seconds: float) -> RunOutcome:
        """The run's outcome from its history: the test split scored (with its predictions)
        unless it diverged, or without a test split the last validation pass's predictions."""
        accs = [r.val_acc for r in self.history]
        test_loss = test_acc = None
        predictions = None
        if status != RunStatus.DIVERGED and self.data.test is not None:
            test_loss, test_acc, predicted = self._evaluate(self.data.test, keep=True)
            assert predicted is not None
            predictions = self._predictions("test", self.data.test, predicted)
        elif status != RunStatus.DIVERGED and self.history:
            predicted = self._val_predicted
            if predicted is None:  # resumed after its last epoch: score the same weights again
                predicted = self._evaluate(self.data.val, keep=True)[2]
            assert predicted is not None
            predictions = self._predictions("val", self.data.val, predicted)
        samples = len(self.data.train) * len(self.history)
        return RunOutcome(
            status=status,
            epochs_run=len(self.history),
            final_val_acc=accs[-1] if accs else float("nan"),
            best_val_acc=max(accs) if accs else float("nan"),
            convergence_epoch=convergence_epoch(
                accs,
                self.settings.convergence_window,
                self.settings.convergence_threshold,
                budget=self.settings.max_epochs,
            ),
            train_seconds=seconds,
            samples_per_second=samples / seconds if seconds > 0 else float("nan"),
            test_loss=test_loss,
            test_acc=test_acc,
            history=list(self.history),
            predictions=predictions,
        )
