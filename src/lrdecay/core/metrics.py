"""Run-level metrics of the study: convergence epoch, epochs to target, early-stop test; and the
constants that define them, which the config schema and the engine take as their defaults."""

from __future__ import annotations

from collections.abc import Sequence

#: The study's convergence rule (its analysis code): the accuracy changes over this many epochs
#: in a row must sum below the threshold.
CONVERGENCE_WINDOW = 4
CONVERGENCE_THRESHOLD = 0.009
#: Samples per forward pass when measuring validation and test metrics (no gradients are kept,
#: so it can be far larger than the training batch).
EVAL_BATCH_SIZE = 2048


def convergence_epoch(
    accuracies: Sequence[float],
    window: int = CONVERGENCE_WINDOW,
    threshold: float = CONVERGENCE_THRESHOLD,
    budget: int | None = None,
) -> int:
    """First epoch t (1-based) whose next ``window`` accuracy changes sum below ``threshold``.

    That is the smallest t with Σ_{k=t}^{t+window−1} |acc_{k+1} − acc_k| < threshold (the
    study's analysis code: window 4, threshold 0.009). With no such t, the epoch ``budget``
    (default: the number of epochs given).
    """
    acc = list(accuracies)
    for t in range(len(acc) - window):  # t is 0-based here; acc[t + window] must exist
        moved = sum(abs(acc[k + 1] - acc[k]) for k in range(t, t + window))
        if moved < threshold:
            return t + 1
    return budget if budget is not None else len(acc)


def epochs_to_target(accuracies: Sequence[float], target: float) -> int | None:
    """First epoch (1-based) whose accuracy reaches ``target``; None if none does."""
    return next((i + 1 for i, a in enumerate(accuracies) if a >= target), None)


def should_early_stop(val_losses: Sequence[float], tol: float | None) -> bool:
    """The study's stop rule: |val_loss_t − val_loss_{t−2}| < tol (off when tol is None)."""
    if tol is None or len(val_losses) < 3:
        return False
    return abs(val_losses[-1] - val_losses[-3]) < tol
