"""What each start-up trick of :mod:`lrdecay.startup` earns: every trick on, then each one off.

    python benchmarks/startup.py [--repeats 3] [--only sweep,run,launcher,tests] [--jobs 12]
                                 [--epochs 1]

Four workloads, each started as a user starts it, in a fresh folder with a fresh copy of one
empty MLflow store:

- ``sweep``: ``train.py -m`` of ``--jobs`` digits settings (the paper's decay schemes, one epoch
  each), two jobs at a time, with its report;
- ``run``: one digits run of one epoch (``train.py dataset=digits``);
- ``launcher``: what a sweep's launching process imports (MLflow, the tracker, the summary
  runs, the report), as it does (``startup.start("tracking")``, ``("summary")``,
  ``("report")``), in an interpreter that then exits:
  the collector's share of a launcher, without a sweep's noise around it;
- ``tests``: the fast tier of a few test files, in one pytest process.

Each row is one workload with every trick on (``all on``) or one trick off
(``LRDECAY_STARTUP_OFF``, inherited by every process the command starts). The rows of a repeat
run back to back, in order, and the table holds the medians over ``--repeats``:

- ``wall s``: from the command to its exit;
- ``CPU s``: user + system time of the command and every process it started (this process is
  their subreaper, so workers and a forkserver count too);
- ``peak MB``: the largest sum, over one sampling, of the proportional set size (PSS: a page
  shared by n processes counts 1/n in each) of those processes, sampled every 0.2 s;
- ``1st epoch s``: from the command to the first epoch a job logged (sweep and run).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lrdecay.startup import OFF_ENV, TRICKS

ROOT = Path(__file__).resolve().parents[1]
#: The paper's decay schemes: 4 sequences x 3 strategies.
SCHEMES = [f"seq{n}-{s}" for s in ("epoch", "cutoff", "oscillate") for n in range(1, 5)]
#: Fast-tier test files that import torch and MLflow and train a little in process.
TEST_FILES = [
    "tests/unit/core/test_engine.py",
    "tests/unit/tracking/test_tracker_queue.py",
    "tests/unit/test_registries.py",
]
#: Which tricks each workload can show (a trick off where it does nothing measures noise).
SHOWN_BY = {
    "sweep": ("preload", "run_freeze", "launcher_freeze"),
    "run": ("run_freeze",),
    "launcher": ("launcher_freeze",),
    "tests": ("test_freeze", "omp_passive"),
}
#: The launching process's imports, as its callbacks make them, then the same modules plainly
#: (a no-op when start-up imported them): both rows import the same.
LAUNCHER = """
import importlib
from lrdecay import startup
startup.start("tracking")
startup.start("summary")
startup.start("report")
for name in (*startup.TRACKING_MODULES, *startup.SUMMARY_MODULES, *startup.REPORT_MODULES):
    importlib.import_module(name)
"""
#: A job's epoch line in its log: ``[2026-01-01 10:00:00,123][lrdecay.epochs][INFO] - ...``.
EPOCH_LINE = re.compile(r"^\[([\d-]+ [\d:]+,\d+)\]\[lrdecay\.epochs\]", re.M)
PR_SET_CHILD_SUBREAPER = 36


@dataclass
class Sample:
    """One command's figures."""

    wall: float
    cpu: float
    peak_mb: float
    first_epoch: float | None


def become_subreaper() -> None:
    """Orphaned descendants (a sweep's forkserver and workers) are reparented to this process,
    which reaps them, so their CPU time reaches RUSAGE_CHILDREN."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def descendants() -> list[int]:
    """The pids of this process's descendants (by parent pid, read from /proc)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [os.getpid()]
    while frontier:
        pid = frontier.pop()
        children = [child for child, ppid in parent.items() if ppid == pid]
        found += children
        frontier += children
    return found


def pss_mb(pids: list[int]) -> float:
    """The summed proportional set size of ``pids``, in MB (processes gone meanwhile: 0)."""
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        match = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
        total += int(match.group(1)) if match else 0
    return total / 1024


def measure(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """Run ``cmd`` to its end and until every process it started has ended: wall seconds,
    CPU seconds of all of them, and their peak summed PSS in MB."""
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], pss_mb(descendants()))

    before = os.times()
    start = time.monotonic()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    while True:  # the orphans: a forkserver and its workers end once the launcher has
        try:
            os.wait()
        except ChildProcessError:
            break
    wall = time.monotonic() - start
    done.set()
    sampler.join()
    after = os.times()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return wall, cpu, peak[0]


def first_epoch(folder: Path, started: float) -> float | None:
    """Seconds from ``started`` (epoch time) to the first epoch line of any job log under
    ``folder``."""
    stamps = [
        datetime.strptime(match, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for log in folder.rglob("*.log")
        for match in EPOCH_LINE.findall(log.read_text())
    ]
    return min(stamps) - started if stamps else None


def empty_store(folder: Path) -> Path:
    """An MLflow SQLite store with its schema created, to be copied for each command."""
    path = folder / "empty.db"
    code = f"import mlflow; mlflow.MlflowClient('sqlite:///{path}').search_experiments()"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return path


def train_args(work: Path, store: Path, data: Path) -> list[str]:
    """What every ``train.py`` command of the benchmark is given."""
    db = work / "mlflow.db"
    shutil.copy(store, db)
    return [
        "dataset=digits",
        "trainer.progress=off",
        f"tracking.uri=sqlite:///{db}",
        f"data.root={data}",
        f"hydra.run.dir={work}/run",
        f"hydra.sweep.dir={work}/sweep",
    ]


def workload(name: str, jobs: int, epochs: int) -> Callable[[Path, Path, Path], list[str]]:
    """The command of workload ``name``, given a fresh folder, the empty store and data root."""
    train = [sys.executable, str(ROOT / "train.py")]
    if name == "sweep":
        settings = ",".join(SCHEMES[:jobs])
        return lambda work, store, data: [
            *train,
            "-m",
            *train_args(work, store, data),
            f"dataset.epochs={epochs}",
            f"setting={settings}",
            "hydra.launcher.n_jobs=2",
        ]
    if name == "run":
        return lambda work, store, data: [
            *train,
            *train_args(work, store, data),
            f"dataset.epochs={epochs}",
        ]
    if name == "launcher":
        return lambda work, store, data: [sys.executable, "-c", LAUNCHER]
    return lambda work, store, data: [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-n",
        "0",
        "-m",
        "not slow",
        *(str(ROOT / f) for f in TEST_FILES),
    ]


def rows_of(name: str) -> list[str]:
    """``all on``, then each trick this workload shows that :data:`TRICKS` still has."""
    return ["", *(trick for trick in SHOWN_BY[name] if trick in TRICKS)]


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="sweep,run,launcher,tests")
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    become_subreaper()
    names = args.only.split(",")
    samples: dict[tuple[str, str], list[Sample]] = {}
    with tempfile.TemporaryDirectory(prefix="lrdecay-startup-") as tmp:
        base = Path(tmp)
        store, data = empty_store(base), base / "data"
        for repeat in range(args.repeats):
            for name in names:
                command = workload(name, args.jobs, args.epochs)
                for off in rows_of(name):
                    work = base / f"{name}-{off or 'on'}-{repeat}"
                    work.mkdir()
                    env = {**os.environ, OFF_ENV: off, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
                    env.pop("MLFLOW_TRACKING_URI", None)
                    started = time.time()
                    wall, cpu, peak = measure(command(work, store, data), ROOT, env)
                    epoch = first_epoch(work, started) if name in ("sweep", "run") else None
                    samples.setdefault((name, off), []).append(Sample(wall, cpu, peak, epoch))
                    print(
                        f"# repeat {repeat + 1} {name:5s} {off or 'all on':33s} wall {wall:6.1f}"
                        f"  CPU {cpu:6.1f}  peak {peak:6.0f} MB",
                        file=sys.stderr,
                        flush=True,
                    )
    print(
        f"{'workload':9s}{'tricks':36s}{'wall s':>8s}{'CPU s':>8s}{'peak MB':>9s}"
        f"{'1st epoch s':>13s}"
    )
    for (name, off), rows in samples.items():
        med = statistics.median
        epochs = [s.first_epoch for s in rows if s.first_epoch is not None]
        epoch = f"{med(epochs):13.1f}" if epochs else f"{'-':>13s}"
        print(
            f"{name:9s}{('off: ' + off) if off else 'all on':36s}{med(s.wall for s in rows):8.1f}"
            f"{med(s.cpu for s in rows):8.1f}{med(s.peak_mb for s in rows):9.0f}{epoch}"
        )
    print(f"(medians of {args.repeats}; each off-row differs from its all-on row in that trick)")


if __name__ == "__main__":
    main()
