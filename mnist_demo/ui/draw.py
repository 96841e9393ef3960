"""The Draw tab: a drawing pad (or an upload), the network's answer and what it saw.

`DrawTab` holds the handlers (callable without a server); `build` lays the tab out and wires
its events. While a run trains, the draw timer re-scores the drawing with the newest weights.
"""

from __future__ import annotations

import base64
import io
from typing import Any, NamedTuple

import gradio as gr
import numpy as np
from PIL import Image, ImageDraw

from .. import charts
from ..drawpad import BRUSH, SIDE, drawpad
from ..job import ACTIVE, TrainingJob
from ..predict import Prediction, Predictor
from ..sketch import SketchError, decode_data_url
from . import explore
from .common import AFTER_PAINT_JS, PNG, PRIVATE, Components, outputs, skip_all
from .explore import Explorer, WhyView

NO_DIGIT = {
    "empty": "Draw a digit (or upload an image) and the network will read it.",
    "too small": "That mark is too small to read: draw the digit bigger.",
    "a dot": "Only a dot so far: draw a whole digit.",
    "specks": "Only scattered specks: draw one connected digit.",
}


def reading_hints(prediction: Prediction) -> list[str]:
    """Why a drawing may be misread: tiny, thin, cut off at the edge, or two close guesses."""
    hints = []
    info = prediction.sketch
    if info is not None and info.bbox is not None:
        top, left, bottom, right = info.bbox
        if max(bottom - top, right - left) < 0.25:
            hints.append("Drawn very small: a digit filling most of the canvas reads better.")
        if info.stroke and info.stroke < 0.06:
            hints.append("Very thin strokes: MNIST digits are written with a thick pen.")
        if info.touches_edge:
            hints.append("The ink touches the edge: part of the digit may be cut off.")
    if prediction.probabilities is not None:
        second, first = np.argsort(prediction.probabilities)[-2:]
        p1, p2 = prediction.probabilities[first], prediction.probabilities[second]
        if p1 - p2 < 0.3:
            hints.append(f"Ambiguous: it could also be a {second} ({p2:.0%}).")
    return hints


class DrawView(NamedTuple):
    """The answer to a drawing, and what the tab keeps of it."""

    label: Any  # confidences for gr.Label
    probs: Any  # the ten bars (HTML)
    seen: Any  # the 28x28 input as 8-bit pixels
    answered: Any  # which weights answered, and reading hints
    image28: Any  # the 28x28 input in [0, 1], kept for re-scoring and explaining
    shown_version: Any  # the weights version that answered


class ReadView(NamedTuple):
    """A new drawing or upload: its answer, and the re-scoring timer woken during a run."""

    label: Any
    probs: Any
    seen: Any
    answered: Any
    image28: Any
    shown_version: Any
    draw_timer: Any


class FollowView(NamedTuple):
    """The draw timer's tick: the drawing re-scored with newer weights, its sparkline."""

    label: Any
    probs: Any
    seen: Any
    answered: Any
    image28: Any
    shown_version: Any
    spark: Any
    spark_plot: Any
    draw_timer: Any


def _preview(image28: np.ndarray | None) -> np.ndarray | None:
    """The network's input as 8-bit pixels; CSS scales it up (pixelated), the server does not."""
    if image28 is None:
        return None
    return (255 * np.asarray(image28)).round().astype(np.uint8)


class DrawTab:
    """The Draw tab's handlers, bound to the job (is a run live?) and the shared predictor."""

    def __init__(self, job: TrainingJob, predictor: Predictor, explorer: Explorer) -> None:
        self.job, self.predictor, self.explorer = job, predictor, explorer

    def _render(self, prediction: Prediction | None, message: str | None = None) -> DrawView:
        if prediction is None or prediction.label is None:
            note = message or NO_DIGIT.get(
                prediction.sketch.reason if prediction and prediction.sketch else "empty",
                NO_DIGIT["empty"],
            )
            return DrawView(
                label={},
                probs=charts.probability_bars_html(None),
                seen=None,
                answered=note,
                image28=None,
                shown_version=self.predictor.version.number,
            )
        probs = prediction.probabilities
        version = prediction.version
        note = "\n".join(
            [f"Answered by **{version.label}** (weights v{version.number})."]
            + [f"- {hint}" for hint in reading_hints(prediction)]
        )
        return DrawView(
            label={str(d): float(p) for d, p in enumerate(probs)},
            probs=charts.probability_bars_html(probs),
            seen=_preview(prediction.image),
            answered=note,
            image28=prediction.image,
            shown_version=version.number,
        )

    def predict(self, image: Any, tuned: Predictor | None = None) -> DrawView:
        """Sketchpad value or image file -> label, bars, 28x28 view, note, and state.

        `tuned` is this visitor's own fine-tuned model (see Explorer.fine_tune), if any.
        """
        if image is None:
            return self._render(None)
        try:
            prediction = (tuned or self.predictor).predict(image)
        except SketchError as err:
            return self._render(None, f"⚠️ {err}")
        return self._render(prediction)

    def predict_drawing(self, data_url: str | None, tuned: Predictor | None = None) -> DrawView:
        """The drawing pad's PNG data URL ('' when cleared) -> the same outputs as predict."""
        if not data_url:
            return self._render(None)
        try:
            image = decode_data_url(data_url)
        except SketchError as err:
            return self._render(None, f"⚠️ {err}")
        return self.predict(image, tuned)

    def read_drawing(self, data_url: str | None, tuned: Predictor | None = None) -> ReadView:
        """The pad's event: predict_drawing, and wake the re-scoring timer during a run."""
        drawn = self.predict_drawing(data_url, tuned)
        return ReadView(*drawn, draw_timer=self._follow_if_training(data_url, tuned))

    def read_upload(self, path: Any, tuned: Predictor | None = None) -> ReadView:
        """The upload's event: predict, and wake the re-scoring timer during a run."""
        drawn = self.predict(path, tuned)
        return ReadView(*drawn, draw_timer=self._follow_if_training(path, tuned))

    def _follow_if_training(self, drawing: Any, tuned: Predictor | None) -> Any:
        live = drawing and tuned is None and self.job.state in ACTIVE  # a tuned model is fixed
        return gr.Timer(active=True) if live else gr.skip()

    def warm_up(self) -> str | None:
        """One drawing and its explanation before any visitor: the first calls into torch and
        the image code cost ~30 ms more than later ones, and that should not be a visitor's."""
        pad = Image.new("L", (SIDE, SIDE), 255)
        ImageDraw.Draw(pad).line([(SIDE // 2, SIDE // 5), (SIDE // 2, SIDE * 4 // 5)], 0, BRUSH)
        buffer = io.BytesIO()
        pad.save(buffer, "PNG")
        url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
        drawn = self.predict_drawing(url)
        self.explorer.explain(drawn.image28, None)
        confidences = drawn.label
        return max(confidences, key=confidences.get) if confidences else None  # a "1"

    def rescore(self, image28: np.ndarray | None, tuned: Predictor | None) -> DrawView:
        """The current drawing again, e.g. after a fine-tune or a switch of model."""
        if image28 is None:
            return self._render(None)
        return self._render((tuned or self.predictor).predict_preprocessed(np.asarray(image28)))

    def follow_live_weights(
        self,
        drawing: str | None,
        uploaded: Any,
        image28: np.ndarray | None,
        shown: int | None,
        tuned: Predictor | None = None,
        spark: list | None = None,
    ) -> FollowView:
        """Re-score the current drawing when newer weights were published (while training).

        `drawing` and `uploaded` are the pad's and the upload's values when the tick fired:
        empty once cleared, even if the clear's own event has not yet emptied `image28`, so a
        re-score never brings back the answer for a drawing that is gone. Also extends the
        drawing's sparkline. A visitor's own tuned model does not change.
        """
        stale = not (drawing or uploaded) or image28 is None or tuned is not None
        # Ticks with nothing to re-score cost every open tab a round trip a second (and send
        # the drawing to the server): sleep until a new drawing or a run wakes the timer.
        following = self.job.state in ACTIVE and not stale
        timer = gr.skip() if following else gr.Timer(active=False)
        if stale or shown == self.predictor.version.number:
            return skip_all(FollowView)._replace(draw_timer=timer)
        prediction = self.predictor.predict_preprocessed(np.asarray(image28))
        tracked = self.explorer.track(prediction, spark)
        return FollowView(*self._render(prediction), *tracked, draw_timer=timer)


def build(c: Components, tab: DrawTab, explorer: Explorer) -> None:
    """Lay out the Draw tab into `c` and wire its events."""
    with gr.Tab("Draw", id="draw"), gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=320):
            c.pad = drawpad()
            c.upload = gr.File(
                label="…or upload an image file",
                file_types=["image"],
                type="filepath",
                elem_id="upload",
            )
            with gr.Accordion("Why this answer", open=True, elem_id="why"):
                c.why_caption = gr.Markdown(elem_id="why-caption")
                with gr.Row(equal_height=False):
                    c.saliency = gr.Image(
                        label="Where it looked",
                        interactive=False,
                        height=224,
                        width=224,
                        elem_id="saliency",
                        format=PNG,
                        buttons=[],
                    )
                    with gr.Column():
                        c.maps1 = gr.Image(
                            label="First conv stage",
                            interactive=False,
                            elem_id="maps1",
                            format=PNG,
                            buttons=[],
                        )
                        c.maps2 = gr.Image(
                            label="Second conv stage",
                            interactive=False,
                            elem_id="maps2",
                            format=PNG,
                            buttons=[],
                        )
        with gr.Column(scale=2, min_width=280):
            c.label = gr.Label(num_top_classes=3, label="Prediction", elem_id="label")
            with gr.Row():
                c.seen = gr.Image(
                    label="What the network sees (28×28)",
                    interactive=False,
                    height=224,
                    width=224,
                    elem_id="seen",
                    format=PNG,
                    buttons=[],
                )
            c.probs = gr.HTML(
                charts.probability_bars_html(None),
                label="All ten probabilities",
                show_label=True,
                container=True,
                elem_id="probs",
            )
            c.answered = gr.Markdown(elem_id="answered")
            c.spark_plot = gr.LinePlot(
                x="epoch",
                y="probability",
                y_lim=[0, 1],
                height=160,
                visible=False,
                elem_id="spark",
                show_label=False,
            )
            explore.build_teach(c)

    def explain_after(event: Any) -> None:  # let the answer paint, then explain it
        event.then(None, js=AFTER_PAINT_JS).then(
            explorer.after_drawing, [c.image28, c.tuned, c.spark], outputs(WhyView, c), **PRIVATE
        )

    rescoring = c.draw_timer.tick(  # the pad's value says whether it still holds a drawing
        tab.follow_live_weights,
        [c.pad, c.upload, c.image28, c.shown_version, c.tuned, c.spark],
        outputs(FollowView, c),
        concurrency_limit=None,
        **PRIVATE,
    )
    explain_after(
        c.pad.change(  # a re-scoring still in flight holds the old drawing: cancel it
            tab.read_drawing,
            [c.pad, c.tuned],
            outputs(ReadView, c),
            trigger_mode="always_last",
            concurrency_limit=None,
            cancels=[rescoring],
            **PRIVATE,
        )
    )
    explain_after(
        c.upload.upload(
            tab.read_upload,
            [c.upload, c.tuned],
            outputs(ReadView, c),
            concurrency_limit=None,
            **PRIVATE,
        )
    )

    def redraw(event: Any) -> None:  # after a fine-tune or back to the shared model
        event.then(tab.rescore, [c.image28, c.tuned], outputs(DrawView, c), **PRIVATE).then(
            explorer.after_drawing, [c.image28, c.tuned, c.spark], outputs(WhyView, c), **PRIVATE
        )

    explore.wire_teach(c, explorer, redraw)
