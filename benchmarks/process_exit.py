"""What a process's exit costs with the libraries of a run or of a sweep's launcher imported,
and what :func:`lrdecay.host.skip_final_collection` (``train.py`` calls it) saves of it.

    python benchmarks/process_exit.py [--repeats 5]

Each row starts a fresh interpreter that imports one role's libraries and exits, once as
Python exits by default (a last garbage collection over the whole heap) and once with the exit
freeze; CPU seconds are the child's user + system time (median of ``--repeats``). The
difference is the exit alone: the imports are the same in both columns.
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
        "matplotlib.figure",
        "matplotlib.backends.backend_agg",
        "lrdecay.run",
    ],
    "sweep launcher (-m, with its report)": [
        "mlflow",
        "mlflow.store.tracking.sqlalchemy_store",
        "hydra",
        "optuna",
        "scipy.stats",
        "statsmodels.stats.multitest",
        "matplotlib.figure",
        "lrdecay.report.build",
    ],
}

CHILD = """
import importlib, sys
for name in sys.argv[2:]:
    importlib.import_module(name)
if sys.argv[1] == "skip":
    from lrdecay.host import skip_final_collection
    skip_final_collection()
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
    print(f"{'process':38s} {'default exit':>13s} {'exit frozen':>12s} {'saved':>7s}")
    for role, modules in ROLES.items():
        default = statistics.median(cpu_seconds("default", modules) for _ in range(repeats))
        frozen = statistics.median(cpu_seconds("skip", modules) for _ in range(repeats))
        print(f"{role:38s} {default:12.2f}s {frozen:11.2f}s {default - frozen:6.2f}s")
    print(f"(CPU seconds of the whole process, median of {repeats}; the imports are the same)")


if __name__ == "__main__":
    main()
