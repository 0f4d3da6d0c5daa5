"""Fault injection through the real CLI: signals, bad input, concurrent launches; one table.

    python scripts/fault_injection.py [--quick]

Each scenario runs ``train.py`` as a user would, in a fresh folder with a fresh MLflow store
(digits, a few epochs), then reads back what a user would see: the exit code, whether any
output holds a Python traceback, and how many MLflow runs were left RUNNING. Signal scenarios
then re-launch the same command and count each setting's active runs (goal: once each).
Prints one row per scenario and the totals; exits 1 if any goal is missed.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlflow.tracking import MlflowClient

from lrdecay.core.records import epoch_key
from lrdecay.tracking.client import open_client

ROOT = Path(__file__).resolve().parents[1]
BASE = ["dataset=digits", "trainer.progress=off", "tracking.log_plot=false"]
SWEEP = [
    "-m",
    *BASE,
    "sequence=seq1,seq2",
    "hydra.launcher.n_jobs=2",
    "report.enabled=false",
    "trainer.max_epochs=60",
]
SINGLE = [*BASE, "trainer.max_epochs=60"]


@dataclass
class Outcome:
    """What one scenario left behind."""

    name: str
    code: int | None
    tracebacks: int
    running: int  # runs left RUNNING by the scenario (a SIGKILL cannot be handled: '-')
    after: int | None = None  # runs still RUNNING once the same command ran again
    twice: int | None = None  # settings with more than one active run after that re-launch

    @property
    def ok(self) -> bool:
        return self.tracebacks == 0 and self.running <= 0 and not self.after and not self.twice


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
        start_new_session=True,
    )


def _train(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """``train.py args`` to its end, output captured."""
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=timeout,
    )


def _client(cwd: Path) -> MlflowClient | None:
    db = cwd / "mlruns" / "mlflow.db"
    return open_client(f"sqlite:///{db}") if db.exists() else None  # the runs' lock


def _runs(cwd: Path) -> list:
    client = _client(cwd)
    if client is None:
        return []
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids, max_results=1000) if ids else []


def _epochs_logged(cwd: Path) -> int:
    """The most epochs any run has logged so far (0 before the store exists)."""
    client = _client(cwd)
    if client is None:
        return 0
    try:
        return max(
            (
                len(client.get_metric_history(r.info.run_id, epoch_key("val_acc")))
                for r in _runs(cwd)
            ),
            default=0,
        )
    except Exception:  # the store is being created by the run itself
        return 0


def _wait_for_epochs(
    proc: subprocess.Popen[str], cwd: Path, epochs: int, timeout: float = 180
) -> None:
    deadline = time.monotonic() + timeout
    while _epochs_logged(cwd) < epochs:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"no run reached epoch {epochs} in time")
        time.sleep(0.3)


def _settle(proc: subprocess.Popen[str], grace: float = 60) -> tuple[int | None, str]:
    try:
        out, _ = proc.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    return proc.returncode, out


def _twice(cwd: Path) -> int:
    """Settings (run names, sweeps' parents aside) with more than one active run."""
    names = Counter(
        r.info.run_name for r in _runs(cwd) if r.data.tags.get("lrdecay.role") != "sweep"
    )
    return sum(n > 1 for n in names.values())


def signal_scenario(
    name: str, args: list[str], sig: signal.Signals, group: bool, relaunch: list[str]
) -> Outcome:
    """Start ``args``, wait for a logged epoch, send ``sig`` (to the process group when
    ``group``, as ``timeout`` and SLURM do), then re-launch ``relaunch`` to completion."""
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        proc = _start(args, cwd)
        _wait_for_epochs(proc, cwd, 2)
        (os.killpg if group else os.kill)(proc.pid, sig)
        code, out = _settle(proc)
        left = sum(r.info.status == "RUNNING" for r in _runs(cwd))
        again = _train(relaunch, cwd, timeout=900)
        output = out + again.stdout + again.stderr
        after = sum(r.info.status == "RUNNING" for r in _runs(cwd))
        return Outcome(
            name,
            code,
            output.count("Traceback"),
            -1 if sig == signal.SIGKILL else left,
            after,
            _twice(cwd),
        )


def input_scenario(args: list[str]) -> Outcome:
    """One bad input: it must fail with a message, no traceback, nothing left RUNNING."""
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        proc = _train(args, cwd, timeout=300)
        output = proc.stdout + proc.stderr
        running = sum(r.info.status == "RUNNING" for r in _runs(cwd))
        name = " ".join(a for a in args if a not in BASE)
        return Outcome(name, proc.returncode, output.count("Traceback"), running)


BAD_INPUTS = [
    ["threads=0"],
    ["optimizer.lr=inf"],
    ["optimizer.lr=nan"],
    ["sequence.gamma=-inf"],
    ["seed=99999999999999999999999"],
    ["seed=-1"],
    ["trainer.max_epochs=0"],
    ["dataset=mnist", "data.root=/proc"],
    ["dataset=mnist", "data.root=/etc/hostname"],
    ["dataset=cifar10", "data.root=/nonexistent", "data.download=false"],
    ["tracking.store_dir=/proc/store"],
    ["tracking.uri=sqlite:////proc/x/mlflow.db"],
    ["tracking.uri=http://127.0.0.1:9"],
    ["tracking.uri=foo://x"],
    ["tracking.experiment='../../../outside/evil_exp'"],
    ["-m", "hydra.launcher.n_jobs=0"],
    ["optimizer=nope"],
    ["nokey=1"],
    ["dataset.val_fraction=1"],
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="bad inputs only, no signals")
    opts = parser.parse_args()
    scenarios: list[Callable[[], Outcome]] = [
        (lambda a=a: input_scenario([*BASE, "trainer.max_epochs=1", *a])) for a in BAD_INPUTS
    ]
    if not opts.quick:
        resume = [*SINGLE, "resume=true"]  # the same run: continued, not trained again
        finish = SWEEP  # the same sweep: finished twins skipped, interrupted ones resumed
        scenarios += [
            lambda: signal_scenario("single run, SIGINT", SINGLE, signal.SIGINT, False, resume),
            lambda: signal_scenario("single run, SIGTERM", SINGLE, signal.SIGTERM, False, resume),
            lambda: signal_scenario(
                "single run, SIGTERM to group", SINGLE, signal.SIGTERM, True, resume
            ),
            lambda: signal_scenario(
                "sweep, SIGTERM to launcher", SWEEP, signal.SIGTERM, False, finish
            ),
            lambda: signal_scenario("sweep, SIGTERM to group", SWEEP, signal.SIGTERM, True, finish),
            lambda: signal_scenario("sweep, SIGINT to group", SWEEP, signal.SIGINT, True, finish),
            lambda: signal_scenario("sweep, SIGKILL to group", SWEEP, signal.SIGKILL, True, finish),
        ]
    outcomes = []
    print(
        f"{'scenario':<50} {'exit':>4} {'tracebacks':>10} {'RUNNING':>7} {'after':>5} {'twice':>5}"
    )
    for scenario in scenarios:
        o = scenario()
        outcomes.append(o)
        cells = ["-" if v is None or v < 0 else str(v) for v in (o.running, o.after, o.twice)]
        print(
            f"{o.name[:50]:<50} {o.code!s:>4} {o.tracebacks:>10} {cells[0]:>7} "
            f"{cells[1]:>5} {cells[2]:>5}",
            flush=True,
        )
    bad = [o for o in outcomes if not o.ok]
    print(
        f"\n{len(outcomes)} scenarios: tracebacks {sum(o.tracebacks for o in outcomes)}, "
        f"runs left RUNNING {sum(max(o.running, 0) + (o.after or 0) for o in outcomes)}, "
        f"settings twice {sum(o.twice or 0 for o in outcomes)}; {len(bad)} missed a goal"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
