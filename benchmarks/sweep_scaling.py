"""Wall time of the whole study (`-m experiment=paper`) at several launcher widths.

    python benchmarks/sweep_scaling.py [--dataset digits] [--jobs 1 2] [extra overrides...]

Each width runs in a fresh folder with a fresh MLflow store, so every row pays the same
start-up costs. Prints one table: n_jobs, torch threads per job, wall seconds, ratio to the
first row.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def time_sweep(n_jobs: int, dataset: str, extra: list[str]) -> float:
    """Seconds for one `train.py -m experiment=paper` launch at ``n_jobs`` workers."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, str(ROOT / "train.py"), "-m", "experiment=paper",
               f"dataset={dataset}", f"hydra.launcher.n_jobs={n_jobs}", "trainer.progress=off",
               *extra]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"n_jobs={n_jobs} failed:\n{proc.stderr[-3000:]}")
        if "14 finished" not in proc.stdout:
            sys.exit(f"n_jobs={n_jobs}: not all 14 settings finished:\n{proc.stdout[-3000:]}")
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every launch")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    rows = [(n, max(1, cores // n), time_sweep(n, args.dataset, args.overrides))
            for n in args.jobs]
    print(f"experiment=paper dataset={args.dataset} {' '.join(args.overrides)} "
          f"({cores} cores)")
    print(f"{'n_jobs':>6}  {'threads/job':>11}  {'wall s':>8}  {'ratio':>6}")
    for n, threads, seconds in rows:
        print(f"{n:>6}  {threads:>11}  {seconds:>8.1f}  {seconds / rows[0][2]:>6.2f}")


if __name__ == "__main__":
    main()
