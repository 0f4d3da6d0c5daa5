"""The search's result files and printed summary: the study's counts, the best trial or the
Pareto front, every trial, Optuna's parameter importances and the confirmation."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from omegaconf import OmegaConf
from optuna.trial import TrialState

from ._confirm import Point
from ._jobs import RUN_ID_ATTR, RUN_IDS_ATTR
from ._shared import LAUNCHER_ATTR
from ._space import format_value
from .files import CONFIRM_FILE, CONFIRMATION_FILE, IMPORTANCES_FILE, RESULTS_FILE, TRIALS_FILE
from .redact import redact_uri
from .seeds import ONE_RUN, SEED_VALUES_ATTR, SEEDS_ATTR, Scoring
from .stats import Stat
from .trial_hooks import TrialHooks

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("lrdecay.optuna")

#: How the report marks an objective's direction.
ARROWS = {"maximize": "↑", "minimize": "↓"}


def write_results(
    study: optuna.Study,
    sweep_dir: Path,
    hooks: TrialHooks,
    names: list[str],
    directions: list[str],
    rerun: str,
    url: str,
    head: str,
    points: Sequence[Point] = (),
    warning: str | None = None,
    scoring: Scoring = ONE_RUN,
) -> None:
    """Write ``optimization_results.yaml``, ``trials.csv``, ``param_importances.csv`` and
    (after a confirm stage) ``confirmation.csv``; print ``head``, the best trial or the Pareto
    front, the top trials and the confirmation (``scoring``: what a trial's value is)."""
    results, lines = summary(study, names, directions, rerun, url)
    lines.insert(0, head)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    files = []
    confirm_lines: list[str] = []
    if points:
        confirm_lines, results["confirmation"], metrics = confirmation(
            points, names, directions, hooks.held_out(names[0]), scoring
        )
        confirm_path = sweep_dir / CONFIRM_FILE
        confirmation_table(points, names).to_csv(confirm_path, index=False)
        files.append(confirm_path)
        (sweep_dir / CONFIRMATION_FILE).write_text("\n".join(confirm_lines[1:]) + "\n")
        hooks.confirmation_finished(metrics)
    path = sweep_dir / RESULTS_FILE
    OmegaConf.save(OmegaConf.create(results), path)
    table = trials_table(study, names, directions)
    table_path = sweep_dir / TRIALS_FILE
    table.to_csv(table_path, index=False)
    importances = param_importances(study, names[0])
    if importances is not None:
        importances_path = sweep_dir / IMPORTANCES_FILE
        importances.to_csv(importances_path, index=False)
        files.append(importances_path)
    lines += _top_trials(table, names[0], directions[0], table_path)
    lines += confirm_lines
    if warning:
        lines += ["", f"WARNING: {warning}", ""]
    lines.append(f"Results: {path}")
    print("\n".join(["", *lines]), flush=True)
    hooks.study_finished([path, table_path, *files], results.get("best_value"))


def summary(
    study: optuna.Study, names: list[str], directions: list[str], rerun: str, url: str
) -> tuple[dict[str, Any], list[str]]:
    """The results file's fields (the study's counts, its best trial or Pareto front) and the
    report's lines on the best."""
    trials = study.get_trials(deepcopy=False)
    counts = {s: sum(t.state == s for t in trials) for s in TrialState}
    results: dict[str, Any] = {
        "name": "optuna",
        "study_name": study.study_name,
        "storage": redact_uri(url),
        "objectives": names,
        "directions": directions,
        "n_complete": counts[TrialState.COMPLETE],
        "n_pruned": counts[TrialState.PRUNED],
        "n_failed": counts[TrialState.FAIL],
    }
    if len(directions) > 1:
        best, lines = _pareto_front(study, names, directions)
    elif results["n_complete"]:
        best, lines = _best_trial(study, names[0], directions[0], rerun)
    else:
        best, lines = {}, ["No complete trial yet: no best parameters."]
    results.update(best)
    return results, lines


def study_head(study: optuna.Study, url: str, ran: int, seconds: float) -> str:
    """The report's first line: the study, where it lives, its trial counts."""
    trials = study.get_trials(deepcopy=False)
    counts = {s: sum(t.state == s for t in trials) for s in TrialState}
    return (
        f"Study '{study.study_name}' at {redact_uri(url)}: "
        f"{counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]} finished trials "
        f"({counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} pruned), "
        f"{counts[TrialState.FAIL]} failed; {ran} run by this sweep in {seconds:.0f} s"
    )


def confirmation(
    points: Sequence[Point],
    names: Sequence[str],
    directions: Sequence[str],
    held: str | None,
    scoring: Scoring = ONE_RUN,
) -> tuple[list[str], list[dict[str, Any]], dict[str, float]]:
    """The confirm stage's summary: the lines printed, the entries of the results file, and
    the winner's numbers by name (logged on the parent run). The selection optimism is how
    much better the search's value of the first objective looked than the confirmation's mean
    of its ``held``-out measure (or, with none, of the objective itself)."""
    measured = [*names, *([held] if held and held not in names else [])]
    reference = held or names[0]
    sign = 1.0 if directions[0] == "maximize" else -1.0
    lines, entries, metrics = ["", "Confirmation (runs the study was not told of):"], [], {}
    for index, point in enumerate(points):
        stats = {name: point.stat(name) for name in measured}
        ref = stats[reference]
        optimism = sign * (point.trial.values[0] - ref.mean) if ref is not None else None
        lines += _confirmation_lines(point, names, stats, held, optimism, sign, scoring)
        entries.append(_confirmation_entry(point, names, stats, held, optimism))
        if index == 0:  # the winner's numbers, for the parent run
            metrics = _winner_metrics(point, names[0], stats, optimism)
    return lines, entries, metrics


def _confirmation_lines(
    point: Point,
    names: Sequence[str],
    stats: dict[str, Stat | None],
    held: str | None,
    optimism: float | None,
    sign: float,
    scoring: Scoring,
) -> list[str]:
    """The printed lines of one confirmed point: its runs, the search's values, the
    confirmation's statistics and the selection optimism."""
    trial = point.trial
    seeds = " ".join(" ".join(r.overrides) for r in point.runs)
    ok = len(point.runs) - point.failed
    lines = [
        f"  trial {trial.number}'s configuration with {len(point.runs)} fresh seed(s) "
        f"({seeds}): {ok} finished" + (f", {point.failed} failed" if point.failed else "")
    ]
    for name, value in zip(names, trial.values, strict=True):
        lines.append(
            f"    search   {name:<18} {value:.4f}  (trial {trial.number}, {scoring.describe()})"
        )
    for name, stat in stats.items():
        where = "  <- data the search never saw" if name == held else ""
        lines.append(f"    confirm  {name:<18} {format_stat(stat)}{where}")
    if optimism is not None:
        lines.append(
            f"    selection optimism {optimism:+.4f}  (search {names[0]} "
            f"{'−' if sign > 0 else 'vs'} confirmation {held or names[0]} mean"
            f"{'' if sign > 0 else ', sign: better in the search'})"
        )
    return lines


def _confirmation_entry(
    point: Point,
    names: Sequence[str],
    stats: dict[str, Stat | None],
    held: str | None,
    optimism: float | None,
) -> dict[str, Any]:
    """The results file's entry for one confirmed point."""
    trial = point.trial
    return {
        "trial": trial.number,
        "params": dict(trial.params),
        "runs": len(point.runs),
        "failed": point.failed,
        "jobs": [" ".join(r.overrides) for r in point.runs],
        "search": dict(zip(names, trial.values, strict=True)),
        "confirm": {
            name: ({"mean": st.mean, "ci95": st.half, "n": st.n} if st is not None else None)
            for name, st in stats.items()
        },
        "held_out": held,
        "selection_optimism": optimism,
    }


def _winner_metrics(
    point: Point, first: str, stats: dict[str, Stat | None], optimism: float | None
) -> dict[str, float]:
    """The winner's numbers by name: the search's value, each measure's mean and CI, the
    selection optimism and how many confirm runs ended well."""
    metrics = {f"search_{first}": float(point.trial.values[0])}
    for name, st in stats.items():
        if st is not None:
            metrics[f"confirm_{name}_mean"] = st.mean
            if st.half is not None:
                metrics[f"confirm_{name}_ci95"] = st.half
    if optimism is not None:
        metrics["selection_optimism"] = optimism
    metrics["confirm_runs"] = float(len(point.runs) - point.failed)
    return metrics


def format_stat(stat: Stat | None) -> str:
    """``0.9650 ± 0.0080 (mean ± 95 % CI, n=5)``; one run: its value; none: ``n/a``."""
    if stat is None:
        return "n/a (no run finished)"
    if stat.half is None:
        return f"{stat.mean:.4f} (one run: no interval)"
    return f"{stat.mean:.4f} ± {stat.half:.4f}  (mean ± 95 % CI, n={stat.n})"


def confirmation_table(points: Sequence[Point], names: Sequence[str]) -> pd.DataFrame:
    """One row per confirm job: the trial it confirms, its overrides, state, the search's
    value of each objective for that trial, the job's measures and its MLflow run id."""
    import pandas as pd

    rows = []
    for point in points:
        for run in point.runs:
            row: dict[str, Any] = {
                "trial": point.trial.number,
                "overrides": " ".join(run.overrides),
                "state": run.state.name,
            }
            row.update({f"search_{n}": v for n, v in zip(names, point.trial.values, strict=True)})
            row.update(run.measures)
            row["mlflow_run_id"] = run.run_id or ""
            rows.append(row)
    return pd.DataFrame(rows)


def _best_trial(
    study: optuna.Study, name: str, direction: str, rerun: str
) -> tuple[dict[str, Any], list[str]]:
    """A single-objective study's best trial (it has a complete one): the results file's fields
    and the report's lines, with the command that runs it alone (``rerun``: the sweep's fixed
    overrides)."""
    best = study.best_trial
    params = " ".join(f"{k}={format_value(v)}" for k, v in best.params.items())
    fields = {"best_trial": best.number, "best_value": best.value, "best_params": dict(best.params)}
    return fields, [
        f"Best trial {best.number}: {name} {ARROWS[direction]} = {best.value:.4f}",
        f"Best parameters: {params}",
        f"Run it alone: python train.py {rerun} {params}".rstrip(),
    ]


def _pareto_front(
    study: optuna.Study, names: list[str], directions: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """A multi-objective study's Pareto front: the results file's ``solutions`` and the
    report's lines, one trial each."""
    front = sorted(study.best_trials, key=lambda t: t.values)
    solutions = [
        {"number": t.number, "params": dict(t.params), "values": list(t.values)} for t in front
    ]
    header = ", ".join(f"{n} {ARROWS[d]}" for n, d in zip(names, directions, strict=True))
    lines = [f"Pareto front: {len(front)} trial(s) ({header})"]
    for t in front:
        shown = "  ".join(f"{n} {v:.4g}" for n, v in zip(names, t.values, strict=True))
        params = " ".join(f"{k}={format_value(v)}" for k, v in t.params.items())
        lines.append(f"  trial {t.number}: {shown}  {params}")
    return {"solutions": solutions}, lines


def _top_trials(table: pd.DataFrame, name: str, direction: str, table_path: Path) -> list[str]:
    """The report's lines for the five best finished trials of ``table`` (none: no lines)."""
    top = table[table["state"].isin(["COMPLETE", "PRUNED"])].head(5) if len(table) else table
    if not len(top):
        return []
    hidden = (RUN_ID_ATTR, RUN_IDS_ATTR, "retry_of", SEEDS_ATTR, SEED_VALUES_ATTR)
    shown = top.drop(columns=[c for c in hidden if c in top])
    text = shown.to_string(index=False, float_format=lambda v: f"{v:.4g}")
    return [
        "",
        f"Top trials by {name} {ARROWS[direction]} (every trial in {table_path}):",
        *("  " + line.rstrip() for line in text.splitlines()),
        "",
    ]


def param_importances(study: optuna.Study, objective: str) -> pd.DataFrame | None:
    """Optuna's parameter importances (fANOVA, seeded) for the first objective over the
    complete trials: columns param, importance, objective; None when they cannot be computed
    (fewer than two complete trials, nothing varied)."""
    import pandas as pd

    multi = len(study.directions) > 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = optuna.importance.get_param_importances(
                study,
                evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
                target=(lambda t: t.values[0]) if multi else None,
            )
    except Exception as exc:  # too few trials, or a space Optuna cannot weigh
        log.info("no parameter importances: %s", str(exc).splitlines()[0] if str(exc) else exc)
        return None
    if not found:
        return None
    return pd.DataFrame(
        {"param": list(found), "importance": list(found.values()), "objective": objective}
    )


def trials_table(
    study: optuna.Study, names: Sequence[str], directions: Sequence[str]
) -> pd.DataFrame:
    """Every trial of ``study`` (``Study.trials_dataframe``) with columns trial, state, the
    objectives by name, the parameters and user attributes (the MLflow run id last); best
    first by the first objective: the complete trials, then the pruned (by their last reported
    value), then the rest."""
    frame = study.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs"))
    # which launcher ran a trial is the sweeper's bookkeeping, not a result
    frame = frame.drop(columns=[f"user_attrs_{LAUNCHER_ATTR}"], errors="ignore")
    if frame.empty:
        return frame.reindex(columns=["trial", "state", *names])
    values = ["value"] if len(names) == 1 else [f"values_{i}" for i in range(len(names))]
    renamed = {"number": "trial", **dict(zip(values, names, strict=True))}
    for column in frame.columns:
        for prefix in ("params_", "user_attrs_"):
            if column.startswith(prefix):
                renamed[column] = column[len(prefix) :]
    frame = frame.rename(columns=renamed)
    sign = -1.0 if directions[0] == "maximize" else 1.0
    frame = frame.assign(
        _rank=frame["state"].map({"COMPLETE": 0, "PRUNED": 1}).fillna(2),
        _key=(sign * frame[names[0]]).fillna(math.inf) if names[0] in frame else math.inf,
    )
    frame = frame.sort_values(["_rank", "_key", "trial"]).drop(columns=["_rank", "_key"])
    last = [c for c in frame.columns if c in (RUN_ID_ATTR, RUN_IDS_ATTR)]
    order = ["trial", "state", *[n for n in names if n in frame]]
    rest = [c for c in frame.columns if c not in order and c not in last]
    return frame[[*order, *rest, *last]].reset_index(drop=True)
