"""A local sweep's workers start with the job's libraries already imported, while the launching
process itself still imports no torch."""

from __future__ import annotations

import sys

import pytest

from lrdecay.startup import JOBLIB_LAUNCHER
from tests.helpers import python_json

pytestmark = pytest.mark.slow  # each test starts a forkserver that imports torch and MLflow

#: Launches two tasks on two workers the way Hydra's joblib launcher does (``joblib.Parallel``
#: with the loky backend), after the sweep callback's set-up for the launcher named in argv[1];
#: prints, as JSON, what each worker had imported before its task ran, how many objects it had
#: frozen after a job's start-up (argv[2] == "start": ``startup.start("run")``, as train.py's
#: job does), and what the launching process had imported at the end.
LAUNCH = """
import gc, json, sys
from joblib import Parallel, delayed
from omegaconf import OmegaConf
from lrdecay import startup

def task(i):
    seen = {"torch": "torch" in sys.modules, "run": "lrdecay.run" in sys.modules,
            "mlflow": "mlflow" in sys.modules}
    if sys.argv[2] == "start":
        startup.start("run")
    return {**seen, "frozen": gc.get_freeze_count()}

preloaded = startup.preload_workers(OmegaConf.create({"_target_": sys.argv[1], "n_jobs": 2}))
workers = Parallel(n_jobs=2, backend="loky")(delayed(task)(i) for i in range(4))
launcher_torch = "torch" in sys.modules
print(json.dumps({"preloaded": preloaded, "workers": workers, "launcher_torch": launcher_torch}))
"""

BASIC = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers preload on Linux only")
def test_joblib_workers_start_with_torch_mlflow_and_the_job_code_imported() -> None:
    seen = python_json(LAUNCH, JOBLIB_LAUNCHER, "start")
    assert seen["preloaded"] is True
    assert not seen["launcher_torch"]  # the launching process still never imports torch
    for worker in seen["workers"]:
        assert worker["torch"] and worker["mlflow"] and worker["run"], worker
        # a job's start-up froze what the worker inherited (no collection walks it): far more
        # than the few thousand objects a bare interpreter holds
        assert worker["frozen"] > 100_000, worker


def test_other_launchers_are_left_as_they_are() -> None:
    seen = python_json(LAUNCH, BASIC, "none")
    assert seen["preloaded"] is False
    assert not any(w["torch"] for w in seen["workers"])  # loky's fresh interpreters, as before
    assert not any(w["frozen"] for w in seen["workers"])
