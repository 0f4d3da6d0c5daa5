"""The reference study's CNNs (``model=mnist_cnn``, ``model=cifar_cnn``): each takes the input
shape (C, H, W) and the number of classes, and derives its flattened size from the shape."""

from __future__ import annotations

import torch
from torch import nn


def _flat_size(features: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Number of features ``features`` yields for one input of ``input_shape``."""
    with torch.no_grad():
        return int(features(torch.zeros(1, *input_shape)).flatten(1).shape[1])


class MnistCNN(nn.Module):
    """Conv(→20, k3) → MaxPool(2) → ReLU → Linear(→128) → ReLU → Linear(→classes); logits out.

    On 1×28×28 the flattened size is 20·13·13 = 3380, as in the study; on digits' 1×8×8, 180.
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(input_shape[0], 20, kernel_size=3, stride=1), nn.MaxPool2d(2), nn.ReLU()
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(_flat_size(self.features, input_shape), 128),
            nn.ReLU(),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class CifarCNN(nn.Module):
    """Three Conv(k3, pad 1) → ELU → MaxPool(2) blocks (16, 32, 64), then Dropout → Linear(→500)
    → ELU → Dropout → Linear(→classes); logits out. On 3×32×32 the flattened size is 1024.
    """

    def __init__(
        self, input_shape: tuple[int, int, int], num_classes: int = 10, dropout: float = 0.25
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = input_shape[0]
        for width in (16, 32, 64):
            layers += [
                nn.Conv2d(channels, width, kernel_size=3, padding=1),
                nn.ELU(),
                nn.MaxPool2d(2),
            ]
            channels = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(_flat_size(self.features, input_shape), 500),
            nn.ELU(),
            nn.Dropout(dropout),
            nn.Linear(500, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
