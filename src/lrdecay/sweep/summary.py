"""What the terminal shows of a sweep: one progress line as each job ends, and the summary
table of all its jobs once they have (plain fixed-width text, read from the sweep's folder).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path

from tabulate import tabulate

from lrdecay.config import TRIAL_KEY
from lrdecay.core.outcome import RunOutcome, RunStatus
from lrdecay.sweep.folder import parent_record, read_results


def _duration(seconds: float) -> str:
    """``42 s``, ``3 min``, ``1.5 h``: how long, as a person says it."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def sweep_progress(sweep_dir: str | Path) -> str:
    """One line on a running sweep: jobs done of all, finished, failed, running, time spent
    and, once a job is done, a rough estimate of the time left."""
    results = read_results(Path(sweep_dir))
    running = sum(r.status == RunStatus.DIED for r in results)  # started, no result yet
    done = len(results) - running
    failed = sum(r.status in (RunStatus.FAILED, RunStatus.KILLED) for r in results)
    record = parent_record(sweep_dir)
    total = record.get("jobs")
    line = f"sweep: {done}/{total or '?'} done ({failed} failed), {running} running"
    if "started" not in record:
        return line
    elapsed = max(time.time() - record["started"], 0.0)
    line += f", {_duration(elapsed)} elapsed"
    if total and done:
        line += f", about {_duration(elapsed / done * max(total - done, 0))} left"
    return line


def _fmt(value: float | int | None, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format(value, spec)


def varying_overrides(results: list[RunOutcome]) -> dict[int, str]:
    """Per job index, the overrides that differ between jobs (what the sweep varied), without
    the sweeper's bookkeeping for a trial (``trial.*``: its storage, study and number)."""
    swept = [[o for o in r.overrides if not o.startswith(f"{TRIAL_KEY}.")] for r in results]
    sets = [set(o) for o in swept]
    common = set.intersection(*sets) if sets else set()
    return {i: " ".join(o for o in own if o not in common) for i, own in enumerate(swept)}


def format_table(results: list[RunOutcome]) -> str:
    """A fixed-width table: one row per job with setting, what the sweep varied, status,
    final accuracy, convergence epoch, epochs run and seconds; then each job's error."""
    header = ("#", "setting", "swept", "status", "final acc", "conv. epoch", "epochs", "seconds")
    swept = varying_overrides(results)
    rows = [
        (
            _fmt(r.job_num, "d"),
            r.setting,
            swept[i],
            r.status.value,
            _fmt(r.final_val_acc, ".4f"),
            _fmt(r.convergence_epoch, "d"),
            _fmt(r.epochs_run, "d"),
            _fmt(r.train_seconds, ".1f"),
        )
        for i, r in enumerate(results)
    ]
    lines = columns([header, *rows])
    out = [lines[0], "-" * max(map(len, lines)), *lines[1:]]
    remarks = [r for r in results if r.error or r.note]
    if remarks:
        out.append("")
        out += [f"job {_fmt(r.job_num, 'd')} ({r.setting}): {r.error or r.note}" for r in remarks]
    return "\n".join(out)


def columns(rows: Sequence[Sequence[str]]) -> list[str]:
    """``rows`` of cells as text lines, laid out by tabulate: each column as wide as its widest
    cell, cells left aligned and two blanks apart, trailing blanks cut, no number re-formatted."""
    if not rows:
        return []
    text = tabulate(rows, tablefmt="plain", disable_numparse=True)
    return [line.rstrip() for line in text.split("\n")]
