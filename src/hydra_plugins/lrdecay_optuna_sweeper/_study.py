"""The study a search runs: its storage URL, sampler, opening and checks, and recovery."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from ._jobs import tell
from ._shared import TAKEN, orphaned, settle
from ._space import Condition, SweepError, grid_values, sqlite_absolute
from .pruners import make_pruner
from .redact import redact_uri
from .seeds import ONE_RUN, SCORING_ATTR, Scoring
from .storage import open_study

log = logging.getLogger("lrdecay.optuna")

_NOT_SET = object()


def storage_url(storage: str | None, named: bool, base_dir: Path, sweep_dir: Path) -> str:
    """``storage`` (a relative SQLite file made absolute); null: ``optuna.db`` in the launch
    directory for a ``named`` study, in the sweep dir otherwise."""
    if storage:
        return sqlite_absolute(storage, base_dir)
    if named:
        return f"sqlite:///{(base_dir / 'optuna.db').resolve()}"
    sweep_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(sweep_dir / 'optuna.db').resolve()}"


def make_sampler(
    sampler: Any, config: DictConfig, grid: dict[str, list[Any]] | None, offset: int
) -> optuna.samplers.BaseSampler:
    """The configured sampler. A seeded one resuming a study that has ``offset`` trials
    is seeded ``seed + offset``: reproducible, yet not the same draws as the first run."""
    node = OmegaConf.select(config, "hydra.sweeper.sampler")
    if isinstance(node, DictConfig) and "_target_" in node:
        seed = node.get("seed")
        extra = {"seed": seed + offset} if offset and seed is not None else {}
        sampler = instantiate(node, **extra)
    if isinstance(sampler, functools.partial):
        sampler = sampler(grid or {})
    return sampler


def grid_of(
    sampler: Any,
    space: Mapping[str, BaseDistribution],
    conditions: Mapping[str, Condition],
    n_trials: int,
) -> tuple[dict[str, list[Any]] | None, int]:
    """The grid sampler's points (None for any other sampler) and ``n_trials`` capped at
    their number."""
    if not isinstance(sampler, functools.partial):  # the grid sampler, built from params
        return None, n_trials
    if conditions:
        raise SweepError(
            "hydra.sweeper.conditions: the grid sampler gives every trial a value of "
            f"every parameter, so {', '.join(conditions)} cannot be conditional; "
            "use another sampler (random, tpe, ...) or hydra.sweeper.conditions=null"
        )
    grid = {name: grid_values(name, dist) for name, dist in space.items()}
    size = math.prod(len(v) for v in grid.values())
    if n_trials > size:
        log.info("the grid has %d points: n_trials %d -> %d", size, n_trials, size)
    return grid, min(n_trials, size)


def open_checked(
    url: str,
    name: str,
    pruner: Mapping[str, Any],
    directions: list[str],
    objectives: list[str] | None,
    scoring: Scoring = ONE_RUN,
) -> tuple[BaseStorage, optuna.Study]:
    """Create or load the study, checked to optimise these objectives in these directions,
    its trials scored as ``scoring`` says (a study's trials must be comparable)."""
    try:
        storage, study = open_study(
            url,
            sampler=optuna.samplers.RandomSampler(),
            pruner=make_pruner(pruner),
            study_name=name,
            directions=directions,
        )
    except Exception as exc:
        raise SweepError(
            f"cannot open study '{name}' at {redact_uri(url)}: "
            f"{str(exc).splitlines()[0]}. Fix: hydra.sweeper.storage"
        ) from exc
    have = [d.name.lower() for d in study.directions]
    recorded = study.user_attrs.get("objectives")
    if have != directions or (objectives and recorded and recorded != objectives):
        raise SweepError(
            f"study '{name}' at {redact_uri(url)} optimises "
            f"{recorded or '?'} ({', '.join(have)}); this search asks for {objectives} "
            f"({', '.join(directions)}). Fix: another hydra.sweeper.study_name"
        )
    if objectives and not recorded:
        study.set_user_attr("objectives", objectives)
    _check_scoring(study, url, scoring)
    return storage, study


def _check_scoring(study: optuna.Study, url: str, scoring: Scoring) -> None:
    """Refuse to add trials scored otherwise than the study's earlier ones (finished or running;
    one run each unless recorded); record a new study's scoring when it is not one run each."""
    recorded = Scoring.of_study(study.user_attrs)
    if recorded != scoring and study.get_trials(deepcopy=False, states=TAKEN):

        def said(s: Scoring) -> str:
            return f"seeds_per_trial={s.seeds} trial_score={s.score} ({s.describe()})"

        raise SweepError(
            f"study '{study.study_name}' at {redact_uri(url)} scores its trials with "
            f"{said(recorded)}; this search asks for {said(scoring)}, and its trials would not "
            "compare with the study's. Fix: the study's settings, or another "
            "hydra.sweeper.study_name"
        )
    if recorded != scoring:
        study.set_user_attr(SCORING_ATTR, {"seeds": scoring.seeds, "score": scoring.score})


def recover(study: optuna.Study) -> None:
    """Trials a killed sweep left RUNNING: mark them failed and queue their parameters
    to run again first. (Trials that another live launcher runs are left alone.)"""
    settle(study)
    stale = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if orphaned(t)
    ]
    for frozen in stale:
        tell(study, frozen.number, TrialState.FAIL)
        if frozen.params:
            study.enqueue_trial(dict(frozen.params), user_attrs={"retry_of": frozen.number})
    if stale:
        log.warning(
            "%d trial(s) left running by an interrupted sweep (%s) were marked "
            "failed; their parameters run again first",
            len(stale),
            ", ".join(str(t.number) for t in stale),
        )


def may_ask(study: optuna.Study, grid: Mapping[str, Sequence[Any]] | None) -> bool:
    """False once every grid point has been taken (by a finished, failed or running trial):
    the grid sampler would only repeat one. Queued retries are always asked for."""
    if grid is None:
        return True
    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.WAITING for t in trials):
        return True
    taken = {
        tuple(t.params[name] for name in grid)
        for t in trials
        if all(t.params.get(name, _NOT_SET) in values for name, values in grid.items())
    }
    return len(taken) < math.prod(len(v) for v in grid.values())
