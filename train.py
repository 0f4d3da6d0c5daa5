"""Train one run (or, with -m, a sweep of runs) composed by Hydra from ``conf/``.

    python train.py dataset=digits sequence=seq3 strategy=epoch
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from lrdecay.config import register_configs
from lrdecay.errors import LrdecayError
from lrdecay.run import RunContext, run

log = logging.getLogger("lrdecay")
register_configs()


def hydra_context() -> RunContext:
    """What Hydra knows about this job: launch folder, output folder, job number, overrides."""
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    return RunContext(base_dir=Path(hc.runtime.cwd), output_dir=Path(hc.runtime.output_dir),
                      job_num=hc.job.num if multirun else None,
                      sweep_dir=hc.sweep.dir if multirun else None,
                      overrides=list(hc.overrides.task))


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Run one job and return its final validation accuracy (the objective sweepers read)."""
    ctx = hydra_context()
    try:
        summary = run(cfg, ctx)
    except LrdecayError as exc:
        log.error("%s", exc)
        if ctx.job_num is None:  # a single run: one clear line and a non-zero exit
            sys.exit(2)
        raise
    return summary.final_val_acc if math.isfinite(summary.final_val_acc) else float("nan")


if __name__ == "__main__":
    main()
