"""The study's colours, one per sequence, per fixed-rate baseline and per modern arm: shared by
the report's figures and the runs' colours in the MLflow UI, so a setting looks the same in both.

Any two arms that can share a figure are at least :data:`MIN_DELTA_E` apart in CIEDE2000 (the
perceptual colour difference), and every colour at least :data:`MIN_DELTA_E_WHITE` from the white
background (tests/unit/test_palette.py checks both). The colours were picked for that distance; the
four sequences keep the matplotlib hues of the first pages, and every colour keeps 45 RGB units from
the MLflow UI's strategy shades of the sequences (:mod:`lrdecay.tracking.ui`). The settings of one
sequence share its colour and differ by line and marker, which the figures also use to tell the
families apart (paper sequences, fixed-rate baselines, PyTorch schedulers, optimizers that need no
schedule).

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

#: The least CIEDE2000 difference between the colours of two arms (between two sequences, two
#: baselines, two modern arms, or one of each): 20 is well past a just-noticeable difference
#: (about 2), and above the 13-18 of the near-twins an earlier palette had (cosine teal against
#: seq1 blue, AdamW pink against Adam lavender).
MIN_DELTA_E = 20.0
#: The least CIEDE2000 difference between any colour and the figures' white background, so a
#: thin dotted line still shows.
MIN_DELTA_E_WHITE = 25.0

#: One hue per sequence of the study's grid, in its order (seq1..seq4).
SEQUENCE_COLORS = dict(
    zip(study_names(SEQUENCES), cycle(("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")))
)
#: SGD black, the control at r0 khaki, Adam purple.
BASELINE_COLORS = {BASELINE_SGD: "#111111", CONTROL_SGD_R0: "#bfaa55", BASELINE_ADAM: "#9467bd"}

#: The reference study's optimizers (its baselines and the grid's SGD); a run with any other
#: optimizer is a modern baseline.
STUDY_OPTIMIZERS = ("sgd", "adam")

#: The ready modern baselines raced with the study, in the order the report lists them in its
#: "Modern baselines" block, each with its own hue: the PyTorch schedulers by their sequence
#: (``conf/sequence/<name>.yaml``; ``cosine-cutoff`` is cosine's), then the optimizers beyond
#: the study's by their fixed-rate setting (``<optimizer>-fixed``).
MODERN_COLORS = {
    "cosine": "#555500",  # dark olive
    "onecycle": "#06c2ac",  # turquoise
    "warmup_cosine": "#00806a",  # dark teal
    "step": "#15bfea",  # sky blue
    "plateau": "#95aaff",  # periwinkle
    "wsd": "#0000ff",  # pure blue
    "adamw-fixed": "#951555",  # wine
    "sgd_schedulefree-fixed": "#ea95d4",  # orchid
    "prodigy-fixed": "#ff0080",  # hot pink
}


def modern_arm(setting: str, sequence: str) -> str | None:
    """Which ready modern baseline ``setting`` is (its key in :data:`MODERN_COLORS`): the
    setting itself, else its sequence's scheduler; None for neither."""
    if setting in MODERN_COLORS:
        return setting
    return sequence if sequence in MODERN_COLORS else None
