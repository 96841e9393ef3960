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

from . import checkpoints
from .data import load_split

log = logging.getLogger(__name__)

INK = 0.4  # a 28x28 pixel above this is ink for the shape facts (MNIST strokes: 1.0 cores)
COMPONENTS = 40  # MNIST's main components: 40 leave digits a residual of ~3, drawings ~4.3
# The nearest-digit distance compares with the last 10,000 training digits (31 MB as float32,
# ~3 ms a drawing); bench/not_a_digit.py fits on re-drawn training digits from before them, so
# that no fitted digit meets its own original here.
REFERENCE = slice(50_000, 60_000)
NEIGHBOURS = 5
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
    ones = np.count_nonzero(np.isin(q, (1, 2, 4, 8)))
    threes = np.count_nonzero(np.isin(q, (7, 11, 13, 14)))
    diagonals = np.count_nonzero(np.isin(q, (6, 9)))
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


@functools.lru_cache(maxsize=1)
def _training_digits() -> np.ndarray:
    """MNIST's training digits as (60000, 784) float32 in [0, 1], read once."""
    return load_split("train").images.numpy().reshape(-1, 28 * 28).astype(np.float32) / 255


@functools.lru_cache(maxsize=1)
def mnist_basis() -> tuple[np.ndarray, np.ndarray]:
    """MNIST training digits' mean (784,) and main components (784, 40), computed once (~2 s)."""
    x = _training_digits()
    mean = x.mean(axis=0)
    centred = x - mean
    _, vectors = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
    return mean, np.ascontiguousarray(vectors[:, ::-1][:, :COMPONENTS])


@functools.lru_cache(maxsize=1)
def _reference() -> tuple[np.ndarray, np.ndarray]:
    """The reference digits (N, 784) and their squared norms."""
    digits = np.ascontiguousarray(_training_digits()[REFERENCE])
    return digits, np.einsum("ij,ij->i", digits, digits)


def mnist_residual(images28: np.ndarray) -> np.ndarray:
    """(N, 28, 28) -> (N,) distance from the span of MNIST's main components."""
    mean, basis = mnist_basis()
    x = np.asarray(images28, np.float32).reshape(len(images28), -1) - mean
    return np.linalg.norm(x - (x @ basis) @ basis.T, axis=1)


def mnist_distance(images28: np.ndarray) -> np.ndarray:
    """(N, 28, 28) -> (N,) mean Euclidean distance to the 5 nearest reference digits."""
    digits, norms = _reference()
    x = np.asarray(images28, np.float32).reshape(len(images28), -1)
    squared = np.einsum("ij,ij->i", x, x)[:, None] - 2 * (x @ digits.T) + norms
    nearest = np.partition(squared, NEIGHBOURS, axis=1)[:, :NEIGHBOURS]
    return np.sqrt(np.maximum(nearest, 0)).mean(axis=1)


def features(images28: np.ndarray) -> np.ndarray:
    """(N, 28, 28) images in [0, 1] -> (N, len(FEATURES)) facts."""
    shape = np.stack([ink_facts(image) for image in images28])
    return np.column_stack([shape, mnist_residual(images28), mnist_distance(images28)]).astype(
        np.float32
    )


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
