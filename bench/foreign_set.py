"""Does the Draw tab's model read digits that are not MNIST's? A foreign-style development set.

Three sources, none of them MNIST test images, none another handwritten-digit data set:

- **writers**: digits drawn as pen strokes by simulated writers, each with their own slant,
  proportions, pen width, curvature, wobble and glyph habits (an open or closed 4, a 7 with a
  crossbar, a 1 with a flag and a foot, a looped 2, a flat-topped 3, a curled 9...).
- **fonts**: handwriting-style fonts from Debian packages (`FONT_PACKAGES`); a font file that
  is not installed is skipped, and the source is empty without any.
- **scanner**: the last `HOLDOUT` images of MNIST's *training* split (models meant to be
  measured here are trained with `--holdout 2000`, so they never saw them), degraded as other
  equipment would: 8x8 and 16x16 scans (grey, binary, stretched to fill the box), blur, JPEG,
  thick and thin pens, hard thresholds.

Every image goes through `Predictor.predict` (sketch.py's preprocessing, then the network), as
an uploaded picture or a drawing would. The set is a function of the seed.

    python bench/foreign_set.py --model improved
    python bench/foreign_set.py --checkpoint runs/x.pt
"""

from __future__ import annotations

import argparse
import functools
import io
import math
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from _env import print_header
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from robustness_set import _wilson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redrawn import _arc, _restroke, paint  # noqa: E402  (the re-drawn set's pen and paper)

from mnist_demo import checkpoints  # noqa: E402
from mnist_demo.data import load_split  # noqa: E402
from mnist_demo.predict import Predictor  # noqa: E402

Item = tuple[np.ndarray, int, str]  # (uint8 image, true label, "source/variant")
SOURCES = ("writers", "fonts", "scanner")
HOLDOUT = 2000  # the last 2,000 of MNIST's 60,000 training images; train with --holdout 2000

# --- writers: pen strokes ------------------------------------------------------------------

Stroke = list[tuple[float, float]]


def _line(*points: tuple[float, float]) -> Stroke:
    return list(points)


# Glyph habits per digit, in a unit box (x right, y down); a writer keeps one habit per digit.
GLYPHS: dict[int, list[list[Stroke]]] = {
    0: [
        [_arc(0.5, 0.5, 0.45, 0.5, -90, 275)],
        [_arc(0.5, 0.5, 0.4, 0.5, -100, 250)],  # left a little open at the top
    ],
    1: [
        [_line((0.5, 0.0), (0.5, 1.0))],
        [_line((0.2, 0.25), (0.55, 0.0), (0.55, 1.0))],  # a flag
        [_line((0.2, 0.25), (0.55, 0.0), (0.55, 1.0)), _line((0.25, 1.0), (0.85, 1.0))],  # foot
    ],
    2: [
        [_arc(0.5, 0.28, 0.4, 0.28, 190, 380) + [(0.05, 1.0), (0.95, 1.0)]],
        [
            _arc(0.5, 0.28, 0.4, 0.28, 190, 380)
            + _arc(0.2, 0.88, 0.12, 0.12, 270, 0)
            + [(0.95, 1.0)]
        ],
    ],
    3: [
        [_arc(0.48, 0.25, 0.4, 0.25, 200, 450) + _arc(0.48, 0.74, 0.44, 0.26, -90, 150)],
        [_line((0.1, 0.0), (0.9, 0.0), (0.45, 0.42)) + _arc(0.48, 0.7, 0.42, 0.3, -80, 150)],
    ],
    4: [
        [_line((0.62, 1.0), (0.62, 0.0), (0.05, 0.68), (0.95, 0.68))],  # closed
        [_line((0.2, 0.0), (0.1, 0.6), (0.95, 0.6)), _line((0.7, 0.15), (0.7, 1.0))],  # open
    ],
    5: [
        [_line((0.85, 0.0), (0.22, 0.0), (0.17, 0.45)) + _arc(0.48, 0.7, 0.4, 0.3, 230, 500)],
        [
            _line((0.2, 0.0), (0.15, 0.45)) + _arc(0.48, 0.7, 0.4, 0.3, 230, 500),
            _line((0.2, 0.0), (0.9, 0.0)),
        ],  # the flag as a second stroke
    ],
    6: [
        [_arc(0.6, 0.45, 0.45, 0.45, 270, 180) + _arc(0.5, 0.72, 0.38, 0.28, 180, 540)],
        [_line((0.75, 0.0), (0.2, 0.65)) + _arc(0.5, 0.72, 0.33, 0.28, 160, 520)],  # straight back
    ],
    7: [
        [_line((0.08, 0.0), (0.92, 0.0), (0.38, 1.0))],
        [_line((0.08, 0.0), (0.92, 0.0), (0.45, 1.0)), _line((0.35, 0.5), (0.85, 0.5))],  # bar
        [_line((0.05, 0.12), (0.1, 0.0), (0.92, 0.0)) + _arc(1.1, 1.0, 0.7, 1.0, 270, 180)[1:]],
    ],
    8: [
        [_arc(0.5, 0.24, 0.32, 0.24, 0, 360), _arc(0.5, 0.73, 0.4, 0.27, 0, 360)],
        [_arc(0.5, 0.24, 0.3, 0.24, 90, -180) + _arc(0.5, 0.73, 0.38, 0.27, -90, 270)],
    ],
    9: [
        [_arc(0.48, 0.28, 0.4, 0.28, 0, 360), _line((0.88, 0.28), (0.82, 1.0))],
        [_arc(0.48, 0.28, 0.4, 0.28, -20, 340) + _arc(0.3, 0.3, 0.58, 0.7, 0, 100)[1:]],
    ],
}


def _bend(stroke: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Resample a stroke densely and bow it sideways by `amount` (curvature, wobble)."""
    seg = np.linalg.norm(np.diff(stroke, axis=0), axis=1)
    length = np.concatenate([[0.0], np.cumsum(seg)])
    if length[-1] <= 0:
        return stroke
    t = np.linspace(0, length[-1], max(8, int(length[-1] * 40)))
    pts = np.stack([np.interp(t, length, stroke[:, i]) for i in (0, 1)], axis=1)
    tangent = np.gradient(pts, axis=0)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-9
    u = t / length[-1]
    phase = rng.uniform(0, 2 * math.pi)
    wobble = amount * np.sin(math.pi * u) + 0.3 * amount * np.sin(4 * math.pi * u + phase)
    return pts + normal * wobble[:, None]


def _writer(rng: np.random.Generator) -> dict:
    """One writer's habits: glyph choices and the ranges their strokes vary within."""
    return dict(
        glyph={d: int(rng.integers(len(g))) for d, g in GLYPHS.items()},
        slant=float(rng.uniform(-0.2, 0.55)),  # dx/dy: most people lean right
        width=float(rng.uniform(0.5, 1.0)),  # width / height of the digit's box
        pen=float(rng.uniform(0.015, 0.08)),  # pen width / canvas side
        curve=float(rng.uniform(-0.06, 0.06)),  # bow of each stroke, box units
        jitter=float(rng.uniform(0.0, 0.02)),  # hand tremor, box units
        size=float(rng.uniform(0.3, 0.85)),  # digit height / canvas height
    )


def write_digit(label: int, writer: dict, rng: np.random.Generator, side: int = 280) -> np.ndarray:
    """Ink coverage (float (side, side) in [0, 1]) of `label` as this writer draws it."""
    im = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(im)
    h = writer["size"] * side * rng.uniform(0.9, 1.1)
    w = h * writer["width"] * rng.uniform(0.9, 1.1)
    slant = writer["slant"] + rng.normal(0, 0.05)
    angle = rng.normal(0, 0.08)
    pen = max(1, round(writer["pen"] * side * rng.uniform(0.8, 1.2)))
    cx, cy = side * rng.uniform(0.4, 0.6), side * rng.uniform(0.4, 0.6)
    for stroke in GLYPHS[label][writer["glyph"][label]]:
        pts = _bend(np.asarray(stroke, float), writer["curve"] + rng.normal(0, 0.02), rng)
        pts = pts + rng.normal(0, writer["jitter"] + 1e-6, pts.shape)
        x, y = (pts[:, 0] - 0.5) * w, (pts[:, 1] - 0.5) * h
        x = x - slant * y  # y grows downwards: a right lean moves the top right
        xr = x * math.cos(angle) - y * math.sin(angle)
        yr = x * math.sin(angle) + y * math.cos(angle)
        points = list(zip((cx + xr).tolist(), (cy + yr).tolist(), strict=True))
        draw.line(points, fill=255, width=pen, joint="curve")
        for px, py in (points[0], points[-1]):  # round caps, as a pen leaves
            draw.ellipse([px - pen / 2, py - pen / 2, px + pen / 2, py + pen / 2], fill=255)
    return np.asarray(im, np.float32) / 255


def writer_digits(writers: int, per_digit: int = 1, seed: int = 0) -> list[Item]:
    """`writers` simulated writers each write every digit `per_digit` times, on 280x280 paper."""
    rng = np.random.default_rng(seed)
    out: list[Item] = []
    for _ in range(writers):
        writer = _writer(rng)
        theme = str(rng.choice(["light", "black", "alpha"]))
        for label in GLYPHS:
            for _ in range(per_digit):
                ink = write_digit(label, writer, rng)
                glyph = writer["glyph"][label]
                out.append((paint(ink, theme), label, f"writers/{label}{'abc'[glyph]}"))
    return out


# --- fonts -----------------------------------------------------------------------------------

FONT_PACKAGES = {  # Debian package -> its handwriting-style font files
    "fonts-dkg-handwriting": ["truetype/fifthhorseman/dkg.ttf", "truetype/fifthhorseman/dkgIt.ttf"],
    "fonts-breip": ["truetype/breip/Breip.ttf"],
    "fonts-femkeklaver": ["truetype/femkeklaver/femkeklaver.ttf"],
    "fonts-humor-sans": ["truetype/humor-sans/Humor-Sans.ttf"],
    "fonts-comic-neue": [
        "opentype/comic-neue/ComicNeue-Regular.otf",
        "opentype/comic-neue/ComicNeue-Italic.otf",
    ],
    "fonts-dancingscript": ["opentype/dancingscript/DancingScript-Regular.otf"],
    "fonts-bwht": [
        f"opentype/bwht/BecauseWe{n}-Regular.otf"
        for n in ("Build", "Connect", "Create", "Learn", "Mentor", "Organize")
    ],
}
FONT_ROOT = Path("/usr/share/fonts")


def installed_fonts() -> list[Path]:
    """The font files of FONT_PACKAGES present on this machine (none: the source is skipped)."""
    return [
        FONT_ROOT / f
        for files in FONT_PACKAGES.values()
        for f in files
        if (FONT_ROOT / f).is_file()
    ]


def font_digits(variants: int = 3, seed: int = 0) -> list[Item]:
    """Each installed font writes 0-9 `variants` times: sizes, small rotations, pen weights."""
    rng = np.random.default_rng(seed)
    out: list[Item] = []
    for path in installed_fonts():
        for label in range(10):
            for _ in range(variants):
                size = int(rng.integers(60, 160))
                font = ImageFont.truetype(str(path), size)
                im = Image.new("L", (3 * size, 3 * size), 0)
                ImageDraw.Draw(im).text(
                    (size, size // 2),
                    str(label),
                    fill=255,
                    font=font,
                    stroke_width=int(rng.integers(0, 1 + size // 25)),
                    stroke_fill=255,
                )
                im = im.rotate(float(rng.normal(0, 4)), resample=Image.Resampling.BILINEAR)
                ink = np.asarray(im, np.float32) / 255
                out.append((paint(ink, "light"), label, f"fonts/{path.stem}"))
    return out


# --- scanner: held-out MNIST training digits, other equipment --------------------------------


@functools.lru_cache(maxsize=1)
def _holdout() -> tuple[np.ndarray, np.ndarray]:
    split = load_split("train")
    return split.images[-HOLDOUT:].numpy(), split.labels[-HOLDOUT:].numpy()


def _crop(digit: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
    return digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _fit(ink: np.ndarray, box: int, fill: bool, margin: int) -> np.ndarray:
    """Scale the ink box into a `box`-px square (aspect kept, or stretched to fill), padded."""
    h, w = ink.shape
    if fill:
        size = (box, box)
    else:
        k = box / max(h, w)
        size = (max(1, round(w * k)), max(1, round(h * k)))
    im = Image.fromarray(ink).resize(
        size, Image.Resampling.BOX if box < max(h, w) else Image.Resampling.BILINEAR
    )
    out = np.zeros((box + 2 * margin, box + 2 * margin), np.uint8)
    top, left = margin + (box - size[1]) // 2, margin + (box - size[0]) // 2
    out[top : top + size[1], left : left + size[0]] = np.asarray(im)
    return out


def _big(ink: np.ndarray, side: int) -> np.ndarray:
    """The 28x28 digit enlarged so its frame is `side` px, as a scan of paper would be."""
    return np.asarray(Image.fromarray(ink).resize((side, side), Image.Resampling.BICUBIC))


SCANS = ("8x8", "16x16", "16x16-binary", "16x16-fill", "blur", "jpeg", "thick", "thin", "threshold")


def scan(digit: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """One MNIST digit (uint8 white on black) as `kind` of equipment would deliver it."""
    ink = _crop(digit)
    if kind == "8x8":  # 4x4 counts of a 32x32 bitmap: 17 grey levels, as some forms readers
        small = _fit((ink > 127).astype(np.uint8) * 255, 8, fill=True, margin=1)
        out = np.rint(small / 255 * 16) * (255 / 16)
    elif kind.startswith("16x16"):
        small = _fit(ink, 16, fill=kind.endswith("fill"), margin=int(rng.integers(1, 3)))
        out = (small > 100) * 255 if kind.endswith("binary") else small
    elif kind == "blur":
        side = int(rng.integers(56, 200))
        im = Image.fromarray(_big(digit, side)).filter(
            ImageFilter.GaussianBlur(side / 28 * rng.uniform(0.6, 1.2))
        )
        out = np.asarray(im)
    elif kind == "jpeg":
        side = int(rng.integers(28, 112))
        buf = io.BytesIO()
        Image.fromarray(255 - _big(digit, side)).save(
            buf, format="JPEG", quality=int(rng.integers(8, 30))
        )
        return np.asarray(Image.open(buf).convert("L"))  # dark ink on paper, as scanned
    elif kind in ("thick", "thin"):
        side = 112  # 4 px per MNIST px
        r = int(rng.integers(3, 7)) if kind == "thick" else -int(rng.integers(2, 4))
        out = _restroke(np.pad(_big(digit, side), 8), r)
    elif kind == "threshold":
        side = int(rng.integers(28, 140))
        out = (_big(digit, side) > rng.uniform(60, 200)) * 255
    else:
        raise ValueError(f"unknown scan {kind!r}")
    out = np.asarray(out, np.float64)
    if rng.random() < 0.5:  # half arrive as dark ink on light paper
        out = 255 - out
    return np.rint(out).astype(np.uint8)


def scanner_digits(n: int = HOLDOUT, seed: int = 0) -> list[Item]:
    """The first `n` held-out training digits, each through one kind of scan (in turn)."""
    images, labels = _holdout()
    rng = np.random.default_rng(seed)
    return [
        (
            scan(images[i], SCANS[i % len(SCANS)], rng),
            int(labels[i]),
            f"scanner/{SCANS[i % len(SCANS)]}",
        )
        for i in range(min(n, len(labels)))
    ]


def foreign_set(
    writers: int = 60, font_variants: int = 3, scans: int = HOLDOUT, seed: int = 0
) -> Iterator[Item]:
    """The whole set, source by source; same arguments, same images."""
    yield from writer_digits(writers, per_digit=2, seed=seed)
    yield from font_digits(font_variants, seed=seed)
    yield from scanner_digits(scans, seed=seed)


def score(predictor: Predictor, items) -> dict[str, Counter]:
    """Correct / total per source and per variant ("writers", "scanner/8x8", ...)."""
    tally: dict[str, Counter] = defaultdict(Counter)
    for image, label, variant in items:
        ok = predictor.predict(image).label == label
        for key in (variant.split("/")[0], variant):
            tally[key]["n"] += 1
            tally[key]["ok"] += ok
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="improved", help="which shipped checkpoint")
    parser.add_argument("--checkpoint", type=Path, default=None, help="any checkpoint instead")
    parser.add_argument("--writers", type=int, default=60, help="simulated writers (x20 digits)")
    parser.add_argument("--scans", type=int, default=HOLDOUT, help="held-out digits to scan")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", action="store_true", help="also print every variant")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the app pins inference
    print_header()
    path = args.checkpoint or checkpoints.shipped(args.model)
    predictor = Predictor.from_file(path, threads=1)
    meta = checkpoints.load(path).metadata.get("config") or {}
    held = meta.get("holdout", 0)
    print(
        f"# checkpoint: {path} (holdout {held}, deskew {meta.get('deskew', False)}, "
        f"distort {meta.get('distort', 0)})"
    )
    if held < HOLDOUT:
        print(
            f"# WARNING: this checkpoint trained on the scanner source's digits "
            f"(holdout {held} < {HOLDOUT})"
        )
    fonts = installed_fonts()
    print(
        f"# fonts: {len(fonts)} files"
        + ("" if fonts else f" (none: install {' '.join(FONT_PACKAGES)})")
    )
    start = time.perf_counter()
    tally = score(predictor, foreign_set(args.writers, scans=args.scans, seed=args.seed))
    seconds = time.perf_counter() - start
    total = Counter()
    print(f"\n{'source':<24} {'n':>6} {'correct':>8} {'acc %':>7}  95% interval")
    for key in sorted(tally):
        c = tally[key]
        if "/" in key and not args.variants:
            continue
        if "/" not in key:
            total.update(c)
        low, high = _wilson(c["ok"], c["n"])
        print(
            f"{key:<24} {c['n']:>6} {c['ok']:>8} {100 * c['ok'] / c['n']:>7.2f}  "
            f"{low:.1f}-{high:.1f}"
        )
    sources = [s for s in SOURCES if tally[s]["n"]]
    mean = sum(100 * tally[s]["ok"] / tally[s]["n"] for s in sources) / len(sources)
    print(f"{'all':<24} {total['n']:>6} {total['ok']:>8} {100 * total['ok'] / total['n']:>7.2f}")
    print(
        f"\nmean over sources: {mean:.2f}%; {seconds:.1f} s "
        f"({1000 * seconds / total['n']:.1f} ms per image)"
    )


if __name__ == "__main__":
    main()
