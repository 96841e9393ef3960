"""Does this look like a digit at all? A score for scribbles, letters, shapes and lines.

A classifier answers one of ten digits whatever it is shown: a scribble reads as a 4 (75%), a
dash as a 2 (97%). The score here asks instead how much the drawing, as the 28x28 frame the
network sees, looks like MNIST's own digits: how the ink lies (holes, aspect, fill, crossings,
outline), how far the frame is from the span of the training digits' 40 main components, and
how far from its nearest training digits. No single fact separates well (lines are wide,
scribbles cross themselves, letters sit far from every training digit), so a small network
(one hidden layer of 16) weighs them; bench/not_a_digit.py fits it and measures it.

The score never looks at the classifier's weights: it holds for the shipped checkpoints, for
weights being trained right now and for a visitor's fine-tuned copy alike, and retraining a
checkpoint does not need a new fit. Its coefficients and threshold live in one file,
`mnist_demo/novelty.npz` (`python bench/not_a_digit.py --calibrate` writes it).

Known blind spot: a small, dense scribble that the pen fills in (a blob) is not flagged; the
set it is fitted on has open scratches, not blobs (adding blobs cost ~5 points elsewhere).
"""

from __future__ import annotations

import functools
import io
import logging
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from . import checkpoints
from .data import load_mnist

log = logging.getLogger(__name__)

INK = 0.4  # a 28x28 pixel above this is ink for the shape facts (MNIST strokes: 1.0 cores)
COMPONENTS = 40  # MNIST's main components: 40 leave digits a residual of ~3, drawings ~4.3
# The nearest-digit distance compares with the last 10,000 training digits (mnist_distance
# says how it avoids reading them all); bench/not_a_digit.py fits on re-drawn training digits
# from before them, so that no fitted digit meets its own original here.
REFERENCE = slice(50_000, 60_000)
NEIGHBOURS = 5
# Digits read exactly first (_nearest_mean). With 256, the benchmark drawing's distance took
# 0.41-0.59 ms against 0.45-0.69 for 40 first and then all bounded below their 5th (9
# interleaved pairs, faster in 8); on MNIST's test digits neither wins, nor do 64, 128 or 512.
CANDIDATES = 256
PATH = Path(__file__).with_name("novelty.npz")
FEATURES = (
    "euler",  # connected pieces - holes (8-connected ink): 8 is -1, scribbles vary
    "aspect",  # ink box width / height: digits 0.2-1.4, dashes and waves 2-8
    "fill",  # ink pixels / ink box area
    "ink",  # sum of the frame's pixels
    "row_crossings",  # most ink runs on one row (digits: 1-3)
    "column_crossings",  # ...on one column
    "row_crossings_top3",  # mean of the three busiest rows
    "column_crossings_top3",
    "outline",  # ink/paper edges / sqrt(ink pixels): ragged or busy drawings score high
    "mnist_residual",  # distance from MNIST's training digits' 40-component subspace
    "mnist_distance",  # mean distance to the 5 nearest reference training digits
)


def _euler(mask: np.ndarray) -> float:
    """Euler number (pieces - holes) of an 8-connected binary image, by Gray's bit quads."""
    p = np.pad(mask, 1).astype(np.int8)
    q = p[:-1, :-1] + 2 * p[:-1, 1:] + 4 * p[1:, :-1] + 8 * p[1:, 1:]
    quads = np.bincount(q.ravel(), minlength=16)  # one pass; np.isin x3 took 5x longer
    ones = quads[[1, 2, 4, 8]].sum()
    threes = quads[[7, 11, 13, 14]].sum()
    diagonals = quads[[6, 9]].sum()
    return (ones - threes - 2 * diagonals) / 4


def ink_facts(image28: np.ndarray) -> np.ndarray:
    """The shape facts (FEATURES[:9]) of a 28x28 image in [0, 1], white ink on black."""
    image = np.asarray(image28, np.float32)
    mask = image > INK
    if not mask.any():
        return np.zeros(9, np.float32)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    area = np.count_nonzero(mask)
    across_rows = np.count_nonzero(mask[:, 1:] & ~mask[:, :-1], axis=1) + mask[:, 0]
    across_cols = np.count_nonzero(mask[1:] & ~mask[:-1], axis=0) + mask[0]
    edges = np.count_nonzero(mask[:, 1:] != mask[:, :-1]) + np.count_nonzero(mask[1:] != mask[:-1])
    return np.array(
        [
            _euler(mask),
            width / height,
            area / (height * width),
            image.sum(),
            across_rows.max(),
            across_cols.max(),
            np.sort(across_rows)[-3:].mean(),
            np.sort(across_cols)[-3:].mean(),
            edges / np.sqrt(area),
        ],
        np.float32,
    )


# Rows converted to float at a time for the basis: one 19 MB buffer, reused. Converting all
# 60,000 digits at once (188 MB, twice for the centred copy) took 4.1 s here, most of it the
# fresh memory's page faults, and kept 188 MB for the life of the server.
BASIS_CHUNK = 6_000


def _training_images() -> torch.Tensor:
    """MNIST's training digits as (60000, 784) uint8: the copy the training job reads too."""
    return load_mnist()[0].images.reshape(-1, 28 * 28)


def reference_digits() -> np.ndarray:
    """The reference digits (REFERENCE) as (10000, 784) float32 in [0, 1]."""
    digits = _training_images()[REFERENCE].numpy().astype(np.float32)
    digits /= 255  # in place: one 31 MB array, not two
    return digits


@functools.lru_cache(maxsize=1)
def mnist_basis() -> tuple[np.ndarray, np.ndarray]:
    """MNIST training digits' mean (784,) and main components (784, 40), computed once."""
    images = _training_images()
    mean = (images.sum(0, dtype=torch.int64).double() / (255 * len(images))).float()
    gram = torch.zeros(28 * 28, 28 * 28)
    buffer = torch.empty(BASIS_CHUNK, 28 * 28)
    for start in range(0, len(images), BASIS_CHUNK):
        rows = images[start : start + BASIS_CHUNK]
        centred = buffer[: len(rows)]
        centred.copy_(rows).div_(255).sub_(mean)
        gram.addmm_(centred.T, centred)
    _, vectors = np.linalg.eigh(gram.numpy())  # ascending eigenvalues
    return mean.numpy(), np.ascontiguousarray(vectors[:, ::-1][:, :COMPONENTS])


@dataclass(frozen=True)
class _Reference:
    """The reference digits, laid out for mnist_distance's exact nearest-digit search."""

    digits: torch.Tensor  # (N, 784): a few hundred rows are read whole
    pixels_by_column: torch.Tensor  # (784, N): many rows are read only at the drawing's ink
    norms: torch.Tensor  # (N,) squared norms of the digits
    places: torch.Tensor  # (N, 41): component coordinates and the residual norm, see below
    place_norms: torch.Tensor  # (N,) their squared norms


@functools.lru_cache(maxsize=1)
def _reference() -> _Reference:
    digits = reference_digits()
    places = np.column_stack(_split(digits)).astype(np.float32)
    return _Reference(
        torch.from_numpy(digits),
        torch.from_numpy(np.ascontiguousarray(digits.T)),
        torch.from_numpy(np.einsum("ij,ij->i", digits, digits)),
        torch.from_numpy(places),
        torch.from_numpy(np.einsum("ij,ij->i", places, places)),
    )


def _split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 784) -> coordinates in the 40 main components (N, 40) and residual norms (N,)."""
    mean, basis = mnist_basis()
    centred = x - mean
    coords = centred @ basis
    return coords, np.linalg.norm(centred - coords @ basis.T, axis=1)


def mnist_residual(images28: np.ndarray) -> np.ndarray:
    """(N, 28, 28) -> (N,) distance from the span of MNIST's main components."""
    return _split(np.asarray(images28, np.float32).reshape(len(images28), -1))[1]


def mnist_distance(images28: np.ndarray) -> np.ndarray:
    """(N, 28, 28) -> (N,) mean Euclidean distance to the 5 nearest reference digits."""
    x = np.asarray(images28, np.float32).reshape(len(images28), -1)
    return _nearest_mean(x, np.column_stack(_split(x)))


def _nearest_mean(x: np.ndarray, places: np.ndarray) -> np.ndarray:
    """mnist_distance of (N, 784) images whose places (N, 41) are known, see below.

    Exact, without reading all 10,000 digits (31 MB: 2-4 ms a drawing, and 10-20 ms when
    numpy's BLAS threads wait for a busy core). With a "place" = (component coordinates,
    residual norm), the orthonormal components give |x - d|^2 >= |place(x) - place(d)|^2, a
    (10,000 x 41) product. The CANDIDATES best-bounded digits are read exactly, reading only
    the drawing's ink pixels; their 5th nearest distance is an upper bound of the true one, so
    when every other digit's bound lies above it, those candidates hold the 5 nearest. Else
    (for ~15% of MNIST's test digits) every digit bounded below it is read as well. Torch does
    the products: it keeps to the calling thread's torch threads (one in the app), where
    numpy's BLAS would start its own.
    """
    ref = _reference()
    places_t = torch.from_numpy(places.astype(np.float32))
    out = np.empty(len(x), np.float32)
    with torch.inference_mode():
        for i in range(len(x)):
            place = places_t[i]
            bound = torch.addmv(ref.place_norms, ref.places, place, alpha=-2).add_(place @ place)
            lows, first = torch.topk(bound, CANDIDATES + 1, largest=False)  # ascending
            candidates = _squared(x[i], ref, first[:CANDIDATES])
            nearest = torch.topk(candidates, NEIGHBOURS, largest=False).values
            # Slack for float32 rounding in the bound's expansion (values ~10-200).
            kth = nearest[-1] * 1.001 + 0.01
            if kth >= lows[CANDIDATES]:  # an unread digit may be nearer: read all that may
                rows = torch.nonzero(bound <= kth).flatten()
                nearest = torch.topk(_squared(x[i], ref, rows), NEIGHBOURS, largest=False).values
            out[i] = float(nearest.clamp(min=0).sqrt().mean())
    return out


def _squared(x: np.ndarray, ref: _Reference, rows: torch.Tensor) -> torch.Tensor:
    """Squared distances |x|^2 - 2 x.d + |d|^2 from x (784,) to the reference digits `rows`."""
    if len(rows) < len(ref.norms) // 8:
        dots = ref.digits.index_select(0, rows) @ torch.from_numpy(x)
    else:  # most digits: read only the pixels where the drawing has ink (~20%)
        ink = np.flatnonzero(x)
        pixels = ref.pixels_by_column.index_select(0, torch.from_numpy(ink))
        dots = (torch.from_numpy(x[ink]) @ pixels)[rows]
    return float(x @ x) - 2 * dots + ref.norms[rows]


def features(images28: np.ndarray) -> np.ndarray:
    """(N, 28, 28) images in [0, 1] -> (N, len(FEATURES)) facts."""
    shape = np.stack([ink_facts(image) for image in images28])
    x = np.asarray(images28, np.float32).reshape(len(images28), -1)
    places = np.column_stack(_split(x))  # the residual is its last column
    return np.column_stack([shape, places[:, -1], _nearest_mean(x, places)]).astype(np.float32)


@dataclass(frozen=True)
class Calibration:
    """A fitted score: standardise the facts, one tanh layer, flag above the threshold."""

    mean: np.ndarray  # (F,) facts' mean and spread on the fitting set
    scale: np.ndarray
    hidden_weights: np.ndarray  # (F, H)
    hidden_bias: np.ndarray  # (H,)
    out_weights: np.ndarray  # (H,)
    out_bias: float
    threshold: float  # score above which a drawing "may not be a digit"

    def score(self, facts: np.ndarray) -> np.ndarray:
        """(N, F) facts -> (N,) logit of "not a digit"."""
        z = (np.asarray(facts, np.float32) - self.mean) / self.scale
        return (
            np.tanh(z @ self.hidden_weights + self.hidden_bias) @ self.out_weights + self.out_bias
        )


def save(calibration: Calibration, path: Path = PATH) -> Path:
    """Write the calibration (atomically): the one home of the score's numbers."""
    arrays = {f.name: np.asarray(getattr(calibration, f.name)) for f in fields(Calibration)}
    out = io.BytesIO()
    np.savez(out, features=np.array(FEATURES), **arrays)
    return checkpoints.atomic_write_bytes(path, out.getvalue())


@functools.lru_cache(maxsize=1)
def load(path: Path = PATH) -> Calibration | None:
    """The fitted score, or None (with a warning) if missing or fitted on other facts."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if tuple(str(f) for f in data["features"]) != FEATURES:
                log.warning("no not-a-digit check: %s was fitted on other facts", path.name)
                return None
            values = {f.name: data[f.name] for f in fields(Calibration)}
    except (OSError, KeyError, ValueError) as err:
        log.warning("no not-a-digit check: %s", err)
        return None
    scalars = ("out_bias", "threshold")
    return Calibration(
        **{k: float(v) if k in scalars else v.astype(np.float32) for k, v in values.items()}
    )


@dataclass(frozen=True)
class Verdict:
    score: float  # logit of "not a digit"; above `threshold` the drawing is flagged
    threshold: float

    @property
    def flagged(self) -> bool:
        return self.score > self.threshold


def judge(image28: np.ndarray) -> Verdict | None:
    """Does a (28, 28) frame look like a digit? None when no calibration is installed."""
    calibration = load()
    if calibration is None:
        return None
    score = float(calibration.score(features(np.asarray(image28)[None]))[0])
    return Verdict(score, calibration.threshold)
