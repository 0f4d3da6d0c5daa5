"""Settings of the Optuna sweeper, registered in Hydra's ConfigStore.

``hydra/sweeper=lrdecay_optuna`` selects it (this project's ``hydra/sweeper=optuna`` extends
it with the project's hooks); ``hydra/sweeper/sampler=tpe|random|cmaes|grid|nsgaii|qmc|gp``
and ``hydra/sweeper/pruner=<name>`` (one of ``pruners.PRUNERS``: none, median,
hyperband, percentile, successive_halving) pick the sampler and pruner; every field below and
of those is overridable as ``hydra.sweeper.<field>=...``. The
surface follows Hydra's stock Optuna sweeper (which pins Optuna < 3 and is not used here), so
knowledge of one carries over to the other.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from hydra_plugins.lrdecay_optuna_sweeper.pruners import PRUNERS, PrunerSettings

PROVIDER = "lrdecay_optuna_sweeper"
#: The sweeper's option in ``hydra/sweeper``; an app may name its own option that extends it.
NAME = "lrdecay_optuna"


@dataclass
class SamplerConfig:
    """An Optuna sampler, built with ``hydra.utils.instantiate``."""

    _target_: str = MISSING


@dataclass
class TPESamplerConfig(SamplerConfig):
    """Tree-structured Parzen estimator; handles several objectives too. ``constant_liar``
    keeps parallel trials from all sampling the same region.

    ``multivariate`` null is Optuna's choice (Optuna 5: multivariate TPE for one objective,
    independent for several). A conditional parameter (``conditions``) is absent from some
    trials, so multivariate TPE leaves it out of its joint model and samples it independently
    from the trials that have it: it works, warning-free, with these defaults. ``group: true``
    (needs ``multivariate`` true or null) models each set of parameters that occur together
    jointly instead, at the price of Optuna's ExperimentalWarning.
    """

    _target_: str = "optuna.samplers.TPESampler"
    seed: int | None = None
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    multivariate: bool | None = None
    group: bool = False
    constant_liar: bool = True


@dataclass
class RandomSamplerConfig(SamplerConfig):
    """Independent uniform sampling."""

    _target_: str = "optuna.samplers.RandomSampler"
    seed: int | None = None


@dataclass
class CmaEsSamplerConfig(SamplerConfig):
    """CMA-ES for continuous parameters (categorical ones are sampled at random)."""

    _target_: str = "optuna.samplers.CmaEsSampler"
    seed: int | None = None
    sigma0: float | None = None
    n_startup_trials: int = 1
    restart_strategy: str | None = None
    use_separable_cma: bool = False
    with_margin: bool = False
    consider_pruned_trials: bool = False
    warn_independent_sampling: bool = True


@dataclass
class GridSamplerConfig(SamplerConfig):
    """Every point of a discrete search space once; the grid is built from ``params``
    (``choice``, ``range``, or ``interval`` with ints), and ``n_trials`` is capped at its size."""

    _target_: str = "optuna.samplers.GridSampler"
    _partial_: bool = True
    seed: int | None = None


@dataclass
class NSGAIISamplerConfig(SamplerConfig):
    """The genetic multi-objective sampler NSGA-II."""

    _target_: str = "optuna.samplers.NSGAIISampler"
    seed: int | None = None
    population_size: int = 50
    mutation_prob: float | None = None
    crossover_prob: float = 0.9
    swapping_prob: float = 0.5


@dataclass
class QMCSamplerConfig(SamplerConfig):
    """Quasi-Monte Carlo (Sobol or Halton) points: an even cover of the space."""

    _target_: str = "optuna.samplers.QMCSampler"
    seed: int | None = None
    qmc_type: str = "sobol"
    scramble: bool = False
    warn_asynchronous_seeding: bool = False
    warn_independent_sampling: bool = True


@dataclass
class GPSamplerConfig(SamplerConfig):
    """Gaussian-process Bayesian optimisation (needs torch and scipy, both installed)."""

    _target_: str = "optuna.samplers.GPSampler"
    seed: int | None = None
    n_startup_trials: int = 10
    deterministic_objective: bool = False


@dataclass
class ConfirmConf:
    """The confirm stage after a search (``hydra.sweeper.confirm.*``): the best trial (each of
    the first ``max_points`` points of a Pareto front, best by the first objective) runs again
    with ``seeds`` fresh seeds, as plain jobs that the study is never told of; the summary
    gives their mean ± 95 % CI next to the search's value. Off here, on in ``experiment=tune``."""

    enabled: bool = False
    seeds: int = 5
    max_points: int = 3


@dataclass
class OptunaSweeperConf:
    """``hydra/sweeper=lrdecay_optuna``.

    ``n_trials`` counts the study's finished (complete or pruned) trials, so re-running a
    command resumes it and a larger ``n_trials`` extends it. ``storage`` null with a
    ``study_name`` means ``sqlite:///<launch dir>/optuna.db``; with neither, the study lives in
    ``<sweep dir>/optuna.db`` under the hooks' ``default_study_name`` (``search``; this
    project's: ``<experiment or 'search'>-<dataset>``).
    ``direction`` null takes each objective's natural direction, as the hooks name it
    (``TrialHooks.objective_directions``; unnamed: minimise one value, maximise named ones).
    ``seeds_per_trial`` > 1 scores each trial over that many seeds (``seeds.py``).
    """

    _target_: str = "hydra_plugins.lrdecay_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "none"}])
    sampler: SamplerConfig = MISSING
    pruner: PrunerSettings = MISSING
    # maximize | minimize, or one per objective; null: from the objective names
    direction: Any = None
    # an Optuna RDB URL (sqlite:///..., postgresql://...); see the class docstring for null
    storage: str | None = None
    study_name: str | None = None
    # finished (complete + pruned) trials the study should have when the sweep ends
    n_trials: int = 20
    # trials running at once, launched as one batch that waits for its slowest trial; the
    # joblib launcher's pool is sized to match
    n_jobs: int = 2
    # stop once this many trials of this sweep failed (a crash, a NaN objective, a divergence),
    # and exit non-zero with the first job error
    max_failures: int = 5
    # the search space in Hydra's sweep syntax, e.g. {optimizer.lr: tag(log, interval(1e-4, 0.1))}
    params: dict[str, Any] | None = None
    # when a searched parameter is sampled: {param: "parent=value"} or "parent=v1,v2" (the
    # parent searched and discrete); in other trials it is absent and its job keeps the
    # config's value, e.g. {strategy.rate: "strategy=cutoff"}. Parents are sampled first.
    conditions: dict[str, str] | None = field(default_factory=dict)
    # dotted path of fn(cfg: DictConfig, trial: optuna.Trial) -> None that suggests more params
    # (define-by-run: it may branch on what it suggested, e.g. suggest a rate for one option only)
    custom_search_space: str | None = None
    # dotted path of the application's TrialHooks subclass (trial_hooks.py: its trials'
    # overrides, its jobs' outcomes, its run records), named in the application's own config;
    # null: a plain app whose task returns the value(s)
    trial_hooks: str | None = None
    # re-run the winner with fresh seeds once the search ended (see ConfirmConf)
    confirm: ConfirmConf = field(default_factory=ConfirmConf)
    # jobs per trial, one per seed: the config's seed (at seed_key) and the ones after it, the
    # same for every trial; they run side by side (the joblib pool holds n_jobs x this), and a
    # failed seed fails the trial. The study is told their mean (trial_score=mean) or the
    # pessimistic end of its 95 % t-interval (lcb: mean - t*sd/sqrt(K) when maximising)
    seeds_per_trial: int = 1
    trial_score: str = "mean"
    # the config key that seeds a job: the trials' seeds above, the confirm stage's fresh ones
    seed_key: str = "seed"


def register() -> None:
    """Register the sweeper and its sampler and pruner options (Hydra imports this module
    when it scans the ``hydra_plugins`` namespace)."""
    cs = ConfigStore.instance()
    cs.store(group="hydra/sweeper", name=NAME, node=OptunaSweeperConf, provider=PROVIDER)
    samplers = {
        "tpe": TPESamplerConfig,
        "random": RandomSamplerConfig,
        "cmaes": CmaEsSamplerConfig,
        "grid": GridSamplerConfig,
        "nsgaii": NSGAIISamplerConfig,
        "qmc": QMCSamplerConfig,
        "gp": GPSamplerConfig,
    }
    for name, node in samplers.items():
        cs.store(group="hydra/sweeper/sampler", name=name, node=node, provider=PROVIDER)
    for name, node in PRUNERS.items():
        cs.store(group="hydra/sweeper/pruner", name=name, node=node, provider=PROVIDER)


register()
