"""One study, several launchers: the study's count stops the search, not each launcher's own.

Two launches of one search on a shared RDB storage (two users on two login nodes, the same
``storage`` and ``study_name``) each ask the study for trials. Optuna's storage numbers trials
atomically; with these checks, made against the storage before and after each ask, the
launchers together finish ``n_trials`` trials, and a launcher starting up leaves the trials
that another live launcher is running alone.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

#: The user attribute naming the launcher that runs a trial: ``host:pid``.
LAUNCHER_ATTR = "lrdecay.launcher"
#: Trials that count toward ``n_trials``: finished, or being run by some launcher.
TAKEN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
#: How long an unclaimed running trial may be someone's just-asked trial (ask, then claim).
CLAIM_GRACE = timedelta(seconds=60)


def launcher_id() -> str:
    """This launching process, as trials name it: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claim(trial: Trial) -> None:
    """Mark ``trial`` as run by this launcher (so that others starting up leave it alone)."""
    trial.set_user_attr(LAUNCHER_ATTR, launcher_id())


def has_room(study: optuna.Study, n_trials: int) -> bool:
    """Whether the study, all launchers together, has fewer than ``n_trials`` trials finished
    or running: another one may be asked for."""
    return len(study.get_trials(deepcopy=False, states=TAKEN)) < n_trials


def surplus(study: optuna.Study, trial: Trial, n_trials: int) -> bool:
    """Whether the trials numbered before ``trial`` already make ``n_trials`` (finished or
    running): two launchers asked for the last place at once, and this one came second."""
    taken = study.get_trials(deepcopy=False, states=TAKEN)
    return sum(t.number < trial.number for t in taken) >= n_trials


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def orphaned(trial: FrozenTrial) -> bool:
    """Whether a RUNNING trial has no live launcher, so that a new launch may fail and retry it:
    claimed on this host by a process that is gone (or by this very process, whose search has
    not started yet), or claimed by no one for longer than :data:`CLAIM_GRACE`. A trial of a
    launcher on another host is never taken for orphaned: its process cannot be checked here."""
    owner = str(trial.user_attrs.get(LAUNCHER_ATTR, ""))
    if not owner:
        started = trial.datetime_start
        return started is None or datetime.now() - started > CLAIM_GRACE
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return int(pid) == os.getpid() or not _alive(int(pid))
