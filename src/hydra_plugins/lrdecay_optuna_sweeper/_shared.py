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
import time
from datetime import datetime, timedelta

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from .processes import alive

#: The user attribute naming the launcher that runs a trial: ``host:pid``.
LAUNCHER_ATTR = "lrdecay.launcher"
#: Trials that count toward ``n_trials``: finished, or being run by some launcher.
TAKEN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
#: How long an unclaimed running trial may be someone's just-asked trial (ask, then claim: one
#: storage write apart); older, it was left by a launcher killed between the two.
CLAIM_GRACE = timedelta(seconds=10)


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
    return int(pid) == os.getpid() or not alive(int(pid))


def settle(study: optuna.Study) -> None:
    """Wait until no running trial is both unclaimed and younger than :data:`CLAIM_GRACE`, so
    that :func:`orphaned` can tell a killed launcher's trial from a live one's just-asked one
    (a start-up right after a kill waits at most the grace)."""
    while True:
        young = [
            t.datetime_start
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if not t.user_attrs.get(LAUNCHER_ATTR)
            and t.datetime_start is not None
            and datetime.now() - t.datetime_start <= CLAIM_GRACE
        ]
        if not young:
            return
        wait = CLAIM_GRACE - (datetime.now() - min(young))
        time.sleep(max(0.1, wait.total_seconds() + 0.1))


#: The study attribute naming the launcher that confirms trial N: ``lrdecay.confirm.N``.
CONFIRM_ATTR = "lrdecay.confirm.{number}"
#: How long claimants wait between writing a confirmation claim and reading who holds it: every
#: launcher that saw the claim free writes within this window, and the last write wins for all.
CONFIRM_SETTLE = timedelta(seconds=2)


def _live(owner: str) -> bool:
    """Whether the launcher ``host:pid`` may still be running (another host's always may)."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return bool(owner)
    return int(pid) == os.getpid() or alive(int(pid))


def claim_confirmations(study: optuna.Study, numbers: list[int]) -> dict[int, str]:
    """Claim the confirm stage of each trial in ``numbers`` for this launcher unless a live
    launcher holds it, so that launchers sharing a study confirm each winner once (two running
    the same seeds at once would replace each other's runs). Returns the holder of each claim."""
    keys = {n: CONFIRM_ATTR.format(number=n) for n in numbers}
    held = study.user_attrs
    free = [n for n, key in keys.items() if not _live(str(held.get(key, "")))]
    for n in free:
        study.set_user_attr(keys[n], launcher_id())
    if free:
        time.sleep(CONFIRM_SETTLE.total_seconds())
    held = study.user_attrs
    return {n: str(held.get(key, "")) for n, key in keys.items()}


def release_confirmations(study: optuna.Study, numbers: list[int]) -> None:
    """Give up this launcher's confirmation claims once its confirm stage ended: a later launch
    of the same search may confirm again (and reuses the finished runs)."""
    for n in numbers:
        if study.user_attrs.get(CONFIRM_ATTR.format(number=n)) == launcher_id():
            study.set_user_attr(CONFIRM_ATTR.format(number=n), "")
