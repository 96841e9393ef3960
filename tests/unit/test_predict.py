"""Predictor: probabilities from arrays, blank drawings, and weights swapped under load."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from mnist_demo import checkpoints
from mnist_demo.checkpoints import Checkpoint, CheckpointError
from mnist_demo.data import to_network_input
from mnist_demo.models import build_model
from mnist_demo.predict import Predictor

BOUND = 60.0


def fresh_state(seed: int, name: str = "tutorial") -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return checkpoints.cpu_state_dict(build_model(name))


@pytest.fixture
def predictor() -> Predictor:
    return Predictor(Checkpoint("tutorial", fresh_state(0)), "fresh tutorial")


def digits(n: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 28, 28), dtype=np.float32)


def test_predict_arrays_gives_a_probability_row_per_image(predictor):
    probabilities, version = predictor.predict_arrays(digits(6))

    assert probabilities.shape == (6, 10) and probabilities.dtype == np.float32
    assert np.all(probabilities >= 0)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
    assert version == predictor.version
    assert (version.number, version.label, version.model_name) == (1, "fresh tutorial", "tutorial")


@pytest.mark.parametrize("shape", [(28, 28), (2, 28, 27), (1, 1, 28, 28)])
def test_predict_arrays_refuses_other_shapes(predictor, shape):
    with pytest.raises(ValueError, match="expected \\(N, 28, 28\\)"):
        predictor.predict_arrays(np.zeros(shape, np.float32))


def test_a_blank_drawing_has_no_label(predictor):
    prediction = predictor.predict_preprocessed(None)
    assert prediction.label is None
    assert prediction.probabilities is None and prediction.image is None
    assert prediction.version == predictor.version


def test_predict_preprocessed_answers_with_the_argmax(predictor):
    image = digits(1)[0]
    prediction = predictor.predict_preprocessed(image)
    expected, _ = predictor.predict_arrays(image[None])
    assert prediction.label == int(expected[0].argmax())
    np.testing.assert_array_equal(prediction.probabilities, expected[0])
    assert prediction.image is image


def test_predictor_reads_real_digits_as_the_training_loop_does(trained_tutorial, mnist):
    """predict_arrays' [0, 1] pixels must reach the network exactly as training fed them."""
    state = checkpoints.cpu_state_dict(trained_tutorial.model)
    predictor = Predictor(Checkpoint("tutorial", state), "trained")
    test = mnist[1]
    images_u8 = test.images[:500]

    probabilities, _ = predictor.predict_arrays(images_u8.numpy().astype(np.float32) / 255.0)

    model = Checkpoint("tutorial", state).build()
    with torch.no_grad():
        expected = torch.softmax(model(to_network_input(images_u8)), dim=1).numpy()
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    accuracy = 100 * np.mean(probabilities.argmax(1) == test.labels[:500].numpy())
    assert accuracy >= 90.0  # the trained model scores 95%+ through the training loop


def test_from_file_labels_the_version_with_the_file_name(tmp_path):
    path = checkpoints.save(tmp_path / "mine.pt", "tutorial", fresh_state(1))
    predictor = Predictor.from_file(path)
    assert predictor.version.label == "checkpoint mine.pt"
    with pytest.raises(CheckpointError):
        Predictor.from_file(tmp_path / "absent.pt")


def test_set_weights_publishes_a_new_version(predictor):
    image = digits(1)
    before, _ = predictor.predict_arrays(image)

    version = predictor.set_weights("tutorial", fresh_state(1), "epoch 1")

    after, answered_by = predictor.predict_arrays(image)
    assert (version.number, version.label) == (2, "epoch 1")
    assert answered_by == version == predictor.version
    assert not np.allclose(before, after)  # the new weights really answer


def test_set_weights_can_switch_architecture(predictor):
    version = predictor.set_weights("improved", fresh_state(0, "improved"), "improved")
    probabilities, answered_by = predictor.predict_arrays(digits(2))
    assert answered_by.model_name == "improved" == version.model_name
    assert probabilities.shape == (2, 10)


def test_weights_that_do_not_fit_leave_the_current_version_serving(predictor):
    current = predictor.version
    with pytest.raises(CheckpointError):
        predictor.set_weights("tutorial", fresh_state(0, "improved"), "mislabelled")
    assert predictor.version == current
    predictor.predict_arrays(digits(1))


def test_weights_swapped_while_four_threads_predict(predictor):
    """Every answer names a published version, and its numbers are that version's output."""
    image = digits(1, seed=7)
    swaps = 15
    states = {f"swap {i}": fresh_state(100 + i) for i in range(swaps)}
    # What each version must answer, computed up front on a private predictor.
    expected = {"fresh tutorial": predictor.predict_arrays(image)[0]}
    reference = Predictor(Checkpoint("tutorial", fresh_state(0)), "reference")
    for label, state in states.items():
        reference.set_weights("tutorial", state, label)
        expected[label] = reference.predict_arrays(image)[0]

    start = threading.Barrier(5)
    answers: list[list[tuple]] = [[] for _ in range(4)]
    published = [predictor.version]
    errors: list[BaseException] = []

    def predict_loop(out: list) -> None:
        try:
            start.wait(BOUND)
            for _ in range(60):
                probabilities, version = predictor.predict_arrays(image)
                out.append((version, probabilities))
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    def swap_loop() -> None:
        try:
            start.wait(BOUND)
            for label, state in states.items():
                published.append(predictor.set_weights("tutorial", state, label))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=predict_loop, args=(out,)) for out in answers]
    threads.append(threading.Thread(target=swap_loop))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BOUND)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert [v.number for v in published] == list(range(1, swaps + 2))
    for out in answers:
        assert len(out) == 60
        numbers = [version.number for version, _ in out]
        assert numbers == sorted(numbers)  # a thread never sees an older version after a newer
        for version, probabilities in out:
            assert version in published
            np.testing.assert_allclose(probabilities, expected[version.label], rtol=1e-5)


def test_an_answer_and_its_explanation_come_from_one_weights_version(predictor):
    image = digits(1)[0]
    weights = predictor.current()  # the Draw tab takes one snapshot per drawing

    predictor.set_weights("tutorial", fresh_state(7), "training run 1, epoch 0.5")
    answer = weights.predict_preprocessed(image)
    explanation = weights.explain(image)

    assert answer.version == explanation.version == weights.version
    assert predictor.version.number == weights.version.number + 1
    np.testing.assert_allclose(explanation.probabilities, answer.probabilities, atol=1e-6)
    assert explanation.label == answer.label
    newer = predictor.explain(image)
    assert newer.version == predictor.version
    assert not np.allclose(newer.probabilities, answer.probabilities)


def test_weights_hands_out_the_weights_as_trained_not_as_folded():
    """The Draw tab answers with BatchNorm folded away; fine-tuning and saving need it back."""
    path = checkpoints.shipped("improved")
    predictor = Predictor.from_file(path)
    name, state, _ = predictor.weights()
    original = checkpoints.load(path).state_dict
    assert name == "improved" and state.keys() == original.keys()
    assert all(torch.equal(state[k], original[k]) for k in original)
    state[next(iter(state))].zero_()  # a copy: changing it leaves the predictor's own alone
    assert all(torch.equal(predictor.weights()[1][k], original[k]) for k in original)
