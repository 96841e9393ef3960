"""The Draw tab: a drawing pad (or an upload), the network's answer and what it saw.

`DrawTab` holds the handlers (callable without a server); `build` lays the tab out and wires
its events. While a run trains, the draw timer re-scores the drawing with the newest weights.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterator
from typing import Any, NamedTuple

import gradio as gr
import numpy as np
from PIL import Image, ImageDraw

from .. import charts, checkpoints, draw_model
from ..drawpad import BRUSH, SIDE, drawpad
from ..job import ACTIVE, TrainingJob
from ..predict import Prediction, Predictor, Weights
from ..settings import AppSettings
from ..sketch import SketchError, decode_data_url
from ..words import a_digit
from . import explore
from .common import PNG, PRIVATE, Components, outputs, skip_all
from .explore import Explorer

NO_DIGIT = {
    "empty": "Draw a digit (or upload an image) and the network will read it.",
    "too small": "That mark is too small to read: draw the digit bigger.",
    "a dot": "Only a dot so far: draw a whole digit.",
    "specks": "Only scattered specks: draw one connected digit.",
}
BLANK_UPLOAD = "That image is blank: no ink or marks stand out from its background."


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
            hints.append(f"Ambiguous: it could also be {a_digit(second)} ({p2:.0%}).")
    return hints


NOT_A_DIGIT = (
    "**This doesn't look much like a digit.** The network answers one of ten digits "
    "whatever it is shown, so read its answer with care."
)


class DrawView(NamedTuple):
    """Every view of one drawing, read and explained by one weights version."""

    label: Any  # confidences for gr.Label
    probs: Any  # the ten bars (HTML)
    seen: Any  # the 28x28 input as 8-bit pixels
    answered: Any  # which weights answered, and reading hints
    image28: Any  # the 28x28 input in [0, 1], kept for re-scoring and explaining
    shown_version: Any  # the weights version that answered
    drawn_key: Any  # which drawing (or upload) these views are of, see drawing_key
    saliency: Any  # why this answer: the heat map, the feature maps, and their caption
    maps1: Any
    maps2: Any
    why_caption: Any


class ReadView(NamedTuple):
    """A drawing read afresh (new drawing, newer weights, another model): all its views."""

    label: Any
    probs: Any
    seen: Any
    answered: Any
    image28: Any
    shown_version: Any
    drawn_key: Any
    saliency: Any
    maps1: Any
    maps2: Any
    why_caption: Any
    spark: Any  # the drawing's sparkline: restarted for a new drawing, extended while training
    spark_plot: Any
    draw_timer: Any  # the re-scoring timer: woken during a run, put to sleep when idle


# The pad's event: a drawing's views (ReadView's fields, one list for both) and the upload
# emptied, since the pad is what is read now.
PadView = NamedTuple("PadView", [*ReadView.__annotations__.items(), ("upload", Any)])


def _last(views: Iterator[DrawView]) -> DrawView:
    *_, last = views
    return last


def _merged(views: list[Any]) -> Any:
    """Stream steps as one view: each output's last value that was not a skip."""
    fields = [
        next((v for v in reversed(values) if not _is_skip(v)), gr.skip())
        for values in zip(*views, strict=True)
    ]
    return type(views[0])(*fields)


def _is_skip(update: Any) -> bool:
    return isinstance(update, dict) and update == gr.skip()


def drawing_key(drawing: Any, uploaded: Any = None) -> str | None:
    """Which drawing a view belongs to: a digest of the pad's value, else of the upload's.

    The draw timer's tick carries the pad's value as it was when the tick fired, and the
    views' key as it was then: when they differ, a newer drawing's own event is on its way
    and the tick leaves every view to it.
    """
    value = drawing or uploaded
    if not value:
        return None
    return hashlib.blake2b(str(value).encode(), digest_size=8).hexdigest()


CHOICE_INFO = {
    "on": "Shipped checkpoints and saved runs, with their test accuracy; for every visitor",
    "token": "Shipped checkpoints and saved runs; changing it needs the access token (Train tab)",
}
LOCKED_INFO = "This server's owner chose this model; it cannot be changed here."


class ModelChoiceView(NamedTuple):
    """The Draw model's selector and what a choice did."""

    draw_pick: Any
    draw_pick_message: Any


def _preview(image28: np.ndarray | None) -> np.ndarray | None:
    """The network's input as 8-bit pixels; CSS scales it up (pixelated), the server does not."""
    if image28 is None:
        return None
    return (255 * np.asarray(image28)).round().astype(np.uint8)


def _spark_restart(spark: list | None) -> tuple[Any, Any]:
    """A new drawing's sparkline starts empty; a plot already hidden is not sent again
    (updating it costs the server its whole config, ~10 ms, on every drawing)."""
    if not spark:
        return gr.skip(), gr.skip()
    return [], gr.LinePlot(value=None, visible=False)


class DrawTab:
    """The Draw tab's handlers, bound to the job (is a run live?) and the shared predictor."""

    def __init__(
        self, job: TrainingJob, predictor: Predictor, explorer: Explorer, settings: AppSettings
    ) -> None:
        self.job, self.predictor, self.explorer = job, predictor, explorer
        self.settings = settings

    def _read(
        self, image: Any, tuned: Predictor | None
    ) -> tuple[Prediction | None, Weights, str | None]:
        """One weights snapshot and its reading of the image (None and a message if unreadable)."""
        weights = (tuned or self.predictor).current()
        if image is None:
            return None, weights, None
        try:
            with self.job.in_flight.serving():  # a CPU training run waits a moment for it
                return weights.predict(image), weights, None
        except SketchError as err:
            return None, weights, f"⚠️ {err}"

    def _answer(
        self,
        prediction: Prediction | None,
        weights: Weights,
        key: str | None,
        message: str | None = None,
    ) -> DrawView:
        """The answer's views; the explanation's are marked as on their way (see _explained)."""
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
                shown_version=weights.version.number,
                drawn_key=key,
                **self.explorer.explain_with(weights, None)._asdict(),
            )
        probs = prediction.probabilities
        version = prediction.version
        note = "\n".join(
            ([NOT_A_DIGIT] if prediction.not_digit else [])
            + [f"Answered by **{version.label}** (weights v{version.number})."]
            + [f"- {hint}" for hint in reading_hints(prediction)]
        )
        stale = gr.update(elem_classes=["stale"])  # the last explanation, faded until replaced
        return DrawView(
            label={str(d): float(p) for d, p in enumerate(probs)},
            probs=charts.probability_bars_html(probs),
            seen=_preview(prediction.image),
            answered=note,
            image28=prediction.image,
            shown_version=version.number,
            drawn_key=key,
            saliency=stale,
            maps1=stale,
            maps2=stale,
            why_caption=f"Explaining the answer **{prediction.label}** of weights "
            f"v{version.number}…",
        )

    def _explained(
        self, answer: DrawView, prediction: Prediction | None, weights: Weights
    ) -> DrawView:
        """The answer's explanation, by the same weights snapshot that answered."""
        if prediction is None or prediction.label is None:
            return answer
        with self.job.in_flight.serving():
            why = self.explorer.explain_with(weights, prediction.image)
        fresh = {  # updates, so that each image is encoded as its component says (PNG)
            name: gr.update(value=getattr(why, name), elem_classes=[])
            for name in ("saliency", "maps1", "maps2")
        }
        return answer._replace(**fresh, why_caption=why.why_caption)

    def predict(
        self, image: Any, tuned: Predictor | None = None, key: str | None = None
    ) -> DrawView:
        """Sketchpad value or image file -> every view of it, from one weights version.

        `tuned` is this visitor's own fine-tuned model (see Explorer.fine_tune), if any.
        """
        prediction, weights, message = self._read(image, tuned)
        return self._explained(self._answer(prediction, weights, key, message), prediction, weights)

    def predict_drawing(self, data_url: str | None, tuned: Predictor | None = None) -> DrawView:
        """The drawing pad's PNG data URL ('' when cleared) -> the same outputs as predict."""
        return _last(self._stream(data_url, tuned))

    def _stream(self, data_url: str | None, tuned: Predictor | None) -> Iterator[DrawView]:
        """A pad value's answer as soon as it is known, then the same with its explanation."""
        key = drawing_key(data_url)
        try:
            image = decode_data_url(data_url) if data_url else None
        except SketchError as err:
            weights = (tuned or self.predictor).current()
            yield self._answer(None, weights, key, f"⚠️ {err}")
            return
        prediction, weights, message = self._read(image, tuned)
        answer = self._answer(prediction, weights, key, message)
        yield answer
        if prediction is not None and prediction.label is not None:
            yield self._explained(answer, prediction, weights)

    def stream_drawing(
        self, data_url: str | None, tuned: Predictor | None = None, spark: list | None = None
    ) -> Iterator[PadView]:
        """The pad's event: the answer first, then its explanation, in one event.

        One event, so no later drawing's views can be overwritten by this one's (the pad's
        events run one at a time, the last value winning); two steps, so the answer paints
        ~50-150 ms before the explanation is ready. A drawing (or Clear) also empties the
        upload box: one picture is read at a time, and a file left listed after Clear would
        look like the one being read.
        """
        timer = self._follow_if_training(data_url, tuned)
        extras = (*_spark_restart(spark), timer, None)
        for i, view in enumerate(self._stream(data_url, tuned)):
            yield PadView(*view, *(extras if i == 0 else (gr.skip(),) * len(extras)))

    def read_drawing(
        self, data_url: str | None, tuned: Predictor | None = None, spark: list | None = None
    ) -> PadView:
        """stream_drawing's views once it is done (for tests and callers without a stream)."""
        return _merged(list(self.stream_drawing(data_url, tuned, spark)))

    def stream_upload(
        self, path: Any, tuned: Predictor | None = None, spark: list | None = None
    ) -> Iterator[ReadView]:
        """The upload's event: the answer, then its explanation, as for a drawing."""
        prediction, weights, message = self._read(path, tuned)
        answer = self._answer(prediction, weights, drawing_key(None, path), message)
        if path is not None and answer.image28 is None and answer.answered == NO_DIGIT["empty"]:
            answer = answer._replace(answered=BLANK_UPLOAD)
        extras = (*_spark_restart(spark), self._follow_if_training(path, tuned))
        yield ReadView(*answer, *extras)
        if prediction is not None and prediction.label is not None:
            explained = self._explained(answer, prediction, weights)
            yield ReadView(*explained, *(gr.skip(),) * len(extras))

    def read_upload(
        self, path: Any, tuned: Predictor | None = None, spark: list | None = None
    ) -> ReadView:
        """stream_upload's views once it is done."""
        return _merged(list(self.stream_upload(path, tuned, spark)))

    def _follow_if_training(self, drawing: Any, tuned: Predictor | None) -> Any:
        live = drawing and tuned is None and self.job.state in ACTIVE  # a tuned model is fixed
        return gr.Timer(active=True) if live else gr.skip()

    def warm_up(self) -> str | None:
        """One drawing and its explanation before any visitor: the first calls into torch, the
        image code and the not-a-digit check (which reads MNIST once) cost more than later
        ones, and that should not be a visitor's."""
        pad = Image.new("L", (SIDE, SIDE), 255)
        ImageDraw.Draw(pad).line([(SIDE // 2, SIDE // 5), (SIDE // 2, SIDE * 4 // 5)], 0, BRUSH)
        buffer = io.BytesIO()
        pad.save(buffer, "PNG")
        url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
        confidences = self.predict_drawing(url).label
        return max(confidences, key=confidences.get) if confidences else None  # a "1"

    def rescore(
        self,
        image28: np.ndarray | None,
        tuned: Predictor | None,
        key: str | None = None,
        spark: list | None = None,
    ) -> ReadView:
        """The current drawing read again by other weights: a fine-tune, the shared model."""
        weights = (tuned or self.predictor).current()
        prediction = None if image28 is None else weights.predict_preprocessed(np.asarray(image28))
        drawn = self._explained(self._answer(prediction, weights, key), prediction, weights)
        return ReadView(*drawn, *_spark_restart(spark), draw_timer=gr.skip())

    def model_choices(self) -> ModelChoiceView:
        """The selector's options: shipped checkpoints and saved runs that may answer drawings,
        with their test accuracy; the model answering now is selected (none while a run's
        live weights answer). It is everyone's model: where nobody may train, nobody may
        change it either."""
        options = [c for c in draw_model.candidates(self.job.runs_dir) if c.unusable is None]
        current = draw_model.key_of(self.predictor.version.source)
        keys = {c.key for c in options}
        locked = self.settings.training == "off"
        return ModelChoiceView(
            draw_pick=gr.Dropdown(
                choices=[(c.label, c.key) for c in options],
                value=current if current in keys else None,
                interactive=not locked,
                info=LOCKED_INFO if locked else CHOICE_INFO[self.settings.training],
            ),
            draw_pick_message=gr.skip(),
        )

    def choose_model(self, key: str | None, token: str | None = None) -> ModelChoiceView:
        """Make `key` the Draw tab's model for everyone, now and after a restart; needs the
        right to train (the Train tab's access token when training is token-protected)."""
        if not key or key == draw_model.key_of(self.predictor.version.source):
            return skip_all(ModelChoiceView)
        if not self.settings.may_train(token):
            return self.model_choices()._replace(
                draw_pick_message="⚠️ Choosing everyone's model needs the access token of this "
                "server (Train tab)."
                if self.settings.training == "token"
                else f"⚠️ {LOCKED_INFO}"
            )
        if self.job.state in ACTIVE:
            return self.model_choices()._replace(
                draw_pick_message="⚠️ A run is training: its live weights answer drawings "
                "until it ends. Choose again then."
            )
        try:
            weights = draw_model.load(self.job.runs_dir, key)
        except (draw_model.ChoiceError, checkpoints.CheckpointError) as err:
            return self.model_choices()._replace(draw_pick_message=f"⚠️ {err}")
        ckpt = weights.checkpoint
        self.predictor.set_weights(ckpt.model_name, ckpt.state_dict, weights.label, weights.source)
        draw_model.remember(self.job.runs_dir, key)
        return ModelChoiceView(
            draw_pick=gr.skip(),
            draw_pick_message=f"Drawings are now read by the **{weights.label}**, "
            "for every visitor and after a restart.",
        )

    def follow_live_weights(
        self,
        drawing: str | None,
        uploaded: Any,
        image28: np.ndarray | None,
        shown: int | None,
        tuned: Predictor | None = None,
        spark: list | None = None,
        drawn_key: str | None = None,
    ) -> ReadView:
        """Re-read the current drawing when newer weights were published: every view of it.

        `drawing` and `uploaded` are the pad's and the upload's values when the tick fired,
        `drawn_key` says which drawing the views showed then: if the pad was cleared or holds
        a newer drawing than the views, that drawing's own event brings its views, and this
        tick must not bring back the old one's. Also extends the drawing's sparkline. A
        visitor's own tuned model does not change.
        """
        current = drawing_key(drawing, uploaded)
        stale = current is None or current != drawn_key or image28 is None or tuned is not None
        # Ticks with nothing to re-score cost every open tab a round trip a second (and send
        # the drawing to the server): sleep until a new drawing or a run wakes the timer.
        following = self.job.state in ACTIVE and not stale
        timer = gr.skip() if following else gr.Timer(active=False)
        weights = self.predictor.current()
        if stale or shown == weights.version.number:
            return skip_all(ReadView)._replace(draw_timer=timer)
        prediction = weights.predict_preprocessed(np.asarray(image28))
        tracked = self.explorer.track(prediction, spark)
        drawn = self._explained(self._answer(prediction, weights, drawn_key), prediction, weights)
        return ReadView(*drawn, *tracked, draw_timer=timer)


def build(c: Components, tab: DrawTab, explorer: Explorer) -> None:
    """Lay out the Draw tab into `c` and wire its events.

    Phone first: the pad and the answer come first, side by side on a desktop and one under
    the other on a phone, so the answer is in view as soon as the pen lifts; why the answer,
    the network's 28x28 view, the upload and teaching follow.
    """
    with gr.Tab("Draw", id="draw"):
        with gr.Row(equal_height=False, elem_id="draw-top"):
            with gr.Column(scale=3, min_width=300):
                c.pad = drawpad()
            with gr.Column(scale=2, min_width=280, elem_id="answer-column"):
                c.label = gr.Label(num_top_classes=1, label="Answer", elem_id="label")
                c.probs = gr.HTML(
                    charts.probability_bars_html(None),
                    label="All ten probabilities",
                    show_label=False,
                    container=False,
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
        with gr.Row(equal_height=False):
            with (
                gr.Column(scale=3, min_width=300),
                gr.Accordion("Why this answer", open=True, elem_id="why"),
            ):
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
                c.seen = gr.Image(
                    label="What the network sees (28×28)",
                    interactive=False,
                    height=224,
                    width=224,
                    elem_id="seen",
                    format=PNG,
                    buttons=[],
                )
                c.upload = gr.File(
                    label="…or upload an image file",
                    file_types=["image"],
                    type="filepath",
                    elem_id="upload",
                )
                c.draw_pick = gr.Dropdown(label="Model that reads drawings", elem_id="draw-pick")
                c.draw_pick_message = gr.Markdown(elem_id="draw-pick-message")
                explore.build_teach(c)

    # One event per drawing computes every view of it from one weights version: an answer and
    # an explanation in two chained events could each land after a later drawing's.
    rescoring = c.draw_timer.tick(  # the pad's value says whether it still holds a drawing
        tab.follow_live_weights,
        [c.pad, c.upload, c.image28, c.shown_version, c.tuned, c.spark, c.drawn_key],
        outputs(ReadView, c),
        concurrency_limit=None,
        **PRIVATE,
    )
    c.pad.change(  # a re-scoring still in flight holds the old drawing: cancel it
        tab.stream_drawing,
        [c.pad, c.tuned, c.spark],
        outputs(PadView, c),
        trigger_mode="always_last",
        concurrency_limit=None,
        cancels=[rescoring],
        api_name="read_drawing",  # the name raw clients (tests/api, bench) know it by
        **PRIVATE,
    )
    c.upload.upload(
        tab.stream_upload,
        [c.upload, c.tuned, c.spark],
        outputs(ReadView, c),
        concurrency_limit=None,
        cancels=[rescoring],
        api_name="read_upload",
        **PRIVATE,
    )

    def redraw(event: Any) -> None:  # after a fine-tune or back to the shared model
        event.then(
            tab.rescore, [c.image28, c.tuned, c.drawn_key, c.spark], outputs(ReadView, c), **PRIVATE
        )

    explore.wire_teach(c, explorer, redraw)
    redraw(  # the Train tab's token: everyone's model needs training rights
        c.draw_pick.input(
            tab.choose_model, [c.draw_pick, c.token], outputs(ModelChoiceView, c), **PRIVATE
        )
    )


def wire_model_choice(c: Components, tab: DrawTab) -> None:
    """The selector follows the job (after both tabs and the job key exist): a finished run
    may be a new option and the new Draw model; a choice in another tab shows here too."""
    c.job_key.change(tab.model_choices, None, outputs(ModelChoiceView, c), **PRIVATE)
