"""insight: confusions, misreads, saliency, feature maps, their pictures, Predictor.explain."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import torch

from mnist_demo import checkpoints, insight
from mnist_demo.models import build_model
from mnist_demo.predict import Predictor


@pytest.fixture(scope="module")
def tutorial() -> torch.nn.Module:
    return checkpoints.load(checkpoints.shipped("tutorial")).build()


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.from_file(checkpoints.shipped("tutorial"), threads=1)


def real_digit(mnist, i: int) -> tuple[np.ndarray, int]:
    test = mnist[1]
    return test.images[i].numpy().astype(np.float32) / 255.0, int(test.labels[i])


def probability(model: torch.nn.Module, image: np.ndarray, digit: int) -> float:
    x = (torch.from_numpy(image.astype(np.float32))[None, None] - 0.5) / 0.5
    with torch.no_grad():
        return float(torch.softmax(model(x), dim=1)[0, digit])


# --- confusion matrix and per-class accuracy -------------------------------------------------


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    labels = np.array([0, 0, 1, 2, 2, 2])
    predictions = np.array([0, 1, 1, 2, 0, 2])

    matrix = insight.confusion_matrix(labels, predictions, classes=3)

    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert matrix.dtype == np.int64


def test_confusion_matrix_takes_tensors_and_defaults_to_ten_digits():
    matrix = insight.confusion_matrix(torch.tensor([9, 3, 3]), torch.tensor([4, 3, 3]))
    assert matrix.shape == (10, 10)
    assert matrix[9, 4] == 1 and matrix[3, 3] == 2 and matrix.sum() == 3


@pytest.mark.parametrize(
    ("labels", "predictions", "message"),
    [
        ([0, 1], [0], "2 labels but 1 predictions"),
        ([0, 10], [0, 1], "labels must lie in 0..9"),
        ([0, 1], [-1, 1], "predictions must lie in 0..9"),
        ([0.0, 1.0], [0, 1], "labels must be a 1-D array of integers"),
    ],
)
def test_confusion_matrix_refuses_bad_input(labels, predictions, message):
    with pytest.raises(ValueError, match=message):
        insight.confusion_matrix(np.array(labels), np.array(predictions))


def test_per_class_accuracy_is_percent_and_nan_for_a_digit_never_seen():
    matrix = np.array([[1, 1, 0], [0, 0, 0], [1, 0, 2]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value in divide" for the empty row
        accuracy = insight.per_class_accuracy(matrix)
    np.testing.assert_allclose(accuracy, [50.0, np.nan, 200 / 3])


# --- misreads ----------------------------------------------------------------------------------


def misread_fixture() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Six images: index 1, 3, 4 and 5 are wrong, with known confidences."""
    images = np.arange(6, dtype=np.uint8)[:, None, None] * np.ones((1, 28, 28), np.uint8)
    labels = np.array([4, 4, 7, 4, 4, 1])
    predictions = np.array([4, 9, 7, 9, 9, 7])
    probabilities = np.full((6, 10), 0.01, np.float32)
    confidence = [0.9, 0.6, 0.8, 0.95, 0.7, 0.5]
    probabilities[np.arange(6), predictions] = confidence
    return images, labels, predictions, probabilities


def test_misreads_of_one_cell_come_surest_first():
    images, labels, predictions, probabilities = misread_fixture()

    found = insight.misreads(images, labels, predictions, probabilities, true=4, predicted=9)

    assert [m.index for m in found] == [3, 4, 1]  # confidences 0.95, 0.7, 0.6
    first = found[0]
    assert (first.true, first.predicted) == (4, 9)
    assert first.confidence == pytest.approx(0.95)
    assert first.image.dtype == np.uint8 and first.image.shape == (28, 28)
    assert first.image[0, 0] == 3  # the image of test index 3
    assert first.probabilities.shape == (10,)


def test_misreads_with_none_match_any_digit_and_respect_the_limit():
    images, labels, predictions, probabilities = misread_fixture()
    args = (images, labels, predictions, probabilities)

    assert [m.index for m in insight.misreads(*args)] == [3, 4, 1, 5]  # never the correct 0, 2
    assert [m.index for m in insight.misreads(*args, predicted=7)] == [5]
    assert [m.index for m in insight.misreads(*args, true=4, limit=2)] == [3, 4]
    assert insight.misreads(*args, true=7) == []  # every 7 was read correctly


def test_misreads_take_tensors():
    images, labels, predictions, probabilities = misread_fixture()
    tensors = [torch.from_numpy(a) for a in (images, labels, predictions, probabilities)]
    assert [m.index for m in insight.misreads(*tensors, true=4)] == [3, 4, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(true=10), "true must be a digit from 0 to 9"),
        (dict(predicted=-1), "predicted must be a digit from 0 to 9"),
        (dict(true="4"), "true must be a digit"),
        (dict(predicted=True), "predicted must be a digit"),
        (dict(limit=-1), "limit must be a non-negative integer"),
    ],
)
def test_misreads_validate_digits_and_limit(kwargs, message):
    with pytest.raises(ValueError, match=message):
        insight.misreads(*misread_fixture(), **kwargs)


def test_misreads_refuse_mismatched_lengths():
    images, labels, predictions, probabilities = misread_fixture()
    with pytest.raises(ValueError, match="expected 6 predictions"):
        insight.misreads(images[:5], labels, predictions, probabilities)


def test_real_misreads_are_all_wrong_and_the_matrix_matches_accuracy(mnist, predictor):
    test = mnist[1]
    images, labels = test.images[:1000], test.labels[:1000]
    probabilities, _ = predictor.predict_split(images)
    predictions = probabilities.argmax(1)

    matrix = insight.confusion_matrix(labels, predictions)
    found = insight.misreads(images, labels, predictions, probabilities, limit=100)

    assert matrix.sum() == 1000
    wrong = 1000 - np.trace(matrix)
    assert 0 < wrong <= 20  # the shipped model scores 99.3% on the full test set
    assert len(found) == wrong
    assert all(labels[m.index] == m.true != m.predicted == predictions[m.index] for m in found)
    assert all(a.confidence >= b.confidence for a, b in zip(found, found[1:], strict=False))


# --- saliency ----------------------------------------------------------------------------------


def test_saliency_is_a_deterministic_unit_map(mnist, tutorial):
    image, digit = real_digit(mnist, 0)

    heat = insight.saliency(tutorial, image)

    assert heat.shape == (28, 28) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(heat, insight.saliency(tutorial, image))
    np.testing.assert_array_equal(heat, insight.saliency(tutorial, image, target=digit))
    assert not np.array_equal(heat, insight.saliency(tutorial, image, target=(digit + 1) % 10))


def test_saliency_sits_on_the_ink_that_decides_the_answer(mnist, tutorial):
    """Deleting the most salient fifth of the ink must hurt far more than a random fifth."""
    rng = np.random.default_rng(0)
    salient_drop, random_drop = [], []
    for i in range(8):
        image, digit = real_digit(mnist, i)
        heat = insight.saliency(tutorial, image, target=digit)
        ink = image > 0.5
        assert heat[ink].mean() > 10 * heat[~ink].mean()
        k = int(0.2 * ink.sum())
        before = probability(tutorial, image, digit)
        for chosen, drops in (
            (np.argsort(-heat.ravel())[:k], salient_drop),
            (rng.choice(np.flatnonzero(ink), k, replace=False), random_drop),
        ):
            erased = image.copy().ravel()
            erased[chosen] = 0.0
            drops.append(before - probability(tutorial, erased.reshape(28, 28), digit))
    # measured: 0.44 against -0.03 (the random fifth barely matters)
    assert np.mean(salient_drop) > 0.2
    assert np.mean(salient_drop) > np.mean(random_drop) + 0.15


def test_saliency_leaves_the_model_untouched_and_works_under_no_grad(mnist, tutorial):
    image, _ = real_digit(mnist, 1)
    before = {k: v.clone() for k, v in tutorial.state_dict().items()}
    with torch.no_grad():
        heat = insight.saliency(tutorial, image)
    assert heat.max() == pytest.approx(1.0)
    assert all(p.grad is None for p in tutorial.parameters())
    assert not tutorial.training
    for k, v in tutorial.state_dict().items():
        assert torch.equal(v, before[k])


def test_saliency_gives_the_same_map_from_concurrent_threads(mnist, tutorial):
    images = [real_digit(mnist, i)[0] for i in range(4)]
    expected = [insight.saliency(tutorial, image) for image in images]
    results: dict[int, list[np.ndarray]] = {}

    def work(n: int) -> None:
        torch.set_num_threads(1)
        results[n] = [insight.saliency(tutorial, image) for image in images]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == [0, 1, 2]
    for maps in results.values():
        for got, want in zip(maps, expected, strict=True):
            np.testing.assert_allclose(got, want, atol=1e-6)


def test_saliency_and_feature_maps_refuse_a_training_model_and_bad_images(tutorial):
    model = build_model("tutorial")  # train mode
    with pytest.raises(ValueError, match="eval mode"):
        insight.saliency(model, np.zeros((28, 28), np.float32))
    with pytest.raises(ValueError, match="eval mode"):
        insight.feature_maps(model, np.zeros((28, 28), np.float32))
    with pytest.raises(ValueError, match="\\(28, 28\\)"):
        insight.saliency(tutorial, np.zeros((1, 28, 28), np.float32))
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        insight.feature_maps(tutorial, np.full((28, 28), 255.0, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        insight.saliency(tutorial, np.full((28, 28), np.nan, np.float32))
    with pytest.raises(ValueError, match="target must be a digit"):
        insight.saliency(tutorial, np.zeros((28, 28), np.float32), target=10)


def test_a_blank_image_has_an_all_zero_saliency(tutorial):
    heat = insight.saliency(tutorial, np.zeros((28, 28), np.float32))
    assert heat.shape == (28, 28) and not heat.any()


# --- feature maps and pictures -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shapes"),
    [("tutorial", [(16, 14, 14), (32, 7, 7)]), ("improved", [(32, 14, 14), (64, 7, 7)])],
)
def test_feature_maps_have_one_array_per_conv_stage(mnist, name, shapes):
    model = checkpoints.load(checkpoints.shipped(name)).build()
    maps = insight.feature_maps(model, real_digit(mnist, 0)[0])
    assert [m.shape for m in maps] == shapes
    assert all(m.dtype == np.float32 for m in maps)
    assert all(m.max() > 0 for m in maps)  # a real digit wakes up some filters


def test_tile_maps_lays_out_a_padded_grid_each_map_on_its_own_scale():
    maps = np.zeros((10, 7, 7), np.float32)
    maps[0, 0, 0] = 1000.0  # a strong map and a weak one both reach full white
    maps[1, 3, 3] = 0.001
    maps[2] = 5.0  # constant: drawn black
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grid = insight.tile_maps(maps, columns=4, scale=2, pad=1)

    assert grid.dtype == np.uint8
    assert grid.shape == (3 * 14 + 4, 4 * 14 + 5, 3)  # 3 rows of 4 columns, 1-px gutters
    first = grid[1:15, 1:15, 0]
    second = grid[1:15, 16:30, 0]
    third = grid[1:15, 31:45, 0]
    assert first[0, 0] == 255 and first[2:, 2:].max() == 0
    assert second[6, 6] == 255 and second[0, 0] == 0
    assert third.max() == 0
    assert tuple(grid[0, 0]) == insight.PAD_RGB


def test_tile_maps_survives_nan_and_refuses_bad_shapes():
    maps = np.full((2, 4, 4), np.nan, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grid = insight.tile_maps(maps, columns=8, scale=1, pad=0)
    assert grid.shape == (4, 8, 3) and grid.max() == 0
    with pytest.raises(ValueError, match="\\(C, H, W\\)"):
        insight.tile_maps(np.zeros((4, 4), np.float32))


def test_heat_overlay_blends_red_to_yellow_over_a_grey_digit():
    image = np.zeros((28, 28), np.float32)
    image[10:18, 12:16] = 1.0
    heat = np.zeros((28, 28), np.float32)
    heat[0, 0], heat[0, 1] = 1.0, 0.3

    picture = insight.heat_overlay(image, heat)

    assert picture.shape == (224, 224, 3) and picture.dtype == np.uint8
    ink = picture[10 * 8, 12 * 8]
    assert ink[0] == ink[1] == ink[2] > 100  # no heat: the digit in plain grey
    hot, warm = picture[0, 8], picture[0, 0]
    assert hot[0] > hot[1] > hot[2] and warm[1] > 200 and warm[2] < 60  # red, then yellow
    assert insight.heat_overlay(image, heat, scale=2).shape == (56, 56, 3)
    with pytest.raises(ValueError, match="does not match"):
        insight.heat_overlay(image, heat[:14])


def test_gallery_image_is_a_small_grey_picture():
    images, labels, predictions, probabilities = misread_fixture()
    misread = insight.misreads(images, labels, predictions, probabilities, limit=1)[0]
    picture = insight.gallery_image(misread)
    assert picture.shape == (84, 84, 3) and picture.dtype == np.uint8
    assert (picture == misread.image[0, 0]).all()


# --- Predictor.explain and predict_split -------------------------------------------------------


def test_explain_agrees_with_predict_arrays(mnist, predictor):
    images = np.stack([real_digit(mnist, i)[0] for i in range(5)])
    probabilities, version = predictor.predict_arrays(images)

    for image, expected in zip(images, probabilities, strict=True):
        explanation = predictor.explain(image)
        assert explanation.label == int(expected.argmax())
        np.testing.assert_allclose(explanation.probabilities, expected, atol=1e-6)
        assert explanation.saliency.shape == (28, 28)
        assert [m.shape for m in explanation.feature_maps] == [(16, 14, 14), (32, 7, 7)]
        assert explanation.version == version
    with pytest.raises(ValueError, match="\\(28, 28\\)"):
        predictor.explain(images)


def test_predict_split_matches_predict_arrays(mnist, predictor):
    images = mnist[1].images[:70]
    expected, _ = predictor.predict_arrays(images.numpy().astype(np.float32) / 255.0)
    got, version = predictor.predict_split(images, batch_size=32)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert version == predictor.version
    with pytest.raises(ValueError, match="uint8"):
        predictor.predict_split(images.float())
