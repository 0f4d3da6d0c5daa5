"""A sweep's data prepared once, in the launching process, before any job starts or any run is
created: the data sets a sweep's jobs use, the file checks, the lock, and the real CLI."""

from __future__ import annotations

import resource
import shutil
import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import DictConfig

from lrdecay.config import LrdecayConfig, validate
from lrdecay.core.datafiles import DEBIAN_FASHION_MNIST, IDX_FILES
from lrdecay.sweep import prepare
from lrdecay.sweep.datasets import data_choices, job_config, sweep_data_configs
from lrdecay.sweep.prepare import LOCK_FILE, prepare_data
from tests.helpers import (
    CONF_DIR,
    FileServer,
    compose_config,
    require_fashion_mnist,
    run_cli,
    store_uri,
)
from tests.unit.core.test_data import write_mnist

#: A sweep's quiet, cheap settings (no report, no curves, no progress bars).
QUIET = ["trainer.progress=off", "tracking.log_plot=false", "report.enabled=false"]


def _multirun_config(overrides: list[str]) -> DictConfig:
    """The config a ``python train.py -m <overrides>`` launcher composes (swept keys left at
    their base values); Hydra stays initialised for the sweep's own compositions."""
    loader = GlobalHydra.instance().config_loader()
    return loader.load_configuration("config", overrides, run_mode=RunMode.MULTIRUN)


def _sweep_data(overrides: list[str]) -> list[LrdecayConfig]:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        config = _multirun_config(overrides)
        return sweep_data_configs(config, validate(job_config(config)))


def test_only_the_overrides_that_can_change_the_data_are_enumerated() -> None:
    choices, swept = data_choices(
        [
            "seed=0,1,2",
            "sequence=seq1,seq2",
            "optimizer.lr=0.1,0.01",
            "dataset=mnist,fashion_mnist",
            "data.root=/x",
            "+setting=seq1-epoch,sgd-fixed",
            "dataset.val_fraction=interval(0, 0.5)",  # not enumerable: its base value stands
            "hydra.launcher.n_jobs=2",
        ]
    )
    assert choices == [
        ["dataset=mnist", "dataset=fashion_mnist"],
        ["data.root=/x"],
        ["+setting=seq1-epoch", "+setting=sgd-fixed"],
    ]
    assert swept
    assert data_choices(["seed=0,1", "dataset=digits", "data.root=/x"]) == (
        [["dataset=digits"], ["data.root=/x"]],
        False,
    )


def test_a_data_set_swept_over_one_value_is_still_a_sweep() -> None:
    """A swept key is left at its base value by the launcher's own config: compose it."""
    (conf,) = _sweep_data(["dataset=choice(digits)", "seed=0,1"])
    assert conf.dataset.name == "digits"


def test_a_sweep_that_varies_no_data_uses_its_base_config() -> None:
    (conf,) = _sweep_data(["sequence=seq1,seq2,seq3,seq4", "strategy=epoch,cutoff", "seed=0,1"])
    assert conf.dataset.name == "mnist"


def test_each_data_set_a_sweep_swaps_in_is_composed_once() -> None:
    """The base config's data set (mnist) is no job's here: only the swept ones count."""
    confs = _sweep_data(["dataset=digits,fashion_mnist", "seed=0,1,2", "data.root=/d1,/d2"])
    assert sorted((c.dataset.name, c.data.root) for c in confs) == [
        ("digits", "/d1"),
        ("digits", "/d2"),
        ("fashion_mnist", "/d1"),
        ("fashion_mnist", "/d2"),
    ]


def test_the_papers_fourteen_settings_share_one_data_set() -> None:
    (conf,) = _sweep_data(["experiment=paper", "dataset=digits"])
    assert conf.dataset.name == "digits"


def test_an_optuna_search_adds_the_data_sets_of_its_search_space() -> None:
    confs = _sweep_data(
        [
            "hydra/sweeper=optuna",
            "hydra.sweeper.n_trials=2",
            "dataset=choice(digits,fashion_mnist)",
            "optimizer.lr=tag(log, interval(1e-4, 1e-1))",
        ]
    )
    assert sorted(c.dataset.name for c in confs) == ["digits", "fashion_mnist"]


def _conf(*overrides: str) -> LrdecayConfig:
    return validate(compose_config(list(overrides)))


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The data sets fetched by the subprocess (replaced here by a record of the call)."""
    calls: list[str] = []
    monkeypatch.setattr(prepare, "fetch", lambda conf, cwd: calls.append(conf.dataset.name))
    return calls


def test_data_on_disk_is_not_fetched(tmp_path: Path, fetched: list[str]) -> None:
    write_mnist(tmp_path, compress=True)
    prepare_data(
        [_conf("dataset=digits"), _conf("dataset=mnist", f"data.root={tmp_path}")], tmp_path
    )
    assert fetched == []


def test_a_missing_data_set_is_fetched_once_for_all_its_jobs(
    tmp_path: Path, fetched: list[str]
) -> None:
    jobs = [_conf("dataset=mnist", "data.root=data", f"dataset.batch_size={b}") for b in (32, 64)]
    prepare_data(jobs, tmp_path)
    assert fetched == ["mnist"]
    assert (tmp_path / "data" / LOCK_FILE).exists()  # data.root is relative to the launch folder


def test_a_mirror_bypasses_debians_fashion_mnist(tmp_path: Path, fetched: list[str]) -> None:
    require_fashion_mnist()
    prepare_data([_conf("dataset=fashion_mnist", f"data.root={tmp_path}")], tmp_path)
    assert fetched == []  # Debian's copy counts as present
    mirror = "data.mirror=http://127.0.0.1:9/"
    prepare_data([_conf("dataset=fashion_mnist", f"data.root={tmp_path}", mirror)], tmp_path)
    assert fetched == ["fashion_mnist"]


def test_a_preparer_waits_for_the_one_holding_the_root(tmp_path: Path, fetched: list[str]) -> None:
    """Two sweeps launched at once: the second waits, then finds the first one's files."""
    holder = FileLock(tmp_path / LOCK_FILE)
    holder.acquire()
    conf = _conf("dataset=mnist", f"data.root={tmp_path}")
    second = threading.Thread(target=prepare_data, args=([conf], tmp_path))
    second.start()
    time.sleep(0.5)
    assert second.is_alive()  # waiting on the lock
    write_mnist(tmp_path)  # what the first one fetched
    holder.release()
    second.join(timeout=30)
    assert not second.is_alive() and fetched == []


def _no_runs(folder: Path) -> bool:
    """Whether the default MLflow store of ``folder`` holds no run (or does not exist)."""
    if not (folder / "mlruns").exists():
        return True
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store_uri(folder))
    experiments = [e.experiment_id for e in client.search_experiments()]
    return not experiments or not client.search_runs(experiments)


#: Every download goes to a closed port: no test fetches from the internet, online or not.
OFFLINE = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "no_proxy": ""}


@pytest.mark.slow
def test_an_offline_sweep_without_its_data_stops_at_once_in_one_line(tmp_path: Path) -> None:
    """The 4x3 grid on MNIST, which is not on disk and cannot be downloaded: one message naming
    the fixes, exit status 2, within seconds; no job, no job folder, no MLflow run."""
    empty = tmp_path / "data"
    empty.mkdir()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = run_cli(
        [
            "-m",
            "sequence=seq1,seq2,seq3,seq4",
            "strategy=epoch,cutoff,oscillate",
            f"data.root={empty}",
            "data.download_timeout=2",
        ],
        cwd=tmp_path,
        timeout=120,
        env=OFFLINE,
    )
    wall = time.monotonic() - start
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    out = proc.stdout + proc.stderr
    print(f"offline sweep: {wall:.1f} s wall, {cpu:.1f} CPU-s")
    assert proc.returncode == 2, out[-3000:]
    assert "Traceback" not in out
    assert out.count("downloading it failed") == 1, out[-3000:]
    (line,) = [ln for ln in out.splitlines() if "downloading it failed" in ln]
    assert line.startswith("lrdecay: no job was started: mnist is not under")
    for fix in ("dataset=digits", "dataset=fashion_mnist", "dataset-fashion-mnist"):
        assert fix in line
    assert "data.root=" in line and "data.download=true" in line
    assert not list(tmp_path.glob("multirun/**/result.json"))
    assert not list(tmp_path.glob("multirun/*/*/0"))
    assert _no_runs(tmp_path)
    assert cpu < 10, f"{cpu:.1f} CPU-s"  # its own work; the wall time also counts others' load
    assert wall < 60


@pytest.mark.slow
def test_a_sweep_downloads_its_data_once_for_all_its_jobs(tmp_path: Path) -> None:
    """Four Fashion-MNIST jobs on an empty data.root, from a local mirror of the real files:
    each file is downloaded once, before the jobs, which all find it there."""
    require_fashion_mnist()
    served = tmp_path / "mirror"
    served.mkdir()
    for name in IDX_FILES:
        shutil.copy(DEBIAN_FASHION_MNIST / f"{name}.gz", served)
    with FileServer(served) as mirror:
        proc = run_cli(
            [
                "-m",
                "dataset=fashion_mnist",
                f"data.mirror={mirror.url}",
                f"data.root={tmp_path / 'data'}",
                "seed=0,1,2,3",
                "trainer.max_epochs=1",
                # a small training split keeps four epochs cheap; every job reads all the data
                "dataset.val_fraction=0.95",
                "dataset.batch_size=256",
                "dataset.eval_batch_size=2000",
                "hydra.launcher.n_jobs=2",
                "tracking.enabled=false",
                "trainer.checkpoint=false",
                *QUIET,
            ],
            cwd=tmp_path,
            timeout=900,
            env=OFFLINE | {"no_proxy": "127.0.0.1"},
        )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert mirror.requests == {f"/{name}.gz": 1 for name in IDX_FILES}
    assert len(list(tmp_path.glob("multirun/*/*/*/result.json"))) == 4
    assert "4 jobs: 4 finished" in proc.stdout


@pytest.mark.slow
def test_a_sweep_whose_data_are_on_disk_fetches_nothing(tmp_path: Path) -> None:
    """digits (bundled) and MNIST files already under data.root: no fetch, the jobs start."""
    write_mnist(tmp_path / "data")
    proc = run_cli(
        [
            "-m",
            "dataset=digits,mnist",
            f"data.root={tmp_path / 'data'}",
            "data.download=false",
            "trainer.max_epochs=1",
            "tracking.enabled=false",
            *QUIET,
        ],
        cwd=tmp_path,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "fetching" not in out
    assert not (tmp_path / "data" / LOCK_FILE).exists()  # never needed the lock
    assert "2 jobs: 2 finished" in proc.stdout
