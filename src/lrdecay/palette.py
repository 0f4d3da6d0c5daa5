"""The study's colours, one hue per sequence and per fixed-rate baseline: shared by the report's
figures and the runs' colours in the MLflow UI, so a setting looks the same in both.

Import-light on purpose: every training job reads it (for its run colour), and must not pay for
plotting libraries to do so.
"""

from __future__ import annotations

from itertools import cycle

from lrdecay.core.registry import study_names
from lrdecay.core.sequences import SEQUENCES

#: The study's fixed-rate baselines, by setting name (``<optimizer>-fixed``, at 0.001).
BASELINE_SGD = "sgd-fixed"
BASELINE_ADAM = "adam-fixed"
#: The control: SGD at a fixed rate equal to the decayed arms' r0 (0.01), so that decay is
#: compared with no decay at the same starting rate (``conf/setting/sgd-fixed-r0.yaml``, named
#: by its ``setting_name``).
CONTROL_SGD_R0 = "sgd-fixed-r0"
#: Every fixed-rate baseline of the study's Benchmark block, in table order.
BASELINES = (BASELINE_SGD, CONTROL_SGD_R0, BASELINE_ADAM)

#: One hue per sequence of the study's grid, in its order (seq1..seq4).
SEQUENCE_COLORS = dict(
    zip(study_names(SEQUENCES), cycle(("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")))
)
#: The control's dark goldenrod is the hue furthest (CIELAB) from every other colour here,
#: the sequences' strategy shades and the figures' spare colours included.
BASELINE_COLORS = {BASELINE_SGD: "#111111", CONTROL_SGD_R0: "#b8860b", BASELINE_ADAM: "#9467bd"}

#: The reference study's optimizers (its baselines and the grid's SGD); a run with any other
#: optimizer is a modern baseline.
STUDY_OPTIMIZERS = ("sgd", "adam")

#: The ready modern baselines raced with the study, in the order the report lists them in its
#: "Modern baselines" block, each with its own hue: the PyTorch schedulers by their sequence
#: (``conf/sequence/<name>.yaml``; ``cosine-cutoff`` is cosine's), then the optimizers beyond
#: the study's by their fixed-rate setting (``<optimizer>-fixed``).
MODERN_COLORS = {
    "cosine": "#0b7285",
    "onecycle": "#c2255c",
    "warmup_cosine": "#5f3dc4",
    "step": "#82c91e",
    "plateau": "#495057",
    "wsd": "#17becf",
    "adamw-fixed": "#e377c2",
    "sgd_schedulefree-fixed": "#8c564b",
    "prodigy-fixed": "#bcbd22",
}


def modern_arm(setting: str, sequence: str) -> str | None:
    """Which ready modern baseline ``setting`` is (its key in :data:`MODERN_COLORS`): the
    setting itself, else its sequence's scheduler; None for neither."""
    if setting in MODERN_COLORS:
        return setting
    return sequence if sequence in MODERN_COLORS else None
