"""Bad input never shows a traceback: property-based overrides against validation and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hydra.errors import HydraException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf.errors import OmegaConfBaseException

from lrdecay.config import LrdecayConfig, validate
from lrdecay.errors import LrdecayError
from tests.helpers import ROOT, cli_env, compose_config, error_line, run_cli

#: Leaves a user may set, with a value that is valid for each (to mix into the bad ones).
NUMERIC = {
    "optimizer.lr": 0.01,
    "optimizer.momentum": 0.5,
    "trainer.max_epochs": 3,
    "dataset.batch_size": 32,
    "dataset.val_fraction": 0.1,
    "sequence.gamma": 0.9,
    "sequence.period": 10,
    "strategy.rate": 0.01,
    "strategy.shrink": 0.2,
    "trainer.convergence_window": 4,
    "trainer.convergence_threshold": 0.009,
    "seed": 1,
    "threads": 1,
    "report.target": 0.9,
}
GROUPS = {
    "dataset": "digits",
    "optimizer": "sgd",
    "sequence": "seq1",
    "strategy": "epoch",
    "model": "mnist_cnn",
    "setting": "sgd-fixed",
}
CHOICES = {"device": "cpu", "trainer.progress": "off"}

words = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=8)
junk = st.text(st.characters(codec="ascii", exclude_characters="\x00\n\r"), max_size=12)


def _not_a_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return word.lower() not in ("null", "true", "false")
    return False


out_of_range = st.one_of(
    st.sampled_from(sorted(NUMERIC)).flatmap(
        lambda k: st.sampled_from([-1, -0.5, -1e-9, -1e9]).map(lambda v: f"{k}={v}")
    ),
    st.sampled_from(
        [
            "dataset.val_fraction=1",
            "optimizer.momentum=1",
            "sequence.gamma=0",
            "sequence.gamma=1.5",
            "strategy.shrink=2",
            "report.target=1.5",
        ]
    ),
)
wrong_type = st.tuples(st.sampled_from(sorted(NUMERIC)), words.filter(_not_a_number)).map(
    lambda kv: f"{kv[0]}={kv[1]}"
)
unknown_key = words.map(lambda w: f"nokey{w}=1")
unknown_option = st.tuples(st.sampled_from(sorted(GROUPS)), words).map(
    lambda kv: f"{kv[0]}=none_{kv[1]}"
)
bad_choice = st.tuples(st.sampled_from(sorted(CHOICES)), words).map(lambda kv: f"{kv[0]}=x{kv[1]}")
malformed = junk.map(lambda j: f"optimizer.lr=[{j}")
BAD_KINDS = (out_of_range, wrong_type, unknown_key, unknown_option, bad_choice, malformed)
bad_override = st.one_of(*BAD_KINDS)

valid_override = st.one_of(
    st.sampled_from([f"{k}={v}" for k, v in NUMERIC.items()]),
    st.sampled_from([f"{k}={v}" for k, v in GROUPS.items()]),
    st.sampled_from([f"{k}={v}" for k, v in CHOICES.items()]),
)

CLEAR_ERRORS = (LrdecayError, HydraException, OmegaConfBaseException)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(valid_override, bad_override), min_size=1, max_size=4))
def test_any_override_gives_a_valid_config_or_a_clear_error(overrides: list[str]) -> None:
    try:
        conf = validate(compose_config(overrides))
    except CLEAR_ERRORS as exc:
        assert str(exc).strip(), overrides
        return
    assert isinstance(conf, LrdecayConfig)
    assert conf.optimizer.lr > 0 and conf.trainer.max_epochs >= 1


#: What every CLI test here adds: a quick digits run that tracks nothing.
CLI_BASE = [
    "dataset=digits",
    "tracking.enabled=false",
    "trainer.max_epochs=1",
    "trainer.progress=off",
]


def _cli(args: list[str], cwd: Path) -> tuple[int, str]:
    """``python train.py args`` as a user runs it; returns exit code and all output."""
    proc = run_cli([*CLI_BASE, *args], cwd=cwd, timeout=60)
    return proc.returncode, proc.stdout + proc.stderr


def _cli_in_one_process(argvs: list[list[str]], cwd: Path) -> list[tuple[int | None, str]]:
    """Exit code (None: no exit within a minute) and all output of ``python train.py args`` for
    each of ``argvs``, each run through ``train.cli`` in one shared process
    (``tests/cli_in_process.py``): the same Hydra and ``main``, one interpreter start-up."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "cli_in_process.py")],
        input=json.dumps([[*CLI_BASE, *args] for args in argvs]),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60 * len(argvs),
        env=cli_env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [row["args"][len(CLI_BASE) :] for row in rows] == argvs, proc.stderr[-3000:]
    return [(row["code"], row["output"]) for row in rows]


@pytest.mark.slow
@settings(max_examples=1, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    cases=st.lists(
        st.tuples(bad_override, st.lists(valid_override, max_size=2)), min_size=200, max_size=200
    ),
    apart=st.tuples(
        *(st.tuples(kind, st.lists(valid_override, max_size=2)) for kind in BAD_KINDS for _ in "12")
    ),
)
def test_200_bad_overrides_exit_nonzero_with_a_message_and_no_traceback(cases, apart) -> None:
    """The real CLI on 200 generated bad inputs: no traceback, no hang. All 200 go through
    ``train.cli`` in one process; two of each kind of bad input also run each in a process of
    its own, two at a time, as a user's shell runs them."""
    with tempfile.TemporaryDirectory() as tmp:
        in_one = _cli_in_one_process([[*extra, bad] for bad, extra in cases], Path(tmp))
        with ThreadPoolExecutor(2) as pool:
            alone = list(pool.map(lambda c: _cli([*c[1], c[0]], Path(tmp)), apart))
    for (bad, extra), (code, output) in zip([*cases, *apart], [*in_one, *alone], strict=True):
        assert code is not None, (bad, extra, "no exit within a minute", output[-500:])
        assert code in (1, 2), (bad, extra, output[-500:])  # 1 Hydra's composition, 2 ours
        assert "Traceback" not in output, (bad, output)
        assert output.strip(), bad


#: Command lines that fail on a path, a store or a number, and what their one line names.
BAD_PATHS = [
    (["dataset=mnist", "data.root=/etc/hostname"], "data.root"),
    (["tracking.enabled=true", "tracking.uri=foo://somewhere"], "tracking.uri"),
    (["tracking.enabled=true", "tracking.uri=http://127.0.0.1:9"], "unreachable"),
    (["optimizer.lr=inf"], "optimizer.lr"),
    (["strategy.rate=-inf"], "strategy.rate"),
    (["seed=99999999999999999999999"], "seed"),
    (["dataset=mnist", "data.root=/proc", "data.download=true"], "data.root=/proc"),
    (["tracking.enabled=true", "tracking.store_dir=/proc/store"], "tracking.store_dir"),
    (["tracking.enabled=true", "tracking.uri=sqlite:////proc/x/mlflow.db"], "not writable"),
]


@pytest.fixture(scope="module")
def bad_path_runs(tmp_path_factory) -> dict[str, tuple[int | None, str]]:
    """Exit code and output of the CLI on each of :data:`BAD_PATHS`, all run through
    ``train.py`` in one process (most fail after torch and MLflow load: one start-up for all)."""
    argvs = [args for args, _ in BAD_PATHS]
    done = _cli_in_one_process(argvs, tmp_path_factory.mktemp("bad-paths"))
    return {" ".join(args): result for args, result in zip(argvs, done, strict=True)}


@pytest.mark.parametrize(("args", "named"), BAD_PATHS)
def test_bad_paths_stores_and_numbers_are_one_line(args, named: str, bad_path_runs) -> None:
    code, output = bad_path_runs[" ".join(args)]
    assert code == 2, output[-3000:]
    assert named in error_line(output)


@pytest.mark.parametrize("key", sorted(NUMERIC))
@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_non_finite_numbers_are_rejected_everywhere(key: str, value: str) -> None:
    with pytest.raises(CLEAR_ERRORS) as caught:
        validate(compose_config([f"{key}={value}"]))
    assert key in str(caught.value)


def test_threads_are_bounded_by_the_cores() -> None:
    """threads=10000 once spawned 20 002 OS threads and trained nothing."""
    import torch

    from lrdecay.core.resources import set_threads
    from lrdecay.host import available_cores

    before = torch.get_num_threads()
    try:
        assert set_threads(10000) == available_cores() == torch.get_num_threads()
        assert set_threads(1) == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.parametrize("n_jobs", ["0", "-1000"])
def test_a_sweep_with_no_parallel_jobs_is_one_line_before_any_job(
    n_jobs: str, tmp_path: Path
) -> None:
    proc = run_cli(
        [
            "-m",
            "dataset=digits",
            "trainer.max_epochs=1",
            "sequence=seq1,seq2",
            f"hydra.launcher.n_jobs={n_jobs}",
        ],
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "hydra.launcher.n_jobs" in proc.stderr.strip().splitlines()[-1]
    assert not list(tmp_path.glob("multirun/*/*/0"))  # no job ran


#: What a user may find at the store's path instead of an MLflow store: notes, random bytes.
NOT_A_STORE = {
    "text": b"experiment notes, not a database\n",
    "bytes": bytes(range(256)) * 16,
}


@pytest.mark.slow
@pytest.mark.parametrize(("content", "sweep"), [("text", False), ("bytes", True)])
def test_a_store_file_that_is_no_database_is_one_line_naming_it(
    content: str, sweep: bool, tmp_path: Path
) -> None:
    """A file at ``mlruns/mlflow.db`` that is not a SQLite database: a single run exits 2 and
    a sweep stops before any job, each with one line naming the file and the fix; the file is
    left as it was."""
    db = tmp_path / "mlruns" / "mlflow.db"
    db.parent.mkdir()
    db.write_bytes(NOT_A_STORE[content])
    args = ["dataset=digits", "trainer.max_epochs=1"]
    proc = run_cli(["-m", *args, "seed=0,1"] if sweep else args, cwd=tmp_path, timeout=300)
    output = proc.stdout + proc.stderr
    line = f"{db} is not an MLflow SQLite store (file is not a database). Fix: move it aside"
    if sweep:
        assert proc.returncode == 2 and "Traceback" not in output, output[-3000:]
        assert proc.stderr.strip().splitlines()[-1].startswith(f"lrdecay: {line}"), output
        assert not list(tmp_path.glob("multirun/*/*/0"))  # no job started
    else:
        assert proc.returncode == 2, output[-3000:]
        assert line in error_line(output)
    assert db.read_bytes() == NOT_A_STORE[content]
