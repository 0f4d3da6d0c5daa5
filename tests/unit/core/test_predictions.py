"""Each run keeps its predictions on the split that scores it (``predictions.npz``): the file's
format, and real digits runs whose file is checked against digits' own test labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from lrdecay.core.data import digits
from lrdecay.core.predictions import PREDICTIONS_FILE, Predictions, labels_hash
from lrdecay.run import RunContext, run


def test_predictions_keep_the_smallest_type_and_round_trip_without_pickling(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 1000)
    kept = Predictions.of("test", rng.integers(0, 10, 1000), labels)
    assert kept.predicted.dtype == kept.labels.dtype == np.uint8
    path = kept.save(tmp_path / PREDICTIONS_FILE)
    back = Predictions.load(path)
    assert back.split == "test" and back.n == 1000
    assert np.array_equal(back.predicted, kept.predicted)
    assert back.labels_hash == labels_hash(labels) == labels_hash(labels.astype(np.int16))
    assert back.accuracy() == float(np.mean(kept.predicted == labels))
    assert Predictions.of("val", [0, 300], [299, 1]).predicted.dtype == np.int16


def test_a_predictions_file_that_disagrees_with_itself_is_refused(tmp_path: Path) -> None:
    good = Predictions.of("test", [1, 2, 3], [1, 2, 2])
    path = tmp_path / "bad.npz"
    np.savez(
        path, predicted=good.predicted, labels=good.labels, n=3, labels_hash="0" * 16, split="test"
    )
    with pytest.raises(ValueError, match="labels hash"):
        Predictions.load(path)
    np.savez(tmp_path / "pickled.npz", predicted=np.array([object()]), labels=good.labels)
    with pytest.raises(ValueError, match="not a predictions file"):
        Predictions.load(tmp_path / "pickled.npz")


@pytest.mark.parametrize(
    ("val_fraction", "scored_by"),
    [(0.0, "summary/final_val_acc"), (0.2, "summary/test_acc")],
    ids=["validation-is-test", "test-held-out"],
)
def test_a_run_logs_its_predictions_on_the_split_that_scores_it(
    make_cfg, tracking_uri: str, tmp_path: Path, val_fraction: float, scored_by: str
) -> None:
    """2 epochs on digits: the artifact holds a prediction for each of the 360 test items, the
    hash of digits' test labels, and the accuracy the run logged."""
    cfg = make_cfg(
        "setting=seq3-epoch", "trainer.max_epochs=2", f"dataset.val_fraction={val_fraction}"
    )
    outcome = run(cfg, RunContext(base_dir=tmp_path))
    client = MlflowClient(tracking_uri)
    assert PREDICTIONS_FILE in {a.path for a in client.list_artifacts(outcome.run_id)}
    local = Path(client.download_artifacts(outcome.run_id, PREDICTIONS_FILE, str(tmp_path)))
    with np.load(local, allow_pickle=False) as archive:
        predicted, n = archive["predicted"], int(archive["n"])
        digest, split = str(archive["labels_hash"]), str(archive["split"])
    labels = digits()[1].y.numpy()  # the data set's own test split
    assert n == predicted.size == labels.size == 360
    assert predicted.dtype == np.uint8
    assert digest == labels_hash(labels)
    assert split == ("test" if val_fraction else "val")
    logged = client.get_run(outcome.run_id).data.metrics[scored_by]
    assert float(np.mean(predicted == labels)) == logged
