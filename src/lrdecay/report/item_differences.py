"""The report's section "Differences: seeds and test items", from the runs' kept predictions.

Every run that kept its predictions (its ``predictions.npz`` artifact, or the exported study's
``predictions.npz``) gives one correctness bit per test item, so arms are compared item by item
with :mod:`lrdecay.report.differences`: seeds and test items both resampled, simultaneous 95 %
intervals per family. The families, each answering one question:

1. every arm against the study's baseline ``sgd-fixed`` (decay vs the study's baseline);
2. every decayed arm of the paper's grid against the control ``sgd-fixed-r0`` (decay vs the same
   rate held fixed);
3. each of the paper's schemes against each modern arm that ran; when that family would hold
   more than :data:`MAX_PAIRS` comparisons and a validation split was held out, each modern arm
   against the one scheme best on validation accuracy instead (never chosen on test).

A family whose control did not run is skipped; each family uses only the seeds every one of its
arms ran. No torch here: predictions are read with ``numpy.load(..., allow_pickle=False)``.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from lrdecay.core.predictions import PREDICTIONS_FILE, Predictions
from lrdecay.palette import BASELINE_SGD, CONTROL_SGD_R0
from lrdecay.report.difference_table import markdown_table
from lrdecay.report.differences import (
    N_BOOT,
    POINTS,
    UNDECIDED,
    Difference,
    Family,
    FamilyResult,
    compare,
    correctness_matrices,
)
from lrdecay.report.factor_effects import FactorComparison, factor_effects
from lrdecay.report.forest_plot import forest_plot
from lrdecay.report.runs import ReportError, RunRecord
from lrdecay.report.stats import MODERN_GROUP, SEQUENCES, STRATEGY_GROUP, classify

# MLflow draws a progress bar per downloaded artifact: one per run, noise in the report's output.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

#: The section's title, and the forest plot's file beside the report's other figures.
TITLE = "Differences: seeds and test items"
FIGURE = "differences.png"
#: The most comparisons family 3 holds before it becomes "each modern arm vs the best scheme".
MAX_PAIRS = 24


@dataclass
class Kept:
    """Every arm's kept predictions ``{setting: {seed: predicted}}`` on one scoring split."""

    split: str
    labels: np.ndarray
    arms: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def _add(kept: Kept, setting: str, seed: str, predicted: np.ndarray) -> None:
    kept.arms.setdefault(setting, {}).setdefault(seed, np.asarray(predicted))  # first run wins


def from_store(client: MlflowClient, runs: Sequence[RunRecord]) -> Kept | None:
    """The runs' ``predictions.npz`` artifacts (public artifact download), or None when no run
    kept one; raises :class:`ReportError` when runs were scored on different items."""
    kept: Kept | None = None
    digest = ""
    with tempfile.TemporaryDirectory() as tmp:
        for i, run in enumerate(runs):
            if not run.outcome.ok or not run.run_id:
                continue
            try:
                if PREDICTIONS_FILE not in {a.path for a in client.list_artifacts(run.run_id)}:
                    continue
                folder = Path(tmp) / str(i)
                folder.mkdir()
                local = client.download_artifacts(run.run_id, PREDICTIONS_FILE, str(folder))
                found = Predictions.load(Path(local))  # numpy.load(allow_pickle=False)
            except (MlflowException, OSError, ValueError) as exc:
                raise ReportError(
                    f"run {run.run_id}: its predictions cannot be read ({exc})"
                ) from exc
            if kept is None:
                kept, digest = Kept(found.split, found.labels), found.labels_hash
            elif found.labels_hash != digest or found.split != kept.split:
                raise ReportError("the runs were scored on different items: no item-wise section")
            _add(kept, run.setting, run.seed, found.predicted)
    return kept


def from_files(folder: Path) -> Kept | None:
    """The exported study's ``predictions.npz`` in ``folder``, or None when it has none."""
    from lrdecay.report.export import STUDY_PREDICTIONS_FILE, load_predictions

    if not (folder / STUDY_PREDICTIONS_FILE).is_file():
        return None
    study = load_predictions(folder)
    kept = Kept(study.split, study.labels)
    for setting, arm in study.arms.items():
        for seed, row in zip(arm.seeds, arm.predicted, strict=True):
            _add(kept, setting, seed, row)
    return kept


# --------------------------------------------------------------------------- the families


@dataclass(frozen=True)
class _Arm:
    group: str
    sequence: str
    strategy: str
    val_acc: float  # mean final validation accuracy of its runs (nan when none)


def _arms(runs: Sequence[RunRecord], kept: Kept) -> dict[str, _Arm]:
    by_setting: dict[str, list[RunRecord]] = {}
    for r in runs:
        if r.setting in kept.arms:
            by_setting.setdefault(r.setting, []).append(r)
    arms = {}
    for setting, members in by_setting.items():
        first = members[0]
        group = classify(first.optimizer, first.sequence, first.strategy, setting, first.scheduler)
        vals = [v for r in members if (v := r.metric("final_val_acc")) is not None]
        arms[setting] = _Arm(
            group[0], first.sequence, first.strategy, float(np.mean(vals)) if vals else math.nan
        )
    return arms


@dataclass(frozen=True)
class Planned:
    """A family to run, with the seeds every one of its arms ran; or why it is left out."""

    family: Family | None
    note: str


def _plan(arms: dict[str, _Arm], split: str, margin: float) -> list[Planned]:
    paper = [s for s, a in arms.items() if a.group in STRATEGY_GROUP.values()]
    modern = [s for s, a in arms.items() if a.group == MODERN_GROUP]
    out = [
        _against(
            arms,
            BASELINE_SGD,
            "vs sgd-fixed",
            "decay vs the study's baseline",
            "every arm against sgd-fixed",
            list(arms),
            margin,
        ),
        _against(
            arms,
            CONTROL_SGD_R0,
            "vs sgd-fixed-r0",
            "decay vs the same rate held fixed",
            "every decayed arm of the paper's grid against sgd-fixed-r0",
            paper,
            margin,
        ),
        _modern_family(arms, paper, modern, split, margin),
    ]
    return [p for p in out if p.family is None or p.family.pairs]


def _against(
    arms: dict[str, _Arm],
    control: str,
    name: str,
    question: str,
    which: str,
    members: list[str],
    margin: float,
) -> Planned:
    """The family of ``members`` each against ``control``, or why it is absent."""
    if control not in arms:
        return Planned(None, f"{question}: {control} did not run")
    return Planned(Family.against(name, f"{question}: {which}", members, control, margin), "")


def _modern_family(
    arms: dict[str, _Arm], paper: list[str], modern: list[str], split: str, margin: float
) -> Planned:
    """The paper's schemes against the modern arms: every pair, or, when that is too many
    and the test split scores, each modern arm against the scheme best on validation."""
    question = "paper scheme vs today's schedules and optimizers"
    if not modern:
        return Planned(None, f"{question}: no modern arm ran")
    if not paper:
        return Planned(None, f"{question}: none of the paper's schemes ran")
    pairs = tuple((p, m) for m in modern for p in paper)
    valid = {p: arms[p].val_acc for p in paper if math.isfinite(arms[p].val_acc)}
    if len(pairs) > MAX_PAIRS and split == "test" and valid:
        best = max(valid, key=lambda p: (valid[p], p))
        fam = Family(
            "modern vs best scheme",
            f"{question}: each modern arm against {best}, the paper's scheme best on "
            "validation accuracy (chosen on validation, never on test)",
            tuple((m, best) for m in modern),
            margin,
        )
    else:
        fam = Family(
            "scheme vs modern",
            f"{question}: each of the paper's schemes against each modern arm",
            pairs,
            margin,
        )
    return Planned(fam, "")


@dataclass
class Section:
    """What the section shows: the families' results, the two factors, and the notes."""

    results: list[FamilyResult]
    factors: FactorComparison | None
    notes: list[str]
    seeds: dict[str, list[str]]  # family name -> its shared seeds
    split: str
    n_items: int
    margin: float | None  # accuracy fraction as declared, or None


def analyse(
    runs: Sequence[RunRecord], kept: Kept, margin: float | None, *, n_boot: int | None = None
) -> Section:
    """Every family's differences (points) and, when all 12 paper schemes ran, the factors."""
    boot = N_BOOT if n_boot is None else n_boot
    arms = _arms(runs, kept)
    delta = POINTS * margin if margin is not None else 0.0
    results, notes, seeds_of = [], [], {}
    for planned in _plan(arms, kept.split, delta):
        fam = planned.family
        if fam is None:
            notes.append(f"Skipped ({planned.note}).")
            continue
        names = list(dict.fromkeys(a for pair in fam.pairs for a in pair))
        seeds, correct = correctness_matrices({a: kept.arms[a] for a in names}, kept.labels)
        if len(seeds) < 2:
            notes.append(
                f"Skipped {fam.name} ({fam.question}): its arms share {len(seeds)} seed(s) with "
                "kept predictions, and an interval needs at least 2."
            )
            continue
        results += compare(correct, [fam], n_boot=boot)
        seeds_of[fam.name] = seeds
    factors = None
    grid = {
        s: (a.sequence, a.strategy) for s, a in arms.items() if a.group in STRATEGY_GROUP.values()
    }
    full = len(SEQUENCES) * len(STRATEGY_GROUP)
    if len(grid) == full and len(set(grid.values())) == full:
        seeds, correct = correctness_matrices({a: kept.arms[a] for a in grid}, kept.labels)
        if len(seeds) >= 2:
            factors = factor_effects(correct, grid, margin=delta, n_boot=boot)
            seeds_of[factors.pairs.name] = seeds
        else:
            notes.append("The two factors are left out: the 12 schemes share fewer than 2 seeds.")
    elif grid:
        notes.append(
            f"The two factors (sequence, strategy) are left out: {len(grid)} of the paper's "
            f"{full} schemes ran, and their effects need the whole grid."
        )
    return Section(results, factors, notes, seeds_of, kept.split, kept.labels.size, margin)


# --------------------------------------------------------------------------- the text


def _split(split: str, n: int) -> str:
    """The scoring split in words."""
    if split == "test":
        return f"held-out test split ({n} items)"
    return f"validation split ({n} items; the test split here: no validation was held out)"


def _interval(lo: float, hi: float) -> str:
    return f"[{lo:+.2f}, {hi:+.2f}]"


def markdown(section: Section, out_dir: Path) -> list[str]:
    """The section's lines; writes the forest plot ``differences.png`` into ``out_dir``."""
    lines = ["", f"## {TITLE}", ""]
    if not section.results:
        lines.append(
            "Absent: no family of comparisons has at least 2 seeds that all its arms ran with "
            "kept predictions, so no interval over seeds can be drawn."
        )
        if section.notes:
            lines += ["", *(f"> {n}" for n in section.notes)]
        return lines
    lines += _method(section)
    lines += [f"- **{r.name}**: {r.question}." for r in section.results]
    if section.notes:
        lines += ["", *(f"> {n}" for n in section.notes)]
    lines += ["", markdown_table(section.results, section.factors).rstrip("\n"), ""]
    lines += [_difference_line(d) for r in section.results for d in r.differences]
    if section.factors is not None:
        f = section.factors
        lines += [
            "",
            f"Which factor matters more: {f.verdict} (range of {f.first.factor} − range of "
            f"{f.second.factor}: {f.estimate:+.2f} points, bounds {_interval(f.lo, f.hi)}).",
        ]
    return lines + _figure(section, out_dir)


def _method(section: Section) -> list[str]:
    """The paragraph on what is compared: split, differences, intervals, seeds, margin."""
    seeds = {", ".join(s) for s in section.seeds.values()}
    margin = (
        f"the margin δ = ±{POINTS * section.margin:g} points declared before the runs "
        "(`report.margin`)"
        if section.margin is not None
        else "no margin declared (`report.margin`): the table gives each family's smallest "
        "margin at which every comparison would be equivalent"
    )
    return [
        f"Each run's predictions on the {_split(section.split, section.n_items)} compared "
        "item by item: a difference is arm − control in accuracy points, the mean over seeds of "
        "the per-seed accuracy difference, with a 95 % interval simultaneous within its family "
        "(seeds and test items both resampled). Only seeds that every arm of a family ran are "
        f"used (seeds {'; '.join(sorted(seeds))}). Equivalence: {margin}.",
        "",
    ]


def _difference_line(d: Difference) -> str:
    """One comparison in words: its difference, interval and verdict."""
    ci = _interval(d.lo, d.hi)
    if d.decided:
        p = "<0.001" if d.p_adj < 0.001 else f"{d.p_adj:.3f}"
        return (
            f"- {d.arm} − {d.control}: {d.estimate:+.2f} points, interval {ci} "
            f"(adjusted p {p}): {d.verdict}."
        )
    return f"- {d.arm} − {d.control}: {UNDECIDED} ({d.estimate:+.2f} points, interval {ci})."


def _figure(section: Section, out_dir: Path) -> list[str]:
    """The forest plot of the families whose intervals are bounded, written into ``out_dir``,
    with its caption; a note on the unbounded ones."""
    bounded = [r for r in section.results if math.isfinite(r.smallest_margin)]
    unbounded = [r.name for r in section.results if r not in bounded]
    lines = []
    if unbounded:
        lines += [
            "",
            f"> Unbounded intervals in {', '.join(unbounded)}: with so few seeds some bootstrap "
            "replicates draw one seed only; more seeds bound them (left out of the figure).",
        ]
    if not bounded:
        return lines
    forest_plot(bounded, out_dir / FIGURE)
    return [
        *lines,
        "",
        f"![Differences in {section.split} accuracy, seeds and test items]({FIGURE})",
        "",
        f"*Each comparison's difference in {section.split} accuracy (arm − control, points; "
        "mean over shared seeds) with its 95 % simultaneous interval, one panel per family; "
        "filled dots are decided, hollow ones read 'no difference shown'; the shaded band is "
        "±δ.*",
    ]
