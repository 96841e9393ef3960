"""Batched image transforms on the training device: moment deskewing and random distortions.

Users' digits differ from MNIST's in slant, proportions, pen and scanner. Two answers from
practice live here, both as whole-batch torch ops (affine_grid / grid_sample / pooling), so
they run where the data lives with no host round trip:

- `deskew`: shear each digit so its ink's principal axis is vertical (second-order image
  moments), applied to training images and to every image read at inference when a
  checkpoint says so: slant no longer has to be learned.
- `distort`: random affine (rotation, scale, aspect, shear, shift) and elastic warps,
  stroke-width changes (grey dilation / erosion by pooling), low-resolution round trips
  and binarisation, each image drawing its own parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MAX_SKEW = 1.0  # |shear| cap: beyond 45 degrees a "slant" is a lying-down digit, not italics


def _as_batch(images: torch.Tensor) -> torch.Tensor:
    """(B, H, W) or (B, 1, H, W) -> (B, 1, H, W) float."""
    x = images if images.ndim == 4 else images.unsqueeze(1)
    return x.float()


def skew(images: torch.Tensor) -> torch.Tensor:
    """Per-image slant dx/dy of the ink (intensity-weighted covariance / variance of y)."""
    x = _as_batch(images)[:, 0]
    _, h, w = x.shape
    rows = torch.arange(h, dtype=x.dtype, device=x.device).view(1, h, 1)
    cols = torch.arange(w, dtype=x.dtype, device=x.device).view(1, 1, w)
    mass = x.sum((1, 2)).clamp_min(1e-6)
    cy = (x * rows).sum((1, 2)) / mass
    cx = (x * cols).sum((1, 2)) / mass
    dy, dx = rows - cy.view(-1, 1, 1), cols - cx.view(-1, 1, 1)
    var_y = (x * dy * dy).sum((1, 2)) / mass
    cov = (x * dx * dy).sum((1, 2)) / mass
    return (cov / var_y.clamp_min(1e-6)).clamp(-MAX_SKEW, MAX_SKEW)


def deskew(images: torch.Tensor) -> torch.Tensor:
    """Shear each image about its centre of mass so its ink stands upright; same shape/dtype.

    The classic moment deskew (as in LeCun et al.'s deslanted MNIST results): x' = x +
    skew * (y - cy). The centre of mass stays where it was, so MNIST's centring is kept.
    uint8 in, uint8 out (rounded); floats stay floats.
    """
    x = _as_batch(images)
    b, _, h, w = x.shape
    alpha = skew(x)
    rows = torch.arange(h, dtype=x.dtype, device=x.device).view(1, h, 1)
    mass = x[:, 0].sum((1, 2)).clamp_min(1e-6)
    cy = (x[:, 0] * rows).sum((1, 2)) / mass
    cy_n = (2 * cy + 1) / h - 1  # align_corners=False coordinates of the mass centre row
    theta = torch.zeros(b, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = 1
    theta[:, 1, 1] = 1
    theta[:, 0, 1] = alpha * h / w  # sample x_in = x_out + skew * (y_out - cy), in pixels
    theta[:, 0, 2] = -alpha * cy_n * h / w
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if images.dtype == torch.uint8:
        out = out.round_().clamp_(0, 255).to(torch.uint8)
    return out if images.ndim == 4 else out[:, 0]


def _uniform(b: int, low: float, high: float, device: torch.device) -> torch.Tensor:
    return torch.empty(b, device=device).uniform_(low, high)


def distort(
    images: torch.Tensor, strength: float = 1.0, geometry: float = 1.0, warp: float = 1.0
) -> torch.Tensor:
    """uint8 or [0, 1] images (B, 28, 28) or (B, 1, 28, 28) -> floats in [0, 1], distorted.

    `strength` scales every range (1.0: rotation +-12 deg, scale 0.85-1.15, aspect +-15%,
    shear +-0.25, shift +-2 px, elastic warps of ~1 px); stroke-width changes, low-resolution
    round trips and binarisation each hit about a fifth of the batch. `geometry` scales the
    rotation and shear alone, `warp` the scale, aspect, shift and elastic warps. Draws from
    torch's global generator, seeded by the training run.
    """
    x = _as_batch(images)
    if images.dtype == torch.uint8:
        x = x / 255.0
    b, _, h, w = x.shape
    dev = x.device
    s = strength
    # Stroke width first, at the digit's own scale: a partial grey dilation or erosion (3x3).
    thicker = F.max_pool2d(x, 3, stride=1, padding=1)
    thinner = -F.max_pool2d(-x, 3, stride=1, padding=1)
    pick = torch.rand(b, device=dev).view(b, 1, 1, 1)
    amount = torch.rand(b, device=dev).view(b, 1, 1, 1) * min(s, 1.0)
    x = torch.where(pick < 0.12, x + amount * (thicker - x), x)
    x = torch.where(pick > 0.9, x - 0.6 * amount * (x - thinner), x)

    # One grid for the affine map and the elastic warp: a single resampling.
    angle = _uniform(b, -12.0, 12.0, dev).mul_(s * geometry * torch.pi / 180)
    scale = 1 + _uniform(b, -0.15, 0.15, dev).mul_(s * warp)
    aspect = 1 + _uniform(b, -0.15, 0.15, dev).mul_(s * warp)
    shear = _uniform(b, -0.25, 0.25, dev).mul_(s * geometry)
    shift = _uniform(2 * b, -2.0, 2.0, dev).mul_(s * warp * 2 / w).view(b, 2)
    cos, sin = torch.cos(angle), torch.sin(angle)
    sx, sy = 1 / (scale * aspect), aspect / scale  # grid maps output -> input: inverse scale
    theta = torch.stack(
        [
            torch.stack([cos * sx, (-sin + shear) * sx, shift[:, 0]], 1),
            torch.stack([sin * sy, cos * sy, shift[:, 1]], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)
    coarse = torch.randn(b, 2, 4, 4, device=dev) * (s * warp * 2 / w)  # ~1 px displacements
    displacement = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    x = F.grid_sample(x, grid + displacement.permute(0, 2, 3, 1), align_corners=False)

    # Scanners: a low-resolution round trip (10 or 16 px and back) or a hard threshold. Both
    # sides are computed for the whole batch and chosen per image: no data-dependent shapes,
    # no host sync, so the step stays capturable in a CUDA graph.
    pick = torch.rand(b, device=dev).view(b, 1, 1, 1)
    rate = 0.1 * min(s, 2.0)
    # The blurred strokes' cores are brought back to full ink, as sketch.py's _stretch does.
    for side, chosen in ((10, pick < rate / 2), (16, (pick >= rate / 2) & (pick < rate))):
        small = F.interpolate(x, size=(side, side), mode="area")
        back = F.interpolate(small, size=(h, w), mode="bilinear").mul_(1.6).clamp_(0, 1)
        x = torch.where(chosen, back, x)
    binary = pick > 1 - rate
    level = _uniform(b, 0.3, 0.6, dev).view(b, 1, 1, 1)
    x = torch.where(binary, (x > level).to(x.dtype), x).clamp_(0, 1)
    return x if images.ndim == 4 else x[:, 0]


def flag_ones(images: torch.Tensor, labels: torch.Tensor, share: float) -> torch.Tensor:
    """uint8 or [0, 1] images (B, 28, 28) or (B, 1, 28, 28) -> floats in [0, 1]: about `share`
    of the 1s with a flag.

    MNIST's 1s are single strokes, but many writers start a 1 with a short stroke down to the
    left of its top (a "flag"), which MNIST-trained networks read as a 7 (bench/foreign_set.py:
    the shipped model read 27 of 46). Each picked 1 gets a straight anti-aliased stroke from
    the top of its ink, 20-45% of the digit's height long, down to the left at 25-60 degrees
    less than its stem's slope, 1.5-3 px wide. Computed for the whole batch and kept where
    picked: no host sync.
    """
    x = _as_batch(images)[:, 0]
    if images.dtype == torch.uint8:
        x = x / 255.0
    b, h, w = x.shape
    dev = x.device
    rows = (x > 0.5).any(2).float()  # (B, H): rows with ink
    top = rows.argmax(1)
    bottom = h - 1 - rows.flip(1).argmax(1)
    height = (bottom - top + 1).clamp_min(1).float()
    top_row = x[torch.arange(b, device=dev), top]  # (B, W): where the stroke starts
    cols = torch.arange(w, device=dev, dtype=x.dtype)
    c0 = (top_row * cols).sum(1) / top_row.sum(1).clamp_min(1e-6)
    r0 = top.float()
    length = height * _uniform(b, 0.2, 0.45, dev)
    # Below horizontal, to the left: 25-60 degrees shallower than the stem (a slanted 1's flag
    # must not lie along its own stem), within 10-70 degrees.
    stem = torch.atan2(torch.ones_like(c0), -skew(x))
    angle = (stem - _uniform(b, 25.0, 60.0, dev) * (torch.pi / 180)).clamp(0.17, 1.22)
    r1, c1 = r0 + length * torch.sin(angle), c0 - length * torch.cos(angle)
    # Each pixel centre's distance to the segment (r0, c0)-(r1, c1).
    pr = torch.arange(h, device=dev, dtype=x.dtype).view(1, h, 1)
    pc = cols.view(1, 1, w)
    dr, dc = (r1 - r0).view(b, 1, 1), (c1 - c0).view(b, 1, 1)
    along = ((pr - r0.view(b, 1, 1)) * dr + (pc - c0.view(b, 1, 1)) * dc) / (dr**2 + dc**2)
    along = along.clamp(0, 1)
    dist = torch.hypot(pr - r0.view(b, 1, 1) - along * dr, pc - c0.view(b, 1, 1) - along * dc)
    width = _uniform(b, 1.5, 3.0, dev).view(b, 1, 1)
    stroke = (width / 2 + 0.5 - dist).clamp(0, 1)
    picked = (labels == 1) & (torch.rand(b, device=dev) < share)
    x = torch.where(picked.view(b, 1, 1), torch.maximum(x, stroke), x)
    return x.unsqueeze(1) if images.ndim == 4 else x
