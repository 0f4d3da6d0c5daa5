"""How long restoring the published study's exported files into an empty store takes.

    python benchmarks/restore_speed.py [--settings 23] [--seeds 10] [--epochs 50] [--items 10000]

Builds a study of the published one's size (23 arms × 10 seeds, 50 epochs, predictions on
10,000 test items) as MLflow runs in a temporary SQLite store, with a training run's keys, tags
and params; exports it (``lrdecay.report.export``); then restores the files into a fresh store
(``lrdecay.report.restore``, as ``make results`` does on a new machine), restores them again
(idempotent: adds nothing) and exports the restored store, which must give the same files.
Prints the wall and CPU seconds of each step (on a shared machine the CPU seconds move less):
the new store's schema (MLflow's migrations), reading and checking the files, the restore
itself, the second restore, and both exports.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from lrdecay.core.outcome import SUMMARY_METRICS
from lrdecay.core.predictions import PREDICTIONS_FILE, Predictions
from lrdecay.core.records import EPOCH_METRICS, summary_key
from lrdecay.report.export import HISTORIES_FILE, RUNS_FILE, STUDY_PREDICTIONS_FILE, export
from lrdecay.report.restore import read_export, restore
from lrdecay.tracking.resume import FINGERPRINT_TAG
from lrdecay.tracking.run_logger import METRIC_BATCH
from lrdecay.tracking.store import default_artifact_root

EXPERIMENT = "restore-speed"
T = TypeVar("T")


def build_study(uri: str, settings: int, seeds: int, epochs: int, items: int) -> None:
    """Finished runs with a study's tags, params, per-epoch and run-level metrics, and
    predictions, under random numbers."""
    client = MlflowClient(uri)
    exp = client.create_experiment(EXPERIMENT, artifact_location=default_artifact_root(uri))
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, items)
    with tempfile.TemporaryDirectory() as tmp:
        for s in range(settings):
            for seed in range(seeds):
                tags = {"setting": f"arm{s}", "seed": str(seed), "optimizer": "sgd"}
                tags |= {"sequence": "seq1", "strategy": "epoch", "dataset": "fashion_mnist"}
                tags |= {"outcome": "finished", "diverged": "false", "threads": "1"}
                tags[FINGERPRINT_TAG] = f"{s:08x}{seed:08x}"
                run_id = client.create_run(exp, tags=tags, run_name=f"arm{s} s{seed}").info.run_id
                params = [Param("dataset.name", "fashion_mnist"), Param("optimizer.lr", "0.01")]
                params.append(Param("trainer.max_epochs", str(epochs)))
                metrics = [
                    Metric(key, float(rng.random()), 0, epoch)
                    for epoch in range(1, epochs + 1)
                    for key in EPOCH_METRICS
                ]
                metrics += [
                    Metric(summary_key(n), float(epochs), 0, epochs) for n in SUMMARY_METRICS
                ]
                client.log_batch(run_id, params=params)
                for i in range(0, len(metrics), METRIC_BATCH):
                    client.log_batch(run_id, metrics=metrics[i : i + METRIC_BATCH])
                predicted = np.where(rng.random(items) < 0.9, labels, (labels + 1) % 10)
                path = Predictions.of("test", predicted, labels).save(Path(tmp) / PREDICTIONS_FILE)
                client.log_artifact(run_id, str(path))
                client.set_terminated(run_id)


def _opened(uri: str) -> MlflowClient:
    """A client on ``uri``, its store made (MLflow makes a SQLite store's schema on first use)."""
    client = MlflowClient(uri)
    client.search_experiments()
    return client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", type=int, default=23)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--items", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = f"sqlite:///{root / 'source' / 'mlflow.db'}"
        (root / "source").mkdir()
        build_study(source, args.settings, args.seeds, args.epochs, args.items)
        timings: list[tuple[str, float, float]] = []

        def timed(name: str, step: Callable[[], T]) -> T:
            wall, cpu = time.perf_counter(), time.process_time()
            out = step()
            timings.append((name, time.perf_counter() - wall, time.process_time() - cpu))
            return out

        first, second = root / "first", root / "second"
        timed("export the study", lambda: export(MlflowClient(source), EXPERIMENT, first))
        (root / "target").mkdir()
        target = f"sqlite:///{root / 'target' / 'mlflow.db'}"
        client = timed("open a new store (MLflow's schema)", lambda: _opened(target))
        exported = timed("read and check the files", lambda: read_export(first))
        artifacts = default_artifact_root(target)
        done = timed("restore", lambda: restore(client, exported, EXPERIMENT, artifacts))
        again = timed("restore again", lambda: restore(client, exported, EXPERIMENT, artifacts))
        timed("export the restored store", lambda: export(client, EXPERIMENT, second))
        for name in (RUNS_FILE, HISTORIES_FILE, STUDY_PREDICTIONS_FILE):
            assert (first / name).read_bytes() == (second / name).read_bytes(), name
        runs = exported.runs
        assert len(done.added) == len(runs) and not again.added and again.present == len(runs)
        size = sum((first / n).stat().st_size for n in (RUNS_FILE, HISTORIES_FILE))
        print(
            f"{len(runs)} runs x {args.epochs} epochs, {args.items} predicted items each "
            f"(runs.csv + histories: {size / 1e3:.0f} kB)"
        )
        print(f"  {'':<36}{'wall s':>8}{'CPU s':>8}")
        for name, wall, cpu in timings:
            print(f"  {name:<36}{wall:8.1f}{cpu:8.1f}")


if __name__ == "__main__":
    main()
