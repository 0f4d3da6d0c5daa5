"""Training throughput of the whole study (`-m experiment=paper`) at several launcher widths.

    python benchmarks/sweep_scaling.py [--dataset fashion_mnist] [--epochs 1] [--jobs 1 2]
                                       [--threads N] [extra overrides...]

Each width runs the 14 settings in a fresh folder with a fresh MLflow store, so every row pays
the same start-up costs; the data are staged once beforehand into a shared root, so no row
pays the unpacking. Torch threads per job follow the product's rule (cores // n_jobs) unless
``--threads`` fixes them. Prints one table per invocation:

- ``wall s``: the launch, from the command to its exit;
- ``samples/s``: training samples of all 14 runs over that wall time (what a user gets);
- ``training samples/s``: the same samples over the time the jobs spent in their fits
  (summed fit seconds / n_jobs), i.e. without process start-up and tracking's fixed costs;
- ``x``: each throughput over the first row's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from lrdecay.core.outcome import RunStatus
from lrdecay.sweep.folder import read_results

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = 14


@dataclass
class Row:
    """One launch: its width, threads per job, wall seconds and what its jobs trained."""

    n_jobs: int
    threads: int
    wall: float
    samples: float
    fit_seconds: float

    @property
    def rate(self) -> float:
        return self.samples / self.wall

    @property
    def training_rate(self) -> float:
        return self.samples / (self.fit_seconds / self.n_jobs)


def stage_data(dataset: str, root: Path) -> None:
    """Unpack / generate the data set once into ``root`` (the jobs then only read it), with
    the data set's own config group (its shape), as the jobs compose it."""
    import torch
    from hydra import compose, initialize_config_dir

    from lrdecay.config import register_configs, validate
    from lrdecay.core.data import load_data

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        conf = validate(compose("config", overrides=[f"dataset={dataset}", f"data.root={root}"]))
    load_data(conf.dataset, conf.data, torch.device("cpu"))


def launch(n_jobs: int, threads: int, dataset: str, data_root: Path, extra: list[str]) -> Row:
    """One `train.py -m experiment=paper` launch at ``n_jobs`` workers, timed and read back."""
    with tempfile.TemporaryDirectory() as tmp:
        sweep_dir = Path(tmp) / "sweep"
        cmd = [
            sys.executable,
            str(ROOT / "train.py"),
            "-m",
            "experiment=paper",
            f"dataset={dataset}",
            f"data.root={data_root}",
            f"hydra.launcher.n_jobs={n_jobs}",
            f"threads={threads}",
            "trainer.progress=off",
            f"hydra.sweep.dir={sweep_dir}",
            *extra,
        ]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"n_jobs={n_jobs} failed:\n{proc.stderr[-3000:]}")
        finished = [
            r
            for r in read_results(sweep_dir)
            if r.status in (RunStatus.FINISHED, RunStatus.EARLY_STOPPED)
        ]
        if len(finished) != SETTINGS:
            sys.exit(
                f"n_jobs={n_jobs}: {len(finished)} of {SETTINGS} settings finished:\n"
                f"{proc.stdout[-3000:]}"
            )
        samples = sum((r.samples_per_second or 0.0) * (r.train_seconds or 0.0) for r in finished)
        return Row(n_jobs, threads, wall, samples, sum(r.train_seconds or 0.0 for r in finished))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--epochs", type=int, default=1, help="trainer.max_epochs of every run")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads per job (default: cores // n_jobs)"
    )
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every launch")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    extra = [f"trainer.max_epochs={args.epochs}", *args.overrides]
    with tempfile.TemporaryDirectory(prefix="sweep-scaling-") as data_root:
        stage_data(args.dataset, Path(data_root))
        rows = []
        for n in args.jobs:
            threads = args.threads or max(1, cores // n)
            rows.append(launch(n, threads, args.dataset, Path(data_root), extra))
            print(f"  n_jobs={n}: {rows[-1].wall:.1f} s", file=sys.stderr, flush=True)
    print(
        f"experiment=paper dataset={args.dataset} {' '.join(extra)} ({cores} cores, "
        f"1-min load {os.getloadavg()[0]:.2f} at the end)"
    )
    print(
        f"{'n_jobs':>6} {'threads/job':>11} {'wall s':>7} {'samples':>9} {'samples/s':>9} "
        f"{'x':>5} {'training samples/s':>18} {'x':>5}"
    )
    first = rows[0]
    for r in rows:
        print(
            f"{r.n_jobs:>6} {r.threads:>11} {r.wall:>7.1f} {r.samples:>9.0f} {r.rate:>9.0f} "
            f"{r.rate / first.rate:>5.2f} {r.training_rate:>18.0f} "
            f"{r.training_rate / first.training_rate:>5.2f}"
        )


if __name__ == "__main__":
    main()
