"""Samples per second of one Fashion-MNIST training epoch, four ways, on the same computation.

    python benchmarks/epoch_throughput.py [--repeats 5] [--threads N] [--smoke]
        [--samples N] [--only a b c d] [--options [nchw] [bf16]]

Every variant trains ``MnistCNN`` for one epoch (batch 64, SGD lr 0.01 momentum 0.9) and then
scores the test split, from the same seeded initial weights and in the same shuffled order,
so the validation accuracies printed beside the speeds must agree:

(a) the reference study's loop: a torchvision ``DataLoader`` over ``datasets.FashionMNIST``
    with per-sample ``ToTensor`` + ``Normalize`` (the baseline);
(b) a plain loop over pre-normalised tensors, no framework around it (the practical floor);
(c) lrdecay's :class:`~lrdecay.core.engine.Engine` at the trainer's defaults, with the listeners a
    CLI run has (log line, a checkpoint every epoch) and MLflow tracking on, into a real SQLite
    store in a temporary folder; the timed span runs from opening the MLflow run to closing it;
(d) the same engine with tracking off;

and, with ``--options``, (c) again with other trainer settings (default: ``nchw``, i.e.
``trainer.channels_last=off``: the engine without its CPU layout default, which must match
(a) and (b) exactly; the NHWC default changes the summation order only, so (c) and (d) must
agree with them to within a few samples).

Variants run interleaved (a, b, c, d, a, b, ...) so that load drift hits all of them alike;
the table gives medians over ``--repeats`` (and the best run), by wall time and by process CPU
time; ratios are given on medians and on best runs, and tracking's cost both for the epoch alone
(the engine's fit) and for the whole run (opening and closing the MLflow run included). On a shared
machine compare CPU times at ``--threads 1``: they barely move with other processes' load
(with several threads, waiting threads spin and inflate CPU time as well). Data come from
Debian's Fashion-MNIST package (``/usr/share/datasets/fashion-mnist``), unpacked once into a
temporary root.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from lrdecay.component_config import DatasetConfig
from lrdecay.config import DataConfig, TrainerConfig, register_configs
from lrdecay.core.acceleration import accelerate
from lrdecay.core.checkpoint import CheckpointListener
from lrdecay.core.data import DataBundle, load_data
from lrdecay.core.engine import Engine, TrainerSettings
from lrdecay.core.listeners import FitStart, Listener
from lrdecay.core.metrics import EVAL_BATCH_SIZE
from lrdecay.core.models import MnistCNN
from lrdecay.core.outcome import RunOutcome
from lrdecay.core.progress import EpochLogLine, ProgressBar
from lrdecay.core.records import EpochRecord
from lrdecay.core.schedulers import SequenceScheduler
from lrdecay.core.sequences import make_sequence
from lrdecay.core.splits import Split
from lrdecay.core.strategies import make_strategy
from lrdecay.host import available_cores
from lrdecay.tracking.run_logger import MlflowTracker, flatten
from lrdecay.tracking.store import default_artifact_root

#: The trainer options the extra rows can add to (c).
OPTIONS = {"nchw": TrainerConfig(channels_last="off"), "bf16": TrainerConfig(precision="bf16")}
BATCH = 64
EVAL_BATCH = EVAL_BATCH_SIZE  # lrdecay's default eval batch; the reference loop uses 1000
REFERENCE_EVAL_BATCH = 1000
LR = 0.01
MOMENTUM = 0.9
SEED = 0
SHAPE = (1, 28, 28)


@dataclass
class Outcome:
    """One timed epoch (train + validation): wall and process-CPU seconds, the validation score
    after it, and for (c) the seconds spent inside MLflow calls, per epoch and per run."""

    seconds: float
    cpu_seconds: float
    val_loss: float
    val_acc: float
    tracking_epoch_s: float = 0.0
    tracking_run_s: float = 0.0
    fit_seconds: float = 0.0  # (c), (d): the engine's fit alone (the epoch, without run open/close)


class Clock:
    """Wall and process-CPU time since construction (CPU time is far less disturbed by other
    processes on a shared machine)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def fresh_model(options: TrainerConfig | None = None) -> tuple[nn.Module, torch.optim.SGD]:
    """The same initial weights for every variant (with the trainer's speed ``options``
    applied as a run applies them), and SGD with momentum over them."""
    torch.manual_seed(SEED)
    model: nn.Module = MnistCNN(SHAPE, 10)
    if options is not None:
        model = accelerate(model, torch.device("cpu"), options)
    return model, torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)


def shuffle_generator() -> torch.Generator:
    """The generator every variant draws its one epoch's permutation from."""
    return torch.Generator().manual_seed(SEED)


# --------------------------------------------------------------------------- (a) reference


def reference_loop(root: Path, n_train: int, n_test: int) -> Callable[[], Outcome]:
    """The study's loop: DataLoader, per-sample transforms, ``loss.item()`` every batch."""
    from torch.utils.data import DataLoader, RandomSampler, Subset
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    train_ds = datasets.FashionMNIST(str(root), train=True, download=False, transform=tf)
    test_ds = datasets.FashionMNIST(str(root), train=False, download=False, transform=tf)
    train = Subset(train_ds, range(n_train)) if n_train < len(train_ds) else train_ds
    test = Subset(test_ds, range(n_test)) if n_test < len(test_ds) else test_ds

    def once() -> Outcome:
        model, optimizer = fresh_model()
        # An explicit sampler: RandomSampler draws exactly the engine's permutation.
        loader = DataLoader(
            train, batch_size=BATCH, sampler=RandomSampler(train, generator=shuffle_generator())
        )
        test_loader = DataLoader(test, batch_size=REFERENCE_EVAL_BATCH)
        clock = Clock()
        model.train()
        running = 0.0
        for x, y in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            running += loss.item()
        model.eval()
        loss_sum, hits = 0.0, 0
        with torch.no_grad():
            for x, y in test_loader:
                logits = model(x)
                loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
                hits += int((logits.argmax(1) == y).sum())
        return Outcome(*clock.lap(), loss_sum / len(test), hits / len(test))

    return once


# --------------------------------------------------------------------------- (b) plain loop


def plain_loop(bundle: DataBundle) -> Callable[[], Outcome]:
    """The floor: index pre-normalised tensors, step, score; nothing else."""
    train, val = bundle.train, bundle.val

    def once() -> Outcome:
        model, optimizer = fresh_model()
        generator = shuffle_generator()
        clock = Clock()
        model.train()
        order = torch.randperm(len(train), generator=generator)
        for i in range(0, len(train), BATCH):
            idx = order[i : i + BATCH]
            x, y = train.x[idx], train.y[idx]
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
        model.eval()
        loss_sum = torch.zeros(())
        hits = torch.zeros((), dtype=torch.int64)
        with torch.inference_mode():
            for i in range(0, len(val), EVAL_BATCH):
                x, y = val.x[i : i + EVAL_BATCH], val.y[i : i + EVAL_BATCH]
                logits = model(x)
                loss_sum += F.cross_entropy(logits, y, reduction="sum")
                hits += (logits.argmax(1) == y).sum()
        return Outcome(*clock.lap(), loss_sum.item() / len(val), hits.item() / len(val))

    return once


# --------------------------------------------------------------------------- (c), (d) engine


class TimedTracker(MlflowTracker):
    """The real tracker, timing its own calls: per-epoch logging apart from run open/close."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.epoch_s = self.run_s = 0.0

    def _timed(self, per_epoch: bool, call: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return call(*args)
        finally:
            if per_epoch:
                self.epoch_s += time.perf_counter() - start
            else:
                self.run_s += time.perf_counter() - start

    def start(self, *args: Any, **kwargs: Any) -> str:
        return self._timed(False, lambda: super(TimedTracker, self).start(*args, **kwargs))

    def log_text(self, text: str, artifact_file: str) -> None:
        self._timed(False, super().log_text, text, artifact_file)

    def on_fit_start(self, start: FitStart) -> None:
        self._timed(False, super().on_fit_start, start)

    def on_epoch_end(self, record: EpochRecord) -> None:
        self._timed(True, super().on_epoch_end, record)

    def on_fit_end(self, outcome: RunOutcome) -> None:
        self._timed(False, super().on_fit_end, outcome)

    def end(self, status: str) -> None:
        self._timed(False, super().end, status)


def run_config() -> Any:
    """The config ``python train.py dataset=fashion_mnist`` composes (its params are logged)."""
    from hydra import compose, initialize_config_dir

    register_configs()
    conf_dir = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        return compose("config", ["dataset=fashion_mnist"])


def engine_loop(
    bundle: DataBundle,
    tracking_uri: str | None,
    workdir: Path,
    options: TrainerConfig | None = None,
) -> Callable[[], Outcome]:
    """lrdecay's engine with the listeners a CLI run gets (log line, progress, a checkpoint
    every epoch into ``workdir``); MLflow on when ``tracking_uri`` is set; the trainer's speed
    ``options`` (precision, channels_last) applied as a run applies them.

    With tracking on, the timed span runs from opening the MLflow run (tags, the resolved
    config's params, an artifact) to closing it (summary metrics, curves.png), so it holds one
    run's fixed tracking cost as well as the per-epoch logging.
    """
    params: dict[str, str] = {}
    if tracking_uri is not None:
        TimedTracker(tracking_uri, "epoch-throughput").connect()  # creates the store, once
        params = flatten(OmegaConf.to_container(run_config(), resolve=True))

    options = options or TrainerConfig()

    def once() -> Outcome:
        model, optimizer = fresh_model(options)
        scheduler = SequenceScheduler(optimizer, make_sequence("seq3"), make_strategy("epoch"))
        settings = TrainerSettings(
            max_epochs=1,
            batch_size=BATCH,
            eval_batch_size=EVAL_BATCH,
            seed=SEED,
            precision=options.precision,
        )
        listeners: list[Listener] = [EpochLogLine("seq3-epoch"), ProgressBar("off")]
        tracker = None
        if tracking_uri is not None:
            tracker = TimedTracker(
                tracking_uri, "epoch-throughput", default_artifact_root(tracking_uri), log_plot=True
            )
        clock = Clock()
        if tracker is not None:
            tracker.start("seq3-epoch", {"dataset": "fashion_mnist", "bench": "true"}, params)
            tracker.log_text("benchmark\n", "overrides.txt")
            listeners.append(tracker)
        engine = Engine(model, optimizer, scheduler, bundle, settings, listeners)
        engine.listeners.insert(2, CheckpointListener(workdir / "checkpoint.pt", engine))
        fit_start = time.perf_counter()
        summary = engine.fit()
        fit_seconds = time.perf_counter() - fit_start
        if tracker is not None:
            tracker.end("FINISHED")
        last = summary.history[-1]
        return Outcome(
            *clock.lap(),
            last.val_loss,
            last.val_acc,
            tracker.epoch_s if tracker else 0.0,
            tracker.run_s if tracker else 0.0,
            fit_seconds,
        )

    return once


# --------------------------------------------------------------------------- main


def subset(bundle: DataBundle, n_train: int, n_test: int) -> DataBundle:
    """The first ``n_train`` / ``n_test`` samples (the same ones the reference loop sees)."""
    return DataBundle(
        bundle.name,
        Split(bundle.train.x[:n_train], bundle.train.y[:n_train]),
        Split(bundle.val.x[:n_test], bundle.val.y[:n_test]),
        None,
        bundle.num_classes,
    )


def main(argv: list[str] | None = None) -> dict[str, list[Outcome]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed epochs per variant (default 5; 1 with --smoke)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=available_cores(),
        help="torch intra-op threads for every variant (default: all cores)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="2 048 training / 1 024 test samples, one repeat: seconds",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=None,
        help="train on the first N samples only (default: all 60 000)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices="abcd",
        default=list("abcd"),
        help="run only these variants (ratios need c and the other)",
    )
    parser.add_argument(
        "--options",
        nargs="*",
        choices=list(OPTIONS),
        default=["nchw"],
        help="extra rows: (c) with these trainer options (none: no extra rows)",
    )
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.smoke else 5)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="epoch-throughput-") as tmp:
        root = Path(tmp) / "data"
        # load_data stages Debian's gzipped IDX files under <root>/FashionMNIST/raw, where
        # torchvision's reader (variant a) finds them too.
        full = load_data(
            DatasetConfig(target="lrdecay.core.data.fashion_mnist", name="fashion_mnist"),
            DataConfig(root=str(root), download=False),
            torch.device("cpu"),
        )
        n_train = min(args.samples or (2048 if args.smoke else len(full.train)), len(full.train))
        n_test = 1024 if args.smoke else len(full.val)
        bundle = subset(full, n_train, n_test)
        uri = f"sqlite:///{Path(tmp) / 'mlruns' / 'mlflow.db'}"
        (Path(tmp) / "mlruns").mkdir()
        makers = {
            "a": lambda: reference_loop(root, n_train, n_test),
            "b": lambda: plain_loop(bundle),
            "c": lambda: engine_loop(bundle, uri, Path(tmp) / "c"),
            "d": lambda: engine_loop(bundle, None, Path(tmp) / "d"),
        }
        variants = {k: makers[k]() for k in "abcd" if k in args.only}
        for name in args.options:
            variants[f"c+{name}"] = engine_loop(bundle, uri, Path(tmp) / name, OPTIONS[name])
        results: dict[str, list[Outcome]] = {k: [] for k in variants}
        load = [os.getloadavg()[0]]
        for r in range(repeats):
            for key, once in variants.items():
                out = once()
                results[key].append(out)
                print(
                    f"  repeat {r + 1}/{repeats} ({key}): {out.seconds:.2f} s wall, "
                    f"{out.cpu_seconds:.2f} s CPU, load {os.getloadavg()[0]:.2f}",
                    file=sys.stderr,
                    flush=True,
                )
            load.append(os.getloadavg()[0])
    report(results, n_train, n_test, args.threads, repeats, load)
    return results


NAMES = {
    "a": "(a) reference DataLoader loop",
    "b": "(b) plain loop over tensors",
    "c": "(c) lrdecay engine, MLflow on",
    "d": "(d) lrdecay engine, tracking off",
    "c+nchw": "(c) with trainer.channels_last=off",
    "c+bf16": "(c) + trainer.precision=bf16",
}


def report(
    results: dict[str, list[Outcome]],
    n_train: int,
    n_test: int,
    threads: int,
    repeats: int,
    load: list[float],
) -> None:
    """Print the table (medians), the ratios, the tracking breakdown and the accuracy check."""
    med = statistics.median
    print(
        f"Fashion-MNIST, MnistCNN, batch {BATCH}, SGD momentum {MOMENTUM}: one epoch = "
        f"{n_train} train + {n_test} val samples; {threads} thread(s); median of {repeats}; "
        f"1-min load average {min(load):.2f}-{max(load):.2f}"
    )
    print(
        f"{'variant':<34} {'samples/s':>9} {'(best)':>7} {'wall s':>7} {'CPU s':>7} "
        f"{'samples/CPU-s':>13} {'val_acc':>8} {'val_loss':>8}"
    )
    wall: dict[str, float] = {}
    best: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for key, runs in results.items():
        rates = [n_train / o.seconds for o in runs]
        wall[key], best[key] = med(rates), max(rates)
        cpu[key] = med(n_train / o.cpu_seconds for o in runs)
        accs = {round(o.val_acc, 6) for o in runs}
        acc = runs[-1].val_acc if len(accs) == 1 else float("nan")
        print(
            f"{NAMES[key]:<34} {wall[key]:>9.0f} {max(rates):>7.0f} "
            f"{med(o.seconds for o in runs):>7.2f} {med(o.cpu_seconds for o in runs):>7.2f} "
            f"{cpu[key]:>13.0f} {acc:>8.4f} {runs[-1].val_loss:>8.4f}"
        )
    if "c" in wall:
        # best-of-N is the least disturbed run on a shared machine; medians show the spread
        for label, rates in (("median wall", wall), ("best wall  ", best), ("median CPU ", cpu)):
            ratios = [f"c/{k} {rates['c'] / rates[k]:.3f}" for k in "abd" if k in rates]
            ratios += [
                f"{k}/b {rates[k] / rates['b']:.3f}" for k in rates if "+" in k and "b" in rates
            ]
            print(f"ratios ({label}): " + "  ".join(ratios))
        runs = results["c"]
        per_epoch, per_run = (
            med(o.tracking_epoch_s for o in runs),
            med(o.tracking_run_s for o in runs),
        )
        epoch = (
            med(o.seconds for o in results["d"]) if "d" in results else med(o.seconds for o in runs)
        )
        if "d" in results:
            fit_c = min(o.fit_seconds for o in runs)
            fit_d = min(o.fit_seconds for o in results["d"])
            print(
                f"the epoch alone (engine fit, best of {repeats}): tracking on {fit_c:.2f} s, "
                f"off {fit_d:.2f} s: c/d {fit_d / fit_c:.3f}"
            )
        print(
            f"MLflow time in (c): {per_epoch * 1000:.0f} ms per epoch "
            f"({100 * per_epoch / epoch:.2f} % of an epoch) + {per_run:.2f} s per run "
            f"(opening, params, summary, curves.png, closing: {100 * per_run / epoch:.1f} % "
            f"of this one-epoch run, {100 * per_run / (50 * epoch):.2f} % of a 50-epoch run)"
        )
    same = [k for k in ("a", "b", "c+nchw") if k in results]
    accs = {round(results[k][-1].val_acc, 4) for k in same}
    print(
        f"same validation accuracy in the NCHW variants ({', '.join(same)}): "
        + ("yes" if len(accs) == 1 else f"NO {sorted(accs)}")
    )
    ref_key = same[0] if same else None
    for key in (k for k in results if ref_key and k not in same):
        delta = results[key][-1].val_acc - results[ref_key][-1].val_acc
        print(
            f"{NAMES[key]}: validation accuracy {delta:+.4f} against {ref_key} "
            f"(net {round(delta * n_test):+d} correct of {n_test})"
        )


if __name__ == "__main__":
    main()
