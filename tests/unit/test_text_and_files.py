"""The shared small helpers: atomic writes, the plain-text table, and job folders read back."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lrdecay.atomic import replacing
from lrdecay.core.outcome import RunOutcome
from lrdecay.sweep.folder import read_results, write_result
from lrdecay.sweep.summary import columns, format_table


def test_replacing_writes_whole_files_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "result.json"
    with replacing(path) as tmp:
        tmp.write_text("new")
        assert not path.exists() and tmp.parent == path.parent
    assert path.read_text() == "new"
    with pytest.raises(RuntimeError), replacing(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "new"
    assert sorted(p.name for p in path.parent.iterdir()) == ["result.json"]


def test_columns_align_left_and_cut_trailing_blanks() -> None:
    assert columns([("a", "bb", "c"), ("ccc", "d", "")]) == ["a    bb  c", "ccc  d"]
    assert columns([]) == []


def test_the_job_table_has_a_rule_as_wide_as_the_table(tmp_path: Path) -> None:
    results = [
        RunOutcome(setting="seq1-epoch", status="finished", job_num=0, train_seconds=123456.7),
        RunOutcome(setting="sgd-fixed", status="failed", job_num=1, error="boom"),
    ]
    header, rule, *rows = format_table(results).splitlines()
    assert header.startswith("#  setting") and set(rule) == {"-"}
    assert len(rule) == max(len(header), *(len(r) for r in rows[:2]))
    assert rows[-1] == "job 1 (sgd-fixed): boom"


def test_the_job_table_leaves_the_sweepers_bookkeeping_out() -> None:
    """A search's trials carry trial.* overrides (its storage URL among them) and its
    confirmation runs do not: the table shows what was swept, never the storage."""
    trial = ["trial.storage='sqlite:////tmp/optuna.db'", "trial.study_name=s", "trial.number=0"]
    results = [
        RunOutcome(setting="a", status="finished", job_num=0, overrides=["lr=0.1", *trial]),
        RunOutcome(setting="a", status="finished", job_num=1, overrides=["lr=0.1", "seed=43"]),
    ]
    table = format_table(results)
    assert "trial." not in table and "optuna.db" not in table
    assert "seed=43" in table


def test_a_dead_jobs_overrides_are_read_as_hydra_saved_them(tmp_path: Path) -> None:
    overrides = ["seed=1", "tracking.run_name='a: b'", "+note=x # y", "data.root=${oc.env:D}"]
    dead = tmp_path / "0" / ".hydra"
    dead.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), dead / "overrides.yaml")  # as Hydra writes it
    finished = tmp_path / "1"
    (finished / ".hydra").mkdir(parents=True)
    write_result(finished, RunOutcome(setting="seq1-epoch", status="finished", job_num=1))
    died, done = read_results(tmp_path)
    assert (died.status, died.overrides, died.job_num) == ("died", overrides, 0)
    assert (done.status, done.setting) == ("finished", "seq1-epoch")
