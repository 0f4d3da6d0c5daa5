"""Data loading through the same code path users hit, on files the tests write themselves."""

from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lrdecay.config import DataConfig
from lrdecay.core.data import load_data
from lrdecay.core.datafiles import CIFAR10_FILES, CIFAR10_FOLDER, IDX_FILES, IDX_FOLDERS
from lrdecay.core.digits import DIGITS_CACHE_ENV, read_digits
from lrdecay.core.splits import channels_first
from lrdecay.errors import DataError
from tests.helpers import (
    FileServer,
    free_port,
    require_debian_package,
    require_fashion_mnist,
    shipped_dataset,
)

CPU = torch.device("cpu")


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """Write ``array`` (uint8) in the IDX format of MNIST's files."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)


def write_mnist(
    root: Path, folder: str = "MNIST", n_train: int = 40, n_test: int = 20, compress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    raw = root / folder / "raw"
    train_x = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    train_y = rng.integers(0, 10, n_train, dtype=np.uint8)
    write_idx(raw / "train-images-idx3-ubyte", train_x, compress)
    write_idx(raw / "train-labels-idx1-ubyte", train_y, compress)
    write_idx(raw / "t10k-images-idx3-ubyte", rng.integers(0, 256, (n_test, 28, 28)), compress)
    write_idx(raw / "t10k-labels-idx1-ubyte", rng.integers(0, 10, n_test), compress)
    return train_x, train_y


def _offline(root: Path, **kw) -> DataConfig:
    return DataConfig(root=str(root), download=False, **kw)


def test_mnist_idx_files_load_normalised(tmp_path: Path) -> None:
    train_x, train_y = write_mnist(tmp_path)
    bundle = load_data(shipped_dataset("mnist"), _offline(tmp_path), CPU)
    assert bundle.input_shape == (1, 28, 28)
    assert (len(bundle.train), len(bundle.val), bundle.test) == (40, 20, None)
    expected = (torch.as_tensor(train_x, dtype=torch.float32) / 255 - 0.5) / 0.5
    assert torch.allclose(bundle.train.x[:, 0], expected)
    assert bundle.train.y.tolist() == train_y.tolist()
    assert bundle.train.x.min() >= -1 and bundle.train.x.max() <= 1


def test_gzipped_idx_files_are_unpacked(tmp_path: Path) -> None:
    write_mnist(tmp_path, folder="FashionMNIST", compress=True)
    bundle = load_data(shipped_dataset("fashion_mnist"), _offline(tmp_path), CPU)
    assert len(bundle.train) == 40
    assert (tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()


def test_the_next_job_in_a_worker_reuses_the_data_until_a_file_changes(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    cfg, data = shipped_dataset("mnist"), _offline(tmp_path)
    first = load_data(cfg, data, CPU)
    assert load_data(cfg, data, CPU) is first  # a sweep worker's next job: no re-read
    assert load_data(shipped_dataset("mnist", val_fraction=0.5), data, CPU) is not first
    train_x, _ = write_mnist(tmp_path, n_train=30)  # the files are replaced in place
    fresh = load_data(cfg, data, CPU)
    assert len(fresh.train) == 30
    assert torch.allclose(
        fresh.train.x[:, 0], (torch.as_tensor(train_x, dtype=torch.float32) / 255 - 0.5) / 0.5
    )


def test_cifar_images_are_made_channels_first() -> None:
    """CIFAR-10's arrays are (N, H, W, C); the bundle holds (N, C, H, W), MNIST's get C=1."""
    cifar = np.arange(2 * 32 * 32 * 3, dtype=np.uint8).reshape(2, 32, 32, 3)
    out = channels_first(cifar)
    assert out.shape == (2, 3, 32, 32)
    assert out[1, 2, 5, 7] == cifar[1, 5, 7, 2]
    assert channels_first(np.zeros((4, 28, 28), np.uint8)).shape == (4, 1, 28, 28)


def test_val_fraction_holds_out_train_and_reports_test(tmp_path: Path) -> None:
    write_mnist(tmp_path, n_train=50)
    cfg = shipped_dataset("mnist", val_fraction=0.2)
    bundle = load_data(cfg, _offline(tmp_path), CPU)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (40, 10, 20)
    again = load_data(cfg, _offline(tmp_path), CPU)
    assert torch.equal(bundle.val.y, again.val.y)  # the held-out split is reproducible


def test_digits_is_the_bundled_offline_set() -> None:
    bundle = load_data(shipped_dataset("digits", height=8, width=8), DataConfig(), CPU)
    assert (len(bundle.train), len(bundle.val)) == (1437, 360)
    assert bundle.input_shape == (1, 8, 8)
    assert sorted(bundle.val.y.unique().tolist()) == list(range(10))
    assert bundle.train.x.min() == -1 and bundle.train.x.max() == 1


def _sklearn_digits_split() -> tuple[torch.Tensor, ...]:
    """The digits split computed straight from scikit-learn, as the loader did before caching."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    parts = train_test_split(
        bunch.images[:, None], bunch.target, test_size=0.2, random_state=0, stratify=bunch.target
    )
    x_tr, x_te, y_tr, y_te = (torch.as_tensor(p) for p in parts)
    norm = lambda x: (x.float() / 16.0 - 0.5) / 0.5  # noqa: E731
    return norm(x_tr), y_tr, norm(x_te), y_te


def test_digits_come_from_a_cache_equal_to_scikit_learns_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DIGITS_CACHE_ENV, str(tmp_path / "cache"))
    fresh = read_digits()  # computes the split and keeps it
    (kept,) = (tmp_path / "cache").glob("digits-*.npz")
    stamp = kept.stat().st_mtime_ns
    again = read_digits()  # read back from the file
    assert kept.stat().st_mtime_ns == stamp  # read, not rewritten
    expected = _sklearn_digits_split()
    for got in (fresh, again):
        tensors = (got[0].x, got[0].y, got[1].x, got[1].y)
        assert all(torch.equal(a, b) for a, b in zip(tensors, expected, strict=True))


@pytest.mark.parametrize("damage", [b"garbage", b""])
def test_a_damaged_digits_cache_is_recomputed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: bytes
) -> None:
    monkeypatch.setenv(DIGITS_CACHE_ENV, str(tmp_path))
    read_digits()
    (kept,) = tmp_path.glob("digits-*.npz")
    kept.write_bytes(damage)
    train, test = read_digits()
    assert (len(train), len(test)) == (1437, 360)
    assert torch.equal(train.x, _sklearn_digits_split()[0])
    assert kept.stat().st_size > 10_000  # rewritten whole


@pytest.mark.skipif(sys.platform != "linux", reason="XDG_CACHE_HOME is Linux's cache folder")
def test_digits_are_kept_in_the_users_cache_folder_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DIGITS_CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    read_digits()
    assert len(list((tmp_path / "lrdecay").glob("digits-*.npz"))) == 1


def test_digits_load_when_the_cache_folder_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv(DIGITS_CACHE_ENV, str(blocker / "cache"))
    train, test = read_digits()
    assert (len(train), len(test)) == (1437, 360)


def test_missing_data_offline_names_both_fixes(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_data(shipped_dataset("mnist"), _offline(tmp_path), CPU)
    msg = str(err.value)
    assert "data.root=" in msg and "data.download=true" in msg


def test_data_root_that_is_a_file(tmp_path: Path) -> None:
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(DataError, match="is a file"):
        load_data(shipped_dataset("mnist"), _offline(afile), CPU)


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00garbage")
    with pytest.raises(DataError, match="corrupt"):
        load_data(shipped_dataset("mnist"), _offline(tmp_path), CPU)


def test_batches_cover_the_split_once_in_shuffled_order(tmp_path: Path) -> None:
    write_mnist(tmp_path, n_train=50)
    train = load_data(shipped_dataset("mnist"), _offline(tmp_path), CPU).train
    gen = torch.Generator().manual_seed(0)
    batches = list(train.batches(16, gen))
    assert [len(y) for _, y in batches] == [16, 16, 16, 2]
    seen = torch.cat([x.flatten(1) for x, _ in batches])
    assert not torch.equal(seen, train.x.flatten(1))  # shuffled
    assert torch.allclose(seen.sum(0), train.x.flatten(1).sum(0), atol=1e-4)  # each once


def test_fashion_mnist_from_the_debian_package(tmp_path: Path) -> None:
    """With Debian's dataset-fashion-mnist installed, an empty data.root needs no network."""
    require_fashion_mnist()
    bundle = load_data(shipped_dataset("fashion_mnist"), _offline(tmp_path), CPU)
    assert (len(bundle.train), len(bundle.val)) == (60000, 10000)


def test_a_missing_debian_data_set_skips_naming_the_command_and_fails_under_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a fresh machine such tests skip, saying how to enable them; CI (which installs the
    package) must not skip them silently."""
    absent = tmp_path / "absent.gz"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install dataset-fashion-mnist"):
        require_debian_package("dataset-fashion-mnist", absent)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="dataset-fashion-mnist"):
        require_debian_package("dataset-fashion-mnist", absent)
    absent.write_bytes(b"")
    require_debian_package("dataset-fashion-mnist", absent)  # present: nothing happens


def test_cifar10_from_a_numpy_archive_needs_no_unpickling(tmp_path: Path) -> None:
    """CIFAR-10 copies that are not the official pickles load from ``cifar10.npz``."""
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    np.savez(
        tmp_path / "cifar10.npz",
        x_train=x_train,
        y_train=np.arange(40) % 10,
        x_test=x_test,
        y_test=np.arange(20) % 10,
    )
    config = shipped_dataset("cifar10", channels=3, height=32, width=32)
    bundle = load_data(config, _offline(tmp_path), CPU)
    assert tuple(bundle.train.x.shape) == (40, 3, 32, 32) and len(bundle.val) == 20
    assert bundle.train.x[3, 2, 5, 7].item() == pytest.approx(x_train[3, 5, 7, 2] / 127.5 - 1)
    assert bundle.train.y.tolist() == [i % 10 for i in range(40)]
    np.savez(tmp_path / "cifar10.npz", x_train=x_train)  # arrays missing: one clear error
    with pytest.raises(DataError, match="y_train"):
        load_data(
            shipped_dataset("cifar10", channels=3, height=32, width=32, split_seed=1),
            _offline(tmp_path),
            CPU,
        )


def test_a_mirror_serves_the_download_and_is_used_for_it_only(tmp_path: Path) -> None:
    """data.mirror replaces torchvision's hosts (the files need not be the official .gz by md5),
    and only while the download runs."""
    from torchvision.datasets import MNIST

    write_mnist(tmp_path / "served", compress=True)
    before = MNIST.mirrors, MNIST.resources
    with FileServer(tmp_path / "served" / "MNIST" / "raw") as mirror:
        data = DataConfig(root=str(tmp_path / "data"), mirror=mirror.url)
        bundle = load_data(shipped_dataset("mnist"), data, CPU)
    assert (len(bundle.train), len(bundle.val)) == (40, 20)
    assert mirror.requests == {f"/{name}.gz": 1 for name in IDX_FILES}
    assert (MNIST.mirrors, MNIST.resources) == before


def test_with_a_mirror_debians_fashion_mnist_is_not_used(tmp_path: Path) -> None:
    """The user named the source: a mirror that fails is an error, not Debian's copy."""
    from torchvision.datasets import FashionMNIST

    require_fashion_mnist()
    before = dict(vars(FashionMNIST))
    data = DataConfig(root=str(tmp_path), mirror=f"http://127.0.0.1:{free_port()}/")
    with pytest.raises(DataError, match="downloading it failed"):
        load_data(shipped_dataset("fashion_mnist"), data, CPU)
    assert dict(vars(FashionMNIST)) == before


def test_missing_data_names_the_data_sets_that_need_no_network(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_data(shipped_dataset("mnist"), _offline(tmp_path), CPU)
    assert "dataset=digits" in str(err.value) and "dataset=fashion_mnist" in str(err.value)


def test_the_file_table_names_torchvisions_files() -> None:
    """The launcher's file checks (core.datafiles) look where torchvision reads."""
    from torchvision.datasets import CIFAR10, MNIST, FashionMNIST

    for name, cls in (("mnist", MNIST), ("fashion_mnist", FashionMNIST)):
        assert IDX_FOLDERS[name] == cls.__name__
        assert [f for f, _ in cls.resources] == [f"{n}.gz" for n in IDX_FILES]
    listed = [*CIFAR10.train_list, *CIFAR10.test_list, (CIFAR10.meta["filename"], "")]
    assert CIFAR10.base_folder == CIFAR10_FOLDER
    assert sorted(f for f, _ in listed) == sorted(CIFAR10_FILES)
