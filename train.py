"""Train one run (or, with -m, a sweep of runs) composed by Hydra from ``conf/``.

python train.py dataset=digits sequence=seq3 strategy=epoch
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from lrdecay import startup
from lrdecay.config import register_configs, validate
from lrdecay.core.interrupts import exit_status, stop_on_sigterm
from lrdecay.errors import LrdecayError
from lrdecay.host import available_cores
from lrdecay.sweep.folder import read_parent, read_swept
from lrdecay.tracking.credentials import move_credentials
from lrdecay.tracking.environment import set_mlflow_defaults
from lrdecay.tracking.redact import redact_logging

if TYPE_CHECKING:
    from lrdecay.run import RunContext

log = logging.getLogger("lrdecay")
register_configs()


def hydra_context() -> RunContext:
    """What Hydra knows about this job: folders, job number, overrides, parallel workers."""
    from lrdecay.run import RunContext  # torch and MLflow load only once a run is due

    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return RunContext(
            base_dir=Path(hc.runtime.cwd),
            output_dir=Path(hc.runtime.output_dir),
            overrides=list(hc.overrides.task),
        )
    return RunContext(
        base_dir=Path(hc.runtime.cwd),
        output_dir=Path(hc.runtime.output_dir),
        job_num=hc.job.num,
        sweep_dir=hc.sweep.dir,
        overrides=list(hc.overrides.task),
        parent_run_id=read_parent(hc.sweep.dir),
        swept=read_swept(hc.sweep.dir),
        n_workers=concurrent_jobs(hc.launcher),
    )


def concurrent_jobs(launcher: DictConfig) -> int:
    """How many jobs share this machine's cores, so each takes its share of torch threads.

    joblib: ``n_jobs`` (-1: one per core). submitit: each job is given ``cpus_per_task`` cores
    (all of them on a cluster node where the scheduler limits the process's CPU set); local
    submitit jobs all run at once, so one core each.
    """
    cores = available_cores()
    if "n_jobs" in launcher:
        n_jobs = int(launcher.n_jobs or 1)
        return cores if n_jobs < 1 else n_jobs
    per_task = launcher.get("cpus_per_task")
    if per_task:
        return max(1, cores // int(per_task))
    return cores if "Local" in str(launcher.get("_target_", "")) else 1


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | list[float]:
    """Run one job and return its objective (``objective``, default the final validation
    accuracy): one float, or a list for several objectives. NaN when the job failed.

    A single run that fails exits non-zero with one message. In a sweep, a failing job is
    recorded (MLflow, result.json, the summary table) and the other jobs go on.
    """
    redact_logging()
    stop_on_sigterm()
    try:
        validate(cfg)  # bad input fails here, before torch or MLflow are even imported
    except LrdecayError as exc:
        log.error("%s", exc)
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            sys.exit(2)
        return _failed(cfg)
    startup.start("run")  # torch, MLflow and the run's code, loaded as lrdecay.startup says
    from lrdecay.run import objective_values, run

    ctx = hydra_context()
    try:
        summary = run(cfg, ctx)
    except LrdecayError as exc:
        log.error("%s", exc)
        if ctx.job_num is None:
            sys.exit(2)
        return _failed(cfg)
    except Exception:
        if ctx.job_num is None:
            raise
        log.exception("job %s failed", ctx.job_num)
        return _failed(cfg)
    values = objective_values(summary, cfg.objective)
    return values[0] if len(values) == 1 else values


def _failed(cfg: DictConfig) -> float | list[float]:
    """NaN for each objective: what a failed job reports to a sweeper."""
    n = len(cfg.get("objective") or [None])
    return float("nan") if n == 1 else [float("nan")] * n


def keep_credentials_out_of_files() -> None:
    """Move URI passwords from the command line (and ``MLFLOW_TRACKING_URI``) into the
    environment before Hydra saves the overrides and the config to files."""
    sys.argv[1:], moved = move_credentials(sys.argv[1:], os.environ)
    if moved:
        print(
            f"lrdecay: the credentials in {', '.join(moved)} go to MLflow and Optuna through "
            "the environment, not into any saved file",
            file=sys.stderr,
        )


def cli() -> None:
    """``python train.py``: an interrupt (Ctrl-C, SIGTERM) ends in one line and the shell's
    128 + signal exit status, not a traceback; its runs are already KILLED and resumable."""
    keep_credentials_out_of_files()
    set_mlflow_defaults()  # before any store is reached; launcher workers inherit them
    try:
        main()
    except KeyboardInterrupt as exc:
        print(
            f"lrdecay: {exc or 'interrupted'}: unfinished runs are KILLED with their "
            "checkpoints; the same command (resume=true for a single run) continues them",
            file=sys.stderr,
        )
        sys.exit(exit_status(exc))


if __name__ == "__main__":
    cli()
