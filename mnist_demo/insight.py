"""What a trained network gets wrong and why: confusions, misreads, saliency, feature maps.

Pure functions on numpy arrays (torch tensors are accepted where data comes from a Split) and
on a model that is only read, never changed: no Gradio, no module state, safe to call from
several request threads on the same model. Rendering helpers return uint8 RGB arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import IMAGE_SIDE, NUM_CLASSES, to_network_input

# SmoothGrad (Smilkov et al. 2017): noise of 15% of the pixel range, 16 copies. Fewer copies
# leave the ReLU network's speckle visible; more change the map by little and cost time.
SMOOTH_SAMPLES = 16
SMOOTH_SIGMA = 0.15
SMOOTH_SEED = 0  # fixed: the same drawing must always get the same map

GREY_LEVEL = 0.6  # the digit under a heat map is dimmed so the colours stand out
HEAT_OPACITY = 0.85  # full heat almost hides the digit; zero heat shows it untouched
PAD_RGB = (48, 48, 64)  # the gutter between feature-map tiles: dark, but not black like a dead map
GUTTER = 256  # a tile grid's value for its gutter: no pixel has it
TILE_RGB = torch.tensor([(v, v, v) for v in range(256)] + [PAD_RGB], dtype=torch.uint8)


def _numpy(values: Any) -> np.ndarray:
    """A numpy view of a numpy array, list or (CPU or GPU) torch tensor."""
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _digit(value: int | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a digit from 0 to 9 or None, got {value!r}")
    if not 0 <= int(value) < NUM_CLASSES:
        raise ValueError(f"{name} must be a digit from 0 to 9 or None, got {value}")
    return int(value)


def _class_indices(values: Any, name: str, classes: int) -> np.ndarray:
    array = _numpy(values)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D array of integers, got {array.dtype} {array.shape}")
    if array.size and (array.min() < 0 or array.max() >= classes):
        raise ValueError(f"{name} must lie in 0..{classes - 1}")
    return array.astype(np.int64, copy=False)


def confusion_matrix(labels: Any, predictions: Any, classes: int = NUM_CLASSES) -> np.ndarray:
    """Counts of (true, predicted) pairs: rows are true digits, columns the network's answers.

    The diagonal is what it gets right; a large off-diagonal cell names a confusion (4 -> 9)
    worth looking at in `misreads`.
    """
    true = _class_indices(labels, "labels", classes)
    predicted = _class_indices(predictions, "predictions", classes)
    if true.shape != predicted.shape:
        raise ValueError(f"{true.shape[0]} labels but {predicted.shape[0]} predictions")
    counts = np.bincount(true * classes + predicted, minlength=classes * classes)
    return counts.reshape(classes, classes).astype(np.int64)


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Percent of each true digit read correctly; NaN for a digit with no examples (not 0%)."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"expected a square confusion matrix, got shape {matrix.shape}")
    totals = matrix.sum(axis=1).astype(np.float64)
    correct = np.diag(matrix).astype(np.float64)
    accuracy = np.full(totals.shape, np.nan)
    np.divide(100.0 * correct, totals, out=accuracy, where=totals > 0)
    return accuracy


@dataclass(frozen=True)
class Misread:
    """One test image the network got wrong, with how sure it was."""

    index: int  # position in the test split
    true: int
    predicted: int
    probabilities: np.ndarray  # (10,) float32
    image: np.ndarray  # (28, 28) uint8, white ink on black as in MNIST

    @property
    def confidence(self) -> float:
        """Probability the network gave its (wrong) answer."""
        return float(self.probabilities[self.predicted])


def misreads(
    images_u8: Any,
    labels: Any,
    predictions: Any,
    probabilities: Any,
    true: int | None = None,
    predicted: int | None = None,
    limit: int = 24,
) -> list[Misread]:
    """Misclassified images for one (true, predicted) cell (None = any), surest mistakes first.

    The confident mistakes are the instructive ones: either the network learnt something wrong
    or the label itself is doubtful (MNIST has a few of those).
    """
    true, predicted = _digit(true, "true"), _digit(predicted, "predicted")
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0:
        raise ValueError(f"limit must be a non-negative integer, got {limit!r}")
    y = _class_indices(labels, "labels", NUM_CLASSES)
    p = _class_indices(predictions, "predictions", NUM_CLASSES)
    probs = _numpy(probabilities)
    images = _numpy(images_u8)
    n = y.shape[0]
    if p.shape != (n,) or probs.shape != (n, NUM_CLASSES) or images.shape != (n, 28, 28):
        raise ValueError(
            f"expected {n} predictions, ({n}, 10) probabilities and ({n}, 28, 28) images; got "
            f"{p.shape}, {probs.shape} and {images.shape}"
        )
    wrong = y != p
    if true is not None:
        wrong &= y == true
    if predicted is not None:
        wrong &= p == predicted
    index = np.flatnonzero(wrong)
    confidence = probs[index, p[index]]
    index = index[np.argsort(-confidence, kind="stable")][:limit]  # ties: test-set order
    return [
        Misread(
            index=int(i),
            true=int(y[i]),
            predicted=int(p[i]),
            probabilities=probs[i].astype(np.float32),
            image=images[i].astype(np.uint8),
        )
        for i in index
    ]


def check_image28(image28: Any) -> np.ndarray:
    """A float32 copy of a network-ready (28, 28) image in [0, 1]; ValueError says what is wrong."""
    image = np.array(_numpy(image28), dtype=np.float32)
    if image.shape != (IMAGE_SIDE, IMAGE_SIDE):
        raise ValueError(f"Expected a 28x28 image, shape (28, 28), got shape {image.shape}.")
    if not np.isfinite(image).all():
        raise ValueError("The image holds NaN or infinite pixels.")
    if image.min() < 0.0 or image.max() > 1.0:
        raise ValueError("Pixels must lie in [0, 1] (MNIST pixel / 255).")
    return image


def _require_eval(model: nn.Module) -> None:
    # Switching the mode here would mutate a model other threads may be using; in train mode
    # BatchNorm would update its running statistics and dropout would make answers random.
    if model.training:
        raise ValueError("the model must be in eval mode (call model.eval() once, up front)")


def saliency(model: nn.Module, image28: np.ndarray, target: int | None = None) -> np.ndarray:
    """Which ink pushed the network towards `target` (default: its own answer), in [0, 1].

    SmoothGrad x input: the gradient of the target's logit with respect to the [0, 1] pixels,
    averaged over 16 noisy copies (raw gradients of a ReLU network are speckled), times the
    pixel itself. Multiplying by the ink makes it an attribution against a blank canvas, so
    heat can only sit where something is drawn; only the part pushing towards the target is
    kept, scaled so the strongest pixel is 1. The noise comes from a fixed-seed generator, so
    a drawing always gets the same map. Uses `torch.autograd.grad`: no `.grad` is written on
    the model, so concurrent calls on one model are safe.
    """
    _require_eval(model)
    image = check_image28(image28)
    target = _digit(target, "target")
    device = next(model.parameters()).device
    x = torch.from_numpy(image).to(device)
    generator = torch.Generator().manual_seed(SMOOTH_SEED)
    noise = torch.randn((SMOOTH_SAMPLES, IMAGE_SIDE, IMAGE_SIDE), generator=generator)
    with torch.enable_grad():  # the caller may sit inside no_grad; inference_mode is refused
        if torch.is_inference_mode_enabled():
            raise RuntimeError("saliency needs gradients; call it outside torch.inference_mode")
        if target is None:
            with torch.no_grad():
                target = int(model(to_network_input(x[None])).argmax(1).item())
        noisy = (x + SMOOTH_SIGMA * noise.to(device)).requires_grad_(True)  # (S, 28, 28)
        logits = model(to_network_input(noisy))
        (gradient,) = torch.autograd.grad(logits[:, target].sum(), noisy)
    attribution = (gradient.mean(0) * x).clamp_min(0).detach().cpu().numpy()
    peak = float(attribution.max())
    if peak <= 0.0 or not math.isfinite(peak):
        return np.zeros((IMAGE_SIDE, IMAGE_SIDE), np.float32)
    return (attribution / peak).astype(np.float32)


def feature_maps(model: nn.Module, image28: np.ndarray) -> list[np.ndarray]:
    """Activations after each conv stage, (C, H, W) float32: what the filters respond to."""
    _require_eval(model)
    image = check_image28(image28)
    device = next(model.parameters()).device
    with torch.inference_mode():
        stages = model.features(to_network_input(torch.from_numpy(image).to(device)[None]))
    return [stage[0].float().cpu().numpy() for stage in stages]


def _upscale(array: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour: each network pixel stays a crisp square, as the network saw it."""
    return np.repeat(np.repeat(array, scale, axis=0), scale, axis=1)


def _check_scale(scale: int) -> None:
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or not 1 <= scale <= 64:
        raise ValueError(f"scale must be an integer from 1 to 64, got {scale!r}")


def heat_overlay(image28: np.ndarray, heat: np.ndarray, scale: int = 8) -> np.ndarray:
    """The digit in grey with the heat map blended over it (red = some, yellow = most)."""
    _check_scale(scale)
    image = check_image28(image28)
    heat = np.nan_to_num(np.asarray(heat, dtype=np.float32), nan=0.0).clip(0.0, 1.0)
    if heat.shape != image.shape:
        raise ValueError(f"heat map shape {heat.shape} does not match the image {image.shape}")
    grey = np.repeat((GREY_LEVEL * image)[..., None], 3, axis=2)  # (28, 28, 3) in [0, 1]
    colour = np.stack([np.ones_like(heat), heat, np.zeros_like(heat)], axis=2)  # red -> yellow
    alpha = (HEAT_OPACITY * heat)[..., None]
    rgb = grey * (1.0 - alpha) + colour * alpha
    return _upscale(np.round(255.0 * rgb).astype(np.uint8), scale)


def tile_maps(maps: np.ndarray, columns: int = 8, scale: int = 4, pad: int = 1) -> np.ndarray:
    """(C, H, W) maps as a grid of grey tiles, each stretched to its own range.

    Per-map scaling shows each filter's pattern whatever its magnitude; a constant (dead)
    map has no pattern and is drawn black.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3 or maps.shape[0] == 0:
        raise ValueError(f"expected (C, H, W) maps with C >= 1, got shape {maps.shape}")
    if isinstance(columns, bool) or not isinstance(columns, (int, np.integer)) or columns < 1:
        raise ValueError(f"columns must be a positive integer, got {columns!r}")
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or not 0 <= pad <= 16:
        raise ValueError(f"pad must be an integer from 0 to 16, got {pad!r}")
    _check_scale(scale)
    maps = np.nan_to_num(maps, nan=0.0, posinf=0.0, neginf=0.0)
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    scaled = np.zeros_like(maps)
    np.divide(maps - low, span, out=scaled, where=span > 0)  # constant maps stay 0
    # The grid is torch reshapes, not torchvision's make_grid: importing torchvision (it
    # imports torch._dynamo) took 2.3-3.7 s of the app's start-up for this alone, and this
    # lays out the same pixels as fast: 0.77 / 1.26 ms against make_grid's 0.82 / 1.38 (16 /
    # 32 maps, interleaved; BENCHMARKS.md, thirteenth session).
    count, height, width = maps.shape
    across = min(columns, count)
    down = math.ceil(count / across)
    tiles = torch.from_numpy(np.round(255.0 * scaled).astype(np.int16))
    tiles = tiles.repeat_interleave(scale, 1).repeat_interleave(scale, 2)  # crisp squares
    # Each cell is its gutter (above and left) and its tile; GUTTER where there is no tile.
    shape = (down * across, pad + height * scale, pad + width * scale)
    cells = torch.full(shape, GUTTER, dtype=torch.int16)
    cells[:count, pad:, pad:] = tiles
    _, cell_h, cell_w = cells.shape
    grid = cells.view(down, across, cell_h, cell_w).permute(0, 2, 1, 3)
    grid = F.pad(grid.reshape(down * cell_h, across * cell_w), (0, pad, 0, pad), value=GUTTER)
    return TILE_RGB[grid.long()].numpy()


def gallery_image(misread: Misread, scale: int = 3) -> np.ndarray:
    """A misread test image as a small grey RGB picture for a gallery."""
    _check_scale(scale)
    grey = np.repeat(np.asarray(misread.image, dtype=np.uint8)[..., None], 3, axis=2)
    return _upscale(grey, scale)
