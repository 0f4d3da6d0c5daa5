"""Every trick a process of lrdecay plays on the interpreter, in one place: :func:`start`.

Each process calls it once for its role, before its heavy imports: a run's job (``train.py``),
a sweep's launching process, the sweep's forkserver, the test suite's workers. Each trick is
named in :data:`TRICKS`; ``LRDECAY_STARTUP_OFF=name,...`` leaves those off in every process a
command starts, so that ``benchmarks/startup.py`` can measure each one on and off.
Torch-free: the launching process calls it.
"""

from __future__ import annotations

import gc
import importlib
import multiprocessing
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

#: The tricks, by the name ``LRDECAY_STARTUP_OFF`` turns each off with.
TRICKS = {
    "preload": "a local sweep's workers: forks of a forkserver that imported JOB_MODULES",
    "internal_modules": "JOB_MODULES and TRACKING_MODULES also name torch's and MLflow's "
    "internal modules (torch._dynamo, mlflow.store.tracking.sqlalchemy_store)",
    "forkserver_freeze": "the forkserver imports JOB_MODULES with the collector paused, "
    "then frozen",
    "worker_freeze": "a forked worker freezes the heap it inherited before its first job",
    "run_freeze": "a job imports JOB_MODULES with the collector paused, then frozen",
    "launcher_freeze": "a sweep's launching process imports MLflow and the report frozen",
    "test_freeze": "a pytest worker freezes what collection and each test imported",
    "omp_passive": "a pytest worker's OpenMP threads wait passively (OMP_WAIT_POLICY)",
}
#: Names of :data:`TRICKS` to leave off, comma-separated (inherited by child processes).
OFF_ENV = "LRDECAY_STARTUP_OFF"

#: What a job imports before it trains.
JOB_MODULES = ("torch", "mlflow", "lrdecay.run", "lrdecay.tracking.plots")
#: What a sweep's launching process imports to track the sweep, and to write its report.
TRACKING_MODULES = ("mlflow", "lrdecay.tracking.tracker")
REPORT_MODULES = ("lrdecay.report.build",)
#: torch's and MLflow's internal modules a job imports on first use (the first optimizer
#: built imports torch._dynamo; the first SQLite store, MLflow's SQLAlchemy store).
INTERNAL_MODULES = ("torch._dynamo", "mlflow.store.tracking.sqlalchemy_store")

#: The launcher whose workers can be preloaded (``hydra/launcher=joblib``).
JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
#: The module the forkserver imports: it calls ``start("forkserver")``.
FORKSERVER_MODULE = "lrdecay.sweep.frozen"

ROLES = ("run", "sweep", "tracking", "report", "forkserver", "tests")


def on(trick: str) -> bool:
    """Whether ``trick`` is on in this process (not named in ``LRDECAY_STARTUP_OFF``)."""
    assert trick in TRICKS, trick
    return trick not in os.environ.get(OFF_ENV, "").split(",")


def job_modules() -> tuple[str, ...]:
    """What a job imports before it trains (the internal modules too, when that trick is on)."""
    internal = INTERNAL_MODULES if on("internal_modules") else ()
    return JOB_MODULES + internal


def start(role: str, launcher: Mapping[str, Any] | None = None) -> None:
    """This process's tricks for ``role``: ``run`` (a job, before it imports torch), ``sweep``
    (the launching process, before its jobs start; ``launcher`` is ``hydra.launcher``),
    ``tracking`` and ``report`` (the launching process, before it imports MLflow, before its
    report), ``forkserver``, ``tests``."""
    if role == "run":
        if on("run_freeze"):
            import_frozen(job_modules())
        if on("worker_freeze") and gc.get_freeze_count() == 0 and _forked_worker():
            gc.freeze()  # O(1): only list heads move, so the inherited pages stay shared
    elif role == "sweep":
        if launcher is not None and on("preload"):
            preload_workers(launcher)
    elif role == "tracking":
        if on("launcher_freeze"):
            internal = INTERNAL_MODULES[1:] if on("internal_modules") else ()
            import_frozen(TRACKING_MODULES + internal)
    elif role == "report":
        if on("launcher_freeze"):
            import_frozen(REPORT_MODULES)
    elif role == "forkserver":
        if on("forkserver_freeze"):
            import_frozen(job_modules())
        else:
            for name in job_modules():
                importlib.import_module(name)
    elif role == "tests":
        if on("omp_passive"):
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        if on("test_freeze"):
            _freeze_new_imports()
    else:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")


def _forked_worker() -> bool:
    """Whether this process is a multiprocessing child (a sweep worker), not a main process."""
    return multiprocessing.parent_process() is not None


def import_frozen(modules: Iterable[str]) -> None:
    """Import ``modules`` with the garbage collector paused, then freeze what they built.

    Imported modules live as long as the process, yet while torch, MLflow and SQLAlchemy load,
    the collector walks the growing heap again and again, and once more at the process's exit.
    Paused, then frozen (:func:`gc.freeze`), they are walked by no later collection. The small
    heap before them is collected first, so no garbage is frozen; a no-op when all are imported.
    """
    missing = [name for name in modules if name not in sys.modules]
    if not missing:
        return
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for name in missing:
            importlib.import_module(name)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def preload_workers(launcher: Mapping[str, Any]) -> bool:
    """Make the joblib launcher's workers forks of a forkserver that has imported the job's
    modules; a no-op (False) for other launchers and off Linux (on macOS, a fork of a process
    that loaded Apple's frameworks can crash: Python spawns there by default)."""
    if launcher.get("_target_") != JOBLIB_LAUNCHER or not sys.platform.startswith("linux"):
        return False
    from joblib.externals.loky.backend.context import set_start_method

    preload = [FORKSERVER_MODULE] if on("forkserver_freeze") else list(job_modules())
    multiprocessing.get_context("forkserver").set_forkserver_preload(preload)
    set_start_method("forkserver", force=True)  # loky's own setting, read when workers start
    return True


#: How many modules this test worker had imported when it last froze its heap.
_FROZEN_AT: list[int] = [0]


def _freeze_new_imports() -> None:
    """Freeze the heap if modules were imported since the last time (collected first)."""
    if len(sys.modules) > _FROZEN_AT[0]:
        gc.collect()
        gc.freeze()
        _FROZEN_AT[0] = len(sys.modules)
