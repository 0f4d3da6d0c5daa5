"""The study's learning-rate sequences and their registry, :data:`SEQUENCES`.

A *sequence* maps the number of advances so far, ``k`` (0 at the start), to a multiple of the
initial rate r0; the run starts at r0 and each advance takes the next term. A strategy
(:mod:`lrdecay.core.strategies`) decides when it advances, and
:class:`lrdecay.core.schedulers.SequenceScheduler` joins both as a regular PyTorch LR scheduler.
Plain Python, no torch.

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

from lrdecay.core.registry import Entry, lookup, register


class RateSequence(ABC):
    """A learning-rate sequence: ``factor(k)`` is r_{k-th term} / r0 after ``k`` advances."""

    name: str = ""

    @abstractmethod
    def factor(self, k: int) -> float:
        """Multiple of r0 after ``k`` advances (``factor(0) == 1``)."""

    def rate(self, r0: float, k: int) -> float:
        """The learning rate after ``k`` advances from ``r0``."""
        return r0 * self.factor(k)


@dataclass(frozen=True)
class Constant(RateSequence):
    """r_n = r0: the baselines' fixed rate."""

    name = "constant"

    def factor(self, k: int) -> float:
        return 1.0


@dataclass(frozen=True)
class Harmonic(RateSequence):
    """seq1: r_n = r0 / n (n = k + 1): r0, r0/2, r0/3, …"""

    name = "seq1"

    def factor(self, k: int) -> float:
        return 1.0 / (k + 1)


@dataclass(frozen=True)
class InverseSqrt(RateSequence):
    """seq2: r_n = r0 / √n (n = k + 1): r0, r0/√2, r0/√3, …"""

    name = "seq2"

    def factor(self, k: int) -> float:
        return 1.0 / math.sqrt(k + 1)


@dataclass(frozen=True)
class Geometric(RateSequence):
    """seq3: r_n = gamma^n · r0 (n = k): r0, 0.9·r0, 0.81·r0, … — ExponentialLR when per epoch."""

    gamma: float = 0.9
    name = "seq3"

    def factor(self, k: int) -> float:
        return self.gamma**k


@dataclass(frozen=True)
class SawTooth(RateSequence):
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
SEQUENCES: dict[str, Entry[RateSequence]] = {}
register(
    SEQUENCES,
    Entry("seq1", Harmonic, "r_n = r0 / n: r0, r0/2, r0/3, ..."),
    Entry("seq2", InverseSqrt, "r_n = r0 / sqrt(n): r0, r0/sqrt(2), r0/sqrt(3), ..."),
    Entry("seq3", Geometric, "r_n = gamma^n * r0: r0, 0.9 r0, 0.81 r0, ...", ("gamma",)),
    Entry("seq4", SawTooth, "r_n = q_n * r0: a decaying saw-tooth of period P", ("period",)),
    Entry("constant", Constant, "r_n = r0 for every n (the baselines)", study=False),
)


def make_sequence(
    name: str, gamma: float = Geometric.gamma, period: int = SawTooth.period
) -> RateSequence:
    """Build the sequence called ``name`` (a key of :data:`SEQUENCES`) with its constants; a
    sequence gets only the constants its entry reads (``gamma`` for seq3, ``period`` for seq4)."""
    return lookup(SEQUENCES, name, "sequence").build(gamma=gamma, period=period)
