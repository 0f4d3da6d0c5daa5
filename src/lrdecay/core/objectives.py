"""What a run can return to a sweeper as its objective: each name, its natural direction and the
run-level metric it reads. The one list: config validation, the run's return value and the
Optuna sweeper's default directions all read it. Plain data, no torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lrdecay.core.records import FINAL_ACC_METRIC, summary_key


@dataclass(frozen=True)
class Objective:
    """One objective: ``key`` is the MLflow summary metric its value is read from."""

    name: str
    direction: Literal["maximize", "minimize"]
    key: str
    summary: str


#: Objectives by the names ``objective`` takes, in the order the docs list them.
OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective("val_acc", "maximize", FINAL_ACC_METRIC, "final validation accuracy"),
        Objective(
            "best_val_acc", "maximize", summary_key("best_val_acc"), "best validation accuracy"
        ),
        Objective(
            "convergence_epoch",
            "minimize",
            summary_key("convergence_epoch"),
            "first epoch of the convergence rule",
        ),
        Objective("test_acc", "maximize", summary_key("test_acc"), "held-out test accuracy"),
        Objective("train_seconds", "minimize", summary_key("train_seconds"), "training wall time"),
        Objective("epochs_run", "minimize", summary_key("epochs_run"), "epochs trained"),
    )
}
