"""The reproduction check of a published study (``scripts/recheck_published.py``) compares this
check's re-runs, never the runs an earlier check left in the same experiment."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from types import ModuleType

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from lrdecay.core.records import summary_key
from tests.helpers import ROOT, new_store


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("recheck", ROOT / "scripts/recheck_published.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _finished_run(client: MlflowClient, experiment_id: str, test_acc: float) -> str:
    tags = {"setting": "sgd-fixed", "optimizer": "sgd", "sequence": "constant"}
    tags |= {"strategy": "fixed", "seed": "0", "dataset": "fashion_mnist"}
    run_id = client.create_run(experiment_id, tags=tags).info.run_id
    client.log_batch(run_id, metrics=[Metric(summary_key("test_acc"), test_acc, 0, 0)])
    client.set_terminated(run_id)
    return run_id


def test_a_second_check_reads_its_own_reruns(tmp_path: Path) -> None:
    client = MlflowClient(tracking_uri=new_store(tmp_path / "mlflow.db"))
    exp = client.create_experiment("study-recheck", artifact_location=tmp_path.as_uri())
    _finished_run(client, exp, 0.5)  # left by an earlier check
    time.sleep(0.01)
    started_ms = int(time.time() * 1000)
    fresh = _finished_run(client, exp, 0.6)
    recheck = _script()
    records = recheck.rerun_records(client, "study-recheck", started_ms)
    assert list(records) == [("sgd-fixed", "0")]
    assert records["sgd-fixed", "0"].run_id == fresh
    assert records["sgd-fixed", "0"].metric("test_acc") == 0.6
    assert recheck.rerun_records(client, "no-such-experiment", started_ms) == {}
