"""Learning-rate sequences, the strategies that decide when they advance, and their registries.

A *sequence* maps the number of advances so far, ``k`` (0 at the start), to a multiple of the
initial rate r0; the run starts at r0 and each advance takes the next term. A *strategy* is a
small state machine fed the validation loss after each epoch that answers "advance now?".
:class:`lrdecay.core.scheduler.SequenceScheduler` joins both as a regular PyTorch LR scheduler.

:data:`SEQUENCES` and :data:`STRATEGIES` are the one list of each: the config's validation, the
MLflow params, the report's grid and the study's settings all read them. Plain Python, no torch,
so that the processes that only validate, launch or report import them cheaply.

Example::

    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sched = SequenceScheduler(opt, make_sequence("seq3"), make_strategy("epoch"))
    for epoch in range(epochs):
        train(...); val_loss = evaluate(...)
        sched.step(val_loss)
"""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

#: What an entry builds; covariant, so an entry building a Harmonic is an Entry[Sequence].
T_co = TypeVar("T_co", covariant=True)

# --------------------------------------------------------------------------- registries


@dataclass(frozen=True)
class Entry(Generic[T_co]):
    """One registered sequence or strategy: what builds it, and what the project says of it.

    ``builder`` is called with the config constants named in ``params`` (``Geometric`` with
    ``gamma``). A builder with heavy imports of its own (a PyTorch scheduler, say) is given as
    ``"module:function"`` and imported only when a run builds it, so the registry stays cheap.
    """

    name: str
    builder: Callable[..., T_co] | str
    summary: str  # one line: the formula or the rule
    params: tuple[str, ...] = ()  # the config constants it reads (sequence.gamma, ...)
    study: bool = True  # part of the study's grid (seq1..seq4 by epoch, cutoff, oscillate)
    label: str = ""  # the study's name for it in tables and figure panels ("By Epoch")

    def build(self, **constants: Any) -> T_co:
        """A fresh instance from the constants named in ``params`` (others are ignored)."""
        builder = self.builder
        if isinstance(builder, str):
            module, _, attr = builder.partition(":")
            builder = getattr(importlib.import_module(module), attr)
        return builder(**{key: constants[key] for key in self.params})


def _register(registry: dict[str, Entry[T_co]], *entries: Entry[T_co]) -> None:
    """Add ``entries`` to ``registry`` under their names, in order."""
    for entry in entries:
        registry[entry.name] = entry


def _lookup(registry: Mapping[str, Entry[T_co]], name: str, kind: str) -> Entry[T_co]:
    """The entry called ``name``; a ValueError listing the choices if there is none."""
    if name not in registry:
        raise ValueError(f"unknown {kind} '{name}'; choose one of {', '.join(registry)}")
    return registry[name]


def study_names(registry: Mapping[str, Entry[Any]]) -> tuple[str, ...]:
    """The names in the study's grid, in registry order (seq1..seq4; epoch, cutoff, oscillate)."""
    return tuple(name for name, entry in registry.items() if entry.study)


def readers(registry: Mapping[str, Entry[Any]]) -> dict[str, tuple[str, ...]]:
    """Each config constant and the entries that read it (``{"gamma": ("seq3",)}``)."""
    out: dict[str, tuple[str, ...]] = {}
    for name, entry in registry.items():
        for param in entry.params:
            out[param] = (*out.get(param, ()), name)
    return out


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


#: The sequences a run can use, by the name ``sequence.name`` takes (see :class:`Entry`).
SEQUENCES: dict[str, Entry[Sequence]] = {}
_register(
    SEQUENCES,
    Entry("seq1", Harmonic, "r_n = r0 / n: r0, r0/2, r0/3, ..."),
    Entry("seq2", InverseSqrt, "r_n = r0 / sqrt(n): r0, r0/sqrt(2), r0/sqrt(3), ..."),
    Entry("seq3", Geometric, "r_n = gamma^n * r0: r0, 0.9 r0, 0.81 r0, ...", ("gamma",)),
    Entry("seq4", SawTooth, "r_n = q_n * r0: a decaying saw-tooth of period P", ("period",)),
    Entry("constant", Constant, "r_n = r0 for every n (the baselines)", study=False),
)


def make_sequence(
    name: str, gamma: float = Geometric.gamma, period: int = SawTooth.period
) -> Sequence:
    """Build the sequence called ``name`` (a key of :data:`SEQUENCES`) with its constants; a
    sequence gets only the constants its entry reads (``gamma`` for seq3, ``period`` for seq4)."""
    return _lookup(SEQUENCES, name, "sequence").build(gamma=gamma, period=period)


# --------------------------------------------------------------------------- strategies


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
_register(
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
    return _lookup(STRATEGIES, name, "strategy").build(rate=rate, shrink=shrink)
