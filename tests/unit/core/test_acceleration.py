"""The trainer's speed options: each one trains through the real run path and stays close to
fp32, and what cannot work is refused with a message naming the fix."""

from __future__ import annotations

import pytest
import torch

from lrdecay.config import TrainerConfig
from lrdecay.core.acceleration import accelerate, autocast, check_precision, uses_channels_last
from lrdecay.core.models import CifarCNN, MnistCNN
from lrdecay.errors import ConfigError
from lrdecay.run import run
from tests.helpers import compose_config

CPU = torch.device("cpu")
# Two digits epochs, untracked: the options change nothing in tracking, and a fresh MLflow
# store per run would cost more than the training.
EPOCHS = ("trainer.max_epochs=2", "tracking.enabled=false")


def _curves(summary) -> list[tuple[float, float, float]]:
    return [(r.train_loss, r.val_loss, r.val_acc) for r in summary.history]


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    """Two digits epochs at the default settings: what every option is compared with."""
    root = tmp_path_factory.mktemp("fp32")
    return run(
        compose_config(["dataset=digits", f"data.root={root}", "trainer.progress=off", *EPOCHS])
    )


def test_bf16_autocast_trains_close_to_fp32(make_cfg, fp32) -> None:
    summary = run(make_cfg(*EPOCHS, "trainer.precision=bf16"))
    assert summary.status == "finished"
    bf16, ref = _curves(summary), _curves(fp32)
    assert bf16 != ref  # autocast really changed the arithmetic ...
    for (tl, vl, va), (tl0, vl0, va0) in zip(bf16, ref, strict=True):
        assert tl == pytest.approx(tl0, rel=0.02)  # ... but only at bf16's precision
        assert vl == pytest.approx(vl0, rel=0.02)
        assert abs(va - va0) <= 0.03


def test_channels_last_changes_the_layout_not_the_computation(make_cfg, fp32) -> None:
    nchw = run(make_cfg(*EPOCHS, "trainer.channels_last=off"))
    forced = run(make_cfg(*EPOCHS, "trainer.channels_last=true"))  # bool spelling = on
    assert _curves(forced) == _curves(fp32)  # CPU default (auto) is NHWC
    for (tl, vl, va), (tl0, vl0, va0) in zip(_curves(nchw), _curves(fp32), strict=True):
        assert tl == pytest.approx(tl0, rel=1e-3)
        assert vl == pytest.approx(vl0, rel=1e-3)
        assert abs(va - va0) <= 0.01


def test_channels_last_auto_is_on_where_it_was_measured_faster() -> None:
    cuda = torch.device("cuda", 0)
    assert uses_channels_last("auto", CPU, "fp32")
    assert uses_channels_last("auto", cuda, "bf16")
    assert not uses_channels_last("auto", cuda, "fp32")
    assert not uses_channels_last("auto", torch.device("mps"), "fp32")
    assert not uses_channels_last("off", CPU, "fp32")
    assert uses_channels_last("on", cuda, "fp32")
    model = accelerate(CifarCNN((3, 32, 32)), CPU, TrainerConfig(channels_last="off"))
    assert not model.features[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_an_unknown_channels_last_setting_is_refused_by_name(make_cfg) -> None:
    with pytest.raises(
        ConfigError,
        match=r"trainer\.channels_last: 'sometimes' is not one of "
        r"auto, on, off",
    ):
        run(make_cfg("trainer.channels_last=sometimes"))


@pytest.mark.slow  # the first torch.compile on a CPU builds C++ kernels: about a minute cold
def test_compiled_model_matches_fp32(make_cfg, fp32) -> None:
    summary = run(make_cfg(*EPOCHS, "trainer.compile=true"))
    for (tl, vl, va), (tl0, vl0, va0) in zip(_curves(summary), _curves(fp32), strict=True):
        assert tl == pytest.approx(tl0, rel=1e-3)
        assert vl == pytest.approx(vl0, rel=1e-3)
        assert abs(va - va0) <= 0.01


def test_accelerate_keeps_weights_fp32_names_and_layout() -> None:
    plain = CifarCNN((3, 32, 32))
    names = list(plain.state_dict())
    model = accelerate(
        CifarCNN((3, 32, 32)),
        CPU,
        TrainerConfig(precision="bf16", channels_last="on", compile=True),
    )
    assert list(model.state_dict()) == names  # checkpoints load either way
    conv = model.features[0].weight
    assert conv.dtype == torch.float32
    assert conv.is_contiguous(memory_format=torch.channels_last)


def test_autocast_runs_the_forward_in_bf16_only_when_asked() -> None:
    model, x = MnistCNN((1, 8, 8)), torch.zeros(4, 1, 8, 8)
    with autocast(CPU, "bf16"):
        assert model(x).dtype == torch.bfloat16
    with autocast(CPU, "fp32"):
        assert model(x).dtype == torch.float32


def test_unknown_precision_is_refused_by_name(make_cfg) -> None:
    with pytest.raises(ConfigError, match=r"trainer\.precision: 'fp16' is not one of fp32, bf16"):
        run(make_cfg("trainer.precision=fp16"))


def test_bf16_on_a_device_without_autocast_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"trainer\.precision=fp32"):
        check_precision("bf16", torch.device("mps"))
    check_precision("fp32", torch.device("mps"))
    check_precision("bf16", CPU)
