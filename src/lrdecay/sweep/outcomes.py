"""What each job of a sweep leaves in its output folder, and the sweep's summary table.

Every job writes its :class:`~lrdecay.core.outcome.RunOutcome` as ``result.json`` when it ends,
however it ends; the launching process reads them back after the sweep. A job folder without
one belongs to a job that died (killed by the OS, out of memory). The sweep's parent MLflow run
id sits in ``<sweep_dir>/parent_run.json`` so that workers on any launcher (local processes,
cluster nodes) can find it.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from omegaconf import OmegaConf

from hydra_plugins.lrdecay_optuna_sweeper.files import CONFIRMATION_FILE
from lrdecay.atomic import replacing
from lrdecay.columns import columns
from lrdecay.config import TRIAL_KEY
from lrdecay.core.outcome import RunOutcome, RunStatus

RESULT_FILE = "result.json"
PARENT_FILE = "parent_run.json"
#: A search's confirmation as its sweeper printed it (CONFIRMATION_FILE, the sweeper's name),
#: printed again under the sweep's summary.
__all__ = ["CONFIRMATION_FILE", "PARENT_FILE", "RESULT_FILE"]


def _write_json(path: Path, payload: dict) -> None:
    """Write atomically: a reader never sees half a file."""
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, allow_nan=True))


def write_result(output_dir: Path, result: RunOutcome) -> Path:
    """Save ``result`` as ``<output_dir>/result.json``."""
    path = output_dir / RESULT_FILE
    _write_json(path, result.to_json())
    return path


def read_result(job_dir: Path) -> RunOutcome | None:
    """The outcome a job left in ``job_dir``, or None if it wrote none (it died)."""
    path = job_dir / RESULT_FILE
    return RunOutcome.from_json(json.loads(path.read_text())) if path.is_file() else None


def read_results(sweep_dir: Path) -> list[RunOutcome]:
    """Every job's result under ``sweep_dir``, ordered by job number; dead jobs included."""
    results = []
    for job_dir in sorted(p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()):
        result = read_result(job_dir)
        if result is not None:
            results.append(result)
        else:
            overrides = _hydra_overrides(job_dir)
            num = int(job_dir.name) if job_dir.name.isdigit() else None
            results.append(
                RunOutcome(
                    setting=" ".join(overrides) or job_dir.name,
                    status=RunStatus.DIED,
                    job_num=num,
                    overrides=overrides,
                    error="no result: the job's process ended abruptly",
                )
            )
    return sorted(results, key=lambda r: (r.job_num is None, r.job_num or 0))


def _hydra_overrides(job_dir: Path) -> list[str]:
    """The overrides Hydra saved for a job (a YAML list of strings), as typed."""
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    saved = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    return [str(o) for o in saved] if isinstance(saved, list) else []


def write_parent(
    sweep_dir: Path,
    run_id: str,
    experiment_id: str,
    uri: str,
    swept: list[str] | None = None,
    jobs: int | None = None,
) -> None:
    """Record the sweep's parent run, the keys the sweep varies, how many jobs it has (None:
    unknown) and when it started, for its workers."""
    _write_json(
        sweep_dir / PARENT_FILE,
        {
            "run_id": run_id,
            "experiment_id": experiment_id,
            "uri": uri,
            "swept": swept or [],
            "jobs": jobs,
            "started": time.time(),
        },
    )


def _parent_record(sweep_dir: str | Path | None) -> dict:
    """What :func:`write_parent` recorded for the sweep at ``sweep_dir`` (empty if nothing)."""
    if not sweep_dir:
        return {}
    path = Path(sweep_dir) / PARENT_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def read_parent(sweep_dir: str | Path | None) -> str | None:
    """The parent run id of the sweep at ``sweep_dir``, if one was recorded."""
    return _parent_record(sweep_dir).get("run_id")


def read_swept(sweep_dir: str | Path | None) -> list[str]:
    """The config keys the sweep at ``sweep_dir`` varies (``seed``, ``setting``...)."""
    return list(_parent_record(sweep_dir).get("swept", []))


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
    record = _parent_record(sweep_dir)
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
