"""The report's section on the validation loss after its minimum, on synthetic histories whose
minimum, rise, accuracies and rate moves are known."""

from __future__ import annotations

import pytest

from lrdecay.core.outcome import RunOutcome, RunStatus
from lrdecay.report.overfitting import TITLE, loss_rises, markdown, reading, run_loss
from lrdecay.report.runs import RunRecord
from lrdecay.report.stats import summarise

EPOCHS = 20


def _record(
    setting: str,
    seed: int,
    minimum: int | None,
    moves_at: tuple[int, ...] = (),
    strategy: str = "oscillate",
    scheduler: str = "",
) -> RunRecord:
    """A run whose validation loss falls to 0.2 at epoch ``minimum`` and then rises by 0.01 an
    epoch (``None``: it falls to the last epoch); its accuracy is 0.9 at the minimum and 0.003
    higher at the last epoch; its rate halves going into each epoch of ``moves_at``."""
    low = minimum or EPOCHS
    loss = {e: 0.2 + 0.05 * (low - e) if e <= low else 0.2 + 0.01 * (e - low) for e in range(1, 21)}
    acc = {e: 0.9 for e in range(1, EPOCHS + 1)}
    acc[EPOCHS] = 0.903 if minimum is not None else 0.9
    rate, lrs = 0.01, {}
    for e in range(1, EPOCHS + 1):
        rate /= 2 if e in moves_at else 1
        lrs[e] = rate
    sequence, optimizer = (
        ("constant", setting.split("-")[0])
        if strategy == "fixed"
        else (
            setting.split("-")[0],
            "sgd",
        )
    )
    return RunRecord(
        outcome=RunOutcome(
            RunStatus.FINISHED,
            setting=setting,
            run_id=f"{setting}-{seed}",
            final_val_acc=acc[EPOCHS],
            test_acc=0.9,
            epochs_run=EPOCHS,
        ),
        optimizer=optimizer,
        sequence=sequence,
        strategy=strategy,
        seed=str(seed),
        dataset="digits",
        params={"trainer.max_epochs": str(EPOCHS)},
        history={"val_loss": loss, "val_acc": acc, "lr": lrs},
        scheduler=scheduler,
    )


def test_one_run_minimum_rise_accuracies_and_moves() -> None:
    run = run_loss(_record("seq3-oscillate", 0, minimum=8, moves_at=(5, 12, 15)))
    assert run is not None
    assert (run.min_epoch, run.last_epoch) == (8, EPOCHS)
    assert run.min_loss == pytest.approx(0.2)
    assert run.rise == pytest.approx(0.12) and run.relative_rise == pytest.approx(0.6)
    assert (run.acc_at_min, run.acc_at_last) == (0.9, 0.903)
    assert (run.moves, run.moves_after) == (3, 2)
    assert run.late_rate == pytest.approx(0.01 / 8)  # epochs 11-20: six of ten at r0/8


def test_a_loss_that_keeps_falling_has_its_minimum_at_the_last_epoch() -> None:
    run = run_loss(_record("sgd-fixed", 0, minimum=None, strategy="fixed"))
    assert run is not None and run.min_epoch == EPOCHS and run.rise == 0.0
    assert (run.moves, run.moves_after) == (0, 0)


def test_the_section_averages_seeds_and_reads_what_follows() -> None:
    records = [
        _record("seq3-oscillate", 0, minimum=8, moves_at=(5, 12, 15)),
        _record("seq3-oscillate", 1, minimum=10, moves_at=(5, 11, 13, 17)),
        _record("seq3-cutoff", 0, minimum=9, moves_at=(4,), strategy="cutoff"),
        _record("seq3-cutoff", 1, minimum=9, moves_at=(4,), strategy="cutoff"),
        _record("seq3-epoch", 0, minimum=12, moves_at=tuple(range(2, 21)), strategy="epoch"),
        _record(
            "plateau",
            0,
            minimum=14,
            moves_at=(16, 19),
            strategy="epoch",
            scheduler="torch.optim.lr_scheduler.ReduceLROnPlateau",
        ),
        _record("sgd-fixed", 0, minimum=None, strategy="fixed"),
        _record("sgd-fixed", 1, minimum=None, strategy="fixed"),
    ]
    rows = summarise(records, None)
    arms = {a.row.setting: a for a in loss_rises(rows)}
    osc = arms["seq3-oscillate"]
    assert osc.mean("min_epoch") == 9.0  # (8 + 10) / 2
    assert osc.mean("rise") == pytest.approx((0.12 + 0.10) / 2)
    assert (osc.mean("moves_after"), osc.mean("moves")) == (2.5, 3.5)
    assert osc.reader == "oscillate" and osc.rises and osc.moving
    assert arms["plateau"].reader == "plateau" and arms["seq3-epoch"].reader is None
    assert not arms["sgd-fixed"].rises and not arms["sgd-fixed"].moving

    lines = markdown(rows)
    assert lines[0] == f"## {TITLE}"
    row = next(line for line in lines if "| seq3-oscillate |" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:] == [
        "yes",
        "9.0 (8–10)",
        "0.2000 → 0.3100",
        "+0.1100 (+55%)",
        "0.9000 → 0.9030",
        "2.5 of 3.5",
    ]
    fixed = next(line for line in lines if "| sgd-fixed |" in line)
    assert "| 20.0 |" in fixed and "+0.0000 (+0%)" in fixed and fixed.endswith("| – |")

    text = reading(loss_rises(rows))
    assert "rises after an early minimum in 4 of the 4 arms whose rate moves" in text
    assert "their minimum comes at epoch 9.0–14.0" in text
    assert "At a fixed rate the minimum comes at epoch 20.0 of 20 for sgd-fixed (+0%" in text
    assert "changes by +0.30 points" in text and "the accuracy holds" in text
    assert "Cutoff, oscillate and plateau move the rate" in text
    assert "triggers rate moves that are not about optimisation progress" in text
    # cutoff: 0 of 2 moves after the minimum; oscillate: 5 of 7; plateau: 2 of 2
    assert "0% of cutoff's, 71% of oscillate's and 100% of plateau's rate moves" in text
    assert "Spearman ρ" in text


def test_without_a_rise_the_reading_says_so() -> None:
    """A loss still falling at the end, and one that rises 10% from a minimum at epoch 18 of
    20 (a wobble at the end, not an early minimum): neither rises after an early minimum."""
    records = [
        _record("seq3-oscillate", 0, minimum=None, moves_at=(5,)),
        _record("seq1-oscillate", 0, minimum=18, moves_at=(5,)),
        _record("sgd-fixed", 0, minimum=None, strategy="fixed"),
    ]
    arms = loss_rises(summarise(records, None))
    late = next(a for a in arms if a.row.setting == "seq1-oscillate")
    assert late.mean("relative_rise") == pytest.approx(0.1) and not late.rises
    text = reading(arms)
    assert "in 0 of the 2 arms whose rate moves" in text
    assert "would trigger rate moves" in text and "in none of these arms did it rise" in text
    assert "Spearman" not in text  # too few arms to rank


def test_runs_without_a_validation_loss_leave_no_section() -> None:
    record = _record("seq3-epoch", 0, minimum=5, strategy="epoch")
    record.history.pop("val_loss")
    assert markdown(summarise([record], None)) == []
