"""The study's run-level metrics."""

from __future__ import annotations

from lrdecay.core.metrics import convergence_epoch, epochs_to_target, should_early_stop


def test_convergence_epoch_is_first_quiet_window() -> None:
    acc = [0.5, 0.7, 0.8, 0.85, 0.851, 0.852, 0.853, 0.854, 0.855]
    # from epoch 4: |.851-.85|+|.852-.851|+|.853-.852|+|.854-.853| = 0.004 < 0.009
    assert convergence_epoch(acc) == 4


def test_convergence_epoch_falls_back_to_budget() -> None:
    acc = [0.1 * i for i in range(8)]
    assert convergence_epoch(acc, budget=50) == 50
    assert convergence_epoch(acc) == 8


def test_convergence_window_and_threshold_are_settable() -> None:
    acc = [0.5, 0.6, 0.605, 0.61, 0.9]
    assert convergence_epoch(acc, window=2, threshold=0.011) == 2
    assert convergence_epoch(acc, window=2, threshold=0.009) == 5


def test_epochs_to_target_and_early_stop() -> None:
    assert epochs_to_target([0.5, 0.97, 0.99], 0.97) == 2
    assert epochs_to_target([0.5, 0.6], 0.97) is None
    assert should_early_stop([1.0, 0.5, 1.0 + 5e-8], 1e-7)
    assert not should_early_stop([1.0, 0.5, 1.1], 1e-7)
    assert not should_early_stop([1.0, 1.0], 1e-7)
    assert not should_early_stop([1.0, 0.5, 1.0], None)
