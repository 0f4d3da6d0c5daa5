"""The study's speed on this machine's accelerator (or CPU): one table, in one invocation.

    benchmarks/gpu_study.sh [--smoke] [--jobs N] [--budget S] [--options fp32 bf16 ...]
                            [hydra overrides for every run...]

Two parts, both through lrdecay's normal paths (Hydra config, the data loaders, MLflow
tracking into a temporary SQLite store):

1. samples/s of one epoch (training + validation, steady state: the first epoch is left out)
   for every data set, once per ``--options`` entry (fp32 = the defaults, bf16, channels_last,
   nchw, compile);
2. the wall time of ``train.py -m experiment=paper`` on MNIST-format and CIFAR-format data at
   the data sets' full epoch budgets (50 and 25), with ``--jobs`` parallel jobs (default 14:
   every setting at once, so several runs share each GPU).

Real files are used where they exist (``--data-root``, default ``$LRDECAY_DATA`` or
``data``; Fashion-MNIST also from Debian's package); otherwise files of the real formats and
shapes (IDX for MNIST, CIFAR-10 as a NumPy archive) are generated into a temporary root, so the
normal loaders read them. Generated images are a class template plus noise: learnable, so runs
train as real ones do. ``--smoke`` shrinks everything (tiny files, one or two epochs) so that
the script runs anywhere, a CPU included, in about a minute.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # usable before `pip install -e .` too

#: Goals of the full study on one GPU, in seconds of wall time (none for a CPU).
GOALS = {"mnist": 120.0, "cifar10": 240.0}
OPTION_OVERRIDES = {
    "fp32": [],
    "bf16": ["trainer.precision=bf16"],
    "channels_last": ["trainer.channels_last=on"],
    "nchw": ["trainer.channels_last=off"],
    "compile": ["trainer.compile=true"],
}


# --------------------------------------------------------------------------- data files


def synthetic(n: int, shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images of ``shape`` (a class template plus noise) and their labels."""
    rng = np.random.default_rng(seed)
    templates = rng.integers(0, 256, (10, *shape), dtype=np.uint8).astype(np.uint16)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    noise = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    images = ((templates[labels] * 3 + noise) // 4).astype(np.uint8)
    return images, labels


def write_idx(path: Path, array: np.ndarray) -> None:
    """``array`` (uint8) in the IDX format of MNIST's files."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist_format(root: Path, folder: str, n_train: int, n_test: int) -> None:
    """MNIST's four IDX files under ``root/folder/raw`` (torchvision's layout)."""
    raw = root / folder / "raw"
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = synthetic(n, (28, 28), seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)


def write_cifar_format(root: Path, per_batch: int, n_test: int) -> None:
    """CIFAR-10-shaped images as the NumPy archive lrdecay reads without unpickling (generated
    pickled batches would rightly fail CIFAR-10's md5 check)."""
    from lrdecay.core.datafiles import CIFAR10_NPZ

    x_train, y_train = synthetic(5 * per_batch, (32, 32, 3), 0)
    x_test, y_test = synthetic(n_test, (32, 32, 3), 1)
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / CIFAR10_NPZ, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def _has_idx(folder: Path) -> bool:
    return any((folder / f"train-images-idx3-ubyte{ext}").is_file() for ext in ("", ".gz"))


def data_roots(real_root: Path, tmp: Path, smoke: bool) -> dict[str, tuple[str, str]]:
    """Per data set: the ``data.root`` to use and whether its files are real or generated."""
    from lrdecay.core.datafiles import DEBIAN_FASHION_MNIST

    n_train, n_test = (640, 320) if smoke else (60_000, 10_000)
    roots: dict[str, tuple[str, str]] = {"digits": (str(tmp), "bundled")}
    if not smoke and _has_idx(real_root / "MNIST" / "raw"):
        roots["mnist"] = (str(real_root), "real")
    else:
        write_mnist_format(tmp, "MNIST", n_train, n_test)
        roots["mnist"] = (str(tmp), "generated")
    if not smoke and _has_idx(real_root / "FashionMNIST" / "raw"):
        roots["fashion_mnist"] = (str(real_root), "real")
    elif not smoke and _has_idx(DEBIAN_FASHION_MNIST):  # the loader unpacks it into tmp
        roots["fashion_mnist"] = (str(tmp), "real")
    else:
        write_mnist_format(tmp, "FashionMNIST", n_train, n_test)
        roots["fashion_mnist"] = (str(tmp), "generated")
    if not smoke and (real_root / "cifar-10-batches-py" / "data_batch_1").is_file():
        roots["cifar10"] = (str(real_root), "real")
    else:
        per_batch, n_test = (100, 200) if smoke else (10_000, 10_000)
        write_cifar_format(tmp, per_batch, n_test)
        roots["cifar10"] = (str(tmp), "generated")
    return roots


# --------------------------------------------------------------------------- measurements


@dataclass
class Row:
    """One line of the table."""

    what: str
    data: str
    epochs: int
    runs: int
    jobs: str
    wall_s: float
    samples_per_s: float
    note: str = ""


def throughput(
    dataset: str, root: str, option: str, epochs: int, store: Path, extra: list[str]
) -> tuple[float, float, str]:
    """Steady-state samples/s of one run's epochs (train + validation), its wall seconds and
    a note (first-epoch seconds: start-up, compilation)."""
    from hydra import compose, initialize_config_dir

    from lrdecay.config import register_configs
    from lrdecay.core.listeners import FitStart, Listener
    from lrdecay.run import run

    class Size(Listener):
        n = 0

        def on_fit_start(self, start: FitStart) -> None:
            Size.n = start.train_samples

    register_configs()
    overrides = [
        f"dataset={dataset}",
        f"data.root={root}",
        "data.download=false",
        f"trainer.max_epochs={epochs}",
        "trainer.progress=off",
        f"tracking.uri=sqlite:///{store / 'mlflow.db'}",
        "tracking.log_plot=false",
        *OPTION_OVERRIDES[option],
        *extra,
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    start = time.perf_counter()
    summary = run(cfg, extra_listeners=[Size()])
    wall = time.perf_counter() - start
    seconds = [r.epoch_seconds for r in summary.history]
    steady = statistics.median(seconds[1:] or seconds)
    return Size.n / steady, wall, f"first epoch {seconds[0]:.1f} s"


def paper_sweep(
    dataset: str,
    root: str,
    jobs: int,
    epochs: int | None,
    workdir: Path,
    timeout: float,
    extra: list[str],
) -> tuple[float, int, int, str]:
    """Wall seconds of ``train.py -m experiment=paper``, jobs finished, epochs trained, note."""
    from lrdecay.sweep.folder import read_results

    sweep_dir = workdir / f"sweep-{dataset}"
    cmd = [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        "experiment=paper",
        f"dataset={dataset}",
        f"data.root={root}",
        "data.download=false",
        f"hydra.launcher.n_jobs={jobs}",
        "trainer.progress=off",
        f"hydra.sweep.dir={sweep_dir}",
        *([f"trainer.max_epochs={epochs}"] if epochs else []),
        *extra,
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=max(1.0, timeout))
        note = "" if proc.returncode == 0 else f"exit {proc.returncode}"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        note = f"TIMEOUT after {timeout:.0f} s"
    wall = time.perf_counter() - start
    results = read_results(sweep_dir) if sweep_dir.is_dir() else []
    done = sum(r.ok for r in results)
    trained = sum(r.epochs_run or 0 for r in results if r.ok)
    if note and "TIMEOUT" not in note:
        tail = [ln for ln in out.splitlines() if ln.strip()][-3:]
        note += ": " + " | ".join(tail)[-300:]
    match = re.search(r"(\d+) jobs: (\d+) finished", out)
    if match and not note:
        note = f"{match.group(2)}/{match.group(1)} finished"
    return wall, done, trained, note


# --------------------------------------------------------------------------- main


def describe_device() -> tuple[str, bool]:
    import torch

    if torch.cuda.is_available():
        names = {torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())}
        return f"{torch.cuda.device_count()} x {', '.join(sorted(names))}", True
    return "CPU only (no CUDA device)", False


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny generated data and 1-2 epochs: a check that runs anywhere",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="parallel jobs of each paper sweep (default 14; --smoke: cores)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=465.0,
        help="seconds for everything; a sweep that would overrun is cut off",
    )
    parser.add_argument(
        "--options",
        nargs="+",
        choices=list(OPTION_OVERRIDES),
        default=None,
        help="trainer options of the samples/s rows (default: fp32 bf16; --smoke: fp32)",
    )
    parser.add_argument(
        "--data-root", type=Path, default=Path(os.environ.get("LRDECAY_DATA", ROOT / "data"))
    )
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args(argv)
    deadline = time.perf_counter() + args.budget

    import torch

    from lrdecay.host import available_cores

    device, on_gpu = describe_device()
    cores = available_cores()
    jobs = args.jobs or (cores if args.smoke else 14)
    epochs = 2 if args.smoke else 3
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="gpu-study-") as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        roots = data_roots(args.data_root.expanduser().resolve(), tmp / "data", args.smoke)
        print(
            f"data ready in {time.perf_counter() - t0:.1f} s: "
            + ", ".join(f"{k} {v[1]}" for k, v in roots.items()),
            file=sys.stderr,
            flush=True,
        )

        for option in args.options or (["fp32"] if args.smoke else ["fp32", "bf16"]):
            for dataset in ("mnist", "fashion_mnist", "cifar10", "digits"):
                root, kind = roots[dataset]
                rate, wall, note = throughput(
                    dataset, root, option, epochs, tmp / "mlruns", args.overrides
                )
                rows.append(
                    Row(f"samples/s {dataset} ({option})", kind, epochs, 1, "-", wall, rate, note)
                )
                print(f"  {rows[-1].what}: {rate:.0f} samples/s", file=sys.stderr, flush=True)

        sweeps = (("mnist", 50), ("cifar10", 25))
        for i, (dataset, budget_epochs) in enumerate(sweeps):
            root, kind = roots[dataset]
            run_epochs = 1 if args.smoke else budget_epochs
            left = deadline - time.perf_counter()
            # keep at least a third of what is left for the sweep after this one
            timeout = left * (2 / 3 if i + 1 < len(sweeps) else 1.0) - 5
            # a smoke check skips the per-run figures and the study report (seconds each)
            smoke = ["tracking.log_plot=false", "report.enabled=false"] if args.smoke else []
            wall, done, trained, note = paper_sweep(
                dataset,
                root,
                jobs,
                1 if args.smoke else None,
                tmp,
                timeout,
                [*smoke, *args.overrides],
            )
            n_train = {
                "mnist": 640 if args.smoke else 60_000,
                "cifar10": 500 if args.smoke else 50_000,
            }[dataset]
            goal = GOALS[dataset] if on_gpu and not args.smoke else None
            if goal is not None and done == 14:
                note = f"{note}; goal < {goal:.0f} s: {'met' if wall < goal else 'MISSED'}"
            rows.append(
                Row(
                    f"experiment=paper {dataset}",
                    kind,
                    run_epochs,
                    done,
                    str(jobs),
                    wall,
                    trained * n_train / wall,
                    note.strip("; "),
                )
            )
            print(f"  {rows[-1].what}: {wall:.1f} s", file=sys.stderr, flush=True)

    print(
        f"lrdecay GPU study on {device}; {cores} CPU cores; torch {torch.__version__}"
        + ("; SMOKE (tiny data, 1-2 epochs)" if args.smoke else "")
    )
    if args.overrides:
        print("overrides: " + " ".join(args.overrides))
    print(
        f"{'what':<34} {'data':<9} {'epochs':>6} {'runs':>4} {'jobs':>4} {'wall s':>8} "
        f"{'samples/s':>10}  note"
    )
    for r in rows:
        print(
            f"{r.what:<34} {r.data:<9} {r.epochs:>6} {r.runs:>4} {r.jobs:>4} {r.wall_s:>8.1f} "
            f"{r.samples_per_s:>10.0f}  {r.note}"
        )
    print(
        "samples/s rows: one run's steady epochs (training + validation; wall s = the whole "
        "run, start-up included); paper rows: every job's trained samples / the sweep's wall "
        "time (start-up, tracking and report included)"
    )
    return rows


if __name__ == "__main__":
    main()
