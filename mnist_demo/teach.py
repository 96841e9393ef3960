"""Teach the network your own handwriting: a small per-visitor set and a short fine-tune.

A few of a visitor's drawings are mixed into batches of real MNIST and the network takes a
few dozen Adam steps from its current weights. The MNIST part of every batch is what keeps it
from forgetting the digits it already reads; a fixed slice of the test set checks that.
No Gradio here, and nothing shared is mutated: the caller's weights are copied first.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import checkpoints
from .data import IMAGE_SIDE, NUM_CLASSES, Split, random_shift, to_network_input
from .insight import check_image28
from .optim import FusedAdam
from .training import evaluate, layout_batch
from .words import a_digit

log = logging.getLogger(__name__)

CAPACITY = 24  # drawings per visitor: enough to teach a style, small enough to fine-tune fast
CHECK_IMAGES = 1000  # the first 1,000 test images: a fixed, 0.1 s check that MNIST still reads
MAX_SHIFT = 2  # px; a drawing learnt at one position only would not generalise to the next
# Share of each batch's MNIST images drawn from the digits the network misreads the drawings
# as. Teaching a 1-like 7 with random MNIST alone turned ~25% of real 1s into 7s (accuracy on
# the check slice 99.1% -> 95.4%); showing real 1s alongside makes it learn what separates the
# drawing from them instead (97.0-97.6% on four such tests, each drawing still read as 7).
CONTRAST_SHARE = 1 / 3


class PersonalSet:
    """A visitor's labelled drawings, as the network saw them; plain data, safe to deep-copy."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be a positive integer, got {capacity!r}")
        self.capacity = capacity
        self._images: list[np.ndarray] = []  # each (28, 28) float32 in [0, 1]
        self._labels: list[int] = []

    def __len__(self) -> int:
        return len(self._labels)

    def __repr__(self) -> str:
        return f"PersonalSet({len(self)} of {self.capacity}, labels={self._labels})"

    @property
    def labels(self) -> list[int]:
        return list(self._labels)

    def add(self, image28: np.ndarray | None, label: int) -> str:
        """Store a copy of a (28, 28) drawing in [0, 1] with its digit; ValueError says why not."""
        if len(self) >= self.capacity:
            raise ValueError(
                f"Your set is full ({self.capacity} drawings); remove one or clear it first."
            )
        if image28 is None:
            raise ValueError("There is no digit to add; draw one first.")
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise ValueError(f"The label must be a digit from 0 to 9, got {label!r}.")
        if not 0 <= int(label) < NUM_CLASSES:
            raise ValueError(f"The label must be a digit from 0 to 9, got {label}.")
        image = check_image28(image28)  # a copy: the caller's array may change
        if image.max() == 0.0:
            raise ValueError("The image is blank; draw a digit first.")
        self._images.append(image)
        self._labels.append(int(label))
        return f"Added {a_digit(int(label))} ({len(self)} of {self.capacity})."

    def remove(self, index: int) -> str:
        """Drop one drawing by position; ValueError when there is none there."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise ValueError(f"No drawing {index!r}.")
        if not 0 <= index < len(self):
            raise ValueError(f"No drawing {index}; the set holds {len(self)}.")
        del self._images[index]
        label = self._labels.pop(index)
        return f"Removed {a_digit(label)} ({len(self)} left)."

    def clear(self) -> str:
        self._images.clear()
        self._labels.clear()
        return "Cleared your drawings."

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Images (N, 28, 28) float32 and labels (N,) int64."""
        images = (
            np.stack(self._images)
            if self._images
            else np.zeros((0, IMAGE_SIDE, IMAGE_SIDE), np.float32)
        )
        return images, np.array(self._labels, dtype=np.int64)


@dataclass(frozen=True)
class FineTuneResult:
    """Tuned weights and how they read the visitor's drawings before and after."""

    model_name: str
    state_dict: dict[str, torch.Tensor]  # CPU tensors, ready for Predictor.set_weights
    labels: np.ndarray  # (N,) int64, the visitor's labels
    before: np.ndarray  # (N, 10) probabilities on the personal set with the starting weights
    after: np.ndarray  # (N, 10) with the tuned weights
    steps: int
    seconds: float
    mnist_check_accuracy: float | None  # percent on the first 1,000 test images; None: no split

    @property
    def correct_before(self) -> int:
        return int((self.before.argmax(1) == self.labels).sum())

    @property
    def correct_after(self) -> int:
        return int((self.after.argmax(1) == self.labels).sum())

    def summary(self) -> str:
        n = len(self.labels)
        text = (
            f"Reads {self.correct_after} of your {n} drawings correctly "
            f"(before: {self.correct_before}), after {self.steps} steps in {self.seconds:.1f} s."
        )
        if self.mnist_check_accuracy is not None:
            text += f" MNIST check: {self.mnist_check_accuracy:.1f}% of 1,000 test digits."
        return text


@torch.inference_mode()
def _probabilities(model: torch.nn.Module, images: torch.Tensor) -> np.ndarray:
    return torch.softmax(model(to_network_input(images)), dim=1).numpy()


def _train_mode(model: torch.nn.Module) -> None:
    """BatchNorm learns in train mode; dropout stays off.

    Dropout would draw from torch's process-wide generator, which a concurrent training run
    also uses; with it off, every random choice here comes from our own seeded generator, so
    a fine-tune is repeatable and leaves the training run's randomness alone.
    """
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.eval()


def fine_tune(
    model_name: str,
    state_dict: dict[str, torch.Tensor],
    personal: PersonalSet,
    train_split: Split,
    *,
    steps: int = 60,
    batch_size: int = 64,
    personal_per_batch: int = 16,
    lr: float = 5e-4,
    seed: int = 0,
    max_seconds: float = 20.0,
    threads: int = 1,
    test_split: Split | None = None,
) -> FineTuneResult:
    """Adam on batches of MNIST plus the visitor's drawings, from a copy of `state_dict`.

    Each batch holds `personal_per_batch` drawings (drawn with replacement, shifted up to
    2 px) and `batch_size - personal_per_batch` training images, a third of them from the
    digits the drawings are misread as (see CONTRAST_SHARE), the rest random. Stops after `steps`
    steps or `max_seconds`, whichever comes first (at least one step). Runs on the CPU with
    `threads` torch threads for the calling thread (0 leaves the setting alone).
    """
    if len(personal) == 0:
        raise ValueError("Add at least one drawing with its label before teaching.")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 10_000:
        raise ValueError(f"steps must be an integer from 1 to 10000, got {steps!r}")
    if not isinstance(batch_size, int) or not 1 <= personal_per_batch <= batch_size:
        raise ValueError("need 1 <= personal_per_batch <= batch_size")
    if not (math.isfinite(lr) and lr > 0) or not max_seconds > 0:
        raise ValueError("lr and max_seconds must be positive")
    if threads:
        torch.set_num_threads(threads)  # per calling thread (OpenMP)
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)

    model = checkpoints.Checkpoint(model_name, state_dict).build()  # copies: input untouched
    images_np, labels_np = personal.arrays()
    images, labels = torch.from_numpy(images_np), torch.from_numpy(labels_np)
    before = _probabilities(model, images)

    train_images, train_labels = train_split.images.cpu(), train_split.labels.cpu()
    n_mnist = batch_size - personal_per_batch
    misread_as = np.unique(before.argmax(1)[before.argmax(1) != labels_np])
    contrast = torch.isin(train_labels, torch.from_numpy(misread_as)).nonzero().ravel()
    n_contrast = round(CONTRAST_SHARE * n_mnist) if len(contrast) else 0
    model = model.to(memory_format=torch.channels_last)
    optimizer = FusedAdam(model.parameters(), lr=lr)  # torch.optim would import torch._dynamo
    _train_mode(model)
    done = 0
    while done < steps:
        pick = torch.randint(len(images), (personal_per_batch,), generator=generator)
        idx = torch.randint(len(train_labels), (n_mnist - n_contrast,), generator=generator)
        if n_contrast:
            picked = torch.randint(len(contrast), (n_contrast,), generator=generator)
            idx = torch.cat([idx, contrast[picked]])
        x = torch.cat(
            [train_images[idx].float() / 255.0, random_shift(images[pick], MAX_SHIFT, generator)]
        )
        y = torch.cat([train_labels[idx], labels[pick]])
        # channels_last: oneDNN's fast CPU layout (the improved model steps ~2x faster)
        x = layout_batch(to_network_input(x), torch.channels_last)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done += 1
        if time.perf_counter() - start > max_seconds:
            log.info("fine-tune stopped at its %.0f s budget after %d steps", max_seconds, done)
            break
    model.eval()
    seconds = time.perf_counter() - start

    after = _probabilities(model, images)
    check = None
    if test_split is not None:
        check_split = Split(test_split.images[:CHECK_IMAGES], test_split.labels[:CHECK_IMAGES])
        check, _ = evaluate(model, check_split.to("cpu"))
    log.info(
        "fine-tuned %s on %d drawings: %d steps, %.1f s", model_name, len(images), done, seconds
    )
    return FineTuneResult(
        model_name=model_name,
        state_dict=checkpoints.cpu_state_dict(model),
        labels=labels_np,
        before=before,
        after=after,
        steps=done,
        seconds=seconds,
        mnist_check_accuracy=check,
    )
