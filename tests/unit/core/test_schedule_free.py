"""Schedule-free optimizers through the real engine: evaluation and checkpoints read the averaged
weights (BatchNorm statistics re-estimated for them), training the training weights, and a
resumed run continues exactly; a plain optimizer is left as it was."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from prodigyopt import Prodigy
from schedulefree import AdamWScheduleFree, SGDScheduleFree
from torch import nn

from lrdecay.core.checkpoint import CheckpointListener, load_checkpoint, restore
from lrdecay.core.data import DataBundle
from lrdecay.core.engine import Engine, TrainerSettings
from lrdecay.core.schedule_free import is_schedule_free
from lrdecay.core.schedulers import SequenceScheduler
from lrdecay.core.sequences import make_sequence
from lrdecay.core.splits import Split
from lrdecay.core.strategies import make_strategy

FEATURES, CLASSES, HIDDEN = 8, 3, 16


def _split(n: int, seed: int) -> Split:
    """``n`` separable samples: the class is the index of the largest of the first features."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, FEATURES, generator=g)
    return Split(x, x[:, :CLASSES].argmax(1))


def _linear() -> nn.Module:
    return nn.Linear(FEATURES, CLASSES)


def _batchnorm() -> nn.Module:
    return nn.Sequential(
        nn.Linear(FEATURES, HIDDEN), nn.BatchNorm1d(HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES)
    )


def _schedule_free_sgd(params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    return SGDScheduleFree(params, lr=1.0, momentum=0.9, warmup_steps=2)


def _plain_sgd(params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.1, momentum=0.9)


#: The optimizers of the modern arms and their schedule-free kin, as the configs build them
#: (Hydra passes a YAML list as a list: Prodigy's betas).
MODERN_OPTIMIZERS: dict[str, Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]] = {
    "SGDScheduleFree": _schedule_free_sgd,
    "AdamWScheduleFree": lambda p: AdamWScheduleFree(p, lr=0.01, warmup_steps=5),
    "Prodigy": lambda p: Prodigy(p, lr=1.0, betas=[0.9, 0.999]),
    "AdamW": lambda p: torch.optim.AdamW(p, lr=0.001, betas=[0.9, 0.999], weight_decay=0.01),
}


def _engine(
    model_fn: Callable[[], nn.Module] = _linear,
    epochs: int = 2,
    optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] = _schedule_free_sgd,
    n_train: int = 256,
    batch_size: int = 32,
) -> Engine:
    """A fixed-rate run of ``model_fn()`` on tensors with ``optimizer`` (schedule-free SGD at
    1.0, momentum 0.9, unless given)."""
    torch.manual_seed(0)
    model = model_fn()
    opt = optimizer(model.parameters())
    scheduler = SequenceScheduler(opt, make_sequence("constant"), make_strategy("fixed"))
    data = DataBundle("toy", _split(n_train, 1), _split(64, 2), None, CLASSES)
    settings = TrainerSettings(max_epochs=epochs, batch_size=batch_size, eval_batch_size=64)
    return Engine(model, opt, scheduler, data, settings)


def _loss(model: nn.Module, split: Split) -> float:
    """The model's mean loss on ``split``, evaluated by hand in eval mode."""
    model.eval()
    with torch.no_grad():
        return F.cross_entropy(model(split.x), split.y).item()


def test_schedule_free_optimizers_are_told_apart_by_their_modes() -> None:
    params = [nn.Parameter(torch.zeros(1))]
    assert is_schedule_free(SGDScheduleFree(params, lr=0.1))
    assert not is_schedule_free(torch.optim.SGD(params, lr=0.1))
    assert not is_schedule_free(torch.optim.AdamW(params, lr=0.1))


def test_validation_reads_the_averaged_weights_and_training_the_others() -> None:
    engine = _engine()
    outcome = engine.fit()  # would raise at the first step unless trained in train mode
    logged = outcome.history[-1].val_loss
    assert _loss(engine.model, engine.data.val) == pytest.approx(logged, rel=1e-6)
    engine.optimizer.train()  # the training weights: not what was evaluated
    assert abs(_loss(engine.model, engine.data.val) - logged) > 1e-4
    assert outcome.final_val_acc > 0.8  # and it learnt


def _bn(model: nn.Module) -> nn.BatchNorm1d:
    return next(m for m in model.modules() if isinstance(m, nn.BatchNorm1d))


def test_batchnorm_statistics_are_those_of_the_averaged_weights() -> None:
    """One training batch per epoch, so the re-estimation reads exactly the training split."""
    engine = _engine(_batchnorm, epochs=10, n_train=64, batch_size=64)
    outcome = engine.fit()
    bn, train = _bn(engine.model), engine.data.train
    with torch.no_grad():
        averaged = engine.model[0](train.x)  # what BatchNorm sees under the averaged weights
    assert bn.running_mean == pytest.approx(averaged.mean(0), abs=1e-6)
    assert bn.running_var == pytest.approx(averaged.var(0), rel=1e-5)
    assert bn.num_batches_tracked.item() == 1  # re-estimated, not three epochs' moving average
    assert _loss(engine.model, engine.data.val) == pytest.approx(
        outcome.history[-1].val_loss, rel=1e-6
    )
    engine.optimizer.train()
    with torch.no_grad():
        training = engine.model[0](train.x)
    assert (bn.running_mean - training.mean(0)).abs().max() > 1e-3  # not the training weights'


def test_a_plain_optimizer_keeps_the_statistics_training_left() -> None:
    engine = _engine(_batchnorm, 3, _plain_sgd, n_train=64, batch_size=64)
    engine.fit()
    bn = _bn(engine.model)
    before = bn.running_mean.clone()
    engine.evaluate(engine.data.val)
    assert torch.equal(bn.running_mean, before)
    assert bn.num_batches_tracked.item() == 3  # one training batch per epoch, no re-estimation


def test_a_checkpoint_holds_the_averaged_weights_in_evaluation_mode(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    first = _engine(_batchnorm, epochs=2)
    first.listeners.append(CheckpointListener(path, first))
    logged = first.fit().history[-1].val_loss
    state = load_checkpoint(path)
    fresh = _batchnorm()
    fresh.load_state_dict(state["model"])
    assert _loss(fresh, first.data.val) == pytest.approx(logged, rel=1e-6)
    assert {g["train_mode"] for g in state["optimizer"]["param_groups"]} == {False}

    first.optimizer.train()  # whatever mode it is in, a checkpoint saves the averaged weights
    training = first.model[0].weight.detach().clone()
    CheckpointListener(path, first).on_epoch_end(first.history[-1])
    saved = load_checkpoint(path)["model"]["0.weight"]
    assert saved == pytest.approx(fresh[0].weight.detach(), abs=1e-6)  # up to the round trip
    assert (saved - training).abs().max() > 1e-3


@pytest.mark.parametrize("name", MODERN_OPTIMIZERS)
def test_a_resumed_run_ends_bit_identical_to_an_uninterrupted_one(
    name: str, tmp_path: Path
) -> None:
    """BatchNorm and several batches per epoch: a run interrupted after epoch 2 and resumed
    from its checkpoint (loaded without unpickling) continues exactly."""
    optimizer = MODERN_OPTIMIZERS[name]
    whole = _engine(_batchnorm, 4, optimizer).fit()
    path = tmp_path / "checkpoint.pt"
    first = _engine(_batchnorm, 2, optimizer)
    first.listeners.append(CheckpointListener(path, first))
    first.fit()
    resumed = _engine(_batchnorm, 4, optimizer)
    restore(resumed, load_checkpoint(path), path)
    outcome = resumed.fit()
    assert [r.epoch for r in outcome.history] == [1, 2, 3, 4]
    for a, b in zip(outcome.history, whole.history, strict=True):
        assert (a.train_loss, a.val_loss, a.val_acc) == (b.train_loss, b.val_loss, b.val_acc)
    assert whole.history[0].val_loss != whole.history[-1].val_loss  # it trained
