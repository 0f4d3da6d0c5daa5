"""The engine alone: in-memory tensors, a tiny model, no MLflow, Hydra or data files.

Listeners are handed plain records (a :class:`FitStart`, an :class:`EpochRecord` per epoch, the
:class:`RunOutcome`); one that ends the run raises the run's stop flag, which the engine reads
once every listener has seen the epoch; a non-finite loss ends the run as diverged.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lrdecay.core.data import DataBundle
from lrdecay.core.engine import Engine, TrainerSettings
from lrdecay.core.listeners import FitStart, Listener, StopFlag
from lrdecay.core.outcome import RunOutcome, RunStatus
from lrdecay.core.records import EpochRecord
from lrdecay.core.schedulers import SequenceScheduler
from lrdecay.core.sequences import make_sequence
from lrdecay.core.splits import Split
from lrdecay.core.strategies import make_strategy

FEATURES, CLASSES = 8, 3


def _split(n: int, seed: int) -> Split:
    """``n`` separable samples: the class is the index of the largest of the first features."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, FEATURES, generator=g)
    return Split(x, x[:, :CLASSES].argmax(1))


def _engine(
    epochs: int,
    listeners: list[Listener],
    train: Split | None = None,
    stop: StopFlag | None = None,
    test: bool = False,
) -> Engine:
    torch.manual_seed(0)
    model = nn.Linear(FEATURES, CLASSES)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = SequenceScheduler(optimizer, make_sequence("seq3"), make_strategy("epoch"))
    data = DataBundle(
        "toy", train or _split(256, 1), _split(64, 2), _split(64, 3) if test else None, CLASSES
    )
    settings = TrainerSettings(max_epochs=epochs, batch_size=32, eval_batch_size=64)
    return Engine(model, optimizer, scheduler, data, settings, listeners, stop=stop)


class Recorder(Listener):
    """Keeps everything the engine hands it, and the stop flag as it stood at each epoch."""

    def __init__(self, stop: StopFlag | None = None) -> None:
        self.start: FitStart | None = None
        self.records: list[EpochRecord] = []
        self.outcome: RunOutcome | None = None
        self.stop = stop
        self.flag_seen: list[bool] = []

    def on_fit_start(self, start: FitStart) -> None:
        self.start = start

    def on_epoch_end(self, record: EpochRecord) -> None:
        self.records.append(record)
        if self.stop is not None:
            self.flag_seen.append(bool(self.stop))

    def on_fit_end(self, outcome: RunOutcome) -> None:
        self.outcome = outcome


class PruneAt(Listener):
    """Asks the engine to stop after ``epoch``, as a search's pruner does."""

    def __init__(self, epoch: int, stop: StopFlag) -> None:
        self.epoch, self.stop = epoch, stop

    def on_epoch_end(self, record: EpochRecord) -> None:
        if record.epoch == self.epoch:
            self.stop.request(RunStatus.PRUNED, f"pruned at epoch {record.epoch}")


def test_each_epoch_hands_the_listeners_one_record_and_the_outcome_holds_them_all() -> None:
    recorder = Recorder()
    engine = _engine(4, [recorder], test=True)
    outcome = engine.fit()

    assert recorder.start == FitStart(max_epochs=4, epochs_done=0, train_samples=256, device="cpu")
    assert [r.epoch for r in recorder.records] == [1, 2, 3, 4]
    assert outcome.history == recorder.records
    assert recorder.outcome is outcome
    assert outcome.status == RunStatus.FINISHED and outcome.ok and not outcome.diverged
    assert outcome.epochs_run == 4
    assert outcome.final_val_acc == recorder.records[-1].val_acc
    assert outcome.best_val_acc == max(r.val_acc for r in recorder.records)
    assert outcome.final_val_acc > 0.8  # a separable problem is learnt
    # the test split scored once, with the weights of the last epoch
    test = _split(64, 3)
    with torch.no_grad():
        logits = engine.model(test.x)
    assert outcome.test_acc == pytest.approx((logits.argmax(1) == test.y).float().mean().item())
    assert outcome.test_loss == pytest.approx(nn.functional.cross_entropy(logits, test.y).item())
    # the rate of each epoch is the one trained with; seq3 advanced every epoch: r0 · 0.9^(e-1)
    assert [r.lr for r in recorder.records] == pytest.approx([0.1 * 0.9**k for k in range(4)])
    assert [r.lr_advances for r in recorder.records] == [1, 2, 3, 4]


def test_the_stop_flag_ends_the_run_after_every_listener_saw_that_epoch() -> None:
    stop = StopFlag()
    after = Recorder(stop)  # a listener after the one that stops the run
    outcome = _engine(10, [PruneAt(3, stop), after], stop=stop).fit()

    assert outcome.status == RunStatus.PRUNED and not outcome.ok
    assert outcome.epochs_run == 3 and len(outcome.history) == 3
    assert [r.epoch for r in after.records] == [1, 2, 3]  # epoch 3 still reached it
    assert after.flag_seen == [False, False, True]
    assert after.outcome is outcome  # the run is summarised as usual
    assert stop.reason == "pruned at epoch 3"
    assert outcome.status.mlflow == "KILLED"


def test_a_non_finite_loss_ends_the_run_as_diverged_without_scoring_the_test_split() -> None:
    poisoned = _split(256, 1)
    poisoned.x[5, 0] = math.inf  # the first epoch's loss is not finite
    recorder = Recorder()
    outcome = _engine(10, [recorder], train=poisoned, test=True).fit()

    assert outcome.status == RunStatus.DIVERGED and outcome.diverged and not outcome.ok
    assert outcome.epochs_run == 1 and [r.epoch for r in recorder.records] == [1]
    assert not math.isfinite(recorder.records[0].train_loss)
    assert recorder.records[0].lr_advances == 0  # no scheduler step on a non-finite loss
    assert outcome.test_acc is None and outcome.test_loss is None
    assert outcome.predictions is None  # nothing scored, nothing kept
    assert outcome.status.mlflow == "FAILED"


@pytest.mark.parametrize("test", [False, True], ids=["validation-scores", "test-scores"])
def test_the_scoring_pass_keeps_each_item_s_predicted_class(test: bool) -> None:
    """The split that scores the run (the held-out test split, else the validation split)
    yields its predictions from the pass that scored it, in the split's order across batches."""
    engine = _engine(2, [], test=test)
    engine.settings.eval_batch_size = 24  # three batches of the 64 items
    outcome = engine.fit()
    kept = outcome.predictions
    assert kept is not None and kept.split == ("test" if test else "val") and kept.n == 64
    split = engine.data.test if test else engine.data.val
    assert split is not None and kept.labels.tolist() == split.y.tolist()
    with torch.inference_mode():
        assert kept.predicted.tolist() == engine.model(split.x).argmax(1).tolist()
    assert kept.accuracy() == (outcome.test_acc if test else outcome.final_val_acc)


def test_a_run_resumed_after_its_last_epoch_keeps_the_same_predictions() -> None:
    """Restored with every epoch done, no validation pass runs: the same weights are scored."""
    first = _engine(2, [])
    done = first.fit()
    resumed = _engine(2, [])
    resumed.model.load_state_dict(first.model.state_dict())
    resumed.history = list(first.history)
    again = resumed.fit()
    assert done.predictions is not None and again.predictions is not None
    assert again.predictions.predicted.tolist() == done.predictions.predicted.tolist()


def test_the_outcome_round_trips_through_result_json_without_its_history() -> None:
    outcome = _engine(2, []).fit()
    outcome.setting, outcome.job_num, outcome.overrides = "seq3-epoch", 4, ["seed=1"]

    data = outcome.to_json()
    assert "history" not in data and "predictions" not in data and data["status"] == "finished"
    back = RunOutcome.from_json(data)
    assert back.history == [] and back.status is RunStatus.FINISHED
    outcome.history = []
    assert back == outcome
    # a result.json written before the one record: "seconds" for the training time
    old = RunOutcome.from_json({"setting": "s", "status": "early_stopped", "seconds": 3.5})
    assert old.train_seconds == 3.5 and old.status == RunStatus.EARLY_STOPPED and old.ok
