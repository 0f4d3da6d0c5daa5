"""The benchmark scripts run where CI runs: each one's smallest mode, end to end, printing its
table with plausible figures (the speed itself is measured by hand, not asserted here)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT, require_fashion_mnist


def _run(cmd: list[str], timeout: float) -> str:
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow  # the benchmark script end to end on Fashion-MNIST: about 10 CPU-seconds
def test_epoch_throughput_smoke_prints_all_variants_on_the_same_computation() -> None:
    require_fashion_mnist()  # the benchmark measures on Fashion-MNIST
    out = _run(
        [sys.executable, "benchmarks/epoch_throughput.py", "--smoke", "--threads", "1"], timeout=300
    )
    for name in (
        "(a) reference DataLoader loop",
        "(b) plain loop over tensors",
        "(c) lrdecay engine, MLflow on",
        "(d) lrdecay engine, tracking off",
        "(c) with trainer.channels_last=off",
    ):
        row = next(line for line in out.splitlines() if line.startswith(name))
        rate = float(row[len(name) :].split()[0])
        assert rate > 0, row
    assert re.search(r"ratios \(median wall\): c/a [\d.]+ +c/b [\d.]+ +c/d [\d.]+", out)
    assert re.search(r"the epoch alone .* c/d [\d.]+", out)
    assert "same validation accuracy in the NCHW variants (a, b, c+nchw): yes" in out
    # the NHWC default of (c) and (d) agrees with them to within a few samples of 1 024
    for delta in re.findall(r"net ([+-]\d+) correct of 1024", out):
        assert abs(int(delta)) <= 5


@pytest.mark.slow  # two 14-setting sweeps plus eight single runs: about a minute or two
def test_gpu_study_smoke_runs_on_a_cpu() -> None:
    out = _run(["bash", "benchmarks/gpu_study.sh", "--smoke"], timeout=900)
    assert "SMOKE" in out
    for dataset in ("mnist", "fashion_mnist", "cifar10", "digits"):
        assert re.search(rf"samples/s {dataset} \(fp32\) .* [1-9]\d*\s", out), dataset
    for dataset in ("mnist", "cifar10"):
        row = next(
            line for line in out.splitlines() if line.startswith(f"experiment=paper {dataset}")
        )
        assert row.split()[4] == "14", row  # runs column: all 14 settings finished


@pytest.mark.slow  # four tiny searches of tests/noisy_app.py through the real sweeper
def test_selection_optimism_smoke_prints_each_variant() -> None:
    out = _run([sys.executable, "benchmarks/selection_optimism.py", "--smoke"], timeout=600)
    assert out.startswith("SMOKE: 1 search(es) per variant")
    for name, trials, runs in (
        ("1 seed per trial", 3, 3),
        ("3 seeds, mean", 3, 9),
        ("1 seed, 3x trials", 9, 9),
        ("3 seeds, lcb", 3, 9),
    ):
        row = next(line for line in out.splitlines() if line.startswith(name))
        assert [int(n) for n in row[len(name) :].split()[:2]] == [trials, runs], row
    assert re.search(r"their paired difference [-+]\d\.\d{3}\)", out)
    assert "searches per variant equal their replays: yes" in out  # scored as computed


@pytest.mark.slow  # two interpreters that import MLflow and the report: a few CPU-seconds
def test_startup_benchmark_measures_a_trick_on_and_off() -> None:
    out = _run(
        [sys.executable, "benchmarks/startup.py", "--only", "launcher", "--repeats", "1"],
        timeout=300,
    )
    for row in ("all on", "off: launcher_freeze"):
        line = next(line for line in out.splitlines() if line.startswith(f"launcher {row}"))
        wall, cpu, peak = (float(cell) for cell in line[len(f"launcher {row}") :].split()[:3])
        assert wall > 0 and cpu > 0 and peak > 0, line
