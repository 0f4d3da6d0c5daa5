"""Sequences, strategies and SequenceScheduler against hand-computed values and torch."""

from __future__ import annotations

import math

import pytest
import torch

from lrdecay.core.schedulers import SequenceScheduler
from lrdecay.core.sequences import Geometric, make_sequence
from lrdecay.core.strategies import Cutoff, EveryEpoch, Never, Oscillate, make_strategy


def _terms(name: str, count: int, **kw: float) -> list[float]:
    seq = make_sequence(name, **kw)
    return [seq.rate(1.0, k) for k in range(count)]


def test_seq1_is_r0_over_n() -> None:
    assert _terms("seq1", 5) == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])


def test_seq2_is_r0_over_sqrt_n() -> None:
    assert _terms("seq2", 4) == pytest.approx([1, 1 / math.sqrt(2), 1 / math.sqrt(3), 0.5])


def test_seq3_is_geometric_and_its_gamma_is_configurable() -> None:
    assert _terms("seq3", 4) == pytest.approx([1, 0.9, 0.81, 0.729])
    assert _terms("seq3", 3, gamma=0.5) == pytest.approx([1, 0.5, 0.25])


def test_seq4_is_the_studys_decaying_saw_tooth() -> None:
    expected = [1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.05, 0.5, 0.45, 0.4]
    assert _terms("seq4", 13) == pytest.approx(expected)
    # period 4: n=1..4 → 1, .75, .5, (1-.75)/2; n=5 → 1/2
    assert _terms("seq4", 5, period=4) == pytest.approx([1, 0.75, 0.5, 0.125, 0.5])


def test_constant_and_unknown_names() -> None:
    assert _terms("constant", 3) == [1, 1, 1]
    with pytest.raises(ValueError, match="seq1"):
        make_sequence("seq9")
    with pytest.raises(ValueError, match="cutoff"):
        make_strategy("sometimes")


def _decisions(strategy, losses):
    return [strategy.should_advance(v) for v in losses]


def test_epoch_and_fixed_strategies() -> None:
    assert _decisions(EveryEpoch(), [1.0, 2.0, None]) == [True, True, True]
    assert _decisions(Never(), [1.0, 0.5, None]) == [False, False, False]


def test_oscillate_advances_only_when_the_loss_rose() -> None:
    losses = [1.0, 0.8, 0.9, 0.9, 0.7, 0.71]
    assert _decisions(Oscillate(), losses) == [False, False, True, False, False, True]


def test_cutoff_first_threshold_and_shrink() -> None:
    # c0 = 0.01 · 1.0 = 0.01; |0.995 − 1.0| = 0.005 < 0.01 → advance, c = 0.002
    # |0.990 − 0.995| = 0.005 ≥ 0.002 → stay; |0.989 − 0.990| = 0.001 < 0.002 → advance, c = 4e-4
    strategy = Cutoff(rate=0.01, shrink=0.2)
    assert _decisions(strategy, [1.0, 0.995, 0.990, 0.989]) == [False, True, False, True]
    assert strategy.cutoff == pytest.approx(0.0004)


def test_cutoff_constants_come_from_its_arguments() -> None:
    strategy = make_strategy("cutoff", rate=0.1, shrink=0.5)
    assert _decisions(strategy, [2.0, 1.7, 1.69]) == [False, False, True]  # c0=0.2, then 0.1
    assert strategy.cutoff == pytest.approx(0.1)


def test_loss_strategies_need_the_loss() -> None:
    with pytest.raises(ValueError, match="validation loss"):
        Oscillate().should_advance(None)


def _optimizer(lr: float = 0.01) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr, momentum=0.9)


def test_seq3_by_epoch_equals_exponential_lr_over_30_epochs() -> None:
    ours_opt, ref_opt = _optimizer(), _optimizer()
    ours = SequenceScheduler(ours_opt, Geometric(0.9), EveryEpoch())
    ref = torch.optim.lr_scheduler.ExponentialLR(ref_opt, gamma=0.9)
    for _ in range(30):
        ours_opt.step()
        ref_opt.step()
        assert ours.get_last_lr() == pytest.approx(ref.get_last_lr(), rel=1e-12)
        ours.step(0.5)
        ref.step()
    assert ours.advances == 30
    assert ours_opt.param_groups[0]["lr"] == pytest.approx(0.01 * 0.9**30)


def test_scheduler_starts_at_r0_and_counts_advances() -> None:
    opt = _optimizer(0.1)
    sched = SequenceScheduler(opt, make_sequence("seq1"), Oscillate())
    assert sched.get_last_lr() == [0.1] and sched.advances == 0
    for loss in (1.0, 0.9, 0.95, 0.96):
        opt.step()
        sched.step(loss)
    assert sched.advances == 2
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 / 3)


def test_state_dict_round_trips_mid_run() -> None:
    losses = [1.0, 0.999, 0.9, 0.8999, 0.7, 0.69999, 0.6, 0.59999]
    opt_a = _optimizer()
    a = SequenceScheduler(opt_a, make_sequence("seq4"), make_strategy("cutoff"))
    for loss in losses[:4]:
        opt_a.step()
        a.step(loss)
    state = a.state_dict()
    assert all(isinstance(v, (int, float, bool, list, dict, type(None))) for v in state.values())

    opt_b = _optimizer()
    b = SequenceScheduler(opt_b, make_sequence("seq4"), make_strategy("cutoff"))
    b.load_state_dict(state)
    assert b.advances == a.advances and b.get_last_lr() == a.get_last_lr()
    assert opt_b.param_groups[0]["lr"] == opt_a.param_groups[0]["lr"]
    for loss in losses[4:]:
        opt_a.step()
        opt_b.step()
        a.step(loss)
        b.step(loss)
        assert b.get_last_lr() == a.get_last_lr() and b.advances == a.advances
    assert a.advances >= 2
