"""PyTorch's schedulers as arms of the study: each ready option logs what the same scheduler does
in a plain loop, resumes exactly, reproduces seq3 by epoch, and bad configs are one line."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LinearLR,
    OneCycleLR,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)

from lrdecay.core.outcome import RunOutcome, RunStatus
from lrdecay.core.records import epoch_key
from lrdecay.core.schedulers import BATCH_LR_METRIC, WarmupStableDecayLR
from lrdecay.errors import ConfigError
from lrdecay.palette import MODERN_COLORS
from lrdecay.report.claims import check_claims
from lrdecay.report.figure_common import styles
from lrdecay.report.figures import write_figures
from lrdecay.report.modern_claims import check_modern
from lrdecay.report.runs import RunRecord
from lrdecay.report.stats import summarise
from lrdecay.report.tables import build_table, to_markdown
from lrdecay.run import RunContext, run
from lrdecay.tracking.ui import setting_colour
from tests.conftest import compose_config, error_line, run_cli
from tests.helpers import InterruptAt, new_store, table_rows

EPOCHS = 4
R0 = 0.01
#: Overrides that make step and plateau move within a few epochs (their defaults suit 50).
MOVES = {
    "step": ["sequence.scheduler.step_size=2"],
    "plateau": ["sequence.scheduler.patience=0", "sequence.scheduler.threshold=0.5"],
}

#: The ready options stepped after every optimizer step.
PER_BATCH = ("onecycle", "warmup_cosine", "wsd")

#: A data set that cannot load: a check made after loading would fail on it instead.
NO_DATA = ("dataset=mnist", "data.root=/nonexistent/data", "data.download=false")


def _history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _only(uri: str):
    client = MlflowClient(uri)
    (found,) = client.search_runs([client.get_experiment_by_name("lrdecay-digits").experiment_id])
    return client, found


def _plain_loop(
    name: str, steps: int, val_losses: list[float], epochs: int = EPOCHS
) -> tuple[list[float], list[float]]:
    """The rate in force at each epoch's start and at each batch, from the PyTorch scheduler
    alone, built by hand with the ready option's arguments and the same budget."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=R0, momentum=0.9)
    per_batch = name in PER_BATCH
    if name == "cosine":
        sched = CosineAnnealingLR(opt, T_max=epochs, eta_min=0.0)
    elif name == "onecycle":
        sched = OneCycleLR(opt, max_lr=R0, epochs=epochs, steps_per_epoch=steps, pct_start=0.3)
    elif name == "warmup_cosine":
        warm = LinearLR(opt, start_factor=0.01, end_factor=1.0, total_iters=steps)
        cos = CosineAnnealingLR(opt, T_max=epochs * steps - steps, eta_min=0.0)
        sched = SequentialLR(opt, [warm, cos], milestones=[steps])
    elif name == "wsd":
        sched = WarmupStableDecayLR(opt, epochs, steps, 0.05, 0.2, "sqrt", 0.01, 0.0)
    elif name == "step":
        sched = StepLR(opt, step_size=2, gamma=0.1)
    else:
        sched = ReduceLROnPlateau(opt, factor=0.1, patience=0, threshold=0.5)
    epoch_lrs, batch_lrs = [], []
    for epoch in range(epochs):
        epoch_lrs.append(sched.get_last_lr()[0])
        for _ in range(steps):
            batch_lrs.append(sched.get_last_lr()[0])
            opt.step()
            if per_batch:
                sched.step()
        if isinstance(sched, ReduceLROnPlateau):
            sched.step(val_losses[epoch])
        elif not per_batch:
            sched.step()
    return epoch_lrs, batch_lrs


@pytest.mark.parametrize("name", ["cosine", "onecycle", "warmup_cosine", "wsd", "step", "plateau"])
def test_each_ready_option_logs_the_rates_of_the_same_pytorch_scheduler(
    name: str, make_cfg, tracking_uri: str
) -> None:
    summary = run(
        make_cfg(f"sequence={name}", f"trainer.max_epochs={EPOCHS}", *MOVES.get(name, []))
    )
    client, found = _only(tracking_uri)
    assert found.info.run_name == name and found.data.tags["setting"] == name
    assert found.data.tags["scheduler"].startswith(("torch.optim.", "lrdecay."))
    assert found.data.tags["mlflow.runColor"] == MODERN_COLORS[name]  # its own, as in the report
    steps = int(found.data.params["sequence.steps_per_epoch"])  # the run's own count
    losses = [r.val_loss for r in summary.history]
    epoch_lrs, batch_lrs = _plain_loop(name, steps, losses)
    logged = _history(client, found.info.run_id, epoch_key("lr"))
    assert logged == list(enumerate(epoch_lrs, start=1))
    assert len(set(epoch_lrs)) > 1, "the schedule moved within the budget"
    per_batch = _history(client, found.info.run_id, BATCH_LR_METRIC)
    if name in PER_BATCH:  # every optimizer step, counted over the run
        assert per_batch == list(enumerate(batch_lrs, start=1))
    else:
        assert per_batch == []


def test_exponential_lr_by_import_path_reproduces_seq3_by_epoch(tmp_path: Path) -> None:
    """docs/usage.md's example: ``sequence=torch`` with ExponentialLR(gamma=0.9) is seq3 by epoch.
    Losses and accuracies are bit-identical; the rate agrees to the last bits (PyTorch multiplies
    by gamma each epoch, seq3 takes gamma^k)."""
    base = [
        "dataset=digits",
        "tracking.enabled=false",
        "trainer.progress=off",
        "trainer.max_epochs=6",
    ]
    seq3 = run(compose_config([*base, "sequence=seq3", "strategy=epoch"]))
    torch_run = run(
        compose_config(
            [
                *base,
                "sequence=torch",
                "sequence.scheduler._target_=torch.optim.lr_scheduler.ExponentialLR",
                "+sequence.scheduler.gamma=0.9",
            ]
        )
    )
    for a, b in zip(seq3.history, torch_run.history, strict=True):
        assert (a.train_loss, a.val_loss, a.val_acc, a.lr_advances) == (
            b.train_loss,
            b.val_loss,
            b.val_acc,
            b.lr_advances,
        )
        assert b.lr == pytest.approx(a.lr, rel=1e-12, abs=0)
    assert torch_run.final_val_acc == seq3.final_val_acc
    assert torch_run.convergence_epoch == seq3.convergence_epoch


def test_an_epoch_scheduler_moves_when_the_strategy_says(make_cfg) -> None:
    """The study's triggers time any epoch-stepped scheduler: ExponentialLR by cutoff is seq3 by
    cutoff, and under fixed the rate never moves."""
    base = ["trainer.max_epochs=5", "tracking.enabled=false"]
    exp = [
        "sequence=torch",
        "sequence.scheduler._target_=torch.optim.lr_scheduler.ExponentialLR",
        "+sequence.scheduler.gamma=0.9",
    ]
    seq3 = run(make_cfg(*base, "sequence=seq3", "strategy=oscillate"))
    ours = run(make_cfg(*base, *exp, "strategy=oscillate"))
    assert [r.lr_advances for r in ours.history] == [r.lr_advances for r in seq3.history]
    assert [r.val_loss for r in ours.history] == [r.val_loss for r in seq3.history]
    fixed = run(make_cfg(*base, *exp, "strategy=fixed"))
    assert {r.lr for r in fixed.history} == {R0}


@pytest.mark.parametrize("name", ["onecycle", "plateau"])
def test_resume_mid_run_continues_the_rate_history_exactly(name: str, tmp_path: Path) -> None:
    def cfg(store: str, *extra: str):
        return compose_config(
            [
                "dataset=digits",
                f"tracking.uri={new_store(tmp_path / store)}",
                "trainer.progress=off",
                "tracking.log_plot=false",
                "trainer.max_epochs=5",
                f"sequence={name}",
                *MOVES.get(name, []),
                *extra,
            ]
        )

    def ctx(folder: str) -> RunContext:
        return RunContext(base_dir=tmp_path, output_dir=tmp_path / folder)

    torch.use_deterministic_algorithms(True)
    try:
        whole = run(cfg("a.db"), ctx("a"))
        with pytest.raises(KeyboardInterrupt):
            run(cfg("b.db"), ctx("b1"), extra_listeners=[InterruptAt(2)])
        resumed = run(cfg("b.db", "resume=true"), ctx("b2"))
    finally:
        torch.use_deterministic_algorithms(False)
    assert len(resumed.history) == 5
    assert [r.lr for r in resumed.history] == [r.lr for r in whole.history]
    assert [r.lr_advances for r in resumed.history] == [r.lr_advances for r in whole.history]
    assert [r.val_loss for r in resumed.history] == [r.val_loss for r in whole.history]
    assert len({r.lr for r in whole.history}) > 1  # it moved, after the interruption too
    client_a, run_a = _only(f"sqlite:///{tmp_path / 'a.db'}")
    client_b, run_b = _only(f"sqlite:///{tmp_path / 'b.db'}")  # one run: resumed in place
    for key in (epoch_key("lr"), BATCH_LR_METRIC):
        logged = _history(client_b, run_b.info.run_id, key)
        assert logged == _history(client_a, run_a.info.run_id, key), key
    if name == "onecycle":
        assert len(_history(client_b, run_b.info.run_id, BATCH_LR_METRIC)) > 5


def _wsd_rates(steps: int = 100, **kwargs: Any) -> list[float]:
    """The rate each of ``steps`` batches (one epoch of them) trains with under
    WarmupStableDecayLR from r0 = 1, and the rate after the last."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupStableDecayLR(opt, epochs=1, steps_per_epoch=steps, **kwargs)
    rates = []
    for _ in range(steps):
        rates.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return [*rates, sched.get_last_lr()[0]]


@pytest.mark.parametrize(
    ("decay", "halfway"), [("linear", 0.5), ("cosine", 0.5), ("sqrt", 1 - 0.5**0.5)]
)
def test_wsd_warms_up_holds_and_decays_at_its_phase_boundaries(decay: str, halfway: float) -> None:
    """100 steps: warm-up over the first 10, decay over the last 30 (steps 70..100)."""
    rates = _wsd_rates(
        warmup_fraction=0.1, decay_fraction=0.3, decay=decay, start_factor=0.1, end_factor=0.02
    )
    assert rates[0] == pytest.approx(0.1)  # the first batch: start_factor · r0
    assert rates[5] == pytest.approx(0.1 + 0.9 * 0.5)  # half-way up, linearly
    assert rates[10] == rates[69] == rates[70] == 1.0  # stable, up to the decay's first step
    assert rates[85] == pytest.approx(0.02 + 0.98 * halfway)  # half-way down, in its shape
    assert rates[100] == pytest.approx(0.02)  # the budget's end: end_factor · r0
    assert rates[:11] == sorted(rates[:11]) and rates[70:] == sorted(rates[70:], reverse=True)
    assert rates[99] > rates[100]


def test_wsd_without_warm_up_or_decay_is_a_constant_rate() -> None:
    assert set(_wsd_rates(warmup_fraction=0.0, decay_fraction=0.0)) == {1.0}
    assert _wsd_rates(warmup_fraction=0.0, decay_fraction=1.0, decay="linear")[50] == 0.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"warmup_fraction": -0.1}, r"warmup_fraction must be in \[0, 1\], got -0.1"),
        ({"decay_fraction": 1.5}, r"decay_fraction must be in \[0, 1\], got 1.5"),
        ({"warmup_fraction": 0.6, "decay_fraction": 0.5}, "must be <= 1, got 0.6 \\+ 0.5"),
        ({"decay": "exp"}, "decay must be one of linear, cosine, sqrt, got 'exp'"),
        ({"end_factor": 2.0}, r"end_factor must be in \[0, 1\]"),
    ],
)
def test_wsd_refuses_phases_that_do_not_fit_the_budget(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _wsd_rates(**kwargs)


def test_wsd_phases_are_set_from_the_command_line(make_cfg) -> None:
    """decay_fraction=0.5 over 4 epochs: the decay starts with epoch 3, so epoch 4 starts
    half-way down (1 − √0.5 of r0); the default 0.2 leaves epoch 4 starting at r0. A fraction
    out of range is one line."""
    base = ["sequence=wsd", "trainer.max_epochs=4", "tracking.enabled=false"]
    half = run(make_cfg(*base, "sequence.scheduler.decay_fraction=0.5"))
    assert half.history[3].lr == pytest.approx(R0 * (1 - 0.5**0.5))
    assert half.history[2].lr == pytest.approx(R0)
    with pytest.raises(ConfigError) as caught:
        run(make_cfg(*base, "sequence.scheduler.decay_fraction=1.5"))
    assert str(caught.value) == (
        "sequence.scheduler: lrdecay.core.schedulers.WarmupStableDecayLR cannot be built: "
        "decay_fraction must be in [0, 1], got 1.5"
    )


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["sequence.scheduler._target_=torch.optim.lr_scheduler.NoSuchLR"], "cannot import"),
        (["sequence.scheduler._target_=torch.optim.SGD"], "not a PyTorch LR scheduler"),
        (["sequence.scheduler._target_=collections.OrderedDict"], "not a PyTorch LR scheduler"),
        (
            ["sequence.scheduler._target_=torch.optim.lr_scheduler.CosineAnnealingLR"],
            "missing a required argument: 'T_max'",
        ),
        (
            [
                "sequence.scheduler._target_=torch.optim.lr_scheduler.StepLR",
                "+sequence.scheduler.step_size=2",
                "+sequence.scheduler.gama=0.5",
            ],
            "unexpected keyword argument 'gama'",
        ),
    ],
)
def test_a_bad_scheduler_is_one_line_before_any_data_loads(
    overrides: list[str], named: str, make_cfg, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as caught:
        run(make_cfg("sequence=torch", *NO_DATA, *overrides))
    message = str(caught.value)
    assert named in message and "\n" not in message
    assert message.startswith("sequence.scheduler")


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["sequence=torch"], "sequence.scheduler._target_"),
        (["sequence=onecycle", "strategy=cutoff"], "strategy: 'cutoff' cannot time"),
        (["sequence=plateau", "strategy=oscillate"], "strategy: 'oscillate' cannot time"),
        (["sequence=cosine", "sequence.interval=weekly"], "sequence.interval"),
        (["sequence=cosine", "+sequence.scheduler.optimizer=1"], "own optimizer"),
    ],
)
def test_a_scheduler_config_that_cannot_run_is_one_line(overrides, named: str, make_cfg) -> None:
    with pytest.raises(ConfigError) as caught:
        run(make_cfg(*NO_DATA, *overrides))
    assert named in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.slow
def test_the_cli_says_an_unknown_target_in_one_line(tmp_path: Path) -> None:
    proc = run_cli(
        [
            "dataset=digits",
            "tracking.enabled=false",
            "sequence=torch",
            "sequence.scheduler._target_=torch.optim.lr_scheduler.NoSuchLR",
        ],
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cannot import 'torch.optim.lr_scheduler.NoSuchLR'" in error_line(
        proc.stdout + proc.stderr
    )


MODERN = (
    "cosine",
    "onecycle",
    "warmup_cosine",
    "step",
    "plateau",
    "wsd",
    "adamw-fixed",
    "sgd_schedulefree-fixed",
    "prodigy-fixed",
)


@pytest.mark.slow
def test_the_race_preset_reports_a_modern_baselines_block(tmp_path: Path) -> None:
    """experiment=paper_plus_modern on digits: 23 settings x 2 seeds in one launch, and the
    sweep's report shows the modern block in its table, figures and claims."""
    proc = run_cli(
        [
            "-m",
            "experiment=paper_plus_modern",
            "dataset=digits",
            "trainer.max_epochs=3",
            "seed=1,2",
            "trainer.progress=off",
            "tracking.log_plot=false",
        ],
        cwd=tmp_path,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (report,) = tmp_path.glob("multirun/*/*/report")
    rows = {r["setting"]: r for r in csv.DictReader((report / "table.csv").open())}
    assert len(rows) == 23
    assert {s for s, r in rows.items() if r["group"] == "Modern baselines"} == set(MODERN)
    assert all(rows[s]["runs"] == "2" for s in MODERN)
    table = (report / "table.md").read_text()
    assert ["**Modern baselines**", "cosine"] in [row[:2] for row in table_rows(table)]
    text = (report / "report.md").read_text()
    heading = "## Modern baselines: the paper's schemes against today's schedules and optimizers"
    assert heading in text
    assert "Does any of the paper's decay schemes beat cosine annealing (cosine)?" in text
    assert "beat schedule-free SGD (sgd_schedulefree-fixed)?" in text
    assert "A fourth panel, Modern baselines" in text
    for png in ("val_acc.png", "learning_rate.png", "best_vs_baselines.png"):
        assert (report / png).read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_an_optuna_search_picks_among_sequences_and_pytorch_schedulers(tmp_path: Path) -> None:
    proc = run_cli(
        [
            "-m",
            "hydra/sweeper=optuna",
            "hydra/sweeper/sampler=grid",
            "dataset=digits",
            "trainer.progress=off",
            "tracking.log_plot=false",
            "report.enabled=false",
            "trainer.max_epochs=2",
            "sequence=choice(seq3,cosine,onecycle)",
            "hydra.sweeper.n_trials=3",
        ],
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("lrdecay-digits")
    runs = client.search_runs([experiment.experiment_id], "tags.setting != ''")
    assert sorted(r.data.tags["setting"] for r in runs) == ["cosine", "onecycle", "seq3-epoch"]
    assert {r.info.status for r in runs} == {"FINISHED"}


def _record(
    setting: str, seed: int, final: float, scheduler: str = "", optimizer: str = "sgd"
) -> RunRecord:
    """A digits run of 10 epochs (its logged rate decays each epoch); a fixed-rate setting is
    ``<optimizer>-fixed`` with the constant sequence."""
    sequence, _, strategy = setting.partition("-")
    if strategy == "fixed":
        optimizer, sequence = sequence, "constant"
    return RunRecord(
        outcome=RunOutcome(
            RunStatus.FINISHED,
            setting=setting,
            run_id=f"{setting}-{seed}",
            final_val_acc=final,
            convergence_epoch=10,
            epochs_run=10,
        ),
        optimizer=optimizer,
        sequence=sequence,
        strategy=strategy or "epoch",
        seed=str(seed),
        dataset="digits",
        params={"trainer.max_epochs": "10"},
        history={
            "lr": {e: 0.01 * 0.9 ** (e - 1) for e in range(1, 11)},
            "val_acc": {e: final * e / 10 for e in range(1, 11)},
            "val_loss": {e: 1.0 / e for e in range(1, 11)},
        },
        scheduler=scheduler,
    )


@pytest.mark.parametrize(
    ("cosine", "verdict"), [(0.95, "no: cosine beats every scheme"), (0.85, "yes: seq3-epoch")]
)
def test_the_report_weighs_the_schemes_against_a_modern_baseline(
    cosine: float, verdict: str, tmp_path: Path
) -> None:
    """Ten seeds each: cosine far ahead of (or behind) every scheme gets the verdict, with the
    schemes' claims still weighed among the study's settings alone."""
    means = {"seq3-epoch": 0.90, "seq1-epoch": 0.88, "seq3-cutoff": 0.80, "cosine": cosine}
    rng = np.random.default_rng(0)
    records = [
        _record(
            s,
            seed,
            m + rng.normal(0, 0.001),
            "torch.optim.lr_scheduler.CosineAnnealingLR" if s == "cosine" else "",
        )
        for s, m in means.items()
        for seed in range(10)
    ]
    rows = summarise(records, target=None)
    assert [(s.group, s.setting) for s in rows][-1] == ("Modern baselines", "cosine")
    (claim,) = check_modern(rows)
    assert claim.key == "beats_cosine" and claim.verdict.startswith(verdict), claim
    assert "cannot test it directly" not in claim.markdown(["digits"])
    study = {c.key: c for c in check_claims(rows)}
    assert "best rival seq1-epoch" in study["seq3_epoch"].detail  # cosine is no rival there
    table = to_markdown(build_table(rows, None))
    assert ["**Modern baselines**", "cosine"] in [row[:2] for row in table_rows(table)]
    figures = write_figures(rows, tmp_path)
    assert "Modern baselines" in figures[0].caption
    assert all(f.path.read_bytes().startswith(b"\x89PNG") for f in figures)


def test_schedule_free_and_wsd_runs_join_the_modern_block_with_a_question_each(
    tmp_path: Path,
) -> None:
    """A fixed-rate schedule-free SGD run (no scheduler: an optimizer beyond the study's) and a
    wsd run (a scheduler) are both modern baselines, after the ready schedulers and in their
    own colours; each gets its question, and neither is a rival in the study's claims."""
    means = {
        "seq3-epoch": 0.90,
        "seq1-epoch": 0.88,
        "seq3-cutoff": 0.80,
        "sgd-fixed": 0.82,
        "adam-fixed": 0.84,
        "sgd_schedulefree-fixed": 0.95,
        "wsd": 0.85,
    }
    rng = np.random.default_rng(0)
    wsd_class = "lrdecay.core.schedulers.WarmupStableDecayLR"
    records = [
        _record(s, seed, m + rng.normal(0, 0.001), wsd_class if s == "wsd" else "")
        for s, m in means.items()
        for seed in range(10)
    ]
    rows = summarise(records, target=None)
    groups = {s.setting: s.group for s in rows}
    assert [s.setting for s in rows if s.group == "Modern baselines"] == [
        "wsd",
        "sgd_schedulefree-fixed",
    ]
    assert groups["sgd-fixed"] == groups["adam-fixed"] == "Benchmark"

    claims = {c.key: c for c in check_modern(rows)}
    assert set(claims) == {"beats_wsd", "beats_sgd_schedulefree-fixed"}
    free = claims["beats_sgd_schedulefree-fixed"]
    assert free.text == (
        "Does any of the paper's decay schemes beat schedule-free SGD (sgd_schedulefree-fixed)?"
    )
    assert free.verdict.startswith("no: sgd_schedulefree-fixed beats every scheme"), free
    wsd = claims["beats_wsd"]
    assert wsd.text == "Does any of the paper's decay schemes beat warm-up–stable–decay (wsd)?"
    assert wsd.verdict.startswith("yes: seq3-epoch"), wsd
    study = {c.key: c for c in check_claims(rows)}
    assert "best rival seq1-epoch" in study["seq3_epoch"].detail  # 0.95 is no rival there

    table = to_markdown(build_table(rows, None))
    assert ["**Modern baselines**", "wsd"] in [row[:2] for row in table_rows(table)]
    assert "schedule-free ones (scored on their averaged weights)" in table
    drawn = styles(rows)
    assert drawn["sgd_schedulefree-fixed"].color == MODERN_COLORS["sgd_schedulefree-fixed"]
    assert drawn["wsd"].color == MODERN_COLORS["wsd"]
    assert (
        setting_colour("sgd_schedulefree-fixed", "constant", "fixed")
        == MODERN_COLORS["sgd_schedulefree-fixed"]
    )
    figures = write_figures(rows, tmp_path)
    assert "schedule-free and learning-rate-free optimizers" in figures[0].caption
