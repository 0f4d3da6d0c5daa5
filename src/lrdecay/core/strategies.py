"""The strategies that decide when a sequence advances, and their registry, :data:`STRATEGIES`.

A *strategy* is a small state machine fed the validation loss after each epoch that answers
"advance now?"; its state is plain data, so checkpoints load with ``weights_only=True``.
Plain Python, no torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from lrdecay.core.registry import Entry, lookup, register


class Strategy(ABC):
    """Decides, after each validation pass, whether the sequence advances."""

    name: str = ""
    #: Whether it moves the rate on the validation loss (so overfitting moves it too).
    reads_val_loss: bool = False

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

    reads_val_loss = True

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


#: The strategy of the fixed-rate baselines: it never moves the rate.
FIXED_STRATEGY = "fixed"
#: The strategies a run can use, by the name ``strategy.name`` takes (see :class:`Entry`).
STRATEGIES: dict[str, Entry[Strategy]] = {}
register(
    STRATEGIES,
    Entry("epoch", EveryEpoch, "advance after every epoch", label="By Epoch"),
    Entry(
        "cutoff",
        Cutoff,
        "advance when |val_loss_t - val_loss_t-1| < c, then c <- shrink * c",
        ("rate", "shrink"),
        label="By Cutoff",
    ),
    Entry("oscillate", Oscillate, "advance when the validation loss rose", label="By Oscillate"),
    Entry(FIXED_STRATEGY, Never, "never advance: a fixed rate (the baselines)", study=False),
)


def reads_val_loss(name: str) -> bool:
    """Whether the registered strategy ``name`` moves the rate on the validation loss (cutoff,
    oscillate); False for a name not registered."""
    builder = STRATEGIES[name].builder if name in STRATEGIES else None
    return isinstance(builder, type) and issubclass(builder, Strategy) and builder.reads_val_loss


def make_strategy(name: str, rate: float = 0.01, shrink: float = 0.2) -> Strategy:
    """Build a fresh strategy called ``name`` (a key of :data:`STRATEGIES`) with its constants;
    only cutoff reads ``rate`` and ``shrink``."""
    return lookup(STRATEGIES, name, "strategy").build(rate=rate, shrink=shrink)
