"""The tutorial's CNN, exactly, and a stronger small CNN; looked up by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights, fuse_linear_bn_weights


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


def fold_for_inference(model: nn.Module) -> nn.Module:
    """`model` (eval mode), changed in place to answer the same, faster: for the Draw tab.

    Every BatchNorm right after a conv or linear layer in a Sequential is folded into that
    layer's weights and bias, dropout (a no-op in eval mode) is taken out, and the weights are
    stored channels-last. One 28x28 image through the improved network on one thread: 1.1-1.6 ms
    instead of 1.8-2.3 (bench/predict_latency.py's "network only", 4 interleaved rounds). The
    tutorial network has no BatchNorm and gains nothing (0.43 vs 0.42 ms). The folded model has no
    BatchNorm statistics left: keep the state dict it was built from to save or train again.
    """
    if model.training:
        raise ValueError("fold a model in eval mode only: folding uses BatchNorm's running stats")
    for block in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        i = 0
        while i < len(block):
            layer, after = block[i], block[i + 1] if i + 1 < len(block) else None
            if isinstance(layer, nn.Dropout):
                del block[i]
                continue
            if isinstance(layer, nn.Conv2d) and isinstance(after, nn.BatchNorm2d):
                fold = fuse_conv_bn_weights
            elif isinstance(layer, nn.Linear) and isinstance(after, nn.BatchNorm1d):
                fold = fuse_linear_bn_weights
            else:
                i += 1
                continue
            stats = (after.running_mean, after.running_var, after.eps, after.weight, after.bias)
            layer.weight, layer.bias = fold(layer.weight, layer.bias, *stats)
            del block[i + 1]
            i += 1
    return model.to(memory_format=torch.channels_last)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
