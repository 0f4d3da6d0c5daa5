"""What Python's garbage collector costs a run's and a sweep launcher's process, and what
``lrdecay.host`` saves of it.

    python benchmarks/gc_cost.py [--repeats 5]

Each row starts fresh interpreters that import one role's libraries and exit: as Python does by
default (full collections while the heap grows during the imports, and a last one over the whole
heap at exit), and through :func:`lrdecay.host.import_frozen` (the imports with the collector
paused, then frozen), as ``train.py``'s jobs, the sweep's forkserver and its launcher do. CPU
seconds are the child's user + system time, median of ``--repeats``; the imports are the same in
both columns, so the difference is the collector's work alone.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys

#: What each role's process has imported by its end.
ROLES = {
    "run (train.py, one job)": [
        "torch",
        "torch._dynamo",
        "mlflow",
        "mlflow.store.tracking.sqlalchemy_store",
        "hydra",
        "lrdecay.run",
        "lrdecay.tracking.plots",
    ],
    "sweep launcher (-m, with its report)": [
        "mlflow",
        "mlflow.store.tracking.sqlalchemy_store",
        "hydra",
        "optuna",
        "lrdecay.tracking.run_logger",
        "lrdecay.report.report_files",
    ],
}

#: The columns: how the child imports.
MODES = ("default", "import_frozen")

CHILD = """
import importlib, sys
mode, modules = sys.argv[1], sys.argv[2:]
if mode == "default":
    for name in modules:
        importlib.import_module(name)
else:
    from lrdecay.host import import_frozen
    import_frozen(modules)
"""


def cpu_seconds(mode: str, modules: list[str]) -> float:
    """User + system CPU seconds of one child that imports ``modules`` and exits."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", CHILD, mode, *modules], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    print(f"{'process':38s}" + "".join(f"{mode:>15s}" for mode in MODES) + f"{'saved':>8s}")
    for role, modules in ROLES.items():
        cells = [
            statistics.median(cpu_seconds(mode, modules) for _ in range(repeats)) for mode in MODES
        ]
        cols = "".join(f"{cell:14.2f}s" for cell in cells)
        print(f"{role:38s}{cols}{cells[0] - cells[1]:7.2f}s")
    print(f"(CPU seconds of the whole process, median of {repeats}; the same imports in each)")


if __name__ == "__main__":
    main()
