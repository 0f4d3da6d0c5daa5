"""The forest plot of the differences: each comparison with its simultaneous interval, one
panel per family, the zero line and the ±δ band.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lrdecay.report.difference_table import levels_text
from lrdecay.report.differences import UNDECIDED, Difference, FamilyResult

#: Colours of the forest plot: arm ahead, control ahead, no difference shown.
AHEAD, BEHIND, OPEN = "#2b8a3e", "#c92a2a", "#495057"
#: Vertical space per comparison and per panel title, inches.
ROW_IN, TITLE_IN = 0.3, 0.75


def _label(d: Difference, one_control: bool) -> str:
    return d.arm if one_control else f"{d.arm} − {d.control}"


def forest_plot(results: Sequence[FamilyResult], path: Path, *, dpi: int = 110) -> Path:
    """Each comparison's difference (points) with its simultaneous interval, one panel per
    family, the zero line and the ±δ band; written as a PNG to ``path``."""
    from matplotlib.figure import Figure  # no pyplot: no global backend, no figure registry
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if not results:
        raise ValueError("no families to plot")
    heights = [len(r.differences) * ROW_IN + TITLE_IN for r in results]
    fig = Figure(figsize=(8.5, sum(heights) + 0.8), layout="constrained")
    axes = fig.subplots(len(results), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, r in zip(axes, results, strict=True):
        diffs = r.differences
        one_control = len({d.control for d in diffs}) == 1
        ys = np.arange(len(diffs))[::-1]
        for y, d in zip(ys, diffs, strict=True):
            color = AHEAD if d.lo > 0 else BEHIND if d.hi < 0 else OPEN
            ax.plot([d.lo, d.hi], [y, y], color=color, lw=2, solid_capstyle="butt")
            ax.plot(
                d.estimate, y, "o", ms=6, color=color, mfc=color if d.decided else "white", mew=1.5
            )
        if r.margin > 0:
            ax.axvspan(-r.margin, r.margin, color="#74c0fc", alpha=0.2, lw=0)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(ys, [_label(d, one_control) for d in diffs])
        ax.set_ylim(-0.7, len(diffs) - 0.3)
        span = max(r.smallest_margin, r.margin) * 1.08 or 1.0
        ax.set_xlim(-span, span)
        ax.grid(axis="x", color="#dee2e6", lw=0.6)
        what = f"arm − {diffs[0].control}" if one_control else "first − second"
        title = textwrap.wrap(f"{r.name}: {r.question}", 90)
        declared = f"margin δ = ±{r.margin:g} points" if r.margin > 0 else "no margin declared"
        title.append(f"{what}; {declared}")
        ax.set_title("\n".join(title), loc="left", fontsize=10)
    axes[-1].set_xlabel(
        "difference in test accuracy (points)\n"
        f"{levels_text(results)} simultaneous intervals per family, seeds and test items resampled"
    )
    handles = [
        Line2D([], [], color=AHEAD, marker="o", lw=2, label="arm (first) ahead"),
        Line2D([], [], color=BEHIND, marker="o", lw=2, label="control (second) ahead"),
        Line2D([], [], color=OPEN, marker="o", mfc="white", lw=2, label=UNDECIDED),
        Patch(color="#74c0fc", alpha=0.2, label="±δ (equivalence margin)"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=9, frameon=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
