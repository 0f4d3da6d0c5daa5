"""The search section of a sweep's report: an Optuna search's trials, its parameter importances
and its confirmation, read from the files the sweeper logged on the sweep's parent run.

The sweeper leaves ``optimization_results.yaml`` (objectives, directions, best trial),
``trials.csv`` (every trial), ``param_importances.csv`` (Optuna's fANOVA importances) and, after a
confirm stage, ``confirmation.csv`` (one row per confirm run) in the sweep dir and logs them as
artifacts of the parent run; the report reads them from there, so it needs neither the study's
storage nor Optuna. The confirmation's means and intervals are the report's own :class:`Stat`.
Its figures are drawn by :mod:`lrdecay.report.search_figures`.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from lrdecay.report.markdown import pipe_table
from lrdecay.report.stats import Stat

if TYPE_CHECKING:
    from lrdecay.report.figure_common import Figure

RESULTS_FILE = "optimization_results.yaml"
TRIALS_FILE = "trials.csv"
IMPORTANCES_FILE = "param_importances.csv"
#: Below this many complete trials the importances are read as a rough ranking: fANOVA fits a
#: random forest to the trials, and so few points move it with every trial added.
ROUGH_IMPORTANCES = 20
CONFIRM_FILE = "confirmation.csv"
FINISHED = ("COMPLETE", "PRUNED")
#: MLflow's switch for its artifact download progress bars.
PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


@dataclass
class ConfirmedPoint:
    """One configuration the confirm stage ran again: its trial, the search's value of the
    first objective, and the confirmation's statistics by measure."""

    trial: int
    search_value: float | None
    stats: dict[str, Stat | None]
    runs: int
    failed: int
    overrides: list[str]


@dataclass
class Search:
    """What an Optuna search left on its sweep's parent run."""

    objectives: list[str]
    directions: list[str]
    study_name: str
    trials: list[dict[str, str]]
    importances: list[tuple[str, float]] = field(default_factory=list)
    confirmation: list[dict[str, str]] = field(default_factory=list)
    held: str | None = None  # the confirmation's measure on data the search never saw

    @property
    def objective(self) -> str:
        return self.objectives[0]

    @property
    def maximize(self) -> bool:
        return self.directions[0] == "maximize"

    def values(self) -> list[tuple[int, str, float | None]]:
        """(trial, state, first objective's value) of every finished trial, by trial number."""
        out = []
        for row in self.trials:
            if row.get("state") in FINISHED:
                out.append((int(row["trial"]), row["state"], _float(row.get(self.objective))))
        return sorted(out)

    def held_out(self) -> str | None:
        """The measure of the confirmation on data the search never saw (``test_acc``), as
        the sweeper named it; None without one."""
        return self.held if self.held and self.confirmation else None

    def points(self) -> list[ConfirmedPoint]:
        """The confirmation per confirmed trial, in the order the sweeper ran them."""
        order: list[int] = []
        by_trial: dict[int, list[dict[str, str]]] = {}
        for row in self.confirmation:
            number = int(row["trial"])
            if number not in by_trial:
                order.append(number)
            by_trial.setdefault(number, []).append(row)
        held = self.held_out()
        measures = [self.objective, *([held] if held else [])]
        points = []
        for number in order:
            rows = by_trial[number]
            ok = [r for r in rows if r.get("state") == "COMPLETE"]
            points.append(
                ConfirmedPoint(
                    number,
                    _float(rows[0].get(f"search_{self.objective}")),
                    {m: Stat.of(_float(r.get(m)) for r in ok) for m in measures},
                    len(rows),
                    len(rows) - len(ok),
                    [r.get("overrides", "") for r in rows],
                )
            )
        return points

    def optimism(self, point: ConfirmedPoint) -> float | None:
        """How much better the search's value looked than the confirmation's mean of the
        held-out measure (or of the objective itself, without one): positive = optimistic."""
        ref = point.stats.get(self.held_out() or self.objective)
        if ref is None or point.search_value is None:
            return None
        gap = point.search_value - ref.mean
        return gap if self.maximize else -gap


def _float(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@contextlib.contextmanager
def _no_progress_bar() -> Iterator[None]:
    """Keep MLflow's download progress bars (four small files) off the terminal."""
    old = os.environ.get(PROGRESS_BAR_ENV)
    os.environ[PROGRESS_BAR_ENV] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(PROGRESS_BAR_ENV, None)
        else:
            os.environ[PROGRESS_BAR_ENV] = old


def load_search(client: MlflowClient, parent_run_id: str) -> Search | None:
    """The search logged on sweep ``parent_run_id``; None when that sweep was no search."""
    try:
        logged = {a.path for a in client.list_artifacts(parent_run_id)}
    except MlflowException:
        return None
    if RESULTS_FILE not in logged:
        return None
    with tempfile.TemporaryDirectory(prefix="lrdecay-search-") as tmp, _no_progress_bar():
        folder = Path(tmp)
        for name in (RESULTS_FILE, TRIALS_FILE, IMPORTANCES_FILE, CONFIRM_FILE):
            if name in logged:
                client.download_artifacts(parent_run_id, name, str(folder))
        results = yaml.safe_load((folder / RESULTS_FILE).read_text()) or {}
        confirmed = results.get("confirmation") or [{}]
        importances = [
            (row["param"], float(row["importance"])) for row in _read_csv(folder / IMPORTANCES_FILE)
        ]
        return Search(
            objectives=[str(o) for o in results.get("objectives") or ["value0"]],
            directions=[str(d) for d in results.get("directions") or ["maximize"]],
            study_name=str(results.get("study_name", "")),
            trials=_read_csv(folder / TRIALS_FILE),
            importances=sorted(importances, key=lambda p: -p[1]),
            confirmation=_read_csv(folder / CONFIRM_FILE),
            held=confirmed[0].get("held_out"),
        )


# --------------------------------------------------------------------------- markdown


def _stat(stat: Stat | None) -> str:
    if stat is None:
        return "n/a"
    if stat.half is None:
        return f"{stat.mean:.4f} (n=1)"
    return f"{stat.mean:.4f} ± {stat.half:.4f} (n={stat.n})"


def confirmation_markdown(search: Search) -> list[str]:
    """The confirmation table: per confirmed trial, the search's value, the confirmation's
    mean ± 95 % CI of the objective and of the held-out measure, and the selection optimism."""
    points = search.points()
    if not points:
        return []
    held = search.held_out()
    header = ["Trial", f"Search {search.objective} (one run)", f"Confirm {search.objective}"]
    if held:
        header.append(f"Confirm {held} (never seen by the search)")
    header += ["Selection optimism", "Runs"]
    rows = []
    for p in points:
        optimism = search.optimism(p)
        cells = [
            str(p.trial),
            f"{p.search_value:.4f}" if p.search_value is not None else "n/a",
            _stat(p.stats.get(search.objective)),
        ]
        if held:
            cells.append(_stat(p.stats.get(held)))
        cells += [
            f"{optimism:+.4f}" if optimism is not None else "n/a",
            f"{p.runs - p.failed}/{p.runs}" + (f" ({p.failed} failed)" if p.failed else ""),
        ]
        rows.append(cells)
    lines = pipe_table(header, rows, ["right"] * len(header))
    reference = held or search.objective
    lines += [
        "",
        f"Each confirmed trial's configuration ran again with fresh seeds "
        f"({'; '.join(' '.join(p.overrides) for p in points[:1])}{'…' if len(points) > 1 else ''})"
        f", as runs the study was never told of; cells are mean ± half-width of the 95% "
        f"t-interval over those seeds. Selection optimism: the search's {search.objective} "
        f"minus the confirmation's mean {reference}"
        + ("" if search.maximize else " (sign: positive when the search looked better)")
        + ": how much of the search's best value came from choosing it among many trials "
        "on one seed" + (", and on the validation split" if held else "") + ".",
        "",
    ]
    return lines


def search_markdown(search: Search, figures: Sequence[Figure], out_dir: Path) -> list[str]:
    """The report's section on the search: what it ran, its figures, its importances and its
    confirmation."""
    states = [row.get("state", "") for row in search.trials]
    counts = {s: states.count(s) for s in ("COMPLETE", "PRUNED", "FAIL")}
    arrow = "↑" if search.maximize else "↓"
    lines = [
        "## The search and its confirmation",
        "",
        f"Optuna study `{search.study_name}`: {len(states)} trials ({counts['COMPLETE']} "
        f"complete, {counts['PRUNED']} pruned, {counts['FAIL']} failed), optimising "
        f"{search.objective} {arrow}"
        + (f" (and {', '.join(search.objectives[1:])})" if len(search.objectives) > 1 else "")
        + ". Each trial is a different configuration trained once, so the trials are no seeds "
        "of a setting: they stay out of the per-setting table below, which holds the "
        "confirmation's runs.",
        "",
    ]
    for fig in figures:
        rel = fig.path.relative_to(out_dir).as_posix()
        lines += [f"![{fig.title}]({rel})", "", f"*{fig.caption}*", ""]
    if search.importances:
        rough = (
            f" With {counts['COMPLETE']} complete trials this is a rough ranking, not a "
            "measurement: close values do not order the parameters."
            if counts["COMPLETE"] < ROUGH_IMPORTANCES
            else ""
        )
        lines += [
            f"Parameter importances for {search.objective} (Optuna, fANOVA over the "
            f"complete trials).{rough}",
            "",
            *pipe_table(
                ["Parameter", "Importance"],
                [[name, f"{value:.3f}"] for name, value in search.importances],
                ["left", "right"],
            ),
            "",
        ]
    confirm = confirmation_markdown(search)
    if confirm:
        lines += ["### Confirmation", "", *confirm]
    else:
        lines += [
            "No confirmation: the search's best value is one run chosen among many, an "
            "optimistic estimate (run the confirm stage: hydra.sweeper.confirm.enabled=true).",
            "",
        ]
    return lines
