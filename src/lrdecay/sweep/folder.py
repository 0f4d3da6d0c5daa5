"""A sweep's folder: what each job leaves in it, and what the launching process leaves for its
jobs.

Every job writes its :class:`~lrdecay.core.outcome.RunOutcome` as ``result.json`` when it ends,
however it ends; the launching process reads them back after the sweep. A job folder without
one belongs to a job that died (killed by the OS, out of memory). The sweep's parent MLflow run
id sits in ``<sweep_dir>/parent_run.json`` so that workers on any launcher (local processes,
cluster nodes) can find it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from omegaconf import OmegaConf

from hydra_plugins.lrdecay_optuna_sweeper.files import CONFIRMATION_FILE
from lrdecay.atomic import replacing
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


def parent_record(sweep_dir: str | Path | None) -> dict:
    """What :func:`write_parent` recorded for the sweep at ``sweep_dir`` (empty if nothing)."""
    if not sweep_dir:
        return {}
    path = Path(sweep_dir) / PARENT_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def read_parent(sweep_dir: str | Path | None) -> str | None:
    """The parent run id of the sweep at ``sweep_dir``, if one was recorded."""
    return parent_record(sweep_dir).get("run_id")


def read_swept(sweep_dir: str | Path | None) -> list[str]:
    """The config keys the sweep at ``sweep_dir`` varies (``seed``, ``setting``...)."""
    return list(parent_record(sweep_dir).get("swept", []))
