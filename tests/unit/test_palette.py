"""The study's colours tell every arm apart: a perceptual distance (CIEDE2000, computed here from
matplotlib's sRGB values) between any two arms that can share a figure, and from the white
background; the settings of one sequence, which share its colour, differ by marker."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgb

from lrdecay.config import validate
from lrdecay.core.outcome import RunOutcome, RunStatus
from lrdecay.palette import (
    BASELINE_COLORS,
    MIN_DELTA_E,
    MIN_DELTA_E_WHITE,
    MODERN_COLORS,
    SEQUENCE_COLORS,
)
from lrdecay.report.figure_common import STRATEGY_MARKERS, styles
from lrdecay.report.runs import RunRecord
from lrdecay.report.stats import MODERN_GROUP, summarise
from lrdecay.run import run_name
from tests.helpers import CONF_DIR, compose_config

#: D65 white, the reference of sRGB.
WHITE_XYZ = np.array([0.95047, 1.0, 1.08883])
SRGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)


def lab(colour: str) -> np.ndarray:
    """CIELAB (D65) of a matplotlib colour."""
    rgb = np.array(to_rgb(colour))
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = SRGB_TO_XYZ @ linear / WHITE_XYZ
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> float:
    """The CIEDE2000 colour difference of two CIELAB colours (Sharma, Wu and Dalal, 2005)."""
    (l1, a1, b1), (l2, a2, b2) = lab1, lab2
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360 if c1p else 0.0
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360 if c2p else 0.0
    dh = h2p - h1p
    if c1p * c2p == 0:
        dh = 0.0
    elif dh > 180:
        dh -= 360
    elif dh < -180:
        dh += 360
    d_l, d_c = l2 - l1, c2p - c1p
    d_h = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    l_bar, cp_bar = (l1 + l2) / 2, (c1p + c2p) / 2
    if c1p * c2p == 0:
        h_bar = h1p + h2p
    elif abs(h1p - h2p) <= 180:
        h_bar = (h1p + h2p) / 2
    else:
        h_bar = (h1p + h2p + (360 if h1p + h2p < 360 else -360)) / 2
    t = (
        1
        - 0.17 * np.cos(np.radians(h_bar - 30))
        + 0.24 * np.cos(np.radians(2 * h_bar))
        + 0.32 * np.cos(np.radians(3 * h_bar + 6))
        - 0.20 * np.cos(np.radians(4 * h_bar - 63))
    )
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / np.sqrt(20 + (l_bar - 50) ** 2)
    s_c, s_h = 1 + 0.045 * cp_bar, 1 + 0.015 * cp_bar * t
    r_t = (
        -2
        * np.sqrt(cp_bar**7 / (cp_bar**7 + 25.0**7))
        * np.sin(np.radians(60 * np.exp(-(((h_bar - 275) / 25) ** 2))))
    )
    return float(
        np.sqrt(
            (d_l / s_l) ** 2 + (d_c / s_c) ** 2 + (d_h / s_h) ** 2 + r_t * (d_c / s_c) * (d_h / s_h)
        )
    )


def delta_e(one: str, other: str) -> float:
    return ciede2000(lab(one), lab(other))


@pytest.mark.parametrize(
    ("lab1", "lab2", "expected"),
    [  # pairs 1, 7, 17 and 25 of Sharma, Wu and Dalal's test data
        ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
        ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
        ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
        ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ],
)
def test_the_colour_difference_is_ciede2000(
    lab1: tuple[float, ...], lab2: tuple[float, ...], expected: float
) -> None:
    assert ciede2000(np.array(lab1), np.array(lab2)) == pytest.approx(expected, abs=1e-4)
    assert ciede2000(np.array(lab2), np.array(lab1)) == pytest.approx(expected, abs=1e-4)


def test_lab_of_srgb_primaries() -> None:
    assert lab("#ffffff") == pytest.approx([100, 0, 0], abs=0.01)
    assert lab("#ff0000") == pytest.approx([53.24, 80.09, 67.20], abs=0.02)


def test_every_two_arms_are_colours_apart() -> None:
    """The four sequences, the three fixed-rate baselines and the nine modern arms: all 16 can
    share the scatter, so every pair is at least MIN_DELTA_E apart, and each stands out from
    the white background."""
    colours = {**SEQUENCE_COLORS, **BASELINE_COLORS, **MODERN_COLORS}
    assert len(colours) == 16
    closest = min(
        (delta_e(a, b), x, y) for (x, a), (y, b) in itertools.combinations(colours.items(), 2)
    )
    assert closest[0] >= MIN_DELTA_E, closest
    faintest = min((delta_e(c, "#ffffff"), name) for name, c in colours.items())
    assert faintest[0] >= MIN_DELTA_E_WHITE, faintest


def test_the_old_near_twins_would_fail() -> None:
    """The check can fail: the pairs the old palette drew alike are below the bound."""
    for one, other in (("#1f77b4", "#0b7285"), ("#9467bd", "#e377c2"), ("#d62728", "#c2255c")):
        assert delta_e(one, other) < MIN_DELTA_E


def _record(setting: str) -> RunRecord:
    """A one-epoch run of the shipped ``conf/setting/<setting>.yaml``, tagged as runs are."""
    conf = validate(compose_config([f"setting={setting}"]))
    scheduler = conf.sequence.scheduler
    return RunRecord(
        outcome=RunOutcome(RunStatus.FINISHED, setting=run_name(conf), run_id=setting),
        optimizer=conf.optimizer.name,
        sequence=conf.sequence.name,
        strategy=conf.strategy.name,
        seed="0",
        dataset="digits",
        params={},
        history={"lr": {1: conf.optimizer.lr}},
        scheduler=str(scheduler["_target_"]) if scheduler is not None else "",
    )


def test_every_shipped_setting_looks_different_in_the_figures() -> None:
    """All 24 settings of conf/setting: two settings either differ in colour by MIN_DELTA_E,
    or share their sequence's colour and differ in the scatter's marker (their strategy's)."""
    settings = sorted(p.stem for p in (Path(CONF_DIR) / "setting").glob("*.yaml"))
    assert len(settings) == 24
    rows = summarise([_record(s) for s in settings], None)
    drawn = styles(rows)
    assert set(drawn) == set(settings)
    marker = {
        s.setting: drawn[s.setting].marker
        if s.group == MODERN_GROUP
        else STRATEGY_MARKERS.get(s.strategy, "P")
        for s in rows
    }
    for one, other in itertools.combinations(settings, 2):
        a, b = drawn[one], drawn[other]
        if a.color == b.color:
            assert marker[one] != marker[other], (one, other)
        else:
            assert delta_e(a.color, b.color) >= MIN_DELTA_E, (one, other)
    families = {(str(s.line), s.marker) for name, s in drawn.items() if name in MODERN_COLORS}
    assert len(families) == 2  # PyTorch schedulers dashed with stars, optimizers dotted with P
