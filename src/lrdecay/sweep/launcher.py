"""What a sweep's launching process does around its jobs, as Hydra callbacks of a multirun: its
data and the MLflow parent run before workers start, the table after.

Creating the experiment and the parent run in the launching process, before any worker exists,
also creates a fresh SQLite store's schema once, instead of parallel workers racing to create it.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from hydra_plugins.lrdecay_optuna_sweeper.processes import alive
from lrdecay import startup
from lrdecay.config import LrdecayConfig, ReportConfig, validate
from lrdecay.core.interrupts import install_stop_handlers
from lrdecay.core.outcome import RunOutcome, RunStatus
from lrdecay.errors import ConfigError, DataError, LrdecayError
from lrdecay.host import available_cores
from lrdecay.sweep.datasets import job_config, sweep_data_configs
from lrdecay.sweep.folder import CONFIRMATION_FILE, read_results, write_parent
from lrdecay.sweep.prepare import prepare_data
from lrdecay.sweep.summary import format_table, sweep_progress
from lrdecay.tracking.redact import redact_logging, redact_text, redact_uri

if TYPE_CHECKING:  # Hydra builds this callback for every run: keep MLflow and torch lazy
    from hydra.core.utils import JobReturn

    from lrdecay.tracking.run_logger import MlflowTracker

log = logging.getLogger("lrdecay")
#: What the sweep's URL shows when its settings have summary runs.
BANDS_LINE = "this sweep's settings, one band each (mean and 95 % interval over seeds)"
#: Tags of a sweep's parent run naming its launching process, so that a later sweep can tell
#: a parent whose launcher died (still RUNNING, never to be closed) from a live one.
HOST_TAG, PID_TAG = "lrdecay.launcher_host", "lrdecay.launcher_pid"


def ui_command(
    uri: str, experiment_id: str | None, parent_run_id: str | None = None, bands: bool = False
) -> str:
    """How to open the MLflow UI on this store's experiment (a local UI bound to 127.0.0.1),
    and, given the sweep's parent run, on that sweep's runs alone: best first, or with
    ``bands`` (its settings' summary runs) charted one band per setting."""
    from lrdecay.tracking.ui import experiment_url, sweep_url

    remote = uri.startswith(("http://", "https://"))
    base = redact_uri(uri).rstrip("/") if remote else "http://127.0.0.1:5000"
    url = experiment_url(base, experiment_id) if experiment_id else f"{base}/"
    lines = (
        [f"open {url}"]
        if remote
        else [
            f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000",
            f"then open {url}",
        ]
    )
    if experiment_id and parent_run_id:
        what = BANDS_LINE if bands else "this sweep's runs, best final accuracy first"
        lines.append(f"{what}: {sweep_url(base, experiment_id, parent_run_id, bands)}")
    return "\n".join(lines)


def _sweep_arguments(hc: DictConfig) -> list[str]:
    """The multirun's overrides: the command line's and ``hydra.sweeper.params``."""
    params = hc.sweeper.get("params") or {}
    return [*hc.overrides.task, *(f"{k}={v}" for k, v in params.items())]


def sweep_keys(hc: DictConfig) -> list[str]:
    """The keys this multirun varies: swept on the command line or in ``hydra.sweeper.params``."""
    from lrdecay.tracking.ui import swept_keys

    return swept_keys(_sweep_arguments(hc))


def sweep_size(hc: DictConfig) -> int | None:
    """How many jobs this multirun launches: a search's ``n_trials`` times its
    ``seeds_per_trial`` (one job per seed), and its confirm stage's seeds, else the product of
    its swept lists; None where that is not countable (an interval without ``n_trials``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    if hc.sweeper.get("n_trials"):
        confirm = hc.sweeper.get("confirm") or {}
        seeds = int(confirm.get("seeds", 0)) if confirm.get("enabled", False) else 0
        per_trial = max(1, int(hc.sweeper.get("seeds_per_trial") or 1))
        return int(hc.sweeper.n_trials) * per_trial + seeds
    size = 1
    for override in OverridesParser.create().parse_overrides(_sweep_arguments(hc)):
        if override.is_sweep_override():
            try:
                size *= len(list(override.sweep_iterator()))
            except HydraException:
                return None
    return size


class SweepTracking(Callback):
    """Prepares a multirun's data, opens its MLflow parent run, closes it with the jobs' summary."""

    def __init__(self) -> None:
        self.tracker: MlflowTracker | None = None
        self.report: ReportConfig | None = None
        self.started = 0.0

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.monotonic()
        redact_logging()  # the launcher logs each job's overrides, tracking.uri included
        try:
            conf = validate(job_config(config))
            check_launcher(config.hydra.launcher)
        except LrdecayError as exc:
            stop_sweep(str(exc))
        prepare_sweep_data(config, conf)
        install_stop_handlers(self._stop)
        startup.start("sweep", config.hydra.launcher)  # joblib: workers that start preloaded
        if not conf.tracking.enabled:
            return
        self.report = conf.report
        store = Path(config.hydra.runtime.cwd) / conf.tracking.store_dir
        startup.start("tracking")
        from lrdecay.tracking.experiments import experiment_name
        from lrdecay.tracking.run_logger import MlflowTracker
        from lrdecay.tracking.store import default_artifact_root, resolve_uri

        try:
            uri = resolve_uri(conf.tracking.uri, store)
            tracker = MlflowTracker(
                uri, experiment_name(conf), default_artifact_root(uri), log_plot=False
            )
            tracker.connect()
            close_dead_parents(tracker)
            self._open_parent(tracker, config, conf.dataset.name)
        except LrdecayError as exc:
            stop_sweep(str(exc))
        except Exception as exc:  # no parent run: stop before any job starts
            stop_sweep(
                f"could not create the sweep's parent run in "
                f"{redact_uri(uri)} ({str(exc).splitlines()[0][:300]}); no job "
                "was started. Fix: point tracking.uri at a working store (or "
                "move this one aside), then run again"
            )
        self.tracker = tracker
        log.info("sweep parent run %s in experiment '%s'", tracker.run_id, tracker.experiment)

    def _open_parent(self, tracker: MlflowTracker, config: DictConfig, dataset: str) -> None:
        """Create the sweep's parent run and record it where the jobs will look for it."""
        hc = config.hydra
        sweep_dir = Path(hc.sweep.dir)
        preset = hc.runtime.choices.get("experiment") or "sweep"
        from lrdecay.tracking.ui import (
            ROLE_TAG,
            RUN_COLOR_TAG,
            SWEEP_COLOUR,
            SWEEP_ROLE,
            share_sweep_view,
        )

        tracker.start(
            f"{preset}-{sweep_dir.name}",
            tags={
                ROLE_TAG: SWEEP_ROLE,
                "hydra.sweep_dir": str(sweep_dir),
                "dataset": dataset,
                HOST_TAG: socket.gethostname(),
                PID_TAG: str(os.getpid()),
                RUN_COLOR_TAG: SWEEP_COLOUR,
            },
            params={"overrides": redact_text(" ".join(hc.overrides.task))[:6000]},
        )
        assert tracker.run_id and tracker.experiment_id
        share_sweep_view(tracker.client, tracker.experiment_id, tracker.run_id)  # sweep_url's
        write_parent(
            sweep_dir,
            tracker.run_id,
            tracker.experiment_id,
            redact_uri(tracker.uri),
            swept=sweep_keys(hc),
            jobs=sweep_size(hc),
        )

    def _stop(self) -> None:
        """SIGTERM or Ctrl-C in the launcher (on_multirun_end never comes): close the parent
        run KILLED, and any child left RUNNING by a worker killed before it could close it."""
        tracker, self.tracker = self.tracker, None
        if tracker is None or tracker.run_id is None:
            return
        try:
            close_running_children(tracker)
        except Exception as exc:  # the parent must be closed whatever the children's fate
            log.warning(
                "could not close the sweep's running jobs: %s", str(exc).splitlines()[0][:200]
            )
        write_bands(tracker)  # of the seeds that ended, for a re-launch to build on
        tracker.end("KILLED")
        log.error(
            "sweep stopped: parent run %s and its unfinished jobs are KILLED; the same "
            "command resumes them",
            tracker.run_id,
        )

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """In each job of a sweep: per-epoch lines to the job's log only, unless
        ``sweep.console_epochs``."""
        if _in_sweep() and not config.get("sweep", {}).get("console_epochs", False):
            from lrdecay.core.progress import keep_epochs_off_console

            keep_epochs_off_console()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """In each job of a sweep, once it ended: the sweep's progress, one terminal line."""
        if _in_sweep():
            print(sweep_progress(config.hydra.sweep.dir), flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        results = read_results(sweep_dir) if sweep_dir.is_dir() else []
        table = format_table(results)
        counts = JobCounts.of(results)
        pruned = f", {counts.pruned} pruned" if counts.pruned else ""
        summary = (
            f"{counts.total} jobs: {counts.finished} finished, "
            f"{counts.diverged} diverged, {counts.failed} failed{pruned} "
            f"in {time.monotonic() - self.started:.0f} s"
        )
        lines = ["", table, "", summary]
        confirmation = sweep_dir / CONFIRMATION_FILE
        if confirmation.is_file():  # a search's measured result, last on the terminal
            lines += ["", confirmation.read_text().rstrip()]
        if self.tracker is not None:
            bands = write_bands(self.tracker)
            report = self._write_report(sweep_dir)
            if report is not None:
                lines += ["", f"Report (tables, figures, the study's claims): {report}"]
            if counts.finished:
                tracker = self.tracker
                lines += [
                    "",
                    "Compare the runs in the MLflow UI:",
                    ui_command(tracker.uri, tracker.experiment_id, tracker.run_id, bands),
                ]
            self._close_parent(table, counts)
        if not counts.finished:  # nothing to compare: the one next step instead
            lines += ["", no_run_finished(sweep_dir)]
        print("\n".join(lines), flush=True)
        if sweep_dir.is_dir():
            (sweep_dir / "summary.txt").write_text("\n".join(lines) + "\n")
        if counts.failed and counts.finished:
            raise SystemExit(
                f"lrdecay: {counts.failed} job(s) failed; see the table above "
                "and each job's log under " + str(sweep_dir)
            )
        if counts.failed:  # the next step is the line just above
            raise SystemExit(f"lrdecay: {counts.failed} of {counts.total} job(s) failed")

    def _write_report(self, sweep_dir: Path) -> Path | None:
        """The sweep's report in ``<sweep_dir>/report`` (also logged to the parent run)."""
        if self.report is None or not self.report.enabled or self.tracker is None:
            return None
        startup.start("report")
        from lrdecay.report.report_files import write_report

        try:
            return write_report(
                self.tracker.client,
                parent_run_id=self.tracker.run_id,
                out_dir=sweep_dir / "report",
                target=self.report.target,
                margin=self.report.margin,
            )
        except Exception as exc:  # a report problem must never cost the sweep's results
            log.warning("no report written: %s", str(exc).splitlines()[0] if str(exc) else exc)
            return None

    def _close_parent(self, table: str, counts: JobCounts) -> None:
        tracker = self.tracker
        assert tracker is not None
        # tags, not metrics: counters are no curves, and would open the UI's chart view
        tracker.set_tags({f"children_{k}": str(v) for k, v in asdict(counts).items()})
        tracker.log_text(table + "\n", "summary.txt")
        all_ok = counts.total > 0 and counts.finished + counts.pruned == counts.total
        tracker.end("FINISHED" if all_ok else "FAILED")


def write_bands(tracker: MlflowTracker) -> bool:
    """Bring the settings' summary runs of ``tracker``'s sweep up to date with its seeds
    (:mod:`lrdecay.report.summary_runs`) and, if it has any, make its view show them as bands;
    whether it has. A failure costs a warning, never the sweep's results."""
    if tracker.run_id is None or tracker.experiment_id is None:
        return False
    try:
        startup.start("summary")
        from lrdecay.report import summary_runs
        from lrdecay.tracking.ui import share_sweep_view

        written = summary_runs.write_summaries(tracker.client, tracker.run_id)
        if written:
            share_sweep_view(tracker.client, tracker.experiment_id, tracker.run_id, bands=True)
    except Exception as exc:
        log.warning("no summary runs written: %s", (str(exc).splitlines() or [repr(exc)])[0][:200])
        return False
    if written:
        log.info("%d summary run(s): one band per setting in the sweep's view", len(written))
    return bool(written)


def no_run_finished(sweep_dir: Path) -> str:
    """The next step after a sweep in which no run finished (nothing to compare in the UI)."""
    return (
        "No run finished: see the table above and each job's log under "
        f"{sweep_dir}; fix the cause and run the same command again"
    )


def _in_sweep() -> bool:
    """Whether the current Hydra job is one of a multirun (callbacks also run for single runs)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def prepare_sweep_data(config: DictConfig, conf: LrdecayConfig) -> None:
    """Every data set the sweep's jobs read, found or fetched once before any job starts or any
    run is created; else one line naming the fixes, and exit status 2 (a configuration's)."""
    try:
        prepare_data(sweep_data_configs(config, conf), Path(config.hydra.runtime.cwd))
    except DataError as exc:
        stop_sweep(f"no job was started: {exc}")


def stop_sweep(message: str) -> NoReturn:
    """Stop the sweep before any job starts: ``lrdecay: <message>`` on stderr, and exit status
    2, as a single run exits on a mistake it can name (only failed jobs make a sweep exit 1)."""
    print(f"lrdecay: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def check_launcher(launcher: DictConfig) -> None:
    """One line, before any job starts, for launcher settings the launcher would only reject
    with a traceback (joblib's ``n_jobs``: -1 is one job per core, -2 all but one, 0 nothing)."""
    n_jobs = launcher.get("n_jobs")
    if n_jobs is None:
        return
    cores = available_cores()
    if not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -cores:
        raise ConfigError(
            f"hydra.launcher.n_jobs: {n_jobs} is not a number of parallel jobs; "
            f"use 1..{cores} (this machine's cores), or -1 for one job per core"
        )


def close_dead_parents(tracker: MlflowTracker) -> list[str]:
    """Mark KILLED the RUNNING sweep parents of this experiment whose launching process, on this
    host, is gone (a launcher killed with SIGKILL can never close its own parent run).

    Parents launched on other hosts are left alone: their process cannot be checked from here.
    Returns the ids of the runs closed.
    """
    from lrdecay.tracking.ui import SWEEP_PARENTS

    assert tracker.experiment_id is not None
    host = socket.gethostname()
    try:
        stale = tracker.client.search_runs(
            [tracker.experiment_id],
            max_results=1000,
            filter_string=(
                f"{SWEEP_PARENTS} and attributes.status = 'RUNNING' "
                f"and tags.`{HOST_TAG}` = '{host}'"
            ),
        )
    except Exception as exc:  # tidying up must never stop a sweep
        log.warning("could not look for dead sweep parents: %s", str(exc).splitlines()[0])
        return []
    closed = []
    for run in stale:
        pid = run.data.tags.get(PID_TAG, "")
        if pid.isdigit() and int(pid) != os.getpid() and not alive(int(pid)):
            tracker.client.set_terminated(run.info.run_id, status="KILLED")
            closed.append(run.info.run_id)
    if closed:
        log.info(
            "closed %d sweep parent run(s) whose launcher had died: %s",
            len(closed),
            ", ".join(closed),
        )
    return closed


def close_running_children(tracker: MlflowTracker) -> list[str]:
    """Mark KILLED the RUNNING child runs of ``tracker``'s run; returns their ids."""
    assert tracker.experiment_id is not None and tracker.run_id is not None
    running = tracker.client.search_runs(
        [tracker.experiment_id],
        max_results=1000,
        filter_string=(
            f"tags.`mlflow.parentRunId` = '{tracker.run_id}' and attributes.status = 'RUNNING'"
        ),
    )
    for run in running:
        tracker.client.set_terminated(run.info.run_id, status="KILLED")
    return [run.info.run_id for run in running]


@dataclass
class JobCounts:
    """How many jobs a sweep ran, and how many finished (skipped ones included), diverged, were
    pruned by a search, or failed (raised, killed or died)."""

    total: int
    finished: int
    diverged: int
    pruned: int
    failed: int

    @classmethod
    def of(cls, results: list[RunOutcome]) -> JobCounts:
        """Count ``results`` by status."""
        finished = sum(r.ok for r in results)
        diverged = sum(r.status == RunStatus.DIVERGED for r in results)
        pruned = sum(r.status == RunStatus.PRUNED for r in results)
        failed = len(results) - finished - diverged - pruned
        return cls(len(results), finished, diverged, pruned, failed)
