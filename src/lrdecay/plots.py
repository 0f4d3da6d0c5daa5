"""Figures of one run's epoch history: loss, accuracy and learning rate against epoch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window: runs happen on headless workers
import matplotlib.pyplot as plt

from lrdecay.engine import EpochRecord


def plot_history(history: Sequence[EpochRecord], path: Path, title: str = "") -> Path:
    """Write a three-panel PNG (loss, accuracy, learning rate per epoch) to ``path``."""
    epochs = [r.epoch for r in history]
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(1, 3, figsize=(13, 3.6))
    ax_loss.plot(epochs, [r.train_loss for r in history], label="train")
    ax_loss.plot(epochs, [r.val_loss for r in history], label="validation")
    ax_loss.set(title="loss", xlabel="epoch")
    ax_acc.plot(epochs, [r.train_acc for r in history], label="train")
    ax_acc.plot(epochs, [r.val_acc for r in history], label="validation")
    ax_acc.set(title="accuracy", xlabel="epoch")
    ax_lr.step(epochs, [r.lr for r in history], where="post", color="tab:green")
    ax_lr.set(title="learning rate", xlabel="epoch", yscale="log")
    for ax in (ax_loss, ax_acc):
        ax.legend()
    for ax in (ax_loss, ax_acc, ax_lr):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
