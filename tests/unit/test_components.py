"""A researcher's own network, optimizer and data set, named by ``_target_`` from a config folder
outside the package: checked before any data loads, trained, tracked and reported."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from lrdecay.components import build_model, check_components
from lrdecay.config import DataConfig, validate
from lrdecay.core.data import load_data
from lrdecay.errors import ConfigError, DataError
from tests.helpers import (
    compose_config,
    error_line,
    experiment_runs,
    is_job,
    run_cli,
    seed_store,
    store,
)

#: A user's module: a network, an optimizer and a data-set factory, outside the package.
USER_MODULE = '''
import numpy as np
import torch
from torch import nn


class TinyNet(nn.Module):
    """A small MLP with BatchNorm: takes the run's input_shape and num_classes, and a width."""

    def __init__(self, input_shape, num_classes, width=16):
        super().__init__()
        c, h, w = input_shape
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(c * h * w, width), nn.BatchNorm1d(width), nn.ReLU(),
            nn.Linear(width, num_classes),
        )

    def forward(self, x):
        return self.body(x)


class PlainSGD(torch.optim.SGD):
    """An optimizer class of the user's own."""


def blobs(n=240, classes=3, size=6, seed=0):
    """Gaussian blobs as 1 x size x size images: (train, test) as (images, labels) pairs."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.normal(0, 1, (n, 1, size, size)).astype("float32") + y[:, None, None, None]
    cut = n * 3 // 4
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])
'''

CONFIGS = {
    "model/tinynet.yaml": """
        # My network: built as TinyNet(input_shape, num_classes, width)
        _target_: usernets.TinyNet
        name: tinynet
        width: 8
    """,
    "optimizer/plain_sgd.yaml": """
        _target_: usernets.PlainSGD
        name: plain_sgd
        lr: 0.05
        momentum: 0.9
    """,
    "dataset/blobs.yaml": """
        _target_: usernets.blobs
        name: blobs
        n: 240
        batch_size: 32
        epochs: 3
        target_accuracy: 0.9
    """,
}


@pytest.fixture
def user_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``<tmp>/code/usernets.py`` (on this process's ``sys.path``) and ``<tmp>/myconf/``."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "usernets.py").write_text(USER_MODULE)
    for name, text in CONFIGS.items():
        path = tmp_path / "myconf" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    monkeypatch.syspath_prepend(str(code))
    sys.modules.pop("usernets", None)
    return tmp_path


BAD = [
    (["model._target_=nosuchpkg.Net"], "model._target_: cannot import 'nosuchpkg.Net'"),
    (["model._target_=torch.nn.NoSuchLayer"], "model._target_: cannot import"),
    (["model._target_=torch.optim.SGD"], "is not a torch.nn.Module class"),
    (["optimizer._target_=torch.nn.Linear"], "is not a torch.optim.Optimizer class"),
    (["+optimizer.momentun=0.8"], "optimizer: SGD got an unexpected keyword argument 'momentun'"),
    (["+model.widht=3"], "model: MnistCNN got an unexpected keyword argument 'widht'"),
    (["model=cifar_cnn", "+model.input_shape=[1,2,3]"], "model.input_shape: the run passes"),
    (["dataset._target_=lrdecay.core.data.nothing"], "dataset._target_: cannot import"),
    (["+dataset.subset=10"], "dataset: mnist got an unexpected keyword argument 'subset'"),
    (["optimizer._target_=torch.optim.Rprop", "~optimizer.lr"], "optimizer.lr: must be > 0"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD, ids=[" ".join(o) for o, _ in BAD])
def test_a_bad_component_is_one_line_naming_its_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_components(validate(compose_config(overrides)))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_argument_of_a_users_class_is_named(user_folder: Path) -> None:
    overrides = [f"hydra.searchpath=[file://{user_folder / 'myconf'}]", "model=tinynet"]
    check_components(validate(compose_config(overrides)))  # fits its signature
    with pytest.raises(ConfigError, match="model: TinyNet got an unexpected keyword argument"):
        check_components(validate(compose_config([*overrides, "+model.depth=2"])))


def test_the_run_fills_in_input_shape_and_classes_and_the_option_its_arguments(
    user_folder: Path,
) -> None:
    conf = validate(
        compose_config(
            [
                f"hydra.searchpath=[file://{user_folder / 'myconf'}]",
                "model=tinynet",
                "dataset=blobs",
            ]
        )
    )
    model = build_model(conf, (1, 6, 6), 3)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(36, 8), (8, 3)]


def test_a_factory_may_return_pairs_or_data_sets_and_the_data_decide_shape_and_classes(
    user_folder: Path,
) -> None:
    conf = validate(
        compose_config([f"hydra.searchpath=[file://{user_folder / 'myconf'}]", "dataset=blobs"])
    )
    bundle = load_data(conf.dataset, DataConfig(root=str(user_folder)), torch.device("cpu"))
    assert bundle.input_shape == (1, 6, 6) and bundle.num_classes == 3
    assert (len(bundle.train), len(bundle.val)) == (
        180,
        60,
    ) and bundle.train.x.dtype == torch.float32

    x = np.zeros((10, 1, 4, 4), dtype="float32")
    data_set = torch.utils.data.TensorDataset(torch.as_tensor(x), torch.arange(10) % 5)
    from lrdecay.core.splits import as_split

    assert as_split(data_set, "train", "f").y.tolist() == [0, 1, 2, 3, 4] * 2
    with pytest.raises(DataError, match=r"images must be \(N, C, H, W\)"):
        as_split((x[:, 0], np.arange(10)), "train", "f")


@pytest.mark.slow
def test_a_bad_target_stops_a_run_before_its_data_loads(tmp_path: Path) -> None:
    """MNIST is not there and may not be downloaded: the model's mistake is what is reported."""
    proc = run_cli(
        [
            "model._target_=nosuchpkg.Net",
            f"data.root={tmp_path / 'empty'}",
            "data.download=false",
            "tracking.enabled=false",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    line = error_line(proc.stdout + proc.stderr)
    assert "model._target_: cannot import 'nosuchpkg.Net'" in line
    assert "mnist" not in (proc.stdout + proc.stderr).lower().replace("mnist_cnn", "")


@pytest.mark.slow
def test_a_users_network_optimizer_and_data_from_their_own_config_folder(
    user_folder: Path,
) -> None:
    """A 2-seed sweep of a network, optimizer and data set that live outside the package."""
    seed_store(user_folder)
    proc = run_cli(
        [
            "-m",
            f"hydra.searchpath=[file://{user_folder / 'myconf'}]",
            "dataset=blobs",
            "model=tinynet",
            "optimizer=plain_sgd",
            "seed=0,1",
            "trainer.progress=off",
        ],
        cwd=user_folder,
        env={"PYTHONPATH": f"{user_folder / 'code'}"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = experiment_runs(store(user_folder), "lrdecay-blobs")
    jobs = [r for r in runs if is_job(r)]
    assert len(jobs) == 2 and {r.info.status for r in jobs} == {"FINISHED"}
    assert {r.data.tags["model"] for r in jobs} == {"tinynet"}
    assert {r.data.tags["optimizer"] for r in jobs} == {"plain_sgd"}
    assert {r.data.params["model._target_"] for r in jobs} == {"usernets.TinyNet"}
    assert {r.data.params["model.width"] for r in jobs} == {"8"}
    assert {r.data.tags["seed"] for r in jobs} == {"0", "1"}
    assert all(
        len(store(user_folder).get_metric_history(r.info.run_id, "epoch/val_acc")) == 3
        for r in jobs
    )
    (report,) = user_folder.glob("multirun/*/*/report/report.md")
    text = report.read_text()
    assert "on blobs with tinynet: 2 runs in 1 setting, seeds 0, 1" in text, text[:2000]
