"""MNIST test digits re-drawn the way people draw them, and digits drawn as pen strokes.

Shared by the unit test of the shipped checkpoint (tests/unit/test_robustness.py) and the
benchmark that measures it on 1,000+ digits (bench/robustness_set.py, which explains the set).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageDraw

from mnist_demo.data import load_split

Drawn = tuple[np.ndarray, int, str]  # (uint8 image (H, W) or (H, W, C), true label, variant)

THEMES = ("light", "dark", "black", "alpha", "colour")
DARK_PAPER = 0x33  # Gradio's dark theme canvas, #333333
# Stroke radius change in MNIST px (at the 20-px digit scale, where strokes are ~3 px wide):
# a fine pen thins them; Gradio's brush (4% of the canvas) on a digit 20% of the canvas tall
# is 4 px at that scale, "heavy" a little more. Beyond ~+1.5 px an 8 or a 0 closes up.
STROKES = {"thin": (-0.5, -0.25), "same": (0.0, 0.0), "thick": (0.25, 0.75), "heavy": (0.75, 1.25)}
SCALES = (("small", 0.4), ("medium", 0.65), ("large", 0.9))  # longer ink side / canvas side
CANVAS = (200, 1200)  # canvas side range, px (height and width drawn independently)
INKS = ((0, 0, 200), (200, 0, 0), (0, 140, 0), (120, 0, 160), (230, 120, 0), (0, 150, 170))


@functools.lru_cache(maxsize=2)
def _split(name: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """MNIST images (uint8, white on black) and labels of a split, parsed once per process."""
    split = load_split(name)
    return split.images.numpy(), split.labels.numpy()


def _test_split() -> tuple[np.ndarray, np.ndarray]:
    return _split("test")


def _max_filter(a: np.ndarray, r: int) -> np.ndarray:
    """Grey dilation by a (2r+1)-square in O(log r) passes: r reaches ~100 px on big canvases."""
    w = 2 * r + 1
    for axis in (0, 1):
        x = np.moveaxis(a, axis, 0)
        n = x.shape[0]
        pad = np.zeros((r, *x.shape[1:]), x.dtype)
        m = np.concatenate([pad, x, pad])
        span = 1
        while span * 2 <= w:  # m[i] = max(p[i : i + span]), doubling span each pass
            m[:-span] = np.maximum(m[:-span], m[span:])
            span *= 2
        a = np.moveaxis(np.maximum(m[:n], m[w - span : w - span + n]), 0, axis)
    return a


def _restroke(a: np.ndarray, r: int) -> np.ndarray:
    """Thicken (r > 0) or thin (r < 0) the strokes of a uint8 ink image by |r| px."""
    if r > 0:
        return _max_filter(a, r)
    if r < 0:
        return 255 - _max_filter(255 - a, -r)
    return a


def paint(ink: np.ndarray, theme: str, colour: tuple[int, int, int] = INKS[0]) -> np.ndarray:
    """Ink coverage in [0, 1] -> the uint8 image a drawing in `theme` would arrive as."""
    a = ink[..., None]
    if theme == "light":  # the light sketchpad, flattened to grey
        return np.rint(255 * (1 - ink)).astype(np.uint8)
    if theme == "black":  # MNIST's own polarity
        return np.rint(255 * ink).astype(np.uint8)
    if theme == "dark":  # white brush on the dark theme's grey, RGB
        return np.rint(DARK_PAPER + (255 - DARK_PAPER) * np.repeat(a, 3, axis=2)).astype(np.uint8)
    if theme == "alpha":  # a transparent layer: black RGB everywhere, the ink only in alpha
        out = np.zeros((*ink.shape, 4), np.uint8)
        out[..., 3] = np.rint(255 * ink)
        return out
    if theme == "colour":  # coloured ink on white paper, RGB
        paper = np.full(3, 255.0)
        return np.rint(paper * (1 - a) + np.asarray(colour, np.float64) * a).astype(np.uint8)
    raise ValueError(f"unknown theme {theme!r}")


def _redraw(digit: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """One MNIST digit -> a drawn-looking canvas and its variant, e.g. "dark/small/thick/pen"."""
    rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
    crop = digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    height, width = (int(x) for x in rng.integers(CANVAS[0], CANVAS[1] + 1, size=2))
    fraction = float(rng.uniform(0.2, 0.9))
    scale = next(name for name, top in SCALES if fraction <= top)
    stroke = str(rng.choice(list(STROKES)))
    change = float(rng.uniform(*STROKES[stroke]))  # MNIST px of radius
    edge = str(rng.choice(["soft", "pen"]))
    theme = str(rng.choice(THEMES))
    colour = INKS[int(rng.integers(len(INKS)))]
    # Upscale factor: the longer ink side, grown by the dilation, fills `fraction` of the canvas.
    k = fraction * min(height, width) / (max(crop.shape) + 2 * max(change, 0.0))  # px / MNIST px
    size = (max(1, round(crop.shape[1] * k)), max(1, round(crop.shape[0] * k)))
    big = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BILINEAR))
    r = round(change * k)
    big = _restroke(np.pad(big, max(r, 0) + 1), r)
    ink = big.astype(np.float32) / 255
    if edge == "pen":  # a pen's hard, 1.5-px anti-aliased edge instead of a blurry upscale
        level = float(rng.uniform(0.35, 0.6))
        ink = np.clip((ink - level) * k / 1.5 + 0.5, 0.0, 1.0)
    ph, pw = ink.shape
    canvas = np.zeros((max(height, ph), max(width, pw)), np.float32)
    top = int(rng.integers(canvas.shape[0] - ph + 1))  # anywhere: rarely centred
    left = int(rng.integers(canvas.shape[1] - pw + 1))
    canvas[top : top + ph, left : left + pw] = ink
    return paint(canvas, theme, colour), f"{theme}/{scale}/{stroke}/{edge}"


def _pick(n: int, seed: int, split: str = "test") -> tuple[np.random.Generator, np.ndarray]:
    """The generator and which digits a seed re-draws (main() compares with the originals)."""
    rng = np.random.default_rng(seed)
    count = len(_split(split)[1])
    return rng, rng.choice(count, size=n, replace=n > count)


def redrawn_sources(n: int, seed: int = 0, split: str = "test") -> np.ndarray:
    """Which digits of the split `iter_redrawn(n, seed, split)` re-draws, in order."""
    return _pick(n, seed, split)[1]


def iter_redrawn(n: int, seed: int = 0, split: str = "test") -> Iterator[Drawn]:
    """`redrawn_digits` one at a time: 2,000 canvases of up to 1200x1200 do not fit in memory.

    `split="train"` re-draws training digits instead, for fitting anything (a threshold, say)
    that the test digits then measure.
    """
    images, labels = _split(split)
    rng, picked = _pick(n, seed, split)
    for i in picked:
        image, variant = _redraw(images[i], rng)
        yield image, int(labels[i]), variant


def redrawn_digits(n: int, seed: int = 0) -> list[Drawn]:
    """n MNIST test digits re-drawn at random size, place, stroke and theme; same seed, same set."""
    return list(iter_redrawn(n, seed))


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float) -> list[tuple]:
    """Points along an elliptic arc, angles in degrees clockwise from 3 o'clock (y down)."""
    steps = max(2, round(abs(a1 - a0) / 10))
    return [
        (cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
        for a in np.linspace(a0, a1, steps + 1)
    ]


# Pen strokes in a unit box (x right, y down), as a person would draw each digit.
STROKE_SHAPES: dict[int, list[list[tuple]]] = {
    0: [_arc(0.5, 0.5, 0.42, 0.5, -90, 275)],
    1: [[(0.5, 0.0), (0.5, 1.0)]],
    2: [_arc(0.5, 0.28, 0.38, 0.28, 190, 380) + [(0.08, 1.0), (0.95, 1.0)]],
    3: [_arc(0.48, 0.25, 0.38, 0.25, 200, 450) + _arc(0.48, 0.74, 0.42, 0.26, -90, 150)],
    4: [[(0.62, 1.0), (0.62, 0.0), (0.05, 0.68), (0.95, 0.68)]],
    5: [[(0.85, 0.0), (0.22, 0.0), (0.17, 0.45)] + _arc(0.48, 0.7, 0.4, 0.3, 230, 500)],
    6: [_arc(0.6, 0.45, 0.45, 0.45, 270, 180) + _arc(0.5, 0.72, 0.38, 0.28, 180, 540)],
    7: [[(0.08, 0.0), (0.92, 0.0), (0.38, 1.0)]],
    8: [_arc(0.5, 0.24, 0.32, 0.24, 0, 360), _arc(0.5, 0.73, 0.4, 0.27, 0, 360)],
    9: [_arc(0.48, 0.28, 0.38, 0.28, 0, 360), [(0.86, 0.28), (0.8, 1.0)]],
}


def draw_strokes(
    label: int,
    canvas: tuple[int, int] = (400, 400),
    height: float = 0.6,
    pen: float = 0.04,
    centre: tuple[float, float] = (0.5, 0.5),
) -> np.ndarray:
    """Ink coverage (float [0, 1], H x W) of `label` drawn `height` of the canvas tall.

    Args:
        canvas: (height, width) in px.
        height: digit height / canvas height; digits are 0.7 as wide as tall.
        pen: brush width / the canvas' longer side (Gradio's default brush is about 4%).
        centre: digit centre as (x, y) fractions of the canvas.
    """
    ch, cw = canvas
    im = Image.new("L", (cw, ch), 0)
    draw = ImageDraw.Draw(im)
    h = height * ch
    x0, y0 = centre[0] * cw - 0.35 * h, centre[1] * ch - 0.5 * h
    w = max(1, round(pen * max(ch, cw)))
    for line in STROKE_SHAPES[label]:
        points = [(x0 + x * 0.7 * h, y0 + y * h) for x, y in line]
        draw.line(points, fill=255, width=w, joint="curve")
        for x, y in (points[0], points[-1]):  # round caps, as a brush leaves
            draw.ellipse([x - w / 2, y - w / 2, x + w / 2, y + w / 2], fill=255)
    return np.asarray(im, np.float32) / 255


def stroke_digits() -> list[Drawn]:
    """Digits 0-9 drawn as brush strokes in code: the light sketchpad and a transparent layer."""
    out: list[Drawn] = []
    for label in STROKE_SHAPES:
        light = draw_strokes(label, (400, 400), height=0.6, pen=0.04)
        out.append((paint(light, "light"), label, "strokes/light"))
        layer = draw_strokes(label, (600, 800), height=0.45, pen=0.025, centre=(0.3, 0.6))
        out.append((paint(layer, "alpha"), label, "strokes/alpha"))
    return out
