"""Figures of one run's epoch history: loss, accuracy and learning rate against epoch.

Every run draws one at its end, so it is kept cheap (about 0.1 s instead of 0.33 s): an Agg
figure without pyplot's global state, a fixed layout instead of ``tight_layout``, no minor
ticks on the log axis (its major ticks sit at 1, 2 and 5 of each decade instead, written 0.005
rather than 5×10⁻³, so a rate that moves within one decade is still read off the axis), and
fast PNG compression. The title names the run, in the image and in the PNG's own ``Title``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator

from lrdecay.core.records import EpochRecord

#: Where the learning-rate axis has its ticks: at 1, 2 and 5 of each decade (at every digit
#: on an axis that spans less than a factor of 2).
RATE_TICK_SUBS = (1.0, 2.0, 5.0)


def history_figure(history: Sequence[EpochRecord], title: str = "") -> Figure:
    """The three panels (loss, accuracy, learning rate per epoch) of one run's history."""
    epochs = [r.epoch for r in history]
    dots = {"marker": "o", "markersize": 3} if len(epochs) <= 15 else {}  # short runs: visible
    fig = Figure(figsize=(13, 3.6), dpi=100)
    FigureCanvasAgg(fig)  # headless: files only, never a window, whatever the default backend
    ax_loss, ax_acc, ax_lr = fig.subplots(1, 3)
    ax_loss.plot(epochs, [r.train_loss for r in history], label="train", **dots)
    ax_loss.plot(epochs, [r.val_loss for r in history], label="validation", **dots)
    ax_loss.set(title="loss", xlabel="epoch")
    ax_acc.plot(epochs, [r.train_acc for r in history], label="train", **dots)
    ax_acc.plot(epochs, [r.val_acc for r in history], label="validation", **dots)
    ax_acc.set(title="accuracy", xlabel="epoch")
    ax_lr.step(epochs, [r.lr for r in history], where="post", color="tab:green", **dots)
    ax_lr.set(title="learning rate", xlabel="epoch", yscale="log")
    low, high = ax_lr.get_ylim()  # a rate that moves by less than 2x: a tick at every digit
    subs = RATE_TICK_SUBS if high >= 2 * low else tuple(float(d) for d in range(1, 10))
    ax_lr.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax_lr.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax_lr.yaxis.set_minor_locator(NullLocator())
    for ax in (ax_loss, ax_acc):
        ax.legend()
    for ax in (ax_loss, ax_acc, ax_lr):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(epochs) == 1:  # matplotlib would otherwise tick fractions of an epoch
            ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(
        left=0.05, right=0.985, bottom=0.14, top=0.82 if title else 0.9, wspace=0.22
    )
    return fig


def plot_history(history: Sequence[EpochRecord], path: Path, title: str = "") -> Path:
    """Write :func:`history_figure` as a PNG to ``path``, titled ``title`` (also its PNG
    ``Title``, so the file names its run wherever it is copied)."""
    fig = history_figure(history, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"Title": title} if title else None
    fig.savefig(path, metadata=metadata, pil_kwargs={"compress_level": 1})
    return path
