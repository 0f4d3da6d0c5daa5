"""Every trick a process of lrdecay plays on the interpreter, in one place: :func:`start`.

Each process calls it for its role, before the imports the role needs: a run's job
(``train.py``), a sweep's launching process (:mod:`lrdecay.sweep.launcher`), a pytest worker
(the suite's ``conftest.py``). Each trick here is named in :data:`TRICKS` and earned its place in
``benchmarks/startup.py``, which measures each one on and off: ``LRDECAY_STARTUP_OFF=name,...``
leaves those off in every process a command starts. Torch-free: the launching process calls it.
"""

from __future__ import annotations

import gc
import importlib
import logging
import multiprocessing
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any, Literal

log = logging.getLogger("lrdecay")

#: The tricks, by the name ``LRDECAY_STARTUP_OFF`` turns each off with.
TRICKS = {
    "preload": "a local sweep's workers are forks of a forkserver that imported JOB_MODULES",
    "run_freeze": "a job imports JOB_MODULES with the collector paused, then frozen; a "
    "forked worker freezes the heap it inherited",
    "launcher_freeze": "a sweep's launching process imports MLflow and its report so too",
    "test_freeze": "a pytest worker freezes what collection and each test imported",
    "omp_passive": "a pytest worker's OpenMP threads wait passively (OMP_WAIT_POLICY)",
}
#: Names of :data:`TRICKS` to leave off, comma-separated (inherited by child processes).
OFF_ENV = "LRDECAY_STARTUP_OFF"

#: What a job imports before it trains (public modules only).
JOB_MODULES = ("torch", "mlflow", "lrdecay.run", "lrdecay.tracking.plots")
#: What a sweep's launching process imports to track the sweep, and to write its report.
TRACKING_MODULES = ("mlflow", "lrdecay.tracking.run_logger")
REPORT_MODULES = ("lrdecay.report.report_files",)
#: What it imports to bring a sweep's summary runs (one per setting, over seeds) up to date.
SUMMARY_MODULES = ("lrdecay.report.summary_runs",)
#: The launcher whose workers can be preloaded (``hydra/launcher=joblib``).
JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"

Role = Literal["run", "sweep", "tracking", "summary", "report", "tests"]


def on(trick: str) -> bool:
    """Whether ``trick`` is on in this process (not named in ``LRDECAY_STARTUP_OFF``)."""
    assert trick in TRICKS, trick
    return trick not in os.environ.get(OFF_ENV, "").split(",")


def start(role: Role, launcher: Mapping[str, Any] | None = None) -> None:
    """This process's tricks for ``role``: ``run`` (a job, before its run imports torch),
    ``sweep`` (the launching process, before its jobs start; ``launcher`` is
    ``hydra.launcher``), ``tracking``, ``summary`` and ``report`` (the launching process,
    before it imports MLflow, before its summary runs, before its report), ``tests`` (a pytest
    worker, after collection and each test)."""
    if role == "run":
        if on("run_freeze"):
            import_frozen(JOB_MODULES)
    elif role == "sweep":
        if launcher is not None and on("preload"):
            preload_workers(launcher)
    elif role == "tracking":
        if on("launcher_freeze"):
            import_frozen(TRACKING_MODULES)
    elif role == "summary":
        if on("launcher_freeze"):
            import_frozen(SUMMARY_MODULES)
    elif role == "report":
        if on("launcher_freeze"):
            import_frozen(REPORT_MODULES)
    elif role == "tests":
        if on("omp_passive"):
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        if on("test_freeze"):
            _freeze_new_imports()
    else:
        raise ValueError(f"unknown start-up role {role!r}")


def import_frozen(modules: Iterable[str]) -> None:
    """Import ``modules`` with the garbage collector paused, then freeze what they built.

    Imported modules live as long as the process, yet while torch, MLflow and SQLAlchemy load,
    the collector walks the growing heap again and again, and once more at the process's exit.
    Paused, then frozen (:func:`gc.freeze`), they are walked by no later collection. The small
    heap before them is collected first, so no garbage is frozen. Where all are imported but
    nothing is frozen (a sweep worker forked from the forkserver), what the process inherited
    is frozen as it is: no collection, which would write to every inherited page and so copy it.
    """
    missing = [name for name in modules if name not in sys.modules]
    if not missing:
        if gc.get_freeze_count() == 0:
            gc.freeze()
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
    """Make the joblib launcher's workers forks of a forkserver that imported :data:`JOB_MODULES`.

    Hydra's joblib launcher runs jobs in loky worker processes, by default each a fresh
    interpreter that imports torch, MLflow and the training code again. Started instead from a
    forkserver that imported them once (multiprocessing's documented preload), every worker is a
    fork of it, its libraries shared copy-on-write; the launching process itself still imports
    no torch. A no-op (False) for other launchers and off Linux (on macOS, a fork of a process
    that loaded Apple's frameworks can crash: Python spawns there by default).
    """
    if launcher.get("_target_") != JOBLIB_LAUNCHER or not sys.platform.startswith("linux"):
        return False
    from joblib.externals.loky.backend.context import set_start_method

    multiprocessing.get_context("forkserver").set_forkserver_preload(list(JOB_MODULES))
    set_start_method("forkserver", force=True)  # loky's own setting, read when workers start
    log.debug("sweep workers start from a forkserver that imported %s", ", ".join(JOB_MODULES))
    return True


#: How many modules this pytest worker had imported when it last froze its heap.
_FROZEN_AT: list[int] = [0]


def _freeze_new_imports() -> None:
    """Freeze the heap if modules were imported since the last time: they live as long as the
    worker, and every full collection the tests' garbage triggers would walk them again.
    Collected first, so only live objects are frozen."""
    if len(sys.modules) > _FROZEN_AT[0]:
        gc.collect()
        gc.freeze()
        _FROZEN_AT[0] = len(sys.modules)
