"""The "this doesn't look like a digit" check (mnist_demo/novelty.py)."""

from __future__ import annotations

import numpy as np
import pytest
from not_digits import draw, not_digits
from redrawn import redrawn_digits, stroke_digits

from mnist_demo import novelty
from mnist_demo.predict import shipped_predictor
from mnist_demo.sketch import analyse

DASH = [[(0.0, 0.5), (1.0, 0.5)]]


def _frame(lines, box=(4, 10, 20, 8), pen=3) -> np.ndarray:
    """Strokes drawn straight into a 28x28 frame."""
    return draw(lines, (28, 28), box, pen)


def test_ink_facts_see_width_holes_and_crossings():
    dash = novelty.ink_facts(_frame(DASH))
    ring = novelty.ink_facts(
        _frame(
            [
                [
                    (0.5 + 0.5 * np.cos(a), 0.5 + 0.5 * np.sin(a))
                    for a in np.linspace(0, 2 * np.pi, 40)
                ]
            ],
            (4, 4, 20, 20),
        )
    )
    names = dict(zip(novelty.FEATURES, range(9), strict=False))

    assert dash[names["aspect"]] > 2  # wide and flat, unlike any digit
    assert dash[names["euler"]] == 1  # one piece, no hole
    assert ring[names["euler"]] == 0  # one piece, one hole: a 0
    assert ring[names["row_crossings"]] == 2
    assert not novelty.ink_facts(np.zeros((28, 28), np.float32)).any()


def test_the_installed_calibration_fits_the_facts():
    # Fails when FEATURES change without a new fit: run bench/not_a_digit.py --calibrate.
    calibration = novelty.load()

    assert calibration is not None
    assert calibration.mean.shape == calibration.scale.shape == (len(novelty.FEATURES),)
    assert calibration.hidden_weights.shape[0] == len(novelty.FEATURES)


@pytest.fixture(scope="module")
def predictor():
    return shipped_predictor("improved", threads=1)


def test_non_digits_are_flagged_and_digits_are_not(predictor):
    # bench/not_a_digit.py measures 1,000+ of each; here 40 drawings and 60 + 20 digits.
    others = [predictor.predict(image) for image, _ in not_digits(40, seed=7)]
    digits = [predictor.predict(image) for image, _, _ in redrawn_digits(60, 5) + stroke_digits()]

    flagged = sum(p.not_digit or p.label is None for p in others)
    assert flagged >= 0.7 * len(others), [p.digit_check for p in others]
    assert sum(p.not_digit for p in digits) <= 1, [
        (p.label, p.digit_check) for p in digits if p.not_digit
    ]
    assert all(p.digit_check is not None for p in digits)


def test_a_dash_keeps_its_answer_but_is_flagged(predictor):
    image = (255 * (1 - draw(DASH, (300, 300), (50, 140, 200, 20), 14))).astype(np.uint8)

    prediction = predictor.predict(image)

    assert prediction.label is not None and prediction.probabilities is not None
    assert prediction.not_digit


def test_without_a_calibration_digits_are_answered_unjudged(predictor, tmp_path):
    novelty.load.cache_clear()
    try:
        assert novelty.load(tmp_path / "missing.npz") is None
        saved = novelty.save(novelty.load(), tmp_path / "copy.npz")
        assert novelty.load(saved).threshold == novelty.load().threshold  # saved whole
    finally:
        novelty.load.cache_clear()


def test_the_check_does_not_read_the_classifier(predictor):
    image = stroke_digits()[6][0]  # a 3
    shipped = predictor.predict(image)
    tutorial = shipped_predictor("tutorial", threads=1).predict(image)

    assert shipped.digit_check == tutorial.digit_check  # same drawing, same verdict


@pytest.mark.parametrize("candidates", [novelty.CANDIDATES, 8])
def test_the_nearest_digit_distance_is_exact(monkeypatch, candidates):
    """The bounded search gives what reading all 10,000 reference digits gives; with 8
    candidates nearly every image takes the second, read-all-bounded path."""
    monkeypatch.setattr(novelty, "CANDIDATES", candidates)
    images = np.stack(_sample_frames()).astype(np.float32)
    reference = novelty.reference_digits()
    flat = images.reshape(len(images), -1)
    squared = (flat**2).sum(1)[:, None] - 2 * flat @ reference.T + (reference**2).sum(1)[None]
    nearest = np.sort(np.clip(squared, 0, None), axis=1)[:, : novelty.NEIGHBOURS]
    expected = np.sqrt(nearest).mean(axis=1)

    assert np.allclose(novelty.mnist_distance(images), expected, rtol=1e-4, atol=1e-3)
    assert np.allclose(novelty.features(images)[:, -1], expected, rtol=1e-4, atol=1e-3)


def _sample_frames() -> list[np.ndarray]:
    """Digits and non-digits as the network sees them: near MNIST and far from it."""
    digits = [image for image, _, _ in redrawn_digits(12, 3)]
    others = [image for image, _ in not_digits(12, seed=3)]
    frames = [analyse(image).digit for image in digits + others]
    return [frame for frame in frames if frame is not None]
