"""Worker utilisation of the Optuna sweeper against a batch-and-wait schedule of the same trials.

    python benchmarks/sweeper_utilisation.py [--short 40] [--long 160] [--seed 0] [overrides...]

Eight trials on digits, two at a time, each either short or long (``trainer.max_epochs`` 40 or
160: about 4x apart), as the random sampler picks them with the given seed. First the
project's sweeper runs them; it starts a trial as soon as one ends. Then the same trials, in the
same order, run as Hydra's basic sweeper runs a batched sweep (``hydra.sweeper.max_batch_size=2``
on the joblib launcher): each pair waits for its slower member. Each schedule runs in a fresh
folder with a fresh MLflow store. Prints one table: wall time of the command, span of the jobs
(first start to last end, from MLflow), the jobs' summed seconds and the share of the two
workers' time the jobs kept busy; then both schedules replayed on the same measured job lengths,
which takes out the noise of a shared machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[1]
COMMON = [
    "dataset=digits",
    "trainer.progress=off",
    "tracking.log_plot=false",
    "report.enabled=false",
    "trainer.checkpoint=false",
    "hydra.launcher.n_jobs=2",
]


@dataclass
class Schedule:
    """What one schedule's launch measured."""

    name: str
    wall: float
    jobs: list[tuple[int, float, float]]  # (epochs, start, end) per job, in seconds

    @property
    def span(self) -> float:
        return max(end for _, _, end in self.jobs) - min(start for _, start, _ in self.jobs)

    @property
    def work(self) -> float:
        return sum(end - start for _, start, end in self.jobs)

    @property
    def busy(self) -> float:
        return self.work / (2 * self.span)


def greedy_span(lengths: list[float], workers: int = 2) -> float:
    """Span when each job starts on the first worker to become free."""
    free = [0.0] * workers
    for length in lengths:
        i = free.index(min(free))
        free[i] += length
    return max(free)


def batch_span(lengths: list[float], workers: int = 2) -> float:
    """Span when each batch of ``workers`` jobs waits for its slowest job."""
    return sum(max(lengths[i : i + workers]) for i in range(0, len(lengths), workers))


def launch(folder: Path, args: list[str]) -> float:
    """Run ``train.py -m args`` in ``folder``; returns the wall seconds."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "-m", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    seconds = time.perf_counter() - start
    (folder / "stdout.txt").write_text(proc.stdout)
    (folder / "stderr.txt").write_text(proc.stderr)
    if proc.returncode != 0:
        sys.exit(
            f"{' '.join(args)} failed (its output and job folders are kept in {folder}):"
            f"\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        )
    return seconds


def jobs(folder: Path) -> list[tuple[int, float, float]]:
    """(epochs, start, end) of every child run in ``folder``'s MLflow store, by job number
    (the trial number for the sweeper, the launch index for the basic sweeper)."""
    client = MlflowClient(f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("lrdecay-digits")
    runs = client.search_runs([exp.experiment_id], "tags.`hydra.job_num` != ''", max_results=100)
    runs = sorted(runs, key=lambda r: int(r.data.tags["hydra.job_num"]))
    return [
        (int(r.data.params["trainer.max_epochs"]), r.info.start_time / 1000, r.info.end_time / 1000)
        for r in runs
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=int, default=40, help="epochs of a short trial")
    parser.add_argument("--long", type=int, default=160, help="epochs of a long trial")
    parser.add_argument("--seed", type=int, default=0, help="the random sampler's seed")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for both launches")
    args = parser.parse_args()
    extra = [*COMMON, *args.overrides]

    tmp = Path(tempfile.mkdtemp(prefix="sweeper-utilisation-"))  # kept when a launch fails
    ours, batch = tmp / "optuna", tmp / "batch"
    ours.mkdir()
    batch.mkdir()
    wall = launch(
        ours,
        [
            "hydra/sweeper=optuna",
            "hydra/sweeper/sampler=random",
            f"hydra.sweeper.sampler.seed={args.seed}",
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.n_trials=8",
            "hydra.sweeper.study_name=bench",
            *extra,
            f"trainer.max_epochs=choice({args.short},{args.long})",
        ],
    )
    study = optuna.load_study(study_name="bench", storage=f"sqlite:///{ours / 'optuna.db'}")
    order = [t.params["trainer.max_epochs"] for t in sorted(study.trials, key=lambda t: t.number)]
    sweeper = Schedule("optuna sweeper, n_jobs=2", wall, jobs(ours))
    wall = launch(
        batch,
        [
            "hydra.sweeper.max_batch_size=2",
            "sweep.rerun=true",
            *extra,
            f"trainer.max_epochs={','.join(map(str, order))}",
        ],
    )
    batched = Schedule("batch-and-wait, batches of 2", wall, jobs(batch))
    if len(sweeper.jobs) != 8 or len(batched.jobs) != 8:
        sys.exit(
            f"expected 8 jobs in each schedule, got {len(sweeper.jobs)} and "
            f"{len(batched.jobs)} (folders kept in {tmp})"
        )
    shutil.rmtree(tmp, ignore_errors=True)

    lengths = [end - start for _, start, end in sweeper.jobs]  # in launch order
    print(
        f"8 trials on digits, trainer.max_epochs in launch order {order}; "
        f"job lengths {min(lengths):.1f}-{max(lengths):.1f} s "
        f"({max(lengths) / min(lengths):.1f}x); {len(os.sched_getaffinity(0))} cores, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'schedule':<30}  {'wall s':>7}  {'jobs span s':>11}  {'job s summed':>12}  "
        f"{'workers busy':>12}"
    )
    for s in (sweeper, batched):
        print(f"{s.name:<30}  {s.wall:>7.1f}  {s.span:>11.1f}  {s.work:>12.1f}  {s.busy:>12.0%}")
    for name, span in (
        ("keep-2-busy, simulated", greedy_span(lengths)),
        ("batch-and-wait, simulated", batch_span(lengths)),
    ):
        work = sum(lengths)
        print(f"{name:<30}  {'':>7}  {span:>11.1f}  {work:>12.1f}  {work / (2 * span):>12.0%}")
    print(
        "(simulated rows: both schedules replayed on the sweeper's measured job lengths, "
        "which removes the noise of running the jobs twice)"
    )
    print(
        f"\nThe sweeper ran the 8 trials in {sweeper.wall:.1f} s (jobs span "
        f"{sweeper.span:.1f} s); batch-and-wait took {batched.wall:.1f} s (jobs span "
        f"{batched.span:.1f} s): {batched.span - sweeper.span:+.1f} s of job span, "
        f"{batched.span / sweeper.span:.2f}x."
    )


if __name__ == "__main__":
    main()
