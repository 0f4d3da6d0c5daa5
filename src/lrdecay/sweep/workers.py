"""Local sweep workers that start with torch and MLflow already imported.

Hydra's joblib launcher runs jobs in loky worker processes, by default each a fresh interpreter
that imports torch, MLflow and the training code again: about 5 CPU-seconds per worker, more
than a small job's whole training. Started instead from a forkserver that imported those modules
once (multiprocessing's documented preload), every worker is a fork of it: ready at once, its
imported libraries shared copy-on-write. The launching process itself still imports no torch:
the forkserver is a process of its own, and only names the modules it loads.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys

from omegaconf import DictConfig

log = logging.getLogger("lrdecay")

#: What a job imports before it trains: loaded once in the forkserver, and by ``train.py``'s job
#: function up front (both through :func:`lrdecay.host.import_frozen`). ``torch._dynamo`` is
#: imported by the first optimizer a job builds (torch's ``add_param_group`` is wrapped by it).
PRELOAD = (
    "torch",
    "torch._dynamo",
    "mlflow",
    "mlflow.store.tracking.sqlalchemy_store",
    "lrdecay.run",
    "lrdecay.tracking.plots",
)

#: The one module the forkserver imports: it imports :data:`PRELOAD` and freezes it.
FORKSERVER_PRELOAD = "lrdecay.sweep.frozen"

#: The launcher whose workers this applies to (``hydra/launcher=joblib``).
JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


def preload_workers(launcher: DictConfig) -> bool:
    """Make the joblib launcher's workers forks of a forkserver that has imported
    :data:`PRELOAD`; a no-op (False) for other launchers and off Linux (on macOS, a fork of a
    process that loaded Apple's frameworks can crash: Python spawns there by default)."""
    if launcher.get("_target_") != JOBLIB_LAUNCHER or not sys.platform.startswith("linux"):
        return False
    from joblib.externals.loky.backend.context import set_start_method

    multiprocessing.get_context("forkserver").set_forkserver_preload([FORKSERVER_PRELOAD])
    set_start_method("forkserver", force=True)  # loky's own setting, read when workers start
    log.debug("sweep workers start from a forkserver that imported %s", ", ".join(PRELOAD))
    return True
