"""Predictor: weights + MNIST-style preprocessing -> class probabilities.

Thread-safe, and its weights can be swapped while other threads predict: a swap builds a new
model and replaces one reference, so a prediction in flight finishes on the weights it started
with and every answer says which weights version produced it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import augment, checkpoints, insight, novelty
from .data import to_network_input
from .models import fold_for_inference
from .sketch import SketchInfo, analyse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightsVersion:
    """Which weights answered: a counter that grows with every swap, and a human label."""

    number: int
    label: str
    model_name: str
    source: Path | None = None  # the checkpoint file these weights came from, if any
    deskew: bool = False  # these weights read moment-deskewed images (TrainConfig.deskew)


@dataclass(frozen=True)
class Prediction:
    label: int | None  # None when the image holds no digit
    probabilities: np.ndarray | None  # (10,) float32, None when no digit
    image: np.ndarray | None  # the (28, 28) float image the network saw, white ink on black
    version: WeightsVersion
    sketch: SketchInfo | None = None  # what preprocessing saw: why no digit, ink box, stroke
    # Does the drawing look like a digit at all (novelty.py)? None: no digit, or no calibration.
    digit_check: novelty.Verdict | None = None

    @property
    def not_digit(self) -> bool:
        """The drawing may not be a digit: the answer stands, with that warning."""
        return self.digit_check is not None and self.digit_check.flagged


@dataclass(frozen=True)
class Explanation:
    """An answer with its evidence: which ink pushed it, and what each conv stage saw."""

    label: int
    probabilities: np.ndarray  # (10,) float32
    saliency: np.ndarray  # (28, 28) float32 in [0, 1], see insight.saliency
    feature_maps: list[np.ndarray]  # per conv stage, (C, H, W) float32
    version: WeightsVersion


class Weights:
    """One published weights set: everything it answers is labelled with its version.

    A drawing's answer and its explanation come from one Weights, so they can never mix two
    versions even when training publishes new weights in between.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        version: WeightsVersion,
        state_dict: dict[str, torch.Tensor],
        threads: int = 0,
    ) -> None:
        self.model, self.version, self.threads = model, version, threads
        # The weights as trained (a folded model has lost its BatchNorm statistics).
        self.state_dict = state_dict

    def seen(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 28, 28) images as these weights read them: deskewed when they were trained so."""
        return augment.deskew(images) if self.version.deskew else images

    def probabilities(self, seen: torch.Tensor) -> np.ndarray:
        """(N, 28, 28) float images in [0, 1], as the model reads them -> (N, 10)."""
        if self.threads:
            torch.set_num_threads(self.threads)  # per calling thread (OpenMP)
        x = to_network_input(seen)  # (N, 1, 28, 28)
        with torch.inference_mode():
            return torch.softmax(self.model(x), dim=1).numpy()

    def predict(self, image: Any) -> Prediction:
        """Any drawing or image (see sketch.analyse) -> Prediction; SketchError if unreadable."""
        info = analyse(image)
        return self.predict_preprocessed(info.digit, info)

    def predict_preprocessed(
        self, image28: np.ndarray | None, info: SketchInfo | None = None
    ) -> Prediction:
        """A 28x28 digit -> Prediction, whose image is what the network read (maybe deskewed).

        The not-a-digit check reads the drawing as preprocessed, before any deskew: it was
        fitted on those frames, and it does not depend on the weights.
        """
        if image28 is None:
            return Prediction(None, None, None, self.version, info)
        seen = self.seen(torch.from_numpy(_checked(image28[None])))
        p = self.probabilities(seen)[0]
        image = seen[0].numpy() if self.version.deskew else image28  # unchanged: the caller's
        check = novelty.judge(image28)
        return Prediction(int(p.argmax()), p, image, self.version, info, check)

    def explain(self, image28: np.ndarray) -> Explanation:
        """A (28, 28) image in [0, 1] -> its answer, saliency and feature maps."""
        if self.threads:
            torch.set_num_threads(self.threads)
        image = np.asarray(image28, dtype=np.float32)
        maps = insight.feature_maps(self.model, image)  # validates the image
        x = to_network_input(torch.from_numpy(image)[None])  # (1, 1, 28, 28)
        with torch.inference_mode():
            p = torch.softmax(self.model(x), dim=1)[0].numpy()
        label = int(p.argmax())
        heat = insight.saliency(self.model, image, target=label)
        return Explanation(label, p, heat, maps, self.version)


class Predictor:
    """Answers "which digit is this?" with whichever weights were published last."""

    def __init__(
        self,
        checkpoint: checkpoints.Checkpoint,
        label: str,
        threads: int = 0,
        source: Path | None = None,
    ) -> None:
        # threads > 0 pins the calling thread's torch pool: one image needs no parallelism, and
        # a server that trains at the same time must not oversubscribe its cores.
        self.threads = threads
        self._lock = threading.Lock()
        self._count = 0
        self._weights: Weights
        self.set_weights(
            checkpoint.model_name, checkpoint.state_dict, label, source, deskew=checkpoint.deskew
        )

    @classmethod
    def from_file(cls, path: Path | str, label: str | None = None, threads: int = 0) -> Predictor:
        checkpoint = checkpoints.load(path)
        return cls(checkpoint, label or f"checkpoint {Path(path).name}", threads, Path(path))

    @property
    def version(self) -> WeightsVersion:
        return self._weights.version

    def set_weights(
        self,
        model_name: str,
        state_dict: dict[str, torch.Tensor],
        label: str,
        source: Path | None = None,
        *,
        deskew: bool = False,
    ) -> WeightsVersion:
        """Publish new weights; predictions already running finish on the old ones."""
        model = checkpoints.Checkpoint(model_name, state_dict).build()
        kept = checkpoints.cpu_state_dict(model)  # ours: the caller may change its dict later
        model = fold_for_inference(model)  # ~1.3 ms here saves ~0.6 ms on every drawing
        with self._lock:
            self._count += 1
            version = WeightsVersion(self._count, label, model_name, source, deskew)
            self._weights = Weights(model, version, kept, self.threads)
            return version

    def current(self) -> Weights:
        """The weights published last: answer and explain a drawing with one of these."""
        with self._lock:
            return self._weights

    def weights(self) -> tuple[str, dict[str, torch.Tensor], WeightsVersion]:
        """A copy of the current weights (model name, CPU state dict, version), e.g. to tune."""
        weights = self.current()
        return (
            weights.version.model_name,
            {k: v.clone() for k, v in weights.state_dict.items()},
            weights.version,
        )

    def predict_arrays(self, images: np.ndarray) -> tuple[np.ndarray, WeightsVersion]:
        """(N, 28, 28) floats in [0, 1] (MNIST pixels / 255) -> (N, 10) probabilities."""
        weights = self.current()
        seen = weights.seen(torch.from_numpy(_checked(images)))
        return weights.probabilities(seen), weights.version

    def predict(self, image: Any) -> Prediction:
        """Any drawing or image (see sketch.analyse) -> Prediction; SketchError if unreadable."""
        return self.current().predict(image)

    def predict_preprocessed(
        self, image28: np.ndarray | None, info: SketchInfo | None = None
    ) -> Prediction:
        """A 28x28 digit -> Prediction, whose image is what the network read (maybe deskewed)."""
        return self.current().predict_preprocessed(image28, info)

    def explain(self, image28: np.ndarray) -> Explanation:
        """A (28, 28) image in [0, 1] -> its answer, saliency and feature maps, one weights set."""
        return self.current().explain(image28)

    def predict_split(
        self, images_u8: np.ndarray | torch.Tensor, batch_size: int = 500
    ) -> tuple[np.ndarray, WeightsVersion]:
        """(N, 28, 28) uint8 MNIST images -> (N, 10) probabilities, in batches, one weights set.

        Batches keep memory flat: the whole test set at once would need ~0.5 GB of activations.
        """
        images = torch.as_tensor(images_u8)
        if images.dtype != torch.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ValueError(
                f"expected (N, 28, 28) uint8 images, got {images.dtype} {images.shape}"
            )
        weights = self.current()
        model, version = weights.model, weights.version
        if self.threads:
            torch.set_num_threads(self.threads)
        out = np.empty((images.shape[0], 10), np.float32)
        with torch.inference_mode():
            for start in range(0, images.shape[0], batch_size):
                batch = weights.seen(images[start : start + batch_size].cpu())
                x = to_network_input(batch)  # (B, 1, 28, 28)
                out[start : start + x.shape[0]] = torch.softmax(model(x), dim=1).numpy()
        return out, version


def _checked(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"expected (N, 28, 28) images, got shape {images.shape}")
    return images


def shipped_predictor(model_name: str = "tutorial", threads: int = 0) -> Predictor:
    """A predictor on the checkpoint committed with the repository."""
    return Predictor.from_file(
        checkpoints.shipped(model_name), f"shipped {model_name} checkpoint", threads
    )
