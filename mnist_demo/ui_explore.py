"""Handlers that look inside the network: per-digit view, why this answer, teach it, compare runs.

UI layer, like ui.py: it reads the job and the predictor, calls the engine (insight, teach,
history) and returns values for Gradio components. The training job and the shared predictor
are never changed here, except by an operator-enabled shared teaching mode.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd

from . import charts, checkpoints, insight, teach
from .checkpoints import Checkpoint
from .data import load_mnist
from .job import ACTIVE, Snapshot, TrainingJob
from .predict import Prediction, Predictor, WeightsVersion
from .records import epoch_position
from .settings import AppSettings

log = logging.getLogger(__name__)

GALLERY_SIZE = 24  # misread test digits shown for one (true, read as) pair
SPARK_POINTS = 300  # per drawing: one point per re-scoring, about one a second
ANY = "any"
DIGIT_CHOICES = [ANY] + [str(d) for d in range(10)]
TILE_SIDE = 56  # px per feature map in the grids, whatever the map's own size
TEACH_STEPS = 60
TEACH_SECONDS = 20.0

CONFUSION_COLUMNS = ["true ↓ read →"] + [f"→{d}" for d in range(10)]


def confusion_frame(matrix: Any) -> pd.DataFrame:
    """A 10x10 count table with the true digit as its first column (what a click reports)."""
    matrix = np.asarray(matrix, dtype=np.int64)
    frame = pd.DataFrame(matrix, columns=CONFUSION_COLUMNS[1:])
    frame.insert(0, CONFUSION_COLUMNS[0], [str(d) for d in range(10)])
    return frame


def per_class_frame(per_class: Any) -> pd.DataFrame:
    values = [float("nan") if a is None else float(a) for a in per_class]
    return pd.DataFrame({"digit": [str(d) for d in range(10)], "accuracy": values})


def _digit_or_none(choice: Any) -> int | None:
    if choice in (None, "", ANY):
        return None
    try:
        digit = int(choice)
    except (TypeError, ValueError):
        raise gr.Error(f"not a digit: {choice!r:.20}") from None
    if not 0 <= digit <= 9:
        raise gr.Error(f"not a digit: {digit}")
    return digit


def _any_or(digit: int | None) -> int | slice:
    """Index for one digit's row/column of a 10x10 matrix, or all of them."""
    return slice(None) if digit is None else digit


def _tiles(maps: np.ndarray) -> np.ndarray:
    return insight.tile_maps(maps, columns=8, scale=max(1, TILE_SIDE // maps.shape[-1]))


class Explorer:
    """The 'see inside' handlers, bound to the job, the shared predictor and the settings."""

    def __init__(self, job: TrainingJob, predictor: Predictor, settings: AppSettings) -> None:
        self.job, self.predictor, self.settings = job, predictor, settings
        self._lock = threading.Lock()
        self._baseline: tuple[int, str, np.ndarray] | None = None  # version, label, probs

    # --- per-digit view (Train tab) -----------------------------------------------------------

    def _probabilities(self) -> tuple[str, np.ndarray]:
        """The latest test pass: the run's own, or one of the Draw tab's weights (cached)."""
        current = self.job.evaluation()
        if current is not None:
            label, evaluation = current
            return label, evaluation.probabilities.numpy()
        version = self.predictor.version
        with self._lock:
            if self._baseline is None or self._baseline[0] != version.number:
                probabilities = None
                if version.source is not None:
                    probabilities = checkpoints.load_test_probabilities(version.source)
                if probabilities is None:  # ~1-13 s of CPU, once per weights version
                    probabilities, version = self.predictor.predict_split(load_mnist()[1].images)
                    self._cache(version, probabilities)
                self._baseline = (version.number, version.label, probabilities)
            return self._baseline[1], self._baseline[2]

    @staticmethod
    def _cache(version: WeightsVersion, probabilities: np.ndarray) -> None:
        if version.source is None:
            return
        try:
            checkpoints.save_test_probabilities(version.source, probabilities)
        except OSError as err:
            log.warning("could not cache test probabilities of %s: %s", version.source, err)

    def class_view(self) -> tuple:
        """Per-digit accuracy, the confusion matrix and a caption saying which weights."""
        label, probabilities = self._probabilities()
        labels = load_mnist()[1].labels.numpy()
        matrix = insight.confusion_matrix(labels, probabilities.argmax(1))
        return self._class_outputs(label, matrix)

    def open_per_digit(self, true_choice: Any, read_choice: Any) -> tuple:
        """Opening the panel: the class view and the picked pair's gallery in one event.

        Two chained events would let a quick click on a cell be overwritten by the gallery
        of the pair picked before it.
        """
        return (*self.class_view(), *self.gallery(true_choice, read_choice))

    def class_view_from(self, snap: Snapshot) -> tuple | None:
        """The same view from the latest epoch record (no test pass needed), or None."""
        epoch = snap.latest_epoch
        if not epoch or "confusion" not in epoch:
            return None
        label = f"training run {snap.run_id}, epoch {epoch['epoch']}"
        return self._class_outputs(label, np.asarray(epoch["confusion"]))

    @staticmethod
    def _class_outputs(label: str, matrix: np.ndarray) -> tuple:
        accuracy = 100.0 * np.trace(matrix) / max(matrix.sum(), 1)
        caption = (
            f"Test set read by **{label}**: {accuracy:.2f}% right. Rows are the true digit, "
            "columns what the network read; click a cell to see those test images."
        )
        per_class = insight.per_class_accuracy(matrix)
        floor = np.nanmin(per_class) if np.isfinite(per_class).any() else 0.0
        low = max(0.0, float(np.floor(floor)) - 1.0)  # zoom in: the bars differ by tenths
        return (
            gr.BarPlot(value=per_class_frame(per_class), y_lim=[low, 100]),
            confusion_frame(matrix),
            caption,
        )

    def gallery(self, true_choice: Any, read_choice: Any) -> tuple:
        """Misread test digits for a (true, read as) pair, most confident mistakes first."""
        true, read = _digit_or_none(true_choice), _digit_or_none(read_choice)
        if true is not None and true == read:
            return (
                gr.Gallery(value=[], visible=False),
                f"Those are the {true}s read correctly; pick a cell off the diagonal.",
            )
        label, probabilities = self._probabilities()
        test = load_mnist()[1]
        predictions = probabilities.argmax(1)
        found = insight.misreads(
            test.images, test.labels, predictions, probabilities, true, read, GALLERY_SIZE
        )
        mistakes = insight.confusion_matrix(test.labels, predictions)
        np.fill_diagonal(mistakes, 0)
        count = int(mistakes[_any_or(true), _any_or(read)].sum())  # the gallery shows <= 24
        what = f"{'any digit' if true is None else f'a {true}'} read as " + (
            "something else" if read is None else f"a {read}"
        )
        if not found:
            return gr.Gallery(value=[], visible=False), f"No test image of {what} ({label})."
        items = [
            (insight.gallery_image(m), f"{m.true}→{m.predicted} {m.confidence:.0%}") for m in found
        ]
        shown = f"the {len(found)} most confident" if len(found) < count else "all"
        return (
            gr.Gallery(value=items, visible=True),
            f"{count} test images of {what} ({label}); {shown} below.",
        )

    def select_cell(self, evt: gr.SelectData) -> tuple:
        """A click on the confusion table -> the pair's dropdowns and gallery."""
        row, column = evt.index
        true = str(row)
        read = ANY if column == 0 else str(column - 1)
        return (true, read, *self.gallery(true, read))

    def history_view(self) -> tuple:
        """The runs table and their test-accuracy curves overlaid."""
        runs = self.job.history.runs()
        rows = [
            {
                "run": run.run_id,
                "model": run.model,
                "epochs": run.config.get("epochs"),
                "batch": run.config.get("batch_size"),
                "lr": run.config.get("lr"),
                "best test %": round(run.best_test_accuracy, 2),
                "train s": round(run.train_seconds, 1),
                "device": run.device,
                "state": run.state,
                "finished": run.finished_at[:16].replace("T", " "),
            }
            for run in reversed(runs)
        ]
        table = pd.DataFrame(rows) if rows else None
        frame = charts.history_frame(runs)
        return table, frame if len(frame) else None

    # --- why this answer, and the sparkline (Draw tab) ----------------------------------------

    def explain(self, image28: np.ndarray | None, tuned: Predictor | None) -> tuple:
        """Saliency overlay and the feature maps of each conv stage for the current drawing."""
        if image28 is None:
            return None, None, None, ""
        image = np.asarray(image28, dtype=np.float32)
        explanation = (tuned or self.predictor).explain(image)
        first, second = explanation.feature_maps[:2]
        caption = (
            f"Red-yellow: the ink that pushed the answer **{explanation.label}** most "
            f"(SmoothGrad × input). Below: the {len(first)} maps of the first conv stage and "
            f"the {len(second)} of the second, brighter = stronger response."
        )
        return (
            insight.heat_overlay(image, explanation.saliency),
            _tiles(first),
            _tiles(second),
            caption,
        )

    def after_drawing(
        self, image28: np.ndarray | None, tuned: Predictor | None, spark: list | None = None
    ) -> tuple:
        """A new drawing: explain it and start its sparkline afresh.

        With no points yet the sparkline is already hidden; updating a plot anyway costs the
        server its whole config (~10 ms) on every drawing.
        """
        if not spark:
            return (*self.explain(image28, tuned), gr.skip(), gr.skip())
        return (*self.explain(image28, tuned), [], gr.LinePlot(value=None, visible=False))

    def track(self, prediction: Prediction, spark: list | None) -> tuple:
        """Add the re-scored drawing to its sparkline: P(its current answer) over training."""
        step = self.job.latest_step()
        if prediction.probabilities is None or step is None:
            return gr.skip(), gr.skip()
        x = round(epoch_position(step), 3)
        points = [*(spark or []), (x, [float(p) for p in prediction.probabilities])][-SPARK_POINTS:]
        digit = prediction.label
        frame = pd.DataFrame(
            {"epoch": [p[0] for p in points], "probability": [p[1][digit] for p in points]}
        )
        plot = gr.LinePlot(
            value=frame,
            visible=len(points) > 1,
            title=f"P(this drawing is a {digit}) as the network trains",
        )
        return points, plot

    # --- teach it (Draw tab, per visitor) -------------------------------------------------------

    @staticmethod
    def _examples(personal: teach.PersonalSet) -> list:
        images, labels = personal.arrays()
        return [
            ((255 * image).round().astype(np.uint8), f"#{i + 1}: a {label}")
            for i, (image, label) in enumerate(zip(images, labels, strict=True))
        ]

    def add_example(self, image28: Any, choice: Any, personal: teach.PersonalSet) -> tuple:
        """Store the current drawing with the visitor's label in their own set."""
        if self.settings.teaching == "off":
            return personal, gr.skip(), "Teaching is turned off on this server."
        label = _digit_or_none(choice)
        if label is None:
            return personal, gr.skip(), "Pick the digit this drawing really is."
        try:
            message = personal.add(None if image28 is None else np.asarray(image28), label)
        except ValueError as err:
            return personal, gr.skip(), f"⚠️ {err}"
        return personal, self._examples(personal), message

    def clear_examples(self, personal: teach.PersonalSet) -> tuple:
        return teach.PersonalSet(), [], personal.clear()

    def fine_tune(self, personal: teach.PersonalSet) -> tuple:
        """Fine-tune a private copy of the shared weights on MNIST + this visitor's drawings."""
        if self.settings.teaching == "off":
            return gr.skip(), gr.skip(), "Teaching is turned off on this server."
        if len(personal) == 0:
            return gr.skip(), gr.skip(), "Add at least one drawing with its label first."
        model_name, state_dict, version = self.predictor.weights()
        train, test = load_mnist()
        try:
            result = teach.fine_tune(
                model_name,
                state_dict,
                personal,
                train,
                steps=TEACH_STEPS,
                max_seconds=TEACH_SECONDS,
                test_split=test,
                # both cores when nothing trains (5 s instead of 11 s for the improved model)
                threads=1 if self.job.state in ACTIVE else (os.cpu_count() or 1),
            )
        except ValueError as err:
            return gr.skip(), gr.skip(), f"⚠️ {err}"
        tuned = Predictor(
            Checkpoint(result.model_name, result.state_dict),
            f"your fine-tuned copy of {version.label}",
            threads=1,
        )
        message = result.summary()
        if self.settings.teaching == "shared":
            self.predictor.set_weights(
                result.model_name, result.state_dict, "the shared model, fine-tuned by a visitor"
            )
            tuned, message = None, message + " Shared mode: everyone now uses these weights."
        else:
            message += " Only you see this model; **Use the shared model** switches back."
        return tuned, self._comparison(result), message

    @staticmethod
    def _comparison(result: teach.FineTuneResult) -> pd.DataFrame:
        def reading(p: np.ndarray) -> str:
            return f"{int(p.argmax())} ({p.max():.0%})"

        return pd.DataFrame(
            {
                "drawing": [f"#{i + 1}" for i in range(len(result.labels))],
                "your label": [int(label) for label in result.labels],
                "read before": [reading(p) for p in result.before],
                "read after": [reading(p) for p in result.after],
            }
        )

    @staticmethod
    def use_shared() -> tuple:
        return None, "Back on the shared model."
