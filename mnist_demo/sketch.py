"""Turn any drawing or image into an MNIST-style 28x28 array, the way MNIST itself was made.

MNIST digits are white ink on black, cropped to the ink, scaled so the longer side is 20 px
(anti-aliased), and pasted into a 28x28 frame with the ink's centre of mass at (14, 14).
This module reproduces that for Gradio sketchpad values, arrays, PIL images and files, with
no torch and no state, so it is cheap to call on every stroke and easy to test.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import math
import os
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
from PIL import Image

from .limits import Busy, decode_budget

log = logging.getLogger(__name__)

MIN_SIDE = 8  # below this there is no room for a recognisable digit
MAX_PIXELS = 40_000_000  # ~160 MB as RGBA uint8; more is an accident or a decompression bomb
WORK_SIDE = 2048  # bigger images are box-averaged first: the output is only 20 px tall
MIN_CONTRAST = 0.1  # differences from the background below 10% are paper, noise or JPEG
NOISE_FLOOR = 0.15  # after stretching, ink under 15% of full strength is haze, not stroke
# "No digit" tests. They are scale-free on purpose: a 1-px line on a 2000-px canvas covers
# 0.005% of it, so a minimum inked *area* would reject thin digits on big canvases.
MIN_BOX_FRACTION = 0.02  # ink box under 2% of the canvas side: a speck (a 10%-tall '1' is 5x that)
MIN_BOX_PX = 3  # ...and never fewer than 3 px, whatever the canvas
MIN_ELONGATION = 2.0  # box not twice the stroke width: a tap of the brush (Gradio's is 4% wide)
MAX_DOT = 0.1  # ...and under 10% of the canvas' shorter side: thick 0s, 6s and 8s are stubby too
SOLID = 0.75  # ...or solid, at any size: a disc's mean run is 0.79 of it, the heaviest digits' 0.65
MIN_MASS_PER_SIDE = 0.5  # ink too sparse to form a stroke across its box: scattered specks
BOX = 20  # MNIST's digit box and frame
FRAME = 28
WORK_BOX = 80  # intermediate 4x resolution where strokes are measured, thickened or thinned
# Stroke width, px at the 20-px scale, as `_crest_width` measures it: MNIST's is 1.4 (5th
# percentile), 2.1 (median) and 3.5 (95th). Strokes outside STROKE_RANGE are redrawn: a fine
# pen on a big canvas (often under 1 px after the 40x shrink) is thickened to TARGET_STROKE
# (thin strokes read worse than thick ones), a fat brush thinned only to THINNED_STROKE, as
# erosion cannot reopen the loops it closed and deletes any part thinner than itself.
STROKE_RANGE = (1.2, 3.5)
TARGET_STROKE = 2.25
THINNED_STROKE = 3.0
CORE_QUANTILE = 0.7  # the brightest 30% of ink is 1.0, as in MNIST (~40% of pixels > 0.5)


class SketchError(ValueError):
    """Input that is not a usable image; the message is one line meant for a person."""


@dataclass(frozen=True)
class SketchInfo:
    """The 28x28 digit plus facts about the drawing, so a UI can give useful hints."""

    digit: np.ndarray | None  # float32 (28, 28) in [0, 1], white on black; None: no digit
    reason: str | None = None  # why digit is None: "empty", "too small", "a dot", "specks"
    bbox: tuple[float, float, float, float] | None = None  # ink (top, left, bottom, right) / side
    touches_edge: bool = False  # ink reaches the canvas edge: the digit may be cut off
    stroke: float = 0.0  # stroke width / longer ink-box side (MNIST: ~0.13-0.16)


def _check_size(width: int, height: int, name: str = "image") -> None:
    """Refuse sizes we cannot use before spending memory on the pixels."""
    if width < MIN_SIDE or height < MIN_SIDE:
        raise SketchError(f"{name} is {width}x{height} pixels; need at least {MIN_SIDE}x{MIN_SIDE}")
    if width * height > MAX_PIXELS:
        limit = f"limit {MAX_PIXELS // 1_000_000} megapixels"
        raise SketchError(f"{name} too large: {width}x{height} pixels ({limit})")


def _pil_to_array(im: Image.Image, name: str = "image") -> np.ndarray:
    """PIL image -> array, keeping 16-bit and float precision and any alpha channel."""
    _check_size(*im.size, name=name)
    mode = im.mode
    try:
        if mode in ("P", "PA"):
            im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
        elif mode.endswith("a"):  # premultiplied La / RGBa
            im = im.convert(mode[:-1] + "A")
        elif mode not in ("1", "L", "LA", "RGB", "RGBA", "I", "F") and mode[:4] != "I;16":
            im = im.convert("RGBA" if "A" in mode else "RGB")  # CMYK, YCbCr, LAB, HSV...
        return np.asarray(im)
    except (OSError, ValueError) as err:  # a lazily opened, broken file; an exotic mode
        raise SketchError(f"cannot read {name} (mode {mode}): {err}") from err


MAX_DATA_URL = 8 * 1024 * 1024  # characters: a drawing is ~10 KB; anything near this is abuse


def decode_data_url(url: str) -> bytes:
    """The bytes of a `data:image/...;base64,` URL, as a browser canvas sends a drawing."""
    if len(url) > MAX_DATA_URL:
        raise SketchError(f"drawing too large: {len(url)} characters")
    head, sep, body = url.partition(",")
    if not sep or not head.startswith("data:image/") or not head.endswith(";base64"):
        raise SketchError("not an image data URL")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as err:
        raise SketchError("image data URL is not valid base64") from err


def _open_file(path: str | os.PathLike[str] | io.BytesIO, name: str | None = None) -> np.ndarray:
    """Read the first frame of an image file, checking its size before decoding any pixels.

    Messages name the file, never its folder: an upload lives in the server's temp folder,
    which is nobody's business.
    """
    name = name or os.path.basename(os.fspath(path))
    try:
        with Image.open(path) as im:  # lazy: only the header has been read here
            _check_size(*im.size, name=name)
            im.seek(0)
            im.load()
            return _pil_to_array(im, name)
    except FileNotFoundError as err:
        raise SketchError(f"no such file: {name}") from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise SketchError(f"image too large (decompression bomb?): {name}") from err
    except Image.UnidentifiedImageError as err:
        raise SketchError(f"not an image file: {name}") from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        if isinstance(err, SketchError):
            raise
        detail = str(err)
        if not isinstance(path, io.BytesIO):
            detail = detail.replace(os.fspath(path), name)  # no server folders in messages
        raise SketchError(f"cannot read image file {name}: {detail}") from err


def _as_array(obj: Any) -> tuple[np.ndarray, float]:
    """Any image-like -> (H, W, C) array and the value that means full intensity.

    Files and bytes are decoded and shrunk within the process's pixel budget (limits.py).
    """
    if isinstance(obj, (str, os.PathLike, bytes)):
        pixels, bands = _header_size(obj)
        units = pixels * bands
        try:
            with decode_budget(pixels).hold(units):
                return _decoded(obj)
        except Busy:
            raise SketchError(
                "The server is busy reading other large images: try again in a moment, "
                "or send a smaller image."
            ) from None
    return _decoded(obj)


def _header_size(obj: str | os.PathLike[str] | bytes) -> tuple[int, int]:
    """(pixels, bands) a file will decode to, from its header alone; (0, 0) if unreadable
    (_open_file then says why)."""
    source = io.BytesIO(obj) if isinstance(obj, bytes) else obj
    try:
        with Image.open(source) as im:
            return im.size[0] * im.size[1], len(im.getbands())
    except Exception:
        return 0, 0


def _read_file(obj: str | os.PathLike[str] | bytes) -> np.ndarray:
    if isinstance(obj, bytes):
        return _open_file(io.BytesIO(obj), name="image data")
    return _open_file(obj)


def decoded_if_small(image: ImageInput, max_pixels: int) -> ImageInput | None:
    """`image` with its files decoded to arrays, if they hold `max_pixels` pixels or fewer in
    all; else None (and None if a header is unreadable: the budgeted path says why).

    For a caller that must not wait, such as a server's event loop: a decode this small needs
    no pixel budget (a caller that runs one at a time holds a few MB), and the budget's wait
    is the one thing here that could block. The arrays read exactly as the files would.
    """
    parts = [image]
    if isinstance(image, dict):
        parts = [image.get("background"), image.get("composite"), *(image.get("layers") or [])]
    files = [part for part in parts if isinstance(part, (str, os.PathLike, bytes))]
    sizes = [_header_size(part)[0] for part in files]
    if 0 in sizes or sum(sizes) > max_pixels:
        return None

    def read(part: Any) -> Any:
        return _read_file(part) if isinstance(part, (str, os.PathLike, bytes)) else part

    if not isinstance(image, dict):
        return read(image)
    decoded = {key: read(value) for key, value in image.items() if key != "layers"}
    if "layers" in image:
        decoded["layers"] = [read(layer) for layer in image.get("layers") or []]
    return decoded


def _decoded(obj: Any) -> tuple[np.ndarray, float]:
    if isinstance(obj, (str, os.PathLike, bytes)):
        arr = _read_file(obj)
    elif isinstance(obj, Image.Image):
        arr = _pil_to_array(obj)
    elif isinstance(obj, np.ndarray):
        arr = obj
    else:
        raise SketchError(f"unsupported image type: {type(obj).__name__}")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or not 1 <= arr.shape[2] <= 4 or arr.dtype.kind not in "buif":
        raise SketchError(f"not an image array: shape {arr.shape}, dtype {arr.dtype}")
    _check_size(arr.shape[1], arr.shape[0])
    if arr.dtype.kind == "b":
        arr, full = arr.astype(np.uint8) * np.uint8(255), 255.0
    elif arr.dtype == np.uint8:
        full = 255.0
    else:  # 16-bit, int32, float (0-1 or 0-255): find the scale, never clip to 8 bits
        if arr.dtype.kind == "f":
            arr = np.nan_to_num(arr.astype(np.float32, copy=False))
        low, top = float(arr.min()), float(arr.max())
        limits = (1.0, 255.0, 65535.0) if arr.dtype.kind == "f" else (255.0, 65535.0)
        full = next((x for x in limits if top <= x), top)
        if low < 0:  # e.g. a normalised tensor in [-1, 1]: its own range is full scale
            arr, full = arr.astype(np.float32) - low, (top - low) or 1.0
    h, w = arr.shape[:2]
    f = math.ceil(max(h, w) / WORK_SIDE)
    if f > 1:  # box-average huge images: cheap, and keeps thin strokes' mass
        h, w = h // f * f, w // f * f
        arr = arr[:h, :w].reshape(h // f, f, w // f, f, -1).mean(axis=(1, 3), dtype=np.float32)
    return arr, full


def _border_median(a: np.ndarray) -> np.ndarray:
    """Background estimate: the median of the outermost ring, per channel."""
    ring = np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]])
    return np.median(ring, axis=0).astype(np.float32)


def _to_u8(x: np.ndarray, full: float) -> np.ndarray:
    """Evidence as contiguous uint8 0-255: 8 bits of contrast are plenty, and uint8 is fast."""
    if x.dtype == np.uint8 and full == 255:
        return np.ascontiguousarray(x)  # strided uint8 compares are 10x slower
    return np.rint(np.clip(x * (255.0 / full), 0, 255)).astype(np.uint8)


def _distance(arr: np.ndarray, full: float) -> np.ndarray:
    """Ink evidence per pixel (uint8): alpha on clear backgrounds, else distance from paper."""
    colour = arr
    if arr.shape[2] in (2, 4):
        alpha = arr[..., -1]
        if _border_median(alpha[..., None])[0] < full / 2:
            return _to_u8(alpha, full)  # drawing on a transparent background: alpha is ink
        colour = arr[..., :-1]
        if alpha.min() < full:  # transparent holes in an opaque page: fill with the page
            a = alpha[..., None].astype(np.float32) / full
            colour = colour * a + _border_median(colour) * (1 - a)
    paper, out = _border_median(colour), None
    for c in range(colour.shape[2]):  # ink = the largest per-channel distance from paper
        if colour.dtype == np.uint8:  # a lookup table beats float arithmetic ~5x
            table = np.abs(np.arange(256) - round(float(paper[c]))).astype(np.uint8)
            d = np.take(table, colour[..., c])
        else:
            d = _to_u8(np.abs(colour[..., c] - paper[c]), full)
        out = d if out is None else np.maximum(out, d, out=out)
    return out


ImageInput: TypeAlias = (
    "np.ndarray | Image.Image | str | os.PathLike[str] | bytes | dict[str, Any] | None"
)


def _evidence(image: ImageInput) -> np.ndarray | None:
    """Ink evidence for any accepted input; None when there is no picture at all.

    An editor value (Gradio's Sketchpad/ImageEditor dict) may hold its ink in transparent
    layers (the browser's strokes), in opaque layers, or only in the background (an upload):
    each is read like a picture, in that order, and the first that holds ink answers; the
    composite is the last resort. Layers come first because a transparent layer's ink is its
    alpha, one cheap copy, while reading an opaque 800x800 background costs ~2-3 ms a part.
    """
    if image is None:
        return None
    if not isinstance(image, dict):
        return _distance(*_as_array(image))
    layers = [
        _distance(*_as_array(layer)) for layer in image.get("layers") or [] if layer is not None
    ]
    if len({ink.shape for ink in layers}) > 1:
        raise SketchError("sketch layers differ in size")
    if layers:
        ink = layers[0] if len(layers) == 1 else np.maximum.reduce(layers)
        if _has_ink(ink):
            return ink
    for key in ("background", "composite"):  # layers empty or flattened: read the picture
        if image.get(key) is not None:
            ink = _distance(*_as_array(image[key]))
            if _has_ink(ink) or key == "composite":
                return ink
    return layers[0] if layers else None


def _has_ink(ink: np.ndarray) -> bool:
    return bool(ink.max() > MIN_CONTRAST * 255)


def _crop_and_stretch_ink(dist: np.ndarray) -> tuple[np.ndarray, int, int] | None:
    """Crop to the ink and scale it so the robust max is 255: faint pencil becomes full ink."""
    mask = dist > int(MIN_CONTRAST * 255)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    r0, c0 = rows[0], cols[0]
    crop = dist[r0 : rows[-1] + 1, c0 : cols[-1] + 1]
    vals = crop[mask[r0 : rows[-1] + 1, c0 : cols[-1] + 1]]
    k = int(0.99 * (vals.size - 1))  # 99th percentile, not max: one hot pixel must not rule
    table = np.minimum(np.arange(256) * (255.0 / np.partition(vals, k)[k]), 255.0)
    table[table < NOISE_FLOOR * 255] = 0
    ink = np.take(np.rint(table).astype(np.uint8), crop)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    tight = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return tight, int(r0 + rows[0]), int(c0 + cols[0])


def _stroke_width(ink: np.ndarray) -> float:
    """Mean run length of ink across the strokes (rows or columns, whichever cuts across)."""
    m = ink >= 128
    across_rows = np.count_nonzero(m[:, 0]) + np.count_nonzero(m[:, 1:] & ~m[:, :-1])
    across_cols = np.count_nonzero(m[0]) + np.count_nonzero(m[1:] & ~m[:-1])
    runs = max(across_rows, across_cols)
    return np.count_nonzero(m) / runs if runs else 0.0


def _pad(a: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """Zero padding; np.pad's generality costs more than the rest of a small resize."""
    out = np.zeros((a.shape[0] + top + bottom, a.shape[1] + left + right), a.dtype)
    out[top : top + a.shape[0], left : left + a.shape[1]] = a
    return out


def _dilate(a: np.ndarray, r: int) -> np.ndarray:
    """Grey dilation by a (2r+1)-square, padded so strokes can grow past the old box."""
    p = _pad(a, r, r, r, r)
    h = p.copy()
    for s in range(1, r + 1):
        np.maximum(h[:, s:], p[:, :-s], out=h[:, s:])
        np.maximum(h[:, :-s], p[:, s:], out=h[:, :-s])
    v = h.copy()
    for s in range(1, r + 1):
        np.maximum(v[s:], h[:-s], out=v[s:])
        np.maximum(v[:-s], h[s:], out=v[:-s])
    return v


def _erosions(a: np.ndarray) -> list[np.ndarray]:
    """`a` (uint8) and its grey erosions by octagons of radius 1, 2, ... while ink is left.

    Crosses and 3x3 squares in turn grow an octagon, the cheapest near-disc: strokes thin by
    the same amount whatever their direction. Paper (0) lies beyond the border.
    """
    out = [a]
    p = _pad(a, 1, 1, 1, 1)
    while True:
        if len(out) % 2:  # cross
            q = np.minimum(p[:-2, 1:-1], p[2:, 1:-1])
            np.minimum(q, p[1:-1, :-2], out=q)
            np.minimum(q, p[1:-1, 2:], out=q)
            np.minimum(q, p[1:-1, 1:-1], out=q)
        else:  # square, separably
            h = np.minimum(p[:, :-2], p[:, 2:])
            np.minimum(h, p[:, 1:-1], out=h)
            q = np.minimum(h[:-2], h[2:])
            np.minimum(q, h[1:-1], out=q)
        if not q.any():
            return out
        out.append(q)
        p[1:-1, 1:-1] = q


def _crest_width(erosions: list[np.ndarray]) -> float:
    """Stroke width in px: twice the median distance to paper along the strokes' crests.

    Summing the erosions gives each pixel its octagonal distance to paper, anti-aliased edges
    counting in fractions, so the width resolves ~0.25 px. Crests (local maxima, >= half
    strength) are the strokes' centre lines; their median ignores ends, joints and blobs. The
    run lengths of `_stroke_width` read round strokes (0, 6, 8) ~1.5x too wide; this does not.
    """
    d = np.zeros((erosions[0].shape[0] + 2, erosions[0].shape[1] + 2), np.uint16)
    c = d[1:-1, 1:-1]
    for e in erosions:
        c += e
    rows = np.maximum(np.maximum(d[:, :-2], d[:, 2:]), d[:, 1:-1])
    peak = np.maximum(np.maximum(rows[:-2], rows[2:]), rows[1:-1])  # 3x3 maximum
    crest = (c >= peak) & (c >= 128)
    return 2 * float(np.median(c[crest])) / 255 - 0.5 if crest.any() else 0.0


def _resize(a: np.ndarray, side: int) -> np.ndarray:
    """Scale so the longer side is `side`: area-average down (anti-aliased), bilinear up."""
    h, w = a.shape
    k = side / max(h, w)
    if h != w:  # pad the short side to whole output pixels, or rounding would squash it
        short = min(h, w)
        pad = max(0, round(math.ceil(short * k) / k) - short)
        split = (pad // 2, pad - pad // 2)
        a = _pad(a, *split, 0, 0) if h < w else _pad(a, 0, 0, *split)
        h, w = a.shape
    size = (max(1, round(w * k)), max(1, round(h * k)))
    if k >= 1:
        return np.asarray(Image.fromarray(a).resize(size, Image.Resampling.BILINEAR))
    return np.asarray(Image.fromarray(a).resize(size, Image.Resampling.BOX, reducing_gap=2.0))


def _stretch(a: np.ndarray) -> np.ndarray:
    """Saturate the stroke cores: MNIST's strokes have a solid core of 1.0, not a soft peak."""
    vals = a[a > 0.2 * a.max()]
    k = int(CORE_QUANTILE * (vals.size - 1))
    return np.minimum(a / np.partition(vals, k)[k], 1.0)  # x / x is exactly 1.0


def _to_frame(ink: np.ndarray, width: float) -> np.ndarray:
    """Cropped uint8 ink -> 28x28 MNIST frame: 20-px box, MNIST strokes, mass centre at 14."""
    a8 = _resize(ink, WORK_BOX)  # 8-bit PIL resize: SIMD-fast
    a = a8.astype(np.float32) / 255
    t = width * WORK_BOX / max(ink.shape)  # stroke width at the 4x working scale
    if t < 1:  # sub-pixel strokes were averaged into faint lines: give them back their ink
        a = np.minimum(a / max(t, 0.01), 1.0)
        a8 = np.rint(a * 255).astype(np.uint8)
    erosions = _erosions(a8)
    stroke = _crest_width(erosions) * BOX / WORK_BOX  # px at the 20-px scale
    if stroke < STROKE_RANGE[0]:  # thin pen on a big canvas: thicken before the last shrink
        r = round((TARGET_STROKE - stroke) * WORK_BOX / BOX / 2)
        if r > 0:
            a = _dilate(a, r)
    elif stroke > STROKE_RANGE[1]:  # fat brush: thin the strokes, then crop to what is left
        r = round((stroke - THINNED_STROKE) * WORK_BOX / BOX / 2)
        if 0 < r < len(erosions) and erosions[r].max() >= 128:
            e = erosions[r]
            rows, cols = np.flatnonzero(e.any(axis=1)), np.flatnonzero(e.any(axis=0))
            a = e[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32) / 255
    a = _stretch(_resize(a, BOX))
    h, w = a.shape
    mass = a.sum()
    cy, cx = a.sum(axis=1) @ np.arange(h) / mass, a.sum(axis=0) @ np.arange(w) / mass
    top = min(max(round(FRAME / 2 - cy), 0), FRAME - h)
    left = min(max(round(FRAME / 2 - cx), 0), FRAME - w)
    out = np.zeros((FRAME, FRAME), np.float32)
    out[top : top + h, left : left + w] = a
    return out


def analyse(image: ImageInput) -> SketchInfo:
    """Preprocess like MNIST and say why there is no digit, for hints such as "draw bigger"."""
    evidence = _evidence(image)
    found = None if evidence is None else _crop_and_stretch_ink(evidence)
    if found is None:
        return SketchInfo(None, "empty")
    big_h, big_w = evidence.shape
    ink, top, left = found
    h, w = ink.shape
    side, width = max(h, w), _stroke_width(ink)
    facts = {
        "bbox": (top / big_h, left / big_w, (top + h) / big_h, (left + w) / big_w),
        "touches_edge": top == 0 or left == 0 or top + h == big_h or left + w == big_w,
        "stroke": width / side,
    }
    if side < max(MIN_BOX_PX, MIN_BOX_FRACTION * max(big_h, big_w)):
        reason = "too small"
    elif side < MIN_ELONGATION * width and (
        side < MAX_DOT * min(big_h, big_w) or width > SOLID * side
    ):
        reason = "a dot"
    elif np.count_nonzero(ink >= 128) < MIN_MASS_PER_SIDE * side:
        reason = "specks"
    else:
        return SketchInfo(_to_frame(ink, width), None, **facts)
    log.debug("no digit (%s): ink box %dx%d, stroke %.1f px", reason, h, w, width)
    return SketchInfo(None, reason, **facts)


def to_mnist(image: ImageInput) -> np.ndarray | None:
    """The 28x28 float32 MNIST-style digit (white on black, [0, 1]), or None if none drawn."""
    return analyse(image).digit


def ink_mask(image: ImageInput) -> np.ndarray:
    """Ink intensity in [0, 1] over the canvas, polarity resolved (box-averaged if huge)."""
    evidence = _evidence(image)
    if evidence is None:
        raise SketchError("no image in the sketch value")
    out = np.zeros(evidence.shape, np.float32)
    found = _crop_and_stretch_ink(evidence)
    if found is not None:
        ink, top, left = found
        out[top : top + ink.shape[0], left : left + ink.shape[1]] = ink / np.float32(255)
    return out
