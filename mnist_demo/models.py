"""The tutorial's CNN, exactly, and a stronger small CNN; looked up by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class DigitNet(Protocol):
    """What the app needs of a registered model besides being an nn.Module.

    `features` feeds the Draw tab's feature maps (insight.feature_maps): each conv stage's
    activations, ending with the one the classifier head reads.
    """

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 1, 28, 28) network input -> one (B, C, H, W) activation per conv stage."""
        ...

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) network input -> (B, 10) logits."""
        ...


class TutorialCNN(nn.Module):
    """The seed tutorial's network: two 3x3 conv + maxpool stages, then 1568 -> 128 -> 10."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.mp = nn.MaxPool2d(kernel_size=2, stride=2)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)  # 28 -> 14 -> 7 after two pools
        self.fc2 = nn.Linear(128, 10)
        self.relu = nn.ReLU()

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations after each conv stage: (B, 16, 14, 14) and (B, 32, 7, 7)."""
        a1 = self.relu(self.mp(self.conv1(x)))
        a2 = self.relu(self.mp(self.conv2(a1)))
        return [a1, a2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 28, 28) -> (B, 10)
        x = self.features(x)[-1]
        x = x.flatten(1)
        x = self.relu(self.fc1(x))
        return self.fc2(x)


def _conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()
    )


class ImprovedCNN(nn.Module):
    """A VGG-style small CNN with BatchNorm and dropout; reaches 99.5%+ with light augmentation."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        self.stage1 = nn.Sequential(_conv_bn(1, w), _conv_bn(w, w), nn.MaxPool2d(2))  # -> 14x14
        self.stage2 = nn.Sequential(_conv_bn(w, 2 * w), _conv_bn(2 * w, 2 * w), nn.MaxPool2d(2))
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.25),
            nn.Linear(2 * w * 7 * 7, 128, bias=False),
            nn.BatchNorm1d(128),
            nn.ReLU(),
            nn.Dropout(0.25),
            nn.Linear(128, 10),
        )

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        a1 = self.stage1(x)
        return [a1, self.stage2(a1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)[-1])


MODELS: dict[str, Callable[[], DigitNet]] = {
    "tutorial": TutorialCNN,
    "improved": ImprovedCNN,
}


def build_model(name: str) -> nn.Module:
    """Instantiate a registered model by name (an nn.Module that is also a DigitNet)."""
    try:
        return MODELS[name]()
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}") from None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
