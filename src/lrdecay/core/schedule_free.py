"""Which weights the model holds: a schedule-free optimizer's training or averaged sequence.

Schedule-free optimizers (``schedulefree.SGDScheduleFree``, ``AdamWScheduleFree``, their
wrapper) keep two weight sequences: the model's parameters hold the point the gradient is taken
at after ``optimizer.train()``, and the averaged weights, the ones to evaluate and save, only
after ``optimizer.eval()``. Their authors ask for ``train()`` whenever the model trains,
``eval()`` whenever it is evaluated or saved, and BatchNorm statistics re-estimated for the
averaged weights. They are told apart by duck typing: callable ``train`` and ``eval`` on the
optimizer, which torch's base ``Optimizer`` has not. Any other optimizer is untouched.

The switches are idempotent and never switch back on their own: evaluation leaves the averaged
weights in place until the next epoch trains, so a checkpoint written after evaluation and an
uninterrupted run continue from the very same tensors (each ``eval``/``train`` round trip
rounds the weights differently).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

#: Training batches one re-estimation of BatchNorm statistics reads (the authors' suggestion).
BN_BATCHES = 50


def is_schedule_free(optimizer: object) -> bool:
    """Whether ``optimizer`` keeps training and averaged weights apart (callable ``train`` and
    ``eval``, which torch's base Optimizer has not)."""
    return all(callable(getattr(optimizer, mode, None)) for mode in ("train", "eval"))


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` has a BatchNorm layer that tracks running statistics."""
    return any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
        for m in model.modules()
    )


class WeightModes:
    """Puts ``model`` and ``optimizer`` in training or evaluation mode together.

    For a schedule-free optimizer :meth:`evaluation` also swaps the averaged weights in and,
    once per switch, re-estimates BatchNorm statistics for them on ``batches()`` (training
    inputs, forward passes inside ``forward_context()``, as training runs them); for any other
    optimizer both switches are ``model.train()`` / ``model.eval()``.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        batches: Callable[[], Iterable[torch.Tensor]],
        forward_context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.batches = batches
        self.forward_context = forward_context
        self.schedule_free = is_schedule_free(optimizer)
        self._averaged = False  # the averaged weights and their BatchNorm statistics are in

    def training(self) -> None:
        """Before a training epoch: the training weights, the model in train mode."""
        self.model.train()
        if self.schedule_free:
            self.optimizer.train()  # type: ignore[attr-defined]
            self._averaged = False

    def evaluation(self) -> None:
        """Before evaluating or saving: the averaged weights (BatchNorm statistics re-estimated
        for them), the model in eval mode."""
        if self.schedule_free:
            self.optimizer.eval()  # type: ignore[attr-defined]
            if not self._averaged and has_batchnorm(self.model):
                with torch.no_grad(), self.forward_context():
                    update_bn(self.batches(), self.model)
            self._averaged = True
        self.model.eval()
