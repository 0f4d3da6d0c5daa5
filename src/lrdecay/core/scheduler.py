"""The PyTorch side of a schedule: :class:`SequenceScheduler` moves an optimizer's rate along a
sequence when its strategy says so (the sequences and strategies are in
:mod:`lrdecay.core.sequences` and :mod:`lrdecay.core.strategies`, which need no torch)."""

from __future__ import annotations

from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from lrdecay.core.sequences import RateSequence
from lrdecay.core.strategies import Strategy


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

    def get_lr(self) -> list[float]:
        return [self.sequence.rate(r0, self.advances) for r0 in self.base_lrs]

    def step(self, val_loss: float | None = None) -> None:  # type: ignore[override]
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
