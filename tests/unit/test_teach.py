"""teach: the visitor's drawing set, and a fine-tune that learns it without forgetting MNIST."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from mnist_demo import checkpoints
from mnist_demo.data import Split, random_shift
from mnist_demo.teach import FineTuneResult, PersonalSet, fine_tune


def stroke(label_value: float = 1.0) -> np.ndarray:
    image = np.zeros((28, 28), np.float32)
    image[6:22, 13:15] = label_value
    return image


# --- PersonalSet -------------------------------------------------------------------------------


def test_add_stores_a_copy_and_reports_progress():
    personal = PersonalSet(capacity=3)
    image = stroke()

    assert personal.add(image, 7) == "Added a 7 (1 of 3)."
    image[:] = 0.5  # the caller's array changing later must not change the set
    assert personal.add(stroke(0.8), np.int64(1)) == "Added a 1 (2 of 3)."

    images, labels = personal.arrays()
    assert images.shape == (2, 28, 28) and images.dtype == np.float32
    assert labels.dtype == np.int64 and labels.tolist() == [7, 1]
    np.testing.assert_array_equal(images[0], stroke())
    assert len(personal) == 2 and personal.labels == [7, 1]


def test_messages_give_an_eight_its_article():
    personal = PersonalSet(capacity=3)

    assert personal.add(stroke(), 8) == "Added an 8 (1 of 3)."
    assert personal.remove(0) == "Removed an 8 (0 left)."


def test_a_full_set_refuses_more_with_a_clear_message():
    personal = PersonalSet(capacity=2)
    personal.add(stroke(), 1)
    personal.add(stroke(), 2)
    with pytest.raises(ValueError, match="full \\(2 drawings\\); remove one or clear it"):
        personal.add(stroke(), 3)
    assert len(personal) == 2


@pytest.mark.parametrize(
    ("image", "label", "message"),
    [
        (None, 1, "no digit to add"),
        (stroke(), 10, "label must be a digit from 0 to 9"),
        (stroke(), -1, "label must be a digit from 0 to 9"),
        (stroke(), "7", "label must be a digit"),
        (stroke(), True, "label must be a digit"),
        (np.zeros((28, 27), np.float32), 1, "28x28"),
        (np.full((28, 28), np.nan, np.float32), 1, "NaN or infinite"),
        (stroke(255.0), 1, "\\[0, 1\\]"),
        (-stroke(), 1, "\\[0, 1\\]"),
        (np.zeros((28, 28), np.float32), 1, "blank"),
    ],
)
def test_add_validates_image_and_label(image, label, message):
    personal = PersonalSet()
    with pytest.raises(ValueError, match=message):
        personal.add(image, label)
    assert len(personal) == 0


def test_remove_and_clear():
    personal = PersonalSet()
    for digit in (3, 4, 5):
        personal.add(stroke(), digit)

    assert personal.remove(1) == "Removed a 4 (2 left)."
    assert personal.labels == [3, 5]
    with pytest.raises(ValueError, match="No drawing 2; the set holds 2"):
        personal.remove(2)
    with pytest.raises(ValueError, match="No drawing -1"):
        personal.remove(-1)
    assert personal.clear() == "Cleared your drawings."
    images, labels = personal.arrays()
    assert len(personal) == 0 and images.shape == (0, 28, 28) and labels.shape == (0,)


def test_a_deep_copy_is_independent():
    """Gradio deep-copies per-session state: each visitor must get a set of their own."""
    original = PersonalSet()
    original.add(stroke(), 1)
    clone = copy.deepcopy(original)
    clone.add(stroke(), 2)
    clone.remove(0)
    assert original.labels == [1] and clone.labels == [2]


@pytest.mark.parametrize("capacity", [0, -3, 2.5, True])
def test_capacity_must_be_a_positive_integer(capacity):
    with pytest.raises(ValueError, match="capacity"):
        PersonalSet(capacity=capacity)


# --- fine_tune ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped_tutorial() -> checkpoints.Checkpoint:
    return checkpoints.load(checkpoints.shipped("tutorial"))


@pytest.fixture(scope="module")
def taught(mnist, shipped_tutorial) -> tuple[PersonalSet, dict[str, torch.Tensor], FineTuneResult]:
    """A real test-set 1, added three times labelled 7, taught to the shipped tutorial CNN."""
    torch.set_num_threads(1)
    train, test = mnist
    one = int((test.labels == 1).nonzero()[0])
    personal = PersonalSet()
    for _ in range(3):
        personal.add(test.images[one].numpy().astype(np.float32) / 255.0, 7)
    original = {k: v.clone() for k, v in shipped_tutorial.state_dict.items()}
    result = fine_tune("tutorial", shipped_tutorial.state_dict, personal, train, test_split=test)
    return personal, original, result


def test_fine_tune_learns_the_taught_digit_without_forgetting_mnist(taught):
    personal, _, result = taught

    assert result.before.shape == result.after.shape == (3, 10)
    assert result.before.argmax(1).tolist() == [1, 1, 1]  # what it read before being taught
    assert result.after.argmax(1).tolist() == [7, 7, 7]
    assert (result.correct_before, result.correct_after) == (0, 3)
    assert result.mnist_check_accuracy is not None
    assert result.mnist_check_accuracy >= 97.0  # 99.1% before; measured 97.6% after
    assert result.steps == 60 and result.seconds > 0
    assert result.labels.tolist() == personal.labels
    assert "Reads 3 of your 3 drawings correctly (before: 0)" in result.summary()


def test_fine_tune_returns_cpu_weights_that_read_the_drawing_as_taught(taught, shipped_tutorial):
    personal, original, result = taught

    for k, v in shipped_tutorial.state_dict.items():  # the caller's weights are untouched
        assert torch.equal(v, original[k])
    assert result.state_dict.keys() == original.keys()
    assert all(v.device.type == "cpu" for v in result.state_dict.values())
    assert any(not torch.equal(result.state_dict[k], original[k]) for k in original)

    model = checkpoints.Checkpoint("tutorial", result.state_dict).build()
    images, _ = personal.arrays()
    with torch.no_grad():
        logits = model((torch.from_numpy(images).unsqueeze(1) - 0.5) / 0.5)
    np.testing.assert_allclose(torch.softmax(logits, 1).numpy(), result.after, atol=1e-5)


def test_fine_tune_is_repeatable_with_a_seed(mnist, shipped_tutorial):
    train = mnist[0]
    personal = PersonalSet()
    personal.add(stroke(), 7)
    personal.add(np.rot90(stroke()).copy(), 4)
    kwargs = dict(steps=5, batch_size=16, personal_per_batch=4)

    first = fine_tune("tutorial", shipped_tutorial.state_dict, personal, train, seed=3, **kwargs)
    again = fine_tune("tutorial", shipped_tutorial.state_dict, personal, train, seed=3, **kwargs)
    other = fine_tune("tutorial", shipped_tutorial.state_dict, personal, train, seed=4, **kwargs)

    for k in first.state_dict:
        assert torch.equal(first.state_dict[k], again.state_dict[k])
    np.testing.assert_array_equal(first.after, again.after)
    assert not np.array_equal(first.after, other.after)
    assert first.mnist_check_accuracy is None  # no test split given


def test_fine_tune_works_for_the_batchnorm_model(mnist):
    """The improved CNN learns in train mode (BatchNorm) and comes back in eval mode."""
    shipped = checkpoints.load(checkpoints.shipped("improved"))
    train, test = mnist
    small_test = Split(test.images[:200], test.labels[:200])
    personal = PersonalSet()
    personal.add(stroke(), 1)

    result = fine_tune(
        "improved",
        shipped.state_dict,
        personal,
        train,
        steps=3,
        batch_size=16,
        personal_per_batch=4,
        test_split=small_test,
    )

    assert result.steps == 3
    running = "stage1.0.1.running_mean"
    assert not torch.equal(result.state_dict[running], shipped.state_dict[running])
    assert result.mnist_check_accuracy is not None and result.mnist_check_accuracy >= 95.0


def test_fine_tune_stops_at_its_time_budget(mnist, shipped_tutorial):
    personal = PersonalSet()
    personal.add(stroke(), 1)
    result = fine_tune(
        "tutorial", shipped_tutorial.state_dict, personal, mnist[0], steps=500, max_seconds=1e-6
    )
    assert result.steps == 1  # at least one step, then the budget is spent


def test_fine_tune_refuses_an_empty_set_and_bad_settings(mnist, shipped_tutorial):
    state, train = shipped_tutorial.state_dict, mnist[0]
    with pytest.raises(ValueError, match="Add at least one drawing"):
        fine_tune("tutorial", state, PersonalSet(), train)
    personal = PersonalSet()
    personal.add(stroke(), 1)
    with pytest.raises(ValueError, match="steps"):
        fine_tune("tutorial", state, personal, train, steps=0)
    with pytest.raises(ValueError, match="personal_per_batch"):
        fine_tune("tutorial", state, personal, train, batch_size=8, personal_per_batch=9)
    with pytest.raises(ValueError, match="lr"):
        fine_tune("tutorial", state, personal, train, lr=float("nan"))


def test_shift_moves_images_within_the_bound_and_is_seeded():
    images = torch.zeros(50, 28, 28)
    images[:, 14, 14] = 1.0
    shifted = random_shift(images, 2, torch.Generator().manual_seed(0))
    again = random_shift(images, 2, torch.Generator().manual_seed(0))

    assert torch.equal(shifted, again)
    assert torch.all(shifted.sum((1, 2)) == 1.0)  # the dot moved, never lost
    rows, cols = shifted.nonzero()[:, 1], shifted.nonzero()[:, 2]
    assert rows.min() >= 12 and rows.max() <= 16 and cols.min() >= 12 and cols.max() <= 16
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) > 10  # many offsets used
