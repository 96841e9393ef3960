"""The Draw tab's model reads digits that are not MNIST's (bench/foreign_set.py, a sample).

The full set's figures are in BENCHMARKS.md; this sample pins floors a few points under
them, per source, so a regression in preprocessing or a worse shipped model fails here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # the set is built by the benchmark's own module

from foreign_set import (  # noqa: E402
    SCANS,
    font_digits,
    installed_fonts,
    scanner_digits,
    score,
    writer_digits,
)

from mnist_demo.predict import shipped_predictor  # noqa: E402

# Sample floors (measured when written: see BENCHMARKS.md, "Foreign-style digits").
FLOORS = {"writers": 0.93, "scanner": 0.95, "fonts": 0.90}


@pytest.fixture(scope="module")
def predictor():
    return shipped_predictor("improved", threads=1)


def _accuracy(predictor, items) -> tuple[float, list]:
    tally = score(predictor, items)
    source = items[0][2].split("/")[0]
    return tally[source]["ok"] / tally[source]["n"], sorted(
        (k, c["ok"], c["n"]) for k, c in tally.items() if c["ok"] < c["n"]
    )


def test_simulated_writers_are_read(predictor):
    accuracy, misses = _accuracy(predictor, writer_digits(12, seed=1))  # 120 digits
    assert accuracy >= FLOORS["writers"], misses


def test_held_out_digits_through_other_scanners_are_read(predictor):
    accuracy, misses = _accuracy(predictor, scanner_digits(270, seed=1))  # 30 per scan kind
    assert accuracy >= FLOORS["scanner"], misses


def test_handwriting_fonts_are_read_when_installed(predictor):
    if not installed_fonts():
        pytest.skip("no handwriting fonts installed (see foreign_set.FONT_PACKAGES)")
    accuracy, misses = _accuracy(predictor, font_digits(1, seed=1))
    assert accuracy >= FLOORS["fonts"], misses


def test_the_set_is_a_function_of_its_seed():
    a, b = scanner_digits(len(SCANS), seed=2), scanner_digits(len(SCANS), seed=2)
    c = writer_digits(1, seed=2)
    for (x, lx, vx), (y, ly, vy) in zip(a, b, strict=True):
        assert (lx, vx) == (ly, vy) and x.dtype == np.uint8
        np.testing.assert_array_equal(x, y)
    assert [v.split("/")[1] for _, _, v in a] == list(SCANS)
    assert [label for _, label, _ in c] == list(range(10))
