"""How the project's runs look in the MLflow UI: experiment kind, run names, colours, params,
and the runs views the printed URLs open.

MLflow 3's UI (3.17) takes an experiment's kind from its workflow type alone: the URL's
``workflowType`` query, else the browser's local storage (``mlflow.workflowType_v1``, written
only by the sidebar's GenAI / Model training switch), else GenAI; the experiment's
``mlflow.experimentKind`` tag is read only by UIs without that switch, and the experiments
list links to ``#/experiments/<id>`` without a query. So every URL the project prints carries
the workflow type, and a fresh browser that comes in through the list needs the switch once.

The columns a runs table shows and how many runs its charts draw are view state the UI keeps
in the browser, or in an experiment tag ``mlflow.sharedViewState.<key>`` that its "Share"
button writes and the URL's ``viewStateShareKey`` loads; the project writes such views
(useful columns, every run charted) and its URLs name them, compressed as that button compresses
them (``deflate;`` and the base64 of the zlib-deflated JSON: a store's tag holds 20000
characters at most, less than a view with charts takes). Where a sweep ran its settings with
several seeds, its view shows *bands*: its runs grouped by :data:`ROLE_TAG`, the group of the
settings' summary runs charted (:mod:`lrdecay.tracking.charts`), the seeds folded in the UI's
"Additional runs" group, one click away.
"""

from __future__ import annotations

import base64
import json
import math
import zlib
from collections.abc import Iterable, Mapping
from itertools import cycle
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from hydra.core.override_parser.overrides_parser import OverridesParser

from lrdecay.core.records import FINAL_ACC_METRIC, summary_key
from lrdecay.core.registry import readers, study_names
from lrdecay.core.sequences import SEQUENCES
from lrdecay.core.strategies import STRATEGIES
from lrdecay.palette import BASELINE_COLORS, MODERN_COLORS, SEQUENCE_COLORS
from lrdecay.tracking.charts import band_charts, chart_sections

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

#: Experiment tag for an experiment's kind, read by MLflow 3 UIs without the workflow switch.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
#: The URL query that opens MLflow's classic "Model training" runs view, and the one that opens
#: its runs page on the chart view instead of the table.
MODEL_TRAINING_QUERY = "workflowType=machine_learning"
CHART_MODE = {"compareRunsMode": "CHART"}
#: Run tag holding the colour MLflow's UI draws a run with (runs table, charts, compare view).
RUN_COLOR_TAG = "mlflow.runColor"
#: The stage of an Optuna search a run belongs to: ``search`` (one of its trials) or ``confirm``
#: (its winner run again with a fresh seed, the number reported).
STAGE_TAG = "lrdecay.stage"
#: A trial's run of an Optuna search: the trial's number in its study (set by the run itself).
TRIAL_TAG = "optuna.trial"
#: A sweep's parent run: neutral grey, so that colours mean settings.
SWEEP_COLOUR = "#b0b0b0"
#: What a run is to the project, where it is no training run: a sweep's parent (one launch of a
#: sweep), or a setting's summary over its seeds (:mod:`lrdecay.report.summary_runs`). The
#: report, resume and the sweep's table count neither; the views group runs by it.
ROLE_TAG = "lrdecay.role"
SWEEP_ROLE, SUMMARY_ROLE = "sweep", "summary"
#: The search filter that finds an experiment's sweep parents.
SWEEP_PARENTS = f"tags.`{ROLE_TAG}` = '{SWEEP_ROLE}'"

#: Config keys that belong to one option of a group: kept as params only where that option runs.
OPTION_KEYS = {
    "sequence": readers(SEQUENCES),  # {"gamma": ("seq3",), "period": ("seq4",)}
    "strategy": readers(STRATEGIES),  # {"rate": ("cutoff",), "shrink": ("cutoff",)}
}
#: Config sections about the sweep, the report or a search, not about one run's training.
NOT_RUN_SECTIONS = ("report.", "sweep.", "trial.")
#: Swept keys already spelled by a run's setting name (``seq3-epoch``), so not repeated in it.
NAMED_BY_SETTING = ("setting", "optimizer", "sequence", "strategy")


#: Experiment tag prefix of a runs view MLflow's UI loads from the URL's ``viewStateShareKey``.
SHARED_VIEW_TAG = "mlflow.sharedViewState."
#: How MLflow's UI marks a shared view it stored compressed.
COMPRESSED_MARK = "deflate;"
#: The experiment's own runs view (every run, sweeps folded) and a sweep's (its runs alone).
EXPERIMENT_VIEW_KEY = "lrdecay-runs"
SWEEP_VIEW_PREFIX = "lrdecay-sweep-"
#: The runs table's columns in the project's views (MLflow's column keys): what a sweep is read
#: by, in place of the UI's default Source / Models / Dataset (always "-" here).
VIEW_COLUMNS = (
    f"metrics.`{FINAL_ACC_METRIC}`",
    f"metrics.`{summary_key('convergence_epoch')}`",
    "tags.`setting`",
    "tags.`seed`",
)
#: How a sweep's plain view sorts its runs: best final accuracy first.
FINAL_ACC_SORT = f"metrics.`{FINAL_ACC_METRIC}`"
#: The UI's run-visibility mode that charts every run shown (its default draws the first 10).
SHOW_ALL_RUNS = "SHOW_ALL"
#: A bands view's grouping: summary runs in one group (charted), sweep parents in another, and
#: the training runs, which carry no role, in the UI's folded "Additional runs".
BY_ROLE = {
    "aggregateFunction": "average",
    "groupByKeys": [{"mode": "tag", "groupByData": ROLE_TAG}],
}


def is_summary(tags: Mapping[str, str]) -> bool:
    """Whether a run with ``tags`` is a setting's summary run, not a training run."""
    return tags.get(ROLE_TAG) == SUMMARY_ROLE


def runs_view(search_filter: str = "", order_by: str | None = None, bands: bool = False) -> str:
    """A runs view as MLflow's UI stores a shared one (:func:`encode_view`): the project's
    columns, every run charted, optionally a search and a descending sort; with ``bands``,
    runs grouped by role (the settings' summary runs charted as bands, the seeds one click
    away)."""
    view: dict[str, object] = {
        "searchFilter": search_filter,
        "selectedColumns": list(VIEW_COLUMNS),
        "runsHiddenMode": SHOW_ALL_RUNS,
    }
    if order_by:
        view |= {"orderByKey": order_by, "orderByAsc": False}
    if bands:  # charts drawn from the rows shown, not from the groups' own averages
        view |= {
            "groupBy": BY_ROLE,
            "useGroupedValuesInCharts": False,
            "compareRunCharts": band_charts(),
            "compareRunSections": chart_sections(),
        }
    return encode_view(view)


def encode_view(view: Mapping[str, object]) -> str:
    """A view's state as MLflow's UI stores a shared one: its JSON, deflated (zlib), in base64
    after the ``deflate;`` mark the UI reads it by."""
    packed = zlib.compress(json.dumps(view, sort_keys=True).encode(), 9)
    return COMPRESSED_MARK + base64.b64encode(packed).decode()


def decode_view(value: str) -> dict:
    """The view :func:`encode_view` stored (plain JSON, as the UI also reads, too)."""
    if value.startswith(COMPRESSED_MARK):
        value = zlib.decompress(base64.b64decode(value[len(COMPRESSED_MARK) :])).decode()
    return json.loads(value)


def sweep_view_key(parent_run_id: str) -> str:
    """The share key of the view of the sweep whose parent run is ``parent_run_id``."""
    return f"{SWEEP_VIEW_PREFIX}{parent_run_id}"


def experiment_tags() -> dict[str, str]:
    """The tags every experiment the project uses carries: its kind, and the runs view that
    :func:`experiment_url` opens (bands: the settings' summary runs charted)."""
    return {
        EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND,
        SHARED_VIEW_TAG + EXPERIMENT_VIEW_KEY: runs_view(bands=True),
    }


def share_sweep_view(
    client: MlflowClient, experiment_id: str, parent_run_id: str, bands: bool = False
) -> None:
    """Write the view of one sweep's runs (what :func:`sweep_url` opens): best final accuracy
    first, or with ``bands`` one band per setting. Its search lives in the view: the UI skips a
    shared view whose URL has one.

    A bands view keeps the UI's default order, newest first: the summary runs, written once
    the seeds ended, come first and so all load with the UI's first page of 100 runs, which a
    sort by accuracy would not promise (a setting's mean sits among its seeds)."""
    search = f"tags.`mlflow.parentRunId` = '{parent_run_id}'"
    view = runs_view(search, bands=True) if bands else runs_view(search, FINAL_ACC_SORT)
    client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG + sweep_view_key(parent_run_id), view)


def _runs_page(base: str, experiment_id: str, view_key: str, charts: bool = False) -> str:
    query = urlencode({"viewStateShareKey": view_key, **(CHART_MODE if charts else {})})
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{MODEL_TRAINING_QUERY}&{query}"


def experiment_url(base: str, experiment_id: str) -> str:
    """The URL that opens experiment ``experiment_id`` at ``base`` on its runs table, in the
    project's view (:func:`experiment_tags`)."""
    return _runs_page(base, experiment_id, EXPERIMENT_VIEW_KEY)


def sweep_url(base: str, experiment_id: str, parent_run_id: str, bands: bool = False) -> str:
    """The URL of one sweep's runs alone (:func:`share_sweep_view`): its runs table, or with
    ``bands`` its chart view, one band per setting."""
    return _runs_page(base, experiment_id, sweep_view_key(parent_run_id), charts=bands)


def swept_keys(overrides: Iterable[str]) -> list[str]:
    """The keys a sweep varies (``seed=0,1,2``, ``setting=a,b``), read with Hydra's parser."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return [o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()]


def name_suffix(swept: Iterable[str], job_overrides: Iterable[str]) -> str:
    """What tells this job apart from the sweep's other jobs of its setting: ``s1`` for a
    swept seed, ``lr=0.05`` for any other swept key (its last dotted part)."""
    values = dict(o.lstrip("+~").split("=", 1) for o in job_overrides if "=" in o)
    parts = []
    for key in swept:
        if key in NAMED_BY_SETTING or key not in values:
            continue
        value = readable(values[key])
        parts.append(f"s{value}" if key == "seed" else f"{key.rsplit('.', 1)[-1]}={value}")
    return " ".join(parts)


def readable(value: str, digits: int = 4) -> str:
    """A number as a label shows it, at most ``digits`` significant digits (``0.0034567891``
    becomes ``0.003457``); integers and text as they are."""
    try:
        number = float(value)
    except ValueError:
        return value
    if not math.isfinite(number) or value.lstrip("-").isdigit():
        return value
    return format(number, f".{digits}g")


def run_params(params: Mapping[str, str], choices: Mapping[str, str]) -> dict[str, str]:
    """The params a run actually uses: no other option's constants (``optimizer.betas``
    under SGD), no sweep, report or search settings. Values stay exact: they record the run."""
    kept = {}
    for key, value in params.items():
        if key.startswith(NOT_RUN_SECTIONS):
            continue
        group, _, leaf = key.partition(".")
        owners = OPTION_KEYS.get(group, {}).get(leaf)
        if owners is not None and choices.get(group) not in owners:
            continue
        kept[key] = value
    return kept


def _mix(colour: str, towards: str, amount: float) -> str:
    """``colour`` moved ``amount`` (0..1) of the way to ``towards`` (both ``#rrggbb``)."""
    a = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    b = [int(towards[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * amount):02x}" for x, y in zip(a, b, strict=True))


#: How each strategy shades its sequence's colour: the figures tell strategies apart by line
#: style, the UI only by colour, so each strategy gets a darker or lighter tone of the hue.
STRATEGY_SHADES = dict(
    zip(
        study_names(STRATEGIES),  # epoch, cutoff, oscillate
        cycle((("#000000", 0.0), ("#000000", 0.45), ("#ffffff", 0.5))),
    )
)


def setting_colour(setting: str, sequence: str, strategy: str) -> str | None:
    """The colour of ``setting`` in the UI, from the report figures' palette: a baseline's or
    ready modern baseline's own, else the hue of its sequence or ready PyTorch scheduler shaded
    by its strategy; None for a setting outside the study."""
    own = BASELINE_COLORS.get(setting) or MODERN_COLORS.get(setting)
    if own is not None:
        return own
    hue = SEQUENCE_COLORS.get(sequence) or MODERN_COLORS.get(sequence)
    if hue is None or strategy not in STRATEGY_SHADES:
        return None
    towards, amount = STRATEGY_SHADES[strategy]
    return _mix(hue, towards, amount)
