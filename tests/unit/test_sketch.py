"""Sketch preprocessing: any drawing, any format, any polarity -> the same MNIST-style 28x28."""

from __future__ import annotations

import gzip
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mnist_demo.sketch import SketchError, analyse, decoded_if_small, ink_mask, to_mnist

MNIST_TEST = (
    Path(__file__).resolve().parents[2] / "mnist_demo/bundled/mnist/t10k-images-idx3-ubyte.gz"
)

# Digit shapes as polylines / an ellipse in a unit box (x, y), y pointing down.
SHAPES = {
    "1": [[(0.5, 0.0), (0.5, 1.0)]],
    "7": [[(0.1, 0.0), (0.9, 0.0), (0.35, 1.0)]],
    "0": "ellipse",
    "4": [[(0.6, 1.0), (0.6, 0.0), (0.05, 0.65), (0.95, 0.65)]],
}


def draw(
    digit: str = "7",
    canvas: int | tuple[int, int] = 280,
    size: float = 0.6,
    width: float = 0.12,
    centre: tuple[float, float] = (0.5, 0.5),
    ink: int | tuple[int, ...] = 0,
    paper: int | tuple[int, ...] = 255,
    mode: str = "L",
) -> Image.Image:
    """Draw a digit `size` of the canvas tall, stroke `width` of its height, at `centre`."""
    cw, ch = (canvas, canvas) if isinstance(canvas, int) else canvas
    im = Image.new(mode, (cw, ch), paper)
    pen = ImageDraw.Draw(im)
    side = size * min(cw, ch)
    x0, y0 = centre[0] * cw - side * 0.35, centre[1] * ch - side / 2
    stroke = max(1, round(width * side))

    def at(p: tuple[float, float]) -> tuple[float, float]:
        return x0 + p[0] * side * 0.7, y0 + p[1] * side

    shape = SHAPES[digit]
    if shape == "ellipse":
        pen.ellipse([at((0.0, 0.0)), at((1.0, 1.0))], outline=ink, width=stroke)
    else:
        for line in shape:
            pen.line([at(p) for p in line], fill=ink, width=stroke, joint="curve")
    return im


def sketch_value(layer: Image.Image, dark: bool = False) -> dict:
    """A Gradio 6 Sketchpad value: blank background, one stroke layer, flattened composite."""
    paper = (51, 51, 51, 255) if dark else (255, 255, 255, 255)
    background = Image.new("RGBA", layer.size, paper)
    composite = Image.alpha_composite(background, layer)
    return {
        "background": np.asarray(background),
        "layers": [np.asarray(layer)],
        "composite": np.asarray(composite),
    }


def stroke_layer(digit: str = "7", canvas: int = 800, colour=(0, 0, 0), **kw) -> Image.Image:
    """A transparent layer holding only the strokes, as Gradio's brush draws them."""
    return draw(digit, canvas, ink=(*colour, 255), paper=(0, 0, 0, 0), mode="RGBA", **kw)


def corr(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation up to a 1-px shift: centring rounds the centre of mass to whole pixels,
    so a symmetric digit (mass centre at x.5) may land either side, as in MNIST itself."""
    return max(
        float(np.corrcoef(np.roll(a, (dy, dx), axis=(0, 1)).ravel(), b.ravel())[0, 1])
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    )


def similar(a: np.ndarray, b: np.ndarray) -> float:
    """Shape similarity: `corr` of 3x3-box-blurred copies. Moving a drawing by a fraction of
    an output pixel moves 2-px strokes across the pixel grid, which plain correlation punishes
    (0.85-0.9) though both results are equally good; different digits still score < 0.8."""

    def blur(x: np.ndarray) -> np.ndarray:
        p = np.pad(x, 1)
        rows = p[:-2] + p[1:-1] + p[2:]
        return rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]

    return corr(blur(a), blur(b))


def fatten(a: np.ndarray, r: int) -> np.ndarray:
    """Grey dilation by a (2r+1)-square: every stroke 2r px wider, as if drawn with a fat brush."""
    h, w = a.shape
    p = np.pad(a, r)
    rows = np.maximum.reduce([p[i : i + h] for i in range(2 * r + 1)])
    return np.maximum.reduce([rows[:, j : j + w] for j in range(2 * r + 1)])


def assert_mnist_like(d: np.ndarray | None) -> np.ndarray:
    """The MNIST contract: float32 28x28 in [0, 1], max 1, 20-px box, centre of mass at 14."""
    assert d is not None
    assert d.dtype == np.float32 and d.shape == (28, 28)
    assert d.min() >= 0.0 and d.max() == 1.0
    rows, cols = np.flatnonzero(d.any(axis=1)), np.flatnonzero(d.any(axis=0))
    assert max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) == 20
    mass = d.sum()
    cy, cx = d.sum(axis=1) @ np.arange(28) / mass, d.sum(axis=0) @ np.arange(28) / mass
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1, (cy, cx)
    return d


@pytest.fixture(scope="module")
def mnist() -> np.ndarray:
    """The first 50 MNIST test digits, read straight from the bundled IDX file (no torch)."""
    with gzip.open(MNIST_TEST) as f:
        raw = f.read(16 + 50 * 28 * 28)
    return np.frombuffer(raw, np.uint8, offset=16).reshape(50, 28, 28)


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    """Each shape drawn plainly: black on white, 280 px canvas, 60% tall, centred."""
    return {k: assert_mnist_like(to_mnist(draw(k))) for k in SHAPES}


# ---------------------------------------------------------------- invariances

VARIANTS = {
    "top-left": {"centre": (0.25, 0.3)},
    "bottom-right": {"centre": (0.75, 0.7)},
    "small": {"size": 0.3},
    "big": {"size": 0.9},
    "thin": {"width": 0.03},
    "thick": {"width": 0.18},
    "canvas-800": {"canvas": 800},
    "canvas-2000": {"canvas": 2000},
    "hairline-on-2000": {"canvas": 2000, "width": 0.001},  # a 1-px pen, shrunk ~60x
    "wide-canvas": {"canvas": (900, 300)},
    "tiny-canvas": {"canvas": 24, "size": 0.8},
    "white-on-black": {"ink": 255, "paper": 0},
    "on-transparent": {"ink": (0, 0, 0, 255), "paper": (0, 0, 0, 0), "mode": "RGBA"},
    "white-on-transparent": {"ink": (255,) * 4, "paper": (0, 0, 0, 0), "mode": "RGBA"},
    "faint-pencil": {"ink": 190, "paper": 230},
    "blue-on-dark-grey": {"ink": (40, 60, 255), "paper": (51, 51, 51), "mode": "RGB"},
}


@pytest.mark.parametrize("digit", sorted(SHAPES))
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_same_digit_any_way_drawn_gives_the_same_28x28(digit, variant, reference):
    out = assert_mnist_like(to_mnist(draw(digit, **VARIANTS[variant])))
    assert similar(out, reference[digit]) > 0.9


def test_strokes_have_a_solid_core_like_mnist(reference, mnist):
    """In MNIST ~40% of the pixels above 0.5 are >= 0.99; soft, greyish strokes are not MNIST."""

    def solid(d: np.ndarray) -> float:
        return float((d >= 0.99).sum() / (d > 0.5).sum())

    assert np.mean([solid(x / 255.0) for x in mnist]) > 0.3
    for digit in reference.values():
        assert solid(digit) > 0.3
    blurry = Image.fromarray(255 - mnist[0]).resize((333, 333), Image.Resampling.BICUBIC)
    assert solid(to_mnist(blurry)) > 0.3


def test_different_digits_stay_different(reference):
    """Guards against a pipeline that blurs everything into one blob."""
    for a in SHAPES:
        for b in SHAPES:
            if a < b:
                assert similar(reference[a], reference[b]) < 0.8, (a, b)


def test_mnist_digits_pass_through_nearly_unchanged(mnist):
    """Already MNIST: only re-centring and resampling blur; the few digits with strokes
    outside STROKE_RANGE (~6% of MNIST) are redrawn on purpose, so are held to a looser bound."""
    scores = [corr(assert_mnist_like(to_mnist(x)), x / 255.0) for x in mnist]
    assert min(scores) > 0.75
    assert np.mean(np.array(scores) > 0.97) >= 0.9


def test_mnist_digit_scanned_big_and_inverted_comes_back(mnist):
    for x in mnist[:10]:
        big = Image.fromarray(255 - x).resize((280, 280), Image.Resampling.BILINEAR)
        page = Image.new("L", (500, 420), 255)
        page.paste(big, (160, 30))
        assert corr(assert_mnist_like(to_mnist(page)), x / 255.0) > 0.9


@pytest.mark.parametrize("r", [10, 12], ids=["heavy", "heavier"])
def test_heavy_strokes_are_thinned_towards_mnist(mnist, r):
    """MNIST digits at 10x, strokes 2 and 2.4 MNIST px wider (a fat brush): after thinning
    they match the same digits drawn normally at 0.93 mean correlation (0.87 and 0.84 when
    strokes were only ever thickened)."""
    scores = []
    for x in mnist[:20]:
        big = np.asarray(Image.fromarray(x).resize((280, 280), Image.Resampling.BILINEAR))
        heavy, normal = to_mnist(fatten(big, r)), to_mnist(big)
        scores.append(corr(assert_mnist_like(heavy), assert_mnist_like(normal)))
    assert np.mean(scores) > 0.91 and min(scores) > 0.75, np.round(scores, 3)


# ---------------------------------------------------------------- Gradio values


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_gradio_sketchpad_value_in_both_themes(dark, reference):
    layer = stroke_layer(colour=(255, 255, 255) if dark else (0, 0, 0))
    value = sketch_value(layer, dark=dark)
    out = assert_mnist_like(to_mnist(value))
    assert similar(out, reference["7"]) > 0.9
    # The composite alone (layers flattened away) must read the same in either theme.
    flat = to_mnist({"background": None, "layers": [], "composite": value["composite"]})
    assert corr(assert_mnist_like(flat), out) > 0.95


def test_layer_alpha_wins_over_stroke_colour_matching_the_background(reference):
    """Black strokes in the dark theme's composite are nearly invisible; the alpha is not."""
    value = sketch_value(stroke_layer(colour=(40, 40, 40)), dark=True)
    assert similar(assert_mnist_like(to_mnist(value)), reference["7"]) > 0.9


def test_gradio_value_with_paths_pil_images_and_rgb_layers(tmp_path, reference):
    value = sketch_value(stroke_layer())
    paths = {}
    for key in ("background", "composite"):
        paths[key] = tmp_path / f"{key}.png"
        Image.fromarray(value[key]).save(paths[key])
    layer_path = tmp_path / "layer.png"
    Image.fromarray(value["layers"][0]).save(layer_path)
    as_paths = {"background": str(paths["background"]), "layers": [str(layer_path)]}
    as_paths["composite"] = paths["composite"]  # pathlib.Path too
    as_pil = {k: Image.fromarray(v) for k, v in value.items() if k != "layers"}
    as_pil["layers"] = [None, Image.fromarray(value["layers"][0])]
    # image_mode="RGB" drops the layers' alpha: strokes must then come from the composite.
    rgb_layers = dict(
        value, layers=[np.asarray(Image.fromarray(value["layers"][0]).convert("RGB"))]
    )
    for v in (as_paths, as_pil, rgb_layers):
        assert similar(assert_mnist_like(to_mnist(v)), reference["7"]) > 0.9


def test_ink_in_an_opaque_layer_or_only_in_the_background_is_read(reference):
    """API clients send editor values that are not the browser's: an opaque picture as the
    layer, or an upload as the background under an empty layer, with no composite."""
    value = sketch_value(stroke_layer())
    picture = value["composite"]  # black strokes on an opaque white page
    clear = np.zeros_like(picture)
    white = np.full_like(picture, 255)
    for v in (
        {"background": white, "layers": [picture], "composite": None},
        {"background": None, "layers": [picture[..., :3]]},
        {"background": picture, "layers": [clear], "composite": None},
        {"background": picture, "layers": []},
    ):
        assert similar(assert_mnist_like(to_mnist(v)), reference["7"]) > 0.9


def test_empty_gradio_values_are_no_digit():
    blank = np.zeros((800, 800, 4), np.uint8)
    white = np.full((800, 800, 4), 255, np.uint8)
    assert to_mnist(None) is None
    assert to_mnist({"background": None, "layers": [], "composite": None}) is None
    assert to_mnist({"background": white, "layers": [blank], "composite": white}) is None


def test_inputs_are_not_modified_and_results_repeat():
    value = sketch_value(stroke_layer())
    before = {k: np.copy(v) for k, v in value.items() if k != "layers"}
    layer = value["layers"][0].copy()
    first = to_mnist(value)
    assert np.array_equal(first, to_mnist(value))
    assert np.array_equal(layer, value["layers"][0])
    assert all(np.array_equal(before[k], value[k]) for k in before)


def test_layers_of_different_sizes_are_refused():
    a, b = np.zeros((100, 100, 4), np.uint8), np.zeros((100, 120, 4), np.uint8)
    with pytest.raises(SketchError, match="differ"):
        to_mnist({"layers": [a, b], "composite": None})


# ---------------------------------------------------------------- no digit


@pytest.mark.parametrize("fill", [0, 255, 51, 128])
def test_uniform_canvas_is_no_digit(fill):
    assert to_mnist(np.full((280, 280), fill, np.uint8)) is None
    assert analyse(np.full((280, 280), fill, np.uint8)).reason == "empty"


def test_noise_and_jpeg_grain_are_no_digit():
    rng = np.random.default_rng(0)
    grain = np.clip(240 + rng.normal(0, 4, (300, 300)), 0, 255).astype(np.uint8)
    assert to_mnist(grain) is None


@pytest.mark.parametrize("canvas, radius", [(280, 2), (800, 6), (800, 16), (2000, 30)])
def test_a_single_dot_is_no_digit(canvas, radius):
    """Radius 16 on 800 px is a tap with Gradio's default brush (1/50 of the side)."""
    im = Image.new("L", (canvas, canvas), 255)
    c = canvas * 0.4
    ImageDraw.Draw(im).ellipse([c - radius, c - radius, c + radius, c + radius], fill=0)
    info = analyse(im)
    assert info.digit is None and info.reason in ("too small", "a dot")


def test_scattered_specks_are_no_digit():
    im = np.full((400, 400), 255, np.uint8)
    for y, x in [(20, 30), (300, 350), (180, 90)]:
        im[y : y + 2, x : x + 2] = 0
    assert analyse(im).reason == "specks"


@pytest.mark.parametrize("canvas, pen", [(280, 2), (800, 3), (2000, 1)])
def test_a_thin_small_one_is_still_a_digit(canvas, pen, reference):
    """A '1' 10% of the canvas tall with a fine pen: small, but clearly drawn on purpose."""
    im = Image.new("L", (canvas, canvas), 255)
    x, y = canvas * 0.6, canvas * 0.3
    ImageDraw.Draw(im).line([(x, y), (x, y + canvas * 0.1)], fill=0, width=pen)
    assert similar(assert_mnist_like(to_mnist(im)), reference["1"]) > 0.9


@pytest.mark.parametrize("index, r", [(25, 12), (9, 14)], ids=["0", "9"])
def test_a_thick_large_digit_is_not_a_dot(mnist, index, r):
    """A heavy 0 or 9 fills 75% of the canvas, and its mean ink run is over half its box, as
    in a tap of the brush: size tells them apart (Gradio's brush is ~4% of the canvas)."""
    big = np.asarray(Image.fromarray(mnist[index]).resize((280, 280), Image.Resampling.BILINEAR))
    info = analyse(fatten(big, r))
    assert info.reason is None and info.stroke > 0.5
    assert corr(assert_mnist_like(info.digit), to_mnist(big)) > 0.9  # measured 0.93-0.97


def test_a_thick_drawn_four_is_not_a_dot(reference):
    info = analyse(draw("4", size=0.9, width=0.35))
    assert info.reason is None and info.stroke > 0.5
    assert similar(assert_mnist_like(info.digit), reference["4"]) > 0.85  # measured 0.92


@pytest.mark.parametrize("canvas", [280, 800])
def test_a_big_solid_blob_is_still_a_dot(canvas):
    """Size alone does not make a digit: a filled disc is no digit however big."""
    im = Image.new("L", (canvas, canvas), 255)
    ImageDraw.Draw(im).ellipse([canvas * 0.2, canvas * 0.2, canvas * 0.8, canvas * 0.8], fill=0)
    assert analyse(im).reason == "a dot"


# ---------------------------------------------------------------- formats


def test_pil_modes(reference):
    rgba = draw(ink=(0, 0, 0, 255), paper=(0, 0, 0, 0), mode="RGBA")
    grey = draw()
    transparent_p = Image.new("P", grey.size, 0)
    transparent_p.putpalette([255, 255, 255, 0, 0, 0])  # index 0: white, but transparent
    transparent_p.info["transparency"] = 0
    transparent_p.paste(
        1, mask=Image.eval(grey, lambda v: 255 - v).point(lambda v: 255 * (v > 127))
    )
    images = {
        "P": draw(ink=(200, 0, 0), paper=(255, 255, 200), mode="RGB").quantize(16),
        "P-transparent": transparent_p,
        "LA": rgba.convert("LA"),
        "1": grey.convert("1", dither=Image.Dither.NONE),
        "CMYK": grey.convert("CMYK"),
        "I": Image.fromarray(np.asarray(grey).astype(np.int32) * 100),
        "F": Image.fromarray(np.asarray(grey).astype(np.float32) / 255),
        "YCbCr": grey.convert("RGB").convert("YCbCr"),
    }
    for mode, im in images.items():
        assert corr(assert_mnist_like(to_mnist(im)), reference["7"]) > 0.95, mode


def test_16_bit_is_scaled_not_clipped(reference):
    """Paper at 60000 and ink at 20000 are both 'white' if clipped to 8 bits."""
    grey = np.asarray(draw()).astype(np.float64) / 255
    sixteen = (20000 + grey * 40000).astype(np.uint16)
    im = Image.fromarray(sixteen)
    assert im.mode.startswith("I;16")
    assert corr(assert_mnist_like(to_mnist(im)), reference["7"]) > 0.95
    assert corr(assert_mnist_like(to_mnist(sixteen)), reference["7"]) > 0.95


def test_numpy_dtypes_and_channels(reference):
    grey = np.asarray(draw())
    arrays = {
        "float01": grey.astype(np.float32) / 255,
        "float255": grey.astype(np.float64),
        "bool-ink": grey < 128,
        "hw1": grey[..., None],
        "rgb": np.repeat(grey[..., None], 3, axis=2),
        "int32": grey.astype(np.int32),
        "signed-normalised": (grey.astype(np.float32) / 255 - 0.5) / 0.5,
    }
    for name, a in arrays.items():
        assert corr(assert_mnist_like(to_mnist(a)), reference["7"]) > 0.95, name


def test_files_of_every_format(tmp_path, reference):
    for ext in ("png", "jpg", "gif", "tiff", "bmp", "webp"):
        path = tmp_path / f"digit.{ext}"
        draw(ink=30, paper=250).convert("RGB").save(path)
        assert corr(assert_mnist_like(to_mnist(path)), reference["7"]) > 0.95, ext


def test_animated_gif_uses_the_first_frame(tmp_path, reference):
    path = tmp_path / "anim.gif"
    first, second = draw("1").convert("P"), draw("0").convert("P")
    first.save(path, save_all=True, append_images=[second], duration=100, loop=0)
    assert Image.open(path).n_frames == 2
    assert corr(assert_mnist_like(to_mnist(str(path))), reference["1"]) > 0.95


# ---------------------------------------------------------------- sizes and bad input


def test_smallest_accepted_size_is_8x8():
    one = np.zeros((8, 8), np.uint8)
    one[1:7, 4] = 255
    out = assert_mnist_like(to_mnist(one))
    assert out[:, 12:16].sum() > 0.8 * out.sum()  # still a vertical bar in the middle
    for small in (np.zeros((7, 7), np.uint8), Image.new("L", (20, 7)), np.zeros((7, 100))):
        with pytest.raises(SketchError, match="need at least 8x8"):
            to_mnist(small)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size but has no pixels: only a lazy reader survives it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1000)  # a few rows' worth; decoding would need gigabytes
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [7000, 30000])
def test_huge_files_are_refused_before_decoding(tmp_path, side):
    path = tmp_path / "huge.png"
    path.write_bytes(_png_header_only(side, side))
    start = time.perf_counter()
    with pytest.raises(SketchError, match="too large") as err:
        to_mnist(path)
    assert time.perf_counter() - start < 1.0  # decoding 49-900 MP would take far longer
    assert path.name in str(err.value) and str(path.parent) not in str(err.value)


def test_huge_arrays_are_refused():
    with pytest.raises(SketchError, match=r"7000x6000 pixels \(limit 40 megapixels\)"):
        to_mnist(np.zeros((6000, 7000), np.uint8))


def test_big_but_allowed_image_is_shrunk_and_read(reference):
    im = draw(canvas=(4500, 1800), width=0.05)
    assert similar(assert_mnist_like(to_mnist(im)), reference["7"]) > 0.9
    assert ink_mask(im).shape == (600, 1500)  # box-averaged 3x to stay cheap


def test_truncated_and_fake_image_files_name_the_file(tmp_path):
    good = tmp_path / "good.png"
    draw().save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.png"
    text.write_text("not a picture\n")
    for path, message in [(truncated, "cannot read"), (text, "not an image file")]:
        with pytest.raises(SketchError, match=message) as err:
            to_mnist(path)
        assert path.name in str(err.value) and "\n" not in str(err.value)
        assert str(tmp_path) not in str(err.value)  # no server folders in messages
    with pytest.raises(SketchError, match="no such file"):
        to_mnist(tmp_path / "missing.png")


@pytest.mark.parametrize("bad", [42, [[0, 1], [1, 0]], np.zeros((10, 10, 5)), np.zeros(100)])
def test_unsupported_inputs_raise_sketch_error(bad):
    with pytest.raises(SketchError):
        to_mnist(bad)


# ---------------------------------------------------------------- ink mask and facts


def test_ink_mask_resolves_polarity():
    black_on_white = ink_mask(draw())
    white_on_black = ink_mask(draw(ink=255, paper=0))
    on_transparent = ink_mask(draw(ink=(0, 0, 0, 255), paper=(0, 0, 0, 0), mode="RGBA"))
    assert black_on_white.dtype == np.float32 and black_on_white.shape == (280, 280)
    assert black_on_white[0, 0] == 0.0 and black_on_white.max() == 1.0
    faint = ink_mask(draw(ink=190, paper=230))  # pencil: 16% contrast, still full-strength ink
    for other in (white_on_black, on_transparent, faint):
        assert np.abs(other - black_on_white).mean() < 0.01
    with pytest.raises(SketchError):
        ink_mask(None)


def test_analyse_reports_box_edge_and_stroke():
    centred = analyse(draw(size=0.5))
    assert centred.reason is None and not centred.touches_edge
    top, left, bottom, right = centred.bbox
    assert bottom - top == pytest.approx(0.5 + 0.1 * 0.5, abs=0.03)
    assert (top + bottom) / 2 == pytest.approx(0.5, abs=0.02)
    cut_off = analyse(draw(centre=(0.5, 0.9)))
    assert cut_off.touches_edge and cut_off.bbox[2] == 1.0
    thin, thick = analyse(draw(width=0.03)), analyse(draw(width=0.2))
    assert thin.stroke < 0.08 < 0.14 < thick.stroke


def test_decoded_if_small_reads_as_the_files_do_and_refuses_what_is_large(tmp_path: Path):
    """What the API reads on the event loop (decoded here, no budget) must be what the
    budgeted path reads from the same files."""
    image = Image.new("L", (200, 160), 255)
    ImageDraw.Draw(image).line([(100, 20), (100, 140)], fill=0, width=14)
    path = tmp_path / "one.png"
    image.save(path)
    data = path.read_bytes()
    layer = Image.new("RGBA", (200, 160), (0, 0, 0, 0))
    ImageDraw.Draw(layer).line([(60, 30), (140, 30), (90, 140)], fill=(0, 0, 0, 255), width=12)
    layer_path = tmp_path / "layer.png"
    layer.save(layer_path)
    editor = {"background": str(path), "layers": [str(layer_path)], "composite": None}
    for value in (str(path), data, editor):
        decoded = decoded_if_small(value, 200 * 160 * 2)
        assert decoded is not None
        assert np.array_equal(analyse(decoded).digit, analyse(value).digit)
    assert isinstance(decoded["layers"][0], np.ndarray)
    assert decoded_if_small(editor, 200 * 160 * 2 - 1) is None  # two parts count together
    assert decoded_if_small(str(path), 200 * 160 - 1) is None
    assert decoded_if_small(b"not an image", 10**9) is None  # the budgeted path says why
