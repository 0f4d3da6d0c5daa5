"""The study's colours, one hue per sequence and per fixed-rate baseline: shared by the report's
figures and the runs' colours in the MLflow UI, so a setting looks the same in both.

Import-light on purpose: every training job reads it (for its run colour), and must not pay for
plotting libraries to do so.
"""

from __future__ import annotations

from itertools import cycle

from lrdecay.core.schedules import SEQUENCES, study_names

#: The study's fixed-rate baselines, by setting name (``<optimizer>-fixed``).
BASELINE_SGD = "sgd-fixed"
BASELINE_ADAM = "adam-fixed"

#: One hue per sequence of the study's grid, in its order (seq1..seq4).
SEQUENCE_COLORS = dict(
    zip(study_names(SEQUENCES), cycle(("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")))
)
BASELINE_COLORS = {BASELINE_SGD: "#111111", BASELINE_ADAM: "#9467bd"}

#: The ready PyTorch schedulers raced against the study (``conf/sequence/<name>.yaml``), in the
#: order the report lists them in its "Modern baselines" block, each with its own hue.
MODERN_COLORS = {
    "cosine": "#0b7285",
    "onecycle": "#c2255c",
    "warmup_cosine": "#5f3dc4",
    "step": "#82c91e",
    "plateau": "#495057",
    "wsd": "#17becf",
}
