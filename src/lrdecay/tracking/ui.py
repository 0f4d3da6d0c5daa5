"""How the project's runs look in the MLflow UI: experiment kind, run names, colours, params.

MLflow 3's UI opens an experiment in its GenAI view unless told otherwise; it reads the
workflow from the URL's ``workflowType`` query (else from the browser's own storage, GenAI in a
fresh profile), so every URL the project prints carries it, and experiments are also tagged
with their kind for the UI's kind selector.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from urllib.parse import urlencode

from hydra.core.override_parser.overrides_parser import OverridesParser

from lrdecay.palette import BASELINE_COLORS, MODERN_COLORS, SEQUENCE_COLORS

#: Experiment tag MLflow's UI reads for an experiment's kind, and the kind of this project's.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
#: The URL query that opens MLflow's classic "Model training" runs view.
MODEL_TRAINING_QUERY = "workflowType=machine_learning"
#: Run tag holding the colour MLflow's UI draws a run with (runs table, charts, compare view).
RUN_COLOR_TAG = "mlflow.runColor"
#: A sweep's parent run: neutral grey, so that colours mean settings.
SWEEP_COLOUR = "#b0b0b0"

#: Config keys that belong to one option of a group: kept as params only where that option runs.
OPTION_KEYS = {
    "optimizer": {"momentum": ("sgd",), "betas": ("adam",)},
    "sequence": {"gamma": ("seq3",), "period": ("seq4",)},
    "strategy": {"rate": ("cutoff",), "shrink": ("cutoff",)},
}
#: Config sections about the sweep, the report or a search, not about one run's training.
NOT_RUN_SECTIONS = ("report.", "sweep.", "trial.")
#: Swept keys already spelled by a run's setting name (``seq3-epoch``), so not repeated in it.
NAMED_BY_SETTING = ("setting", "optimizer", "sequence", "strategy")


def experiment_url(base: str, experiment_id: str) -> str:
    """The URL that opens experiment ``experiment_id`` on its runs table at ``base``."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}?{MODEL_TRAINING_QUERY}"


def sweep_url(base: str, experiment_id: str, parent_run_id: str) -> str:
    """The URL of one sweep's runs alone, best final accuracy first (MLflow keeps a search
    and a sort in the URL of the runs page, not in the experiment's)."""
    from lrdecay.core.records import FINAL_ACC_METRIC

    query = urlencode(
        {
            "searchFilter": f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
            "orderByKey": f"metrics.`{FINAL_ACC_METRIC}`",
            "orderByAsc": "false",
        }
    )
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{MODEL_TRAINING_QUERY}&{query}"


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
STRATEGY_SHADES = {
    "epoch": ("#000000", 0.0),
    "cutoff": ("#000000", 0.45),
    "oscillate": ("#ffffff", 0.5),
}


def setting_colour(setting: str, sequence: str, strategy: str) -> str | None:
    """The colour of ``setting`` in the UI, from the report figures' palette: the hue of its
    sequence, baseline or ready PyTorch scheduler shaded by its strategy; None for a setting
    outside the study."""
    if setting in BASELINE_COLORS:
        return BASELINE_COLORS[setting]
    hue = SEQUENCE_COLORS.get(sequence) or MODERN_COLORS.get(sequence)
    if hue is None or strategy not in STRATEGY_SHADES:
        return None
    towards, amount = STRATEGY_SHADES[strategy]
    return _mix(hue, towards, amount)
