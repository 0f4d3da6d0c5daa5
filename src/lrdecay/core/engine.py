"""The epoch loop: train, evaluate, record, then ``scheduler.step(val_loss)``.

The engine knows nothing of MLflow or Hydra: tracking, progress display and checkpointing are
:class:`~lrdecay.core.records.Listener` objects it calls at fixed points
(:mod:`lrdecay.core.records` holds what an epoch and a run produce, torch-free). Losses and hit
counts accumulate on the device and are read once per epoch, so the step never waits on the host.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lrdecay.core.acceleration import autocast
from lrdecay.core.data import DataBundle, Split
from lrdecay.core.metrics import convergence_epoch, should_early_stop
from lrdecay.core.records import EpochRecord, Listener, RunSummary, StopRun
from lrdecay.core.schedules import SequenceScheduler
from lrdecay.core.torch_schedules import TorchScheduler


@dataclass
class TrainerSettings:
    """The loop's knobs, independent of any config system."""

    max_epochs: int
    batch_size: int
    eval_batch_size: int = 2048
    early_stop_tol: float | None = None
    convergence_window: int = 4
    convergence_threshold: float = 0.009
    seed: int = 0
    precision: str = "fp32"  # or "bf16": forward and loss under autocast


class Engine:
    """Trains ``model`` on ``data`` with ``optimizer`` under ``scheduler``; listeners observe."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: SequenceScheduler | TorchScheduler,
        data: DataBundle,
        settings: TrainerSettings,
        listeners: Iterable[Listener] = (),
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.data = data
        self.settings = settings
        self.listeners = list(listeners)
        self.history: list[EpochRecord] = []
        self.elapsed = 0.0  # seconds of fitting so far, across resumes
        self.generator = torch.Generator().manual_seed(settings.seed)
        # called after every optimizer step: a PyTorch scheduler defined per batch steps there
        self.batch_step = scheduler.step_batch if isinstance(scheduler, TorchScheduler) else None

    def _train_epoch(self) -> tuple[float, float]:
        """One pass over the shuffled training split; returns mean loss and accuracy."""
        self.model.train()
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
        """Mean loss and accuracy of the model on ``split``, in large no-grad batches."""
        self.model.eval()
        device = split.x.device
        loss_sum = torch.zeros((), device=device)
        hits = torch.zeros((), dtype=torch.int64, device=device)
        with torch.inference_mode(), autocast(device, self.settings.precision):
            for x, y in split.batches(self.settings.eval_batch_size):
                logits = self.model(x)
                loss_sum += F.cross_entropy(logits, y, reduction="sum")
                hits += (logits.argmax(1) == y).sum()
        n = len(split)
        return loss_sum.item() / n, hits.item() / n

    def fit(self) -> RunSummary:
        """Run epochs until the budget, the early-stop rule or divergence ends the run."""
        s = self.settings
        for listener in self.listeners:
            listener.on_fit_start(self)
        status = "finished"
        start, base = time.perf_counter(), self.elapsed
        for epoch in range(len(self.history) + 1, s.max_epochs + 1):
            t0 = time.perf_counter()
            lr = float(self.scheduler.get_last_lr()[0])
            train_loss, train_acc = self._train_epoch()
            val_loss, val_acc = self.evaluate(self.data.val)
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
            try:
                for listener in self.listeners:
                    listener.on_epoch_end(record)
            except StopRun as stop:
                status = stop.status
                break
            if not finite:
                status = "diverged"
                break
            if should_early_stop([r.val_loss for r in self.history], s.early_stop_tol):
                status = "early_stopped"
                break
        self.elapsed = base + time.perf_counter() - start
        summary = self._summarise(status, self.elapsed)
        for listener in self.listeners:
            listener.on_fit_end(summary)
        return summary

    def _summarise(self, status: str, seconds: float) -> RunSummary:
        accs = [r.val_acc for r in self.history]
        test_loss = test_acc = None
        if self.data.test is not None and status != "diverged":
            test_loss, test_acc = self.evaluate(self.data.test)
        samples = len(self.data.train) * len(self.history)
        return RunSummary(
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
        )
