"""Trials scored over several seeds (``hydra.sweeper.seeds_per_trial``), and how their jobs
report to the trial.

With K > 1, each trial's configuration runs as K jobs: the config's own seed (the key
``hydra.sweeper.seed_key``) and the K - 1 after it, the same seeds for every trial, so that
trials are compared on common seeds (a paired design). The study is told the seeds' mean, or
with ``trial_score=lcb`` the pessimistic end of its 95 % t-interval (:class:`~.stats.Stat`).

A job reports its per-epoch values through :class:`TrialReporter`. One of K seeds, it records
each value under its seed; the trial's value at an epoch is the mean over the seeds that reached
it, and a prune decision of one seed flags the trial, which stops every seed at its next epoch.

(Hydra's plugin scan imports this module: no Optuna at import, and no dataclasses.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from .pruners import PRUNER_ATTR, make_pruner
from .stats import Stat
from .storage import open_storage

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage

#: ``hydra.sweeper.trial_score``: the seeds' mean, or its pessimistic 95 % bound.
SCORES = ("mean", "lcb")
#: Trial user attribute: the seeds of the trial's jobs, in job order (K > 1 only); the jobs'
#: :class:`TrialReporter` reads it to know they are one seed of several.
SEEDS_ATTR = "seeds"
#: Trial user attribute: each seed's value (a list per seed with several objectives).
SEED_VALUES_ATTR = "seed_values"
#: Study user attribute: how its trials are scored, when not one run each (a resumed search
#: must score its trials as the study's earlier ones were).
SCORING_ATTR = "lrdecay.scoring"
#: Trial system attribute: the step at which a job's pruner stopped the trial.
PRUNED_ATTR = "lrdecay:pruned_at"
#: Trial system attributes ``<prefix><seed>:<step>``: one seed's value at one step.
VALUE_PREFIX = "lrdecay:seed_value:"


class Scoring(NamedTuple):
    """How a trial's value comes from its jobs: ``seeds`` runs, scored by ``score``."""

    seeds: int = 1
    score: str = "mean"

    @classmethod
    def of_study(cls, attrs: Mapping[str, Any]) -> Scoring:
        """The scoring a study's user ``attrs`` record (none recorded: one run per trial)."""
        recorded = attrs.get(SCORING_ATTR) or {}
        return cls(int(recorded.get("seeds", 1)), str(recorded.get("score", "mean")))

    def problem(self) -> str | None:
        """Why these settings cannot score a trial, naming the fix; None when they can."""
        if self.seeds < 1:
            return "hydra.sweeper.seeds_per_trial must be >= 1"
        if self.score not in SCORES:
            return f"hydra.sweeper.trial_score: '{self.score}' is not one of {', '.join(SCORES)}"
        if self.score == "lcb" and self.seeds < 2:
            return (
                "hydra.sweeper.trial_score=lcb needs seeds_per_trial >= 2 (one seed has no "
                "interval); use trial_score=mean or more seeds"
            )
        return None

    def describe(self) -> str:
        """What a trial's value is, in words: ``one run``, ``mean of 3 seeds``..."""
        if self.seeds == 1:
            return "one run"
        if self.score == "mean":
            return f"mean of {self.seeds} seeds"
        return f"pessimistic 95 % bound over {self.seeds} seeds"

    def seeds_from(self, base: int) -> list[int]:
        """Every trial's seeds: ``base`` and the ``seeds - 1`` after it; none with one seed
        (its job keeps the config's seed, untouched)."""
        return [base + i for i in range(self.seeds)] if self.seeds > 1 else []

    def value(self, values: Sequence[float], maximize: bool) -> float:
        """The trial's value of one objective from its seeds' ``values``: their mean, or with
        ``lcb`` the end of its 95 % t-interval on the worse side (lower when maximising)."""
        stat = Stat.of(values)
        if stat is None:
            raise ValueError("no finite value to score")
        bound = stat.bound(maximize) if self.score == "lcb" else None
        return stat.mean if bound is None else bound


#: The scoring of a search without ``seeds_per_trial``: one run per trial, its value as is.
ONE_RUN = Scoring()


def trial_id(storage: BaseStorage, study_name: str, number: int) -> int:
    """The storage's id of trial ``number`` of study ``study_name``."""
    study_id = storage.get_study_id_from_name(study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


def step_means(attrs: Mapping[str, Any]) -> dict[int, float]:
    """The mean over the seeds that reached each step, from a trial's system ``attrs``."""
    by_step: dict[int, list[float]] = {}
    for key, value in attrs.items():
        if key.startswith(VALUE_PREFIX):
            step = int(key.rsplit(":", 1)[1])
            by_step.setdefault(step, []).append(float(value))
    means = {step: Stat.of(values) for step, values in sorted(by_step.items())}
    return {step: stat.mean for step, stat in means.items() if stat is not None}


def pruned_at(attrs: Mapping[str, Any]) -> int | None:
    """The step at which a job pruned the trial whose system ``attrs`` these are, or None."""
    step = attrs.get(PRUNED_ATTR)
    return None if step is None else int(step)


def settle_means(storage: BaseStorage, trial: int) -> None:
    """Write trial ``trial``'s (an id) value at each step as the mean over all its seeds that
    reached it: two seeds' writes may have crossed. The sweeper calls it before telling."""
    for step, mean in step_means(storage.get_trial_system_attrs(trial)).items():
        storage.set_trial_intermediate_value(trial, step, mean)


class TrialReporter:
    """A job's side of its trial: reports a value per step (epoch) and says when to stop.

    Alone on its trial, the job reports as Optuna's ``Trial.report``; one of the trial's seeds
    (``seed`` among the trial's :data:`SEEDS_ATTR`), it records its value under its seed and
    reports the mean over the seeds that reached the step. Either way a prune decision flags
    the trial (:data:`PRUNED_ATTR`), which the sweeper and the trial's other seeds read.
    """

    def __init__(
        self, storage: BaseStorage, study: optuna.Study, trial: int, seed: int | None = None
    ) -> None:
        """``trial``: the trial's storage id; ``seed``: this job's seed (needed when the trial
        runs several)."""
        import optuna

        self.storage, self.study, self.trial_id = storage, study, trial
        self.trial = optuna.Trial(study, trial)
        seeds = storage.get_trial_user_attrs(trial).get(SEEDS_ATTR) or []
        if seeds and seed not in seeds:
            raise ValueError(f"trial {self.trial.number} runs seeds {seeds}, not seed {seed}")
        self.seed = seed if seeds else None

    @classmethod
    def open(cls, url: str, study_name: str, number: int, seed: int | None = None) -> TrialReporter:
        """The reporter of trial ``number`` of ``study_name`` at ``url``, its pruner rebuilt from
        the settings the trial holds (:data:`~.pruners.PRUNER_ATTR`; none: no pruning)."""
        import optuna

        storage = open_storage(url, create_tables=False)
        trial = trial_id(storage, study_name, number)
        spec = storage.get_trial_system_attrs(trial).get(PRUNER_ATTR) or "none"
        study = optuna.load_study(
            study_name=study_name,
            storage=storage,
            pruner=make_pruner(spec),
            sampler=optuna.samplers.RandomSampler(),
        )
        return cls(storage, study, trial, seed)

    def pruned(self) -> bool:
        """Whether a job of this trial (another seed, or this one) pruned it."""
        return pruned_at(self.storage.get_trial_system_attrs(self.trial_id)) is not None

    def report(self, step: int, value: float, last: bool = False) -> bool:
        """Report ``value`` at ``step``; True when the trial is pruned and the job should stop.
        The ``last`` step is reported but never pruned (nothing is left to save)."""
        if self.seed is None:
            self.trial.report(value, step)
            prune = not last and bool(self.trial.should_prune())
        else:
            if self.pruned():
                return True
            key = f"{VALUE_PREFIX}{self.seed}:{step}"
            self.storage.set_trial_system_attr(self.trial_id, key, float(value))
            means = step_means(self.storage.get_trial_system_attrs(self.trial_id))
            self.storage.set_trial_intermediate_value(self.trial_id, step, means[step])
            frozen = self.storage.get_trial(self.trial_id)
            prune = not last and bool(self.study.pruner.prune(self.study, frozen))
        if prune:
            self.storage.set_trial_system_attr(self.trial_id, PRUNED_ATTR, step)
        return prune
