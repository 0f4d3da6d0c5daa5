"""One summary run per setting of a sweep that ran it with several seeds: the band the MLflow UI
draws for the setting.

A summary run is one more child of the sweep's parent, tagged ``lrdecay.role=summary`` (no
training run: the report, resume and the sweep's table never count it), named and coloured as
its setting (``seq3-epoch (mean of 3)``). Under every key its seeds log it holds their mean;
under the key with ``_lo`` and ``_hi`` the bounds of the mean's 95 % t-interval, where two seeds
or more have a value; per epoch (step = epoch) ``epoch/n_seeds``, the seeds that reached the
epoch, and ``summary/n_seeds``. Its seeds are the setting's runs the report averages (finished,
not diverged), and the numbers are the ones the report's table and figures show
(:mod:`lrdecay.report.bands`).

A search that scores each trial over several seeds (``hydra.sweeper.seeds_per_trial``) gets one
summary per trial the same way: its seeds' setting is the trial (:func:`summary_group`,
``trial 3``), which its summary's ``setting`` tag names as a grid setting's does; the sweeper's
hooks write it as soon as the trial's seeds ended (:func:`write_trial_summary`).

The sweep's launching process writes them once the jobs ended, or were stopped, and a re-launch
writes them again: each setting's run is found by its tags. MLflow's metrics are append-only
per step (a value logged again at a step is a second point, not a correction), so a summary
whose numbers changed is written afresh as a new run and the old one deleted, tagged with the
new one's id as a replaced twin is; one whose numbers did not change is kept, id and all. The
views find summaries by tag, never by id: the new run takes the old one's place, name, colour
and group. A re-launch moves the seeds it skips or resumes to its own parent, so the earlier
sweeps' summaries of its settings are rewritten from the seeds they still hold, or deleted.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from mlflow.entities import Metric, Run
from mlflow.tracking import MlflowClient

from lrdecay.core.outcome import SUMMARY_METRICS
from lrdecay.core.records import EPOCH_NAMES, N_SEEDS, bound_keys, epoch_key, summary_key
from lrdecay.report.bands import epoch_stats, seeds_per_epoch
from lrdecay.report.runs import ReportError, RunRecord, load_runs, search_all
from lrdecay.report.stats import GROUPS, Stat, classify
from lrdecay.tracking.resume import REPLACED_BY_TAG
from lrdecay.tracking.run_logger import log_batches
from lrdecay.tracking.ui import ROLE_TAG, RUN_COLOR_TAG, SUMMARY_ROLE, TRIAL_TAG

#: A summary's own tags: the seeds it averages, their run ids, and a digest of its content (a
#: rewrite with the same digest keeps the run).
SEEDS_TAG, MEMBERS_TAG, DIGEST_TAG = "lrdecay.seeds", "lrdecay.summary_of", "lrdecay.digest"
PARENT_TAG, NOTE_TAG = "mlflow.parentRunId", "mlflow.note.content"
#: Tags the seeds share that name their setting (what filters and the table's columns read),
#: copied to the summary: never a seed's own (``seed``, fingerprint, checkpoint, job). A search
#: trial's seeds share its number and study too.
SETTING_TAGS = (
    "setting",
    TRIAL_TAG,
    "optuna.study",
    "dataset",
    "sequence",
    "strategy",
    "optimizer",
    "model",
    "scheduler",
    RUN_COLOR_TAG,
)
#: The longest tag value MLflow stores.
TAG_VALUE_LIMIT = 8000
#: A setting needs this many averaged seeds for a summary: one seed has no interval.
MIN_SEEDS = 2


@dataclass(frozen=True)
class Summary:
    """What one setting's summary run holds: name, tags, params and metrics (key, value,
    step), and a digest of all of them."""

    setting: str
    name: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: tuple[tuple[str, float, int], ...]

    @property
    def digest(self) -> str:
        """A short hash of everything the summary holds: equal digests, equal runs."""
        blob = json.dumps([self.name, self.tags, self.params, self.metrics], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _stat_metrics(key: str, stat: Stat, step: int) -> list[tuple[str, float, int]]:
    """``key``'s mean and, where it has one, its interval's bounds, at ``step``."""
    out = [(key, stat.mean, step)]
    if stat.interval is not None:
        bounds = zip(bound_keys(key), stat.interval, strict=True)
        out += [(bound, value, step) for bound, value in bounds]
    return out


def summary_metrics(runs: Sequence[RunRecord]) -> list[tuple[str, float, int]]:
    """The metrics of the summary of ``runs``: per epoch and run-level, each a mean with its
    interval's bounds, and the seeds each averages; run-level ones at the last epoch, where
    the seeds log theirs."""
    out: list[tuple[str, float, int]] = []
    for name in EPOCH_NAMES:
        for epoch, stat in epoch_stats(runs, name).items():
            out += _stat_metrics(epoch_key(name), stat, epoch)
    reached = seeds_per_epoch(runs)
    out += [(epoch_key(N_SEEDS), float(n), epoch) for epoch, n in reached.items()]
    last = max(reached, default=0)
    for name in SUMMARY_METRICS:
        run_level = Stat.of(r.metric(name) for r in runs)
        if run_level is not None:
            out += _stat_metrics(summary_key(name), run_level, last)
    out.append((summary_key(N_SEEDS), float(len(runs)), last))
    return out


def _shared(items: Iterable[dict[str, str]], keys: Collection[str] | None = None) -> dict:
    """The entries (of ``keys``, else all) every mapping of ``items`` holds with one value."""
    first, *rest = items
    return {
        k: v
        for k, v in first.items()
        if (keys is None or k in keys) and all(other.get(k) == v for other in rest)
    }


def trial_group(number: int | str) -> str:
    """The setting under which the seeds of search trial ``number`` are summarised."""
    return f"trial {number}"


def summary_group(run: RunRecord) -> str:
    """The setting whose summary averages ``run``: its trial's (:func:`trial_group`) for a seed
    of a search trial, whose searched values its ``setting`` tag does not name; else its
    setting. A summary's ``setting`` tag holds it."""
    trial = run.tags.get(TRIAL_TAG)
    return run.setting if trial is None else trial_group(trial)


def summarise_setting(setting: str, runs: Sequence[RunRecord], parent_run_id: str) -> Summary:
    """The summary of ``runs`` (the setting's averaged seeds) as a child of ``parent_run_id``."""
    seeds = sorted({r.seed for r in runs}, key=lambda seed: (len(seed), seed))  # 2 before 10
    members = ",".join(r.run_id for r in runs)
    tags = _shared((r.tags for r in runs), SETTING_TAGS) | {
        "setting": setting,
        PARENT_TAG: parent_run_id,
        ROLE_TAG: SUMMARY_ROLE,
        SEEDS_TAG: ",".join(seeds),
        NOTE_TAG: (
            f"The mean over {len(runs)} seeds ({', '.join(seeds)}) of setting `{setting}` "
            "and the bounds of its 95 % t-interval (keys ending `_lo`, `_hi`), per epoch "
            "and run-level; `n_seeds`: how many seeds each number averages. Written by the "
            "sweep, rewritten when its seeds change; no training run."
        ),
    }
    if len(members) <= TAG_VALUE_LIMIT:
        tags[MEMBERS_TAG] = members
    params = {k: v for k, v in _shared(r.params for r in runs).items() if k != "seed"}
    name = f"{setting} (mean of {len(runs)})"
    return Summary(setting, name, tags, params, tuple(summary_metrics(runs)))


def wanted(
    client: MlflowClient,
    parent_run_id: str,
    settings: Collection[str] | None = None,
    trial: int | None = None,
) -> tuple[dict[str, Summary], dict[str, set[str]]]:
    """The summaries sweep ``parent_run_id`` calls for (of ``settings``, else of all; of search
    trial ``trial`` alone, when given), by setting (:func:`summary_group`): one per setting with
    :data:`MIN_SEEDS` averaged seeds or more; and the ids of the runs the sweep holds, by
    setting."""
    try:
        runset = load_runs(
            client, parent_run_id=parent_run_id, history=EPOCH_NAMES, with_trials=True, trial=trial
        )
    except ReportError:  # no training run (left) in this sweep
        return {}, {}
    by_setting: dict[str, list[RunRecord]] = {}
    held: dict[str, set[str]] = {}
    for run in runset.runs:
        group = summary_group(run)
        by_setting.setdefault(group, [])
        held.setdefault(group, set()).add(run.run_id)
        if not run.diverged and (settings is None or group in settings):
            by_setting[group].append(run)
    ordered = sorted(by_setting.items(), key=lambda item: table_order(item[0], item[1]))
    summaries = {
        setting: summarise_setting(setting, runs, parent_run_id)
        for setting, runs in ordered
        if len(runs) >= MIN_SEEDS
    }
    return summaries, held


def table_order(setting: str, runs: Sequence[RunRecord]) -> tuple[int, int, str]:
    """Where ``setting`` sits in the report's table (its group, its place in it); a search's
    trials after every setting, by number."""
    if not runs:
        return len(GROUPS), 0, setting
    first = runs[0]
    trial = first.tags.get(TRIAL_TAG, "")
    if trial.isdigit():
        return len(GROUPS), int(trial), setting
    group, _, order = classify(
        first.optimizer, first.sequence, first.strategy, setting, first.scheduler
    )
    return GROUPS.index(group), order, setting


def summary_runs(client: MlflowClient, experiment_id: str, parent_run_id: str = "") -> list[Run]:
    """The active summary runs of an experiment, or of one sweep."""
    search = f"tags.`{ROLE_TAG}` = '{SUMMARY_ROLE}'"
    if parent_run_id:
        search += f" and tags.`{PARENT_TAG}` = '{parent_run_id}'"
    return search_all(client, experiment_id, search)


def create(client: MlflowClient, experiment_id: str, summary: Summary) -> str:
    """Write ``summary`` as a new FINISHED run, in batches; returns its id."""
    tags = summary.tags | {DIGEST_TAG: summary.digest}
    run_id = client.create_run(experiment_id, run_name=summary.name, tags=tags).info.run_id
    now = int(time.time() * 1000)
    metrics = [Metric(key, value, now, step) for key, value, step in summary.metrics]
    log_batches(client, run_id, summary.params, metrics)
    client.set_terminated(run_id, "FINISHED")
    return run_id


def settle(
    client: MlflowClient,
    experiment_id: str,
    parent_run_id: str,
    summaries: dict[str, Summary],
    settings: Collection[str] | None = None,
) -> list[str]:
    """Make sweep ``parent_run_id``'s summary runs (of ``settings``, else all) exactly
    ``summaries``: keep those unchanged, write the rest anew and delete what they replace or
    what no longer has seeds enough. Returns the ids of the summaries standing, newest last.

    New ones are written last setting first, so that the UI's newest-first order lists them
    as ``summaries`` are ordered."""
    existing: dict[str, list[Run]] = {}
    for run in summary_runs(client, experiment_id, parent_run_id):
        setting = run.data.tags.get("setting", "")
        if settings is None or setting in settings:
            existing.setdefault(setting, []).append(run)
    standing = {}
    for setting, summary in reversed(summaries.items()):
        runs = existing.pop(setting, [])
        kept = next((r for r in runs if r.data.tags.get(DIGEST_TAG) == summary.digest), None)
        new_id = kept.info.run_id if kept else create(client, experiment_id, summary)
        for run in runs:
            if run is not kept:
                client.set_tag(run.info.run_id, REPLACED_BY_TAG, new_id)
                client.delete_run(run.info.run_id)
        standing[setting] = new_id
    for runs in existing.values():  # settings left with too few seeds here
        for run in runs:
            client.delete_run(run.info.run_id)
    return [standing[s] for s in summaries]


def write_summaries(client: MlflowClient, parent_run_id: str) -> list[str]:
    """Bring the summary runs of sweep ``parent_run_id`` up to date with its seeds, and those
    of earlier sweeps whose seeds it took over; returns the ids of this sweep's summaries, in
    its settings' order (the report table's)."""
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    summaries, held = wanted(client, parent_run_id)
    written = settle(client, experiment_id, parent_run_id, summaries)
    stale: dict[str, set[str]] = {}  # earlier sweeps, and which of their summaries lost a seed
    for run in summary_runs(client, experiment_id):
        tags = run.data.tags
        parent, setting = tags.get(PARENT_TAG, ""), tags.get("setting", "")
        members = set(tags[MEMBERS_TAG].split(",")) if MEMBERS_TAG in tags else None
        moved = members is None or bool(members & held.get(setting, set()))
        if parent != parent_run_id and setting in held and moved:
            stale.setdefault(parent, set()).add(setting)
    for other, settings in stale.items():
        settle(client, experiment_id, other, wanted(client, other, settings)[0], settings)
    return written


def write_trial_summary(client: MlflowClient, parent_run_id: str, number: int) -> str | None:
    """Bring the summary run of search trial ``number`` of sweep ``parent_run_id`` up to date
    with the trial's seeds (reading those alone); returns its id, None when the trial has too
    few averaged seeds for one."""
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    group = {trial_group(number)}
    summaries = wanted(client, parent_run_id, group, trial=number)[0]
    written = settle(client, experiment_id, parent_run_id, summaries, group)
    return written[0] if written else None
