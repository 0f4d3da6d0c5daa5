"""The chart view's cards in the project's runs views: one *band* chart per metric.

A band chart draws, for each run shown, a metric and the bounds of its interval
(:func:`~lrdecay.core.records.bound_keys`), which only a setting's summary run logs: the
summary's mean solid, its lower bound dashed and its upper bound dotted, in the setting's
colour; a seed drawn beside it is one solid line. MLflow's UI (3.17) keeps a runs view's charts
as a list of cards (``compareRunCharts``) in sections (``compareRunSections``) and adds a card of
its own for every metric no card names as its ``metricKey``: the bounds get a deleted card each,
so they are drawn only inside their band.
"""

from __future__ import annotations

from typing import Any

from lrdecay.core.outcome import SUMMARY_METRICS
from lrdecay.core.records import (
    EPOCH_NAMES,
    EPOCH_SECTION,
    N_SEEDS,
    SUMMARY_SECTION,
    bound_keys,
    epoch_key,
    summary_key,
)

#: The sections the cards sit in, by name (each card names its section by this id).
SECTIONS = {EPOCH_SECTION: "lrdecay-charts-epoch", SUMMARY_SECTION: "lrdecay-charts-summary"}


def _card(key: str, section: str, shown: tuple[str, ...] | None, deleted: bool) -> dict[str, Any]:
    """A line chart card as MLflow's UI stores one, every field at its default but these."""
    return {
        "type": "LINE",
        "uuid": f"lrdecay-chart-{key}",
        "metricKey": key,
        "selectedMetricKeys": list(shown) if shown else None,
        "displayName": key,
        "metricSectionId": SECTIONS[section],
        "deleted": deleted,
        "isGenerated": True,
        "runsCountToCompare": 10,
        "lineSmoothness": 0,
        "xAxisKey": "step",
        "xAxisScaleType": "linear",
        "scaleType": "linear",
        "range": {},
        "selectedXAxisMetricKey": "",
        "yAxisKey": "metric",
        "yAxisExpressions": [],
        "ignoreOutliers": False,
        "useGlobalXaxisKey": True,
        "useGlobalLineSmoothing": True,
    }


def _band(key: str, section: str) -> list[dict[str, Any]]:
    """The band card of ``key`` (its mean and bounds), and a deleted card for each bound."""
    lower, upper = bound_keys(key)
    return [
        _card(key, section, (key, lower, upper), deleted=False),
        _card(lower, section, None, deleted=True),
        _card(upper, section, None, deleted=True),
    ]


def _validation_first(name: str) -> tuple[bool, bool, bool, int]:
    """Per-epoch curves in the order a reader looks: validation, then training, accuracy
    before loss; then the rest as recorded (rate, its advances, seconds)."""
    split = not name.startswith("val_"), not name.startswith("train_")
    return *split, not name.endswith("_acc"), EPOCH_NAMES.index(name)


def band_charts() -> list[dict[str, Any]]:
    """The cards of a view that shows bands: per-epoch metrics (step = epoch), validation
    first, then run-level ones in the order runs log them; each section ends with how many
    seeds each number averages."""
    cards: list[dict[str, Any]] = []
    for section, key_of, names in (
        (EPOCH_SECTION, epoch_key, sorted(EPOCH_NAMES, key=_validation_first)),
        (SUMMARY_SECTION, summary_key, SUMMARY_METRICS),
    ):
        for name in names:
            cards += _band(key_of(name), section)
        cards.append(_card(key_of(N_SEEDS), section, None, deleted=False))
    return cards


def chart_sections() -> list[dict[str, Any]]:
    """The sections :func:`band_charts` fills, as MLflow's UI stores them."""
    return [
        {
            "uuid": uuid,
            "name": name,
            "display": True,
            "isReordered": False,
            "deleted": False,
            "isGenerated": True,
        }
        for name, uuid in SECTIONS.items()
    ]
