"""The reference CNNs: layer sizes as in the study, flattened size from the input shape."""

from __future__ import annotations

import pytest
import torch

from lrdecay.components import build_model
from lrdecay.config import validate
from tests.conftest import compose_config


@pytest.mark.parametrize(
    ("name", "shape", "flat"),
    [
        ("mnist_cnn", (1, 28, 28), 3380),
        ("mnist_cnn", (1, 8, 8), 180),
        ("cifar_cnn", (3, 32, 32), 1024),
    ],
)
def test_models_give_logits_and_derive_flat_size(name, shape, flat) -> None:
    conf = validate(compose_config([f"model={name}"]))
    model = build_model(conf, shape, num_classes=10)
    assert type(model).__name__ == {"mnist_cnn": "MnistCNN", "cifar_cnn": "CifarCNN"}[name]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears[0].in_features == flat
    assert [m.out_features for m in linears] == ([128, 10] if name == "mnist_cnn" else [500, 10])
    out = model(torch.randn(4, *shape))
    assert out.shape == (4, 10)
    assert not torch.allclose(out.softmax(1).sum(1), out.sum(1))  # raw logits, no softmax
