"""A noisy Hydra app for the sweeper's seed tests and the selection-optimism benchmark: its
value is a known true value plus noise drawn from (x, seed), as a trained model's score is.

python tests/noisy_app.py -m hydra/sweeper=lrdecay_optuna 'x=interval(-3, 3)' \
    hydra.sweeper.seeds_per_trial=3

With ``hydra.sweeper.trial_hooks=noisy_app.NoisyTrials`` the confirm stage can run (fresh seeds
after the trials', their values read back from each job's ``values.json``), and with ``epochs``
> 0 each job reports a value per epoch to its trial (through the sweeper's ``TrialReporter``),
stops when the trial is pruned, and leaves the epochs it ran in ``epochs.txt``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
import numpy as np
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from hydra_plugins.lrdecay_optuna_sweeper.pruners import PRUNER_ATTR
from hydra_plugins.lrdecay_optuna_sweeper.seeds import TrialReporter, trial_id
from hydra_plugins.lrdecay_optuna_sweeper.trial_hooks import StudyInfo, TrialHooks

if TYPE_CHECKING:
    import optuna

#: ``fail_seed``: the job with that seed raises; ``sigma``: the noise's standard deviation;
#: ``pair``: return the value and its negative (two objectives); ``trial``: set by
#: :class:`NoisyTrials`, for the jobs to report to their trial.
ConfigStore.instance().store(
    name="noisy",
    node={
        "x": 0.0,
        "seed": 0,
        "sigma": 1.0,
        "epochs": 0,
        "fail_seed": None,
        "pair": False,
        "trial": {"storage": None, "study_name": None, "number": None},
    },
)
#: Each epoch before the last lowers the value by this much (a run that is still learning).
EPOCH_GAP = 0.5
EPOCHS_FILE = "epochs.txt"
VALUES_FILE = "values.json"


def true_value(x: float) -> float:
    """What the value is on average over seeds: -(x - 1)², best at x = 1."""
    return -((x - 1.0) ** 2)


def noise(x: float, seed: int, sigma: float) -> float:
    """Normal noise, one draw per (x, seed): a seed's luck differs from one config to another."""
    (bits,) = struct.unpack("<Q", struct.pack("<d", float(x)))
    return sigma * float(np.random.default_rng([seed, bits]).standard_normal())


def value_at(x: float, seed: int, sigma: float, epoch: int, epochs: int) -> float:
    """The value a job reports at ``epoch`` of ``epochs`` (its final value at the last)."""
    return true_value(x) + noise(x, seed, sigma) - EPOCH_GAP * (epochs - epoch)


class NoisyTrials(TrialHooks):
    """The app's side of a search: its jobs learn their trial (to report to it) and its pruner;
    the confirm stage runs fresh seeds and reads the jobs' values."""

    def trial_overrides(self, info: StudyInfo, trial: optuna.Trial) -> list[str]:
        """``trial.*`` for the job; the pruner's settings on the trial, where it rebuilds it."""
        ident = trial_id(info.storage, info.study.study_name, trial.number)
        info.storage.set_trial_system_attr(ident, PRUNER_ATTR, dict(info.pruner))
        return [
            f"trial.storage='{info.storage_url}'",
            f"trial.study_name={info.study.study_name}",
            f"trial.number={trial.number}",
        ]

    def confirm_overrides(
        self, info: StudyInfo, trial: optuna.trial.FrozenTrial, seeds: int
    ) -> list[list[str]]:
        """``seeds`` seeds after the config's seed and every trial's."""
        last = max([int(self.config[info.seed_key]), *info.seeds])
        return [[f"{info.seed_key}={last + 1 + i}"] for i in range(seeds)]

    def measures(self, output_dir: Path | None) -> dict[str, float]:
        """The values the job returned, by the sweeper's names for unnamed objectives."""
        path = output_dir / VALUES_FILE if output_dir is not None else None
        if path is None or not path.is_file():
            return {}
        return {f"value{i}": float(v) for i, v in enumerate(json.loads(path.read_text()))}


@hydra.main(version_base="1.3", config_path=None, config_name="noisy")
def main(cfg: DictConfig) -> float | list[float]:
    """The value of ``x`` under ``seed``, reported epoch by epoch to a trial when there is one
    (with ``pair``: the value and its negative)."""
    if cfg.fail_seed is not None and int(cfg.fail_seed) == int(cfg.seed):
        raise RuntimeError(f"seed {cfg.seed} fails")
    x, seed, sigma, epochs = float(cfg.x), int(cfg.seed), float(cfg.sigma), int(cfg.epochs)
    ran = epochs
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    if epochs and cfg.trial.number is not None:
        reporter = TrialReporter.open(
            cfg.trial.storage, cfg.trial.study_name, int(cfg.trial.number), seed
        )
        for epoch in range(1, epochs + 1):
            if reporter.report(epoch, value_at(x, seed, sigma, epoch, epochs), epoch == epochs):
                ran = epoch
                break
        (output_dir / EPOCHS_FILE).write_text(str(ran))
    value = value_at(x, seed, sigma, ran, epochs)
    values = [value, -value] if cfg.pair else [value]
    (output_dir / VALUES_FILE).write_text(json.dumps(values))
    return values if cfg.pair else value


if __name__ == "__main__":
    main()
