"""Learning-rate sequences, the strategies that decide when they advance, and their scheduler.

A *sequence* maps the number of advances so far, ``k`` (0 at the start), to a multiple of the
initial rate r0; the run starts at r0 and each advance takes the next term. A *strategy* is a
small state machine fed the validation loss after each epoch that answers "advance now?".
:class:`SequenceScheduler` joins both as a regular PyTorch LR scheduler.

Example::

    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sched = SequenceScheduler(opt, make_sequence("seq3"), make_strategy("epoch"))
    for epoch in range(epochs):
        train(...); val_loss = evaluate(...)
        sched.step(val_loss)
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

# --------------------------------------------------------------------------- sequences


class Sequence(ABC):
    """A learning-rate sequence: ``factor(k)`` is r_{k-th term} / r0 after ``k`` advances."""

    name: str = ""

    @abstractmethod
    def factor(self, k: int) -> float:
        """Multiple of r0 after ``k`` advances (``factor(0) == 1``)."""

    def rate(self, r0: float, k: int) -> float:
        """The learning rate after ``k`` advances from ``r0``."""
        return r0 * self.factor(k)


@dataclass(frozen=True)
class Constant(Sequence):
    """r_n = r0: the baselines' fixed rate."""

    name = "constant"

    def factor(self, k: int) -> float:
        return 1.0


@dataclass(frozen=True)
class Harmonic(Sequence):
    """seq1: r_n = r0 / n (n = k + 1): r0, r0/2, r0/3, …"""

    name = "seq1"

    def factor(self, k: int) -> float:
        return 1.0 / (k + 1)


@dataclass(frozen=True)
class InverseSqrt(Sequence):
    """seq2: r_n = r0 / √n (n = k + 1): r0, r0/√2, r0/√3, …"""

    name = "seq2"

    def factor(self, k: int) -> float:
        return 1.0 / math.sqrt(k + 1)


@dataclass(frozen=True)
class Geometric(Sequence):
    """seq3: r_n = gamma^n · r0 (n = k): r0, 0.9·r0, 0.81·r0, … — ExponentialLR when per epoch."""

    gamma: float = 0.9
    name = "seq3"

    def factor(self, k: int) -> float:
        return self.gamma**k


@dataclass(frozen=True)
class SawTooth(Sequence):
    """seq4: r_n = q_n · r0 with q_n = (1 − ((n−1) mod P)/P) / (⌊n/P⌋ + 1), n = k + 1.

    With P = 10: 1, 0.9, …, 0.2, then 0.05 at n = 10 and 0.5, 0.45, … — the study's formula,
    including its dip at every multiple of P.
    """

    period: int = 10
    name = "seq4"

    def factor(self, k: int) -> float:
        n, p = k + 1, self.period
        return (1.0 - ((n - 1) % p) / p) / (n // p + 1)


def make_sequence(name: str, gamma: float = 0.9, period: int = 10) -> Sequence:
    """Build the sequence called ``name`` (seq1..seq4, constant) with its constants."""
    builders = {
        "constant": Constant,
        "seq1": Harmonic,
        "seq2": InverseSqrt,
        "seq3": lambda: Geometric(gamma=gamma),
        "seq4": lambda: SawTooth(period=period),
    }
    if name not in builders:
        raise ValueError(f"unknown sequence '{name}'; choose one of {', '.join(builders)}")
    return builders[name]()


# --------------------------------------------------------------------------- strategies


class Strategy(ABC):
    """Decides, after each validation pass, whether the sequence advances."""

    name: str = ""

    @abstractmethod
    def should_advance(self, val_loss: float | None) -> bool:
        """Feed one epoch's validation loss; True if the rate moves to its next term now."""

    def state_dict(self) -> dict[str, Any]:
        """Plain-data state, so that checkpoints load with ``weights_only=True``."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (stateless strategies keep nothing)."""
        del state


class EveryEpoch(Strategy):
    """epoch: advance after every epoch."""

    name = "epoch"

    def should_advance(self, val_loss: float | None) -> bool:
        return True


class Never(Strategy):
    """fixed: never advance (the baselines)."""

    name = "fixed"

    def should_advance(self, val_loss: float | None) -> bool:
        return False


class _LossWatcher(Strategy):
    """A strategy that compares each validation loss with the previous one."""

    def __init__(self) -> None:
        self.prev_loss: float | None = None

    def should_advance(self, val_loss: float | None) -> bool:
        if val_loss is None:
            raise ValueError(f"strategy '{self.name}' needs the validation loss: step(val_loss)")
        prev, self.prev_loss = self.prev_loss, float(val_loss)
        return self._decide(prev, float(val_loss))

    @abstractmethod
    def _decide(self, prev: float | None, loss: float) -> bool:
        """The rule proper, given the previous loss (None on the first epoch)."""

    def state_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        vars(self).update(state)


class Oscillate(_LossWatcher):
    """oscillate: advance when the validation loss rose, val_loss_t > val_loss_{t−1}."""

    name = "oscillate"

    def _decide(self, prev: float | None, loss: float) -> bool:
        return prev is not None and loss > prev


class Cutoff(_LossWatcher):
    """cutoff: advance when |val_loss_t − val_loss_{t−1}| < c, then c ← shrink · c.

    The first cutoff is c0 = rate · val_loss_1 (the study: rate = 0.01, shrink = 0.2).
    """

    name = "cutoff"

    def __init__(self, rate: float = 0.01, shrink: float = 0.2) -> None:
        super().__init__()
        self.rate, self.shrink = rate, shrink
        self.cutoff: float | None = None

    def _decide(self, prev: float | None, loss: float) -> bool:
        if self.cutoff is None:
            self.cutoff = self.rate * loss
            return False
        if prev is not None and abs(loss - prev) < self.cutoff:
            self.cutoff *= self.shrink
            return True
        return False


def make_strategy(name: str, rate: float = 0.01, shrink: float = 0.2) -> Strategy:
    """Build a fresh strategy called ``name`` (epoch, cutoff, oscillate, fixed)."""
    builders = {
        "epoch": EveryEpoch,
        "fixed": Never,
        "oscillate": Oscillate,
        "cutoff": lambda: Cutoff(rate=rate, shrink=shrink),
    }
    if name not in builders:
        raise ValueError(f"unknown strategy '{name}'; choose one of {', '.join(builders)}")
    return builders[name]()


# --------------------------------------------------------------------------- scheduler


class SequenceScheduler(LRScheduler):
    """Sets each param group's rate to ``sequence.rate(r0, advances)``; ``strategy`` decides when.

    Call ``step(val_loss)`` once after each validation pass. ``advances`` counts the moves so
    far; ``get_last_lr()`` gives the rates now in force. ``state_dict()`` holds plain data only.

    Example (seq3 advanced every epoch is ExponentialLR(gamma=0.9))::

        sched = SequenceScheduler(opt, Geometric(0.9), EveryEpoch())
        sched.step()  # rate becomes 0.9 · r0
    """

    def __init__(
        self, optimizer: Optimizer, sequence: Sequence, strategy: Strategy, last_epoch: int = -1
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
