"""The run's learning-rate schedulers, the PyTorch side: what the engine steps after each epoch.

:class:`SequenceScheduler` moves an optimizer's rate along one of the study's sequences
(:mod:`lrdecay.core.sequences`) when its strategy (:mod:`lrdecay.core.strategies`) says so.
:class:`TorchScheduler` drives any built ``torch.optim.lr_scheduler.LRScheduler`` (cosine,
one-cycle, ``ReduceLROnPlateau``, a user's own) the same way: ``step(val_loss)`` after each
epoch, ``get_last_lr()``, ``advances``, a plain-data ``state_dict``. A scheduler defined per batch
(one-cycle, warm-up) steps after every optimizer step instead (:meth:`TorchScheduler.step_batch`).
An epoch-stepped one moves when the study's strategy says so, so ``ExponentialLR(gamma=0.9)``
under ``epoch`` is seq3 by epoch and under ``cutoff`` is seq3 by cutoff.
:class:`WarmupCosineLR` and :class:`WarmupStableDecayLR` are two PyTorch schedulers of the
project's own, named by ``_target_`` like any other.

Example::

    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    sched = TorchScheduler(CosineAnnealingLR(opt, T_max=epochs), make_strategy("epoch"))
    for epoch in range(epochs):
        train(...); sched.step(evaluate(...))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    ReduceLROnPlateau,
    SequentialLR,
)

from lrdecay.core.sequences import RateSequence
from lrdecay.core.strategies import Strategy

#: When a scheduler steps: after each epoch, or after each optimizer step.
INTERVALS = ("epoch", "batch")
#: The MLflow key of the rate each batch trained with, at step = the optimizer step (1-based,
#: counted over the whole run): its own section, so it is never read as a per-epoch value.
BATCH_LR_METRIC = "per_batch/lr"


class SequenceScheduler(LRScheduler):
    """Sets each param group's rate to ``sequence.rate(r0, advances)``; ``strategy`` decides when.

    Call ``step(val_loss)`` once after each validation pass. ``advances`` counts the moves so
    far; ``get_last_lr()`` gives the rates now in force. ``state_dict()`` holds plain data only.

    Example (seq3 advanced every epoch is ExponentialLR(gamma=0.9))::

        sched = SequenceScheduler(opt, Geometric(0.9), EveryEpoch())
        sched.step()  # rate becomes 0.9 · r0
    """

    def __init__(
        self, optimizer: Optimizer, sequence: RateSequence, strategy: Strategy, last_epoch: int = -1
    ) -> None:
        self.sequence = sequence
        self.strategy = strategy
        self.advances = 0
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float | Tensor]:
        return [self.sequence.rate(float(r0), self.advances) for r0 in self.base_lrs]

    def step(self, val_loss: float | None = None) -> None:
        """Feed the epoch's validation loss; move the rate if the strategy says so."""
        if self._step_count > 0:  # the base class calls step() once from __init__
            self.advances += int(self.strategy.should_advance(val_loss))
        super().step()

    def state_dict(self) -> dict[str, Any]:
        state = {
            k: v for k, v in vars(self).items() if k not in ("optimizer", "sequence", "strategy")
        }
        state["strategy_state"] = self.strategy.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        state.pop("last_advanced", None)  # held by checkpoints written before it was dropped
        self.strategy.load_state_dict(state.pop("strategy_state", {}))
        vars(self).update(state)
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


def _moved(before: list[float], after: list[float]) -> bool:
    """Whether any param group's rate changed (beyond float rounding)."""
    return any(
        not math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
        for a, b in zip(before, after, strict=True)
    )


class TorchScheduler:
    """Drives ``scheduler`` once per epoch (``interval="epoch"``) or per batch (``"batch"``).

    Per epoch, a ``ReduceLROnPlateau`` is fed the validation loss; any other scheduler steps
    when ``strategy`` says the rate advances. ``advances`` counts the steps taken (epoch
    interval) or the epochs after which the rate changed (plateau, batch interval).
    """

    def __init__(self, scheduler: LRScheduler, strategy: Strategy, interval: str = "epoch") -> None:
        if interval not in INTERVALS:
            raise ValueError(f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
        self.scheduler = scheduler
        self.strategy = strategy
        self.interval = interval
        self.per_batch = interval == "batch"
        self.plateau = scheduler if isinstance(scheduler, ReduceLROnPlateau) else None
        self.advances = 0
        self.batches = 0  # optimizer steps so far, over the whole run
        self.batch_lrs: list[float] = []  # the rate each batch of the current epoch used
        self._epoch_start = self.get_last_lr()
        self._epoch_open = False

    @property
    def optimizer(self) -> Optimizer:
        return self.scheduler.optimizer

    def get_last_lr(self) -> list[float]:
        """The rates in force now, one per param group."""
        return [float(lr) for lr in self.scheduler.get_last_lr()]

    def step_batch(self) -> None:
        """After each optimizer step: record the rate that batch used; step a per-batch
        scheduler."""
        if not self._epoch_open:
            self.batch_lrs, self._epoch_open = [], True
        self.batches += 1
        self.batch_lrs.append(self.get_last_lr()[0])
        if self.per_batch:
            self.scheduler.step()

    def step(self, val_loss: float | None = None) -> None:
        """After each epoch's validation pass: move the rate as the scheduler is defined to."""
        self._epoch_open = False
        if self.plateau is not None:
            if val_loss is None:
                raise ValueError("ReduceLROnPlateau needs the validation loss: step(val_loss)")
            self.plateau.step(val_loss)
        elif not self.per_batch and self.strategy.should_advance(val_loss):
            self.scheduler.step()
            self.advances += 1
        now = self.get_last_lr()
        if (self.plateau is not None or self.per_batch) and _moved(self._epoch_start, now):
            self.advances += 1
        self._epoch_start = now

    def state_dict(self) -> dict[str, Any]:
        """Plain data (the scheduler's own ``state_dict`` inside), for ``weights_only`` loads."""
        return {
            "torch_scheduler": self.scheduler.state_dict(),
            "strategy_state": self.strategy.state_dict(),
            "advances": self.advances,
            "batches": self.batches,
            "epoch_start": list(self._epoch_start),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (the optimizer is restored separately)."""
        self.scheduler.load_state_dict(state["torch_scheduler"])
        self.strategy.load_state_dict(state["strategy_state"])
        self.advances = int(state["advances"])
        self.batches = int(state["batches"])
        self._epoch_start = [float(x) for x in state["epoch_start"]]
        self.batch_lrs, self._epoch_open = [], False


class WarmupCosineLR(SequentialLR):
    """Linear warm-up over ``warmup_epochs`` then cosine annealing to ``eta_min`` by the end of
    the budget, per batch: ``SequentialLR(LinearLR, CosineAnnealingLR)`` sized by the budget.

    Example (5 epochs of 100 batches, one epoch of warm-up)::

        WarmupCosineLR(opt, epochs=5, steps_per_epoch=100, warmup_epochs=1)
    """

    def __init__(
        self,
        optimizer: Optimizer,
        epochs: int,
        steps_per_epoch: int,
        warmup_epochs: float = 1.0,
        start_factor: float = 0.01,
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        if epochs < 1 or steps_per_epoch < 1:
            raise ValueError("epochs and steps_per_epoch must be >= 1")
        if not 0 <= warmup_epochs < epochs:
            raise ValueError(f"warmup_epochs must be in [0, epochs={epochs}), got {warmup_epochs}")
        total = epochs * steps_per_epoch
        warm = max(1, round(warmup_epochs * steps_per_epoch))
        warmup = LinearLR(optimizer, start_factor=start_factor, end_factor=1.0, total_iters=warm)
        cosine = CosineAnnealingLR(optimizer, T_max=max(1, total - warm), eta_min=eta_min)
        super().__init__(optimizer, [warmup, cosine], milestones=[warm], last_epoch=last_epoch)


#: The decay shapes of :class:`WarmupStableDecayLR`: a factor from 1 (the decay starts) to 0
#: (the budget ends) of the decay's progress p in [0, 1]; sqrt is the 1 − √p "cooldown".
WSD_DECAYS: dict[str, Callable[[float], float]] = {
    "linear": lambda p: 1.0 - p,
    "cosine": lambda p: 0.5 * (1.0 + math.cos(math.pi * p)),
    "sqrt": lambda p: 1.0 - math.sqrt(p),
}


class WarmupStableDecayLR(LRScheduler):
    """Warm-up–stable–decay, per batch: linear warm-up from ``start_factor·r0`` to r0 over the
    first ``warmup_fraction`` of the budget, r0 until the last ``decay_fraction``, then a
    ``decay`` (linear, cosine or sqrt: 1 − √p) reaching ``end_factor·r0`` at the budget's end.

    Example (5 epochs of 100 batches: 50 steps of warm-up, the last 100 decaying)::

        WarmupStableDecayLR(opt, 5, 100, warmup_fraction=0.1, decay_fraction=0.2)
    """

    def __init__(
        self,
        optimizer: Optimizer,
        epochs: int,
        steps_per_epoch: int,
        warmup_fraction: float = 0.05,
        decay_fraction: float = 0.2,
        decay: str = "sqrt",
        start_factor: float = 0.01,
        end_factor: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        if epochs < 1 or steps_per_epoch < 1:
            raise ValueError("epochs and steps_per_epoch must be >= 1")
        for name, value in (
            ("warmup_fraction", warmup_fraction),
            ("decay_fraction", decay_fraction),
            ("start_factor", start_factor),
            ("end_factor", end_factor),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if warmup_fraction + decay_fraction > 1.0:
            raise ValueError(
                f"warmup_fraction + decay_fraction must be <= 1, got "
                f"{warmup_fraction} + {decay_fraction}"
            )
        if decay not in WSD_DECAYS:
            raise ValueError(f"decay must be one of {', '.join(WSD_DECAYS)}, got {decay!r}")
        self.total = epochs * steps_per_epoch
        self.warmup_steps = round(warmup_fraction * self.total)
        self.decay_steps = min(round(decay_fraction * self.total), self.total - self.warmup_steps)
        self.decay = decay
        self.start_factor = start_factor
        self.end_factor = end_factor
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        """The multiple of r0 in force after ``step`` optimizer steps."""
        if step < self.warmup_steps:
            return self.start_factor + (1.0 - self.start_factor) * step / self.warmup_steps
        decay_start = self.total - self.decay_steps
        if step < decay_start or self.decay_steps == 0:
            return 1.0
        progress = min(1.0, (step - decay_start) / self.decay_steps)
        return self.end_factor + (1.0 - self.end_factor) * WSD_DECAYS[self.decay](progress)

    def get_lr(self) -> list[float | Tensor]:
        return [base * self.factor(self.last_epoch) for base in self.base_lrs]
