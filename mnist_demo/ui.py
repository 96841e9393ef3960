"""The Gradio app: a live training dashboard and a drawing tab over one shared job.

No torch here: handlers call the job and the predictor, and turn their plain-data answers into
components. `Dashboard` holds the handlers so tests can call them without a server; `build_app`
only lays out components and wires events. Nothing mutable lives at module level.
"""

from __future__ import annotations

import base64
import io
import logging
import math
from typing import Any, NamedTuple

import gradio as gr
import numpy as np
from PIL import Image, ImageDraw

from . import charts
from .drawpad import BRUSH, SIDE, drawpad
from .job import ACTIVE, Snapshot, TrainingJob
from .models import MODELS
from .predict import Prediction, Predictor
from .records import count
from .settings import AppSettings
from .sketch import ImageInput, SketchError, decode_data_url
from .teach import PersonalSet
from .training import SCHEDULES, ConfigError, available_devices, config_from_preset
from .ui_explore import ANY, CONFUSION_COLUMNS, DIGIT_CHOICES, Explorer

log = logging.getLogger(__name__)

ACTIVE_TICK, IDLE_TICK = 0.3, 2.0  # seconds between dashboard polls: live vs. waiting
TICK_OUTPUTS = 8  # values Dashboard.tick returns, in build_app's tick_outputs order
# Starting the explanation's event costs the browser ~30 ms of bookkeeping: let the label
# paint first.
AFTER_PAINT_JS = "() => new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)))"
DRAW_TICK = 1.0  # seconds between re-scoring the drawing with live weights
ACTIVE_STATES = frozenset(state.value for state in ACTIVE)  # as snapshots spell them
PNG = "png"  # the Draw tab's images: 3x faster to encode than Gradio's default WebP
CONTROL_FIELDS = (
    "model",
    "epochs",
    "batch_size",
    "lr",
    "schedule",
    "augment",
    "label_smoothing",
    "seed",
    "device",
)

CSS = """
#seen img { image-rendering: pixelated; width: 224px; height: 224px; object-fit: contain; }
.prob-bars { display: grid; gap: 3px; padding-top: 30px; font-size: var(--text-sm);
  font-variant-numeric: tabular-nums; }
.prob-row { display: grid; grid-template-columns: 1.2em 1fr 3.8em; gap: 8px;
  align-items: center; }
.prob-row > span:last-child { text-align: right; color: var(--body-text-color-subdued); }
.prob-bar { height: 12px; background: var(--background-fill-secondary); border-radius: 3px; }
.prob-bar i { display: block; height: 100%; border-radius: 3px;
  background: var(--color-accent-soft); }
.prob-row.top .prob-bar i { background: var(--color-accent); }
.prob-row.top { font-weight: 600; }
#status { font-variant-numeric: tabular-nums; }
.compact-buttons button { min-width: 0; }
"""
THEME = gr.themes.Soft(primary_hue="orange", secondary_hue="blue")


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _epoch_progress(step: dict, epochs: float) -> str:
    """'epoch 3/20' for whole epochs; 'epoch 1.37 of 1.5' when the run ends mid-epoch."""
    if float(epochs).is_integer():
        return f"epoch {step['epoch']}/{int(epochs)}"
    return f"epoch {step['epoch'] - 1 + step['epoch_progress']:.2f} of {epochs:g}"


def status_markdown(snap: Snapshot) -> str:
    """One glanceable line of the job: state, progress, speed, time, device, best accuracy."""
    parts = [f"**{snap.state.capitalize()}**"]
    if snap.run_id:
        parts.append(f"run {snap.run_id}")
    step, config = snap.latest_step, snap.config
    if step and config:
        parts.append(_epoch_progress(step, config["epochs"]))
        parts.append(f"step {step['step']:,}")
        parts.append(f"{step['samples_per_second']:,.0f} img/s")
        parts.append(f"trained {_fmt_seconds(step['train_seconds'])}")
        if snap.state in ACTIVE_STATES:
            parts.append(f"ETA {_fmt_seconds(snap.eta_seconds)}")
    if snap.device:
        parts.append(snap.device)
    if snap.best_test_accuracy is not None:
        parts.append(f"best test **{snap.best_test_accuracy:.2f}%**")
    return " · ".join(parts)


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


class TickKey(NamedTuple):
    """What a tab last saw of the job: a poll redraws only the parts whose fields moved."""

    run_id: int | None
    n_records: int
    state: str
    message: str
    n_history: int
    weights: int
    n_epochs: int


def _or_none(frame):
    """An empty frame leaves Gradio 6.31's native plot unable to draw later updates."""
    return frame if len(frame) else None


def _preview(image28: np.ndarray | None) -> np.ndarray | None:
    """The network's input as 8-bit pixels; CSS scales it up (pixelated), the server does not."""
    if image28 is None:
        return None
    return (255 * np.asarray(image28)).round().astype(np.uint8)


class Dashboard:
    """Every handler of the app, bound to one job, one predictor and the settings."""

    def __init__(self, job: TrainingJob, predictor: Predictor, settings: AppSettings) -> None:
        self.job, self.predictor, self.settings = job, predictor, settings
        self.explorer = Explorer(job, predictor, settings)

    # --- training commands --------------------------------------------------------------------

    def _guard(self, token: str | None) -> str | None:
        if self.settings.may_train(token):
            return None
        if self.settings.training == "off":
            return "Training is disabled on this server; the Draw tab still works."
        return "Training needs the access token of this server."

    def start(
        self,
        preset: str,
        model: str,
        epochs: float,
        batch_size: float,
        lr: float,
        schedule: str,
        augment: float,
        label_smoothing: float,
        seed: float,
        device: str,
        token: str | None = None,
    ) -> str:
        """Start the shared run: the preset's settings with the controls' values on top."""
        refusal = self._guard(token)
        if refusal:
            return refusal
        try:
            config = config_from_preset(
                preset or "fast",
                model=model,
                epochs=_as_float(epochs, "epochs"),
                batch_size=_as_int(batch_size, "batch size"),
                lr=_as_float(lr, "learning rate"),
                schedule=schedule,
                augment=_as_int(augment, "augment"),
                label_smoothing=_as_float(label_smoothing, "label smoothing"),
                seed=_as_int(seed, "seed"),
                device=(device or "auto"),
                log_every=50,
                log_seconds=0.25,  # a record (a chart point) 4 times a second, however fast
                threads=self.settings.train_threads,
            )
            ok, message = self.job.start(config)
        except ConfigError as err:
            return f"⚠️ {err}"
        return message if ok else f"⚠️ {message}"

    def pause(self, token: str | None = None) -> str:
        return self._guard(token) or self.job.pause()[1]

    def resume(self, token: str | None = None) -> str:
        return self._guard(token) or self.job.resume()[1]

    def stop(self, token: str | None = None) -> str:
        return self._guard(token) or self.job.stop()[1]

    def reset(self, token: str | None = None) -> str:
        return self._guard(token) or self.job.reset()[1]

    # --- the dashboard's poll -----------------------------------------------------------------

    def tick(self, seen: TickKey | None, drawing: np.ndarray | None = None) -> tuple:
        """The poll: status line and charts when the job moved since this tab last looked.

        Each output costs per poll, even a skipped one: Gradio rebuilds a skipped component
        and its config on the server (~0.3-2 ms each) and the browser re-renders what is
        sent. So the poll has few outputs, and what changes once per epoch (figure,
        per-digit view) or per run state (message, downloads, runs, poll interval) follows
        the hidden epoch_key and job_key in their own change events. `drawing` is the tab's 28x28
        drawing, if any: only then is there something for the draw timer to re-score.
        """
        snap = self.job.snapshot()
        records = snap.records
        key = TickKey(
            snap.run_id,
            snap.n_records,
            snap.state,
            snap.message,
            snap.n_history,
            self.predictor.version.number,
            count(records, "epoch"),
        )
        seen = TickKey(*seen) if seen is not None and len(seen) == len(key) else None
        if seen == key:
            return (gr.skip(),) * TICK_OUTPUTS
        charts_moved = seen is None or (seen.run_id, seen.n_records) != (key.run_id, key.n_records)
        active = snap.state in ACTIVE_STATES
        return (
            status_markdown(snap),
            *(
                (
                    _or_none(charts.loss_frame(records)),
                    _or_none(charts.accuracy_frame(records)),
                    _or_none(charts.speed_frame(records)),
                )
                if charts_moved
                else (gr.skip(),) * 3
            ),
            self._wake_rescoring(seen, key, active) if drawing is not None else gr.skip(),
            f"{key.run_id}/{key.n_epochs}",  # epoch_key: its change runs epoch_views
            f"{key.run_id}/{key.state}/{key.n_history}/{key.message}",  # job_key: job_views
            key,
        )

    def epoch_views(self) -> tuple:
        """After an epoch (or in a new tab): the job's figure and the per-digit view."""
        snap = self.job.snapshot()
        class_view = self.explorer.class_view_from(snap)
        return (
            gr.Image(value=snap.figure, visible=bool(snap.figure)),
            *(class_view or (gr.skip(),) * 3),
        )

    def job_views(self) -> tuple:
        """When the run's state or message changes (or in a new tab): the job's message,
        downloads, the runs compared, and the poll's interval.

        The message goes only then, so a button's answer in this tab (say "already running")
        stays up until the job's own message changes.
        """
        snap = self.job.snapshot()
        exports = snap.exports
        active = snap.state in ACTIVE_STATES
        return (
            snap.message,
            gr.DownloadButton(value=snap.checkpoint, visible=bool(snap.checkpoint)),
            gr.DownloadButton(value=exports.get("csv"), visible="csv" in exports),
            gr.DownloadButton(value=exports.get("png"), visible="png" in exports),
            *self.explorer.history_view(),
            gr.Timer(value=ACTIVE_TICK if active else IDLE_TICK),
        )

    @staticmethod
    def _wake_rescoring(seen: TickKey | None, key: TickKey, active: bool) -> Any:
        """The draw timer's update: on when a run starts or idle weights change, else untouched.

        Only for a tab that holds a drawing. follow_live_weights puts the timer back to sleep
        once the job is idle and the drawing is up to date. Only transitions are sent, so the
        timer's interval is never restarted.
        """
        if seen is None:
            return gr.Timer(active=True) if active else gr.skip()
        was_active = seen.state in ACTIVE_STATES
        weights_moved = seen.weights != key.weights
        if (active and not was_active) or (not active and weights_moved):
            return gr.Timer(active=True)
        return gr.skip()

    def status(self) -> dict:
        """The job's state and latest metrics as JSON (the public /status endpoint)."""
        snap = self.job.snapshot()
        data = snap.as_dict()
        data.pop("records")
        version = self.predictor.version
        data["weights"] = {
            "version": version.number,
            "label": version.label,
            "model": version.model_name,
        }
        return data

    # --- drawing ------------------------------------------------------------------------------

    def _render(self, prediction: Prediction | None, message: str | None = None) -> tuple:
        if prediction is None or prediction.label is None:
            note = message or NO_DIGIT.get(
                prediction.sketch.reason if prediction and prediction.sketch else "empty",
                NO_DIGIT["empty"],
            )
            return (
                {},
                charts.probability_bars_html(None),
                None,
                note,
                None,
                self.predictor.version.number,
            )
        probs = prediction.probabilities
        confidences = {str(d): float(p) for d, p in enumerate(probs)}
        version = prediction.version
        note = "\n".join(
            [f"Answered by **{version.label}** (weights v{version.number})."]
            + [f"- {hint}" for hint in reading_hints(prediction)]
        )
        return (
            confidences,
            charts.probability_bars_html(probs),
            _preview(prediction.image),
            note,
            prediction.image,
            version.number,
        )

    def predict(self, image: Any, tuned: Predictor | None = None) -> tuple:
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

    def predict_api(self, image: ApiImage) -> dict[str, Any]:
        """Read one digit for an API client: an image file (`handle_file`, a URL through
        `handle_file` too), a `data:image/...` URL, or a Sketchpad/ImageEditor value.

        Answers all ten probabilities, the label (None only when the image is blank) and
        which weights answered; what cannot be read is a `gr.Error` the client receives.
        Nothing else: the browser's extras (bars, the 28x28 preview PNG) would cost a
        visitor-facing server more per call than the network itself does.
        """
        try:
            prediction = self.predictor.predict(api_image(image))
        except SketchError as err:
            raise gr.Error(str(err)) from None
        version = prediction.version
        answer: dict[str, Any] = {
            "label": None if prediction.label is None else str(prediction.label),
            "probabilities": None,
            "weights": version.label,
            "weights_version": version.number,
        }
        if prediction.label is None:
            reason = prediction.sketch.reason if prediction.sketch else "empty"
            answer["note"] = API_NO_DIGIT.get(reason) or NO_DIGIT.get(reason, reason)
        else:
            probs = prediction.probabilities
            answer["probabilities"] = {str(d): round(float(p), 6) for d, p in enumerate(probs)}
            answer["note"] = " ".join(reading_hints(prediction))
        return answer

    def predict_drawing(self, data_url: str | None, tuned: Predictor | None = None) -> tuple:
        """The drawing pad's PNG data URL ('' when cleared) -> the same outputs as predict."""
        if not data_url:
            return self._render(None)
        try:
            image = decode_data_url(data_url)
        except SketchError as err:
            return self._render(None, f"⚠️ {err}")
        return self.predict(image, tuned)

    def read_drawing(self, data_url: str | None, tuned: Predictor | None = None) -> tuple:
        """The pad's event: predict_drawing, and wake the re-scoring timer during a run."""
        return (*self.predict_drawing(data_url, tuned), self._follow_if_training(data_url, tuned))

    def read_upload(self, path: Any, tuned: Predictor | None = None) -> tuple:
        """The upload's event: predict, and wake the re-scoring timer during a run."""
        return (*self.predict(path, tuned), self._follow_if_training(path, tuned))

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
        confidences, _, _, _, image28, _ = self.predict_drawing(url)
        self.explorer.explain(image28, None)
        return max(confidences, key=confidences.get) if confidences else None  # a "1"

    def rescore(self, image28: np.ndarray | None, tuned: Predictor | None) -> tuple:
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
    ) -> tuple:
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
            return (*(gr.skip(),) * 8, timer)
        prediction = self.predictor.predict_preprocessed(np.asarray(image28))
        return (*self._render(prediction), *self.explorer.track(prediction, spark), timer)

    def apply_preset(self, name: str) -> tuple:
        """The preset's name (kept per tab) and its values for the controls."""
        config = config_from_preset(name)
        return (name, *(getattr(config, f) for f in CONTROL_FIELDS[:-1]))


ApiImage = dict[str, Any] | str  # FileData, an editor value, or a data URL (see api_image)
API_NO_DIGIT = {"empty": "No digit found: the image is blank."}
EDITOR_KEYS = ("background", "layers", "composite")


def api_image(value: Any) -> ImageInput:
    """An API payload as an image `sketch` reads: Gradio has already checked that every file
    in it was uploaded to this server (or fetched a URL given with `handle_file`)."""

    def file_path(part: Any) -> str | None:
        if part is None:
            return None
        if isinstance(part, dict) and isinstance(part.get("path"), str):
            return part["path"]
        if isinstance(part, str) and part.startswith("data:"):
            return part
        raise SketchError("expected an image file, a data URL or a Sketchpad value")

    def as_image(part: Any) -> Any:
        path = file_path(part)
        return decode_data_url(path) if path and path.startswith("data:") else path

    if isinstance(value, str):
        if not value.startswith("data:"):
            raise SketchError(
                "a string must be a data:image/... URL; send files and web addresses with "
                "gradio_client's handle_file()"
            )
        return decode_data_url(value)
    if isinstance(value, dict) and any(key in value for key in EDITOR_KEYS):
        layers = value.get("layers") or []
        if not isinstance(layers, list):
            raise SketchError("a Sketchpad value's layers must be a list")
        return {
            "background": as_image(value.get("background")),
            "layers": [as_image(layer) for layer in layers],
            "composite": as_image(value.get("composite")),
        }
    if isinstance(value, dict):
        return as_image(value)
    if value is None:
        raise SketchError("no image was sent")
    raise SketchError(f"expected an image, got {type(value).__name__}")


def _as_int(value: Any, name: str) -> int:
    number = _as_float(value, name)
    if not math.isfinite(number) or number != int(number):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    return int(number)


def _as_float(value: Any, name: str) -> float:
    if value is None or isinstance(value, bool):
        raise ConfigError(f"{name} is missing")
    try:
        return float(value)
    except (TypeError, ValueError):  # API callers can send any JSON: "abc", [1], {}
        raise ConfigError(f"{name} must be a number, got {value!r:.40}") from None


def build_app(dashboard: Dashboard) -> gr.Blocks:
    """Lay out both tabs and wire every event to the dashboard's handlers."""
    settings = dashboard.settings
    train_api = "public" if settings.training != "off" else "private"
    defaults = config_from_preset("fast")
    with gr.Blocks(title="MNIST live: train it, draw for it") as demo:
        gr.Markdown(
            "# MNIST live\nTrain the classic tutorial CNN in seconds and watch it learn; "
            "then draw a digit and see what the network sees."
        )
        with gr.Tabs():
            with gr.Tab("Train", id="train"), gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=300):
                    start = gr.Button("Start training", variant="primary", elem_id="start")
                    with gr.Row():
                        pause = gr.Button("Pause", size="sm", min_width=60, elem_id="pause")
                        resume = gr.Button("Resume", size="sm", min_width=60, elem_id="resume")
                        stop = gr.Button(
                            "Stop", size="sm", variant="stop", min_width=60, elem_id="stop"
                        )
                        reset = gr.Button("Reset", size="sm", min_width=60, elem_id="reset")
                    message = gr.Markdown(elem_id="message")
                    with gr.Row():
                        preset_fast = gr.Button("Fast (default)", size="sm", min_width=60)
                        preset_tutorial = gr.Button("Tutorial settings", size="sm", min_width=60)
                        preset_improved = gr.Button("Improved model", size="sm", min_width=60)
                    model = gr.Dropdown(list(MODELS), value=defaults.model, label="Model")
                    epochs = gr.Slider(
                        0.25,
                        min(50, settings.limits.max_epochs),
                        step=0.25,
                        value=defaults.epochs,
                        label="Epochs",
                    )
                    with gr.Row():
                        batch_size = gr.Number(
                            defaults.batch_size,
                            precision=0,
                            minimum=1,
                            maximum=60000,
                            label="Batch size",
                            min_width=100,
                        )
                        lr = gr.Number(
                            defaults.lr, label="Learning rate (peak)", step=1e-4, min_width=100
                        )
                    with gr.Accordion("More settings", open=False):
                        schedule = gr.Radio(
                            list(SCHEDULES), value=defaults.schedule, label="Schedule"
                        )
                        augment = gr.Slider(
                            0,
                            4,
                            step=1,
                            value=defaults.augment,
                            label="Augmentation: random shift (px)",
                        )
                        label_smoothing = gr.Slider(
                            0,
                            0.5,
                            step=0.05,
                            value=defaults.label_smoothing,
                            label="Label smoothing",
                            info="Target: 1 - s on the label, plus s/10 on every digit",
                        )
                        seed = gr.Number(defaults.seed, precision=0, minimum=0, label="Seed")
                        device = gr.Dropdown(
                            available_devices(), value=settings.default_device, label="Device"
                        )
                    token = gr.Textbox(
                        label="Access token", type="password", visible=settings.training == "token"
                    )
                with gr.Column(scale=3):
                    status = gr.Markdown("**Idle**", elem_id="status")
                    with gr.Row():
                        loss_plot = gr.LinePlot(
                            x="epoch",
                            y="log10 loss",
                            title="Training loss (log₁₀)",
                            height=240,
                            elem_id="loss-plot",
                            label="Loss",
                            show_label=False,
                        )
                        acc_plot = gr.LinePlot(
                            x="epoch",
                            y="accuracy",
                            color="series",
                            # Both series known from the start: a series that first appears
                            # in a later update (test, after an epoch) gets no colour/legend.
                            color_map={"train": "#4c78a8", "test": "#e45756"},
                            title="Accuracy (%)",
                            height=240,
                            elem_id="acc-plot",
                            label="Accuracy",
                            show_label=False,
                        )
                    with gr.Row():
                        speed_plot = gr.LinePlot(
                            x="epoch",
                            y="images/s",
                            title="Throughput (images/s)",
                            height=200,
                            elem_id="speed-plot",
                            label="Throughput",
                            show_label=False,
                        )
                        figure = gr.Image(  # its title is in the PNG: nothing drawn over it
                            label="The tutorial's figure",
                            show_label=False,
                            buttons=[],
                            visible=False,
                            type="filepath",
                            interactive=False,
                            elem_id="tutorial-figure",
                        )
                    with gr.Row():
                        download = gr.DownloadButton(
                            "Download checkpoint", visible=False, elem_id="download", size="sm"
                        )
                        csv_download = gr.DownloadButton(
                            "Metrics (CSV)", visible=False, elem_id="csv-download", size="sm"
                        )
                        png_download = gr.DownloadButton(
                            "Figure (PNG)", visible=False, elem_id="png-download", size="sm"
                        )
                    with gr.Accordion(
                        "Per digit: what it gets wrong", open=False, elem_id="per-digit"
                    ) as per_digit:
                        class_caption = gr.Markdown(elem_id="class-caption")
                        per_class = gr.BarPlot(
                            x="digit",
                            y="accuracy",
                            sort="x",
                            title="Test accuracy per digit (%)",
                            height=200,
                            elem_id="per-class",
                            show_label=False,
                        )
                        confusion = gr.Dataframe(
                            headers=CONFUSION_COLUMNS,
                            interactive=False,
                            label="Confusion matrix: click a cell to see those test images",
                            column_widths=["14%"] + ["8.6%"] * 10,
                            elem_id="confusion",
                        )
                        with gr.Row():
                            true_pick = gr.Dropdown(
                                DIGIT_CHOICES, value=ANY, label="True digit", elem_id="true-pick"
                            )
                            read_pick = gr.Dropdown(
                                DIGIT_CHOICES, value=ANY, label="Read as", elem_id="read-pick"
                            )
                        gallery_caption = gr.Markdown(elem_id="gallery-caption")
                        misreads = gr.Gallery(
                            columns=8,
                            height="auto",
                            visible=False,
                            label="Misread test digits",
                            show_label=False,
                            elem_id="misreads",
                        )
                    with gr.Accordion("Compare runs", open=False, elem_id="compare") as compare:
                        history_plot = gr.LinePlot(
                            x="epoch",
                            y="test_accuracy",
                            color="run",
                            title="Test accuracy (%) per epoch, every run",
                            height=260,
                            elem_id="history-plot",
                            show_label=False,
                        )
                        history_table = gr.Dataframe(
                            interactive=False, label="Runs, newest first", elem_id="history-table"
                        )
            with gr.Tab("Draw", id="draw"), gr.Row(equal_height=False):
                with gr.Column(scale=3, min_width=320):
                    pad = drawpad()
                    upload = gr.File(
                        label="…or upload an image file",
                        file_types=["image"],
                        type="filepath",
                        elem_id="upload",
                    )
                    with gr.Accordion("Why this answer", open=True, elem_id="why"):
                        why_caption = gr.Markdown(elem_id="why-caption")
                        with gr.Row(equal_height=False):
                            saliency = gr.Image(
                                label="Where it looked",
                                interactive=False,
                                height=224,
                                width=224,
                                elem_id="saliency",
                                format=PNG,
                                buttons=[],
                            )
                            with gr.Column():
                                maps1 = gr.Image(
                                    label="First conv stage",
                                    interactive=False,
                                    elem_id="maps1",
                                    format=PNG,
                                    buttons=[],
                                )
                                maps2 = gr.Image(
                                    label="Second conv stage",
                                    interactive=False,
                                    elem_id="maps2",
                                    format=PNG,
                                    buttons=[],
                                )
                with gr.Column(scale=2, min_width=280):
                    label = gr.Label(num_top_classes=3, label="Prediction", elem_id="label")
                    with gr.Row():
                        seen = gr.Image(
                            label="What the network sees (28×28)",
                            interactive=False,
                            height=224,
                            width=224,
                            elem_id="seen",
                            format=PNG,
                            buttons=[],
                        )
                    probs = gr.HTML(
                        charts.probability_bars_html(None),
                        label="All ten probabilities",
                        show_label=True,
                        container=True,
                        elem_id="probs",
                    )
                    answered = gr.Markdown(elem_id="answered")
                    spark_plot = gr.LinePlot(
                        x="epoch",
                        y="probability",
                        y_lim=[0, 1],
                        height=160,
                        visible=False,
                        elem_id="spark",
                        show_label=False,
                    )
                    with gr.Accordion("Teach it your handwriting", open=False, elem_id="teach"):
                        gr.Markdown(
                            "Misread? Say which digit it is and add it to your drawings, then "
                            "fine-tune: a private copy of the model trains a few seconds on "
                            "MNIST plus your drawings. Other visitors never see them."
                        )
                        with gr.Row(equal_height=True):
                            teach_label = gr.Dropdown(
                                [str(d) for d in range(10)],
                                value=None,
                                label="This drawing is a…",
                                elem_id="teach-label",
                            )
                            teach_add = gr.Button("Add to my drawings", elem_id="teach-add")
                        my_drawings = gr.Gallery(
                            columns=8,
                            height=130,
                            allow_preview=False,
                            label="My drawings",
                            elem_id="my-drawings",
                        )
                        with gr.Row():
                            teach_tune = gr.Button(
                                "Fine-tune on MNIST + my drawings",
                                variant="primary",
                                elem_id="teach-tune",
                            )
                            teach_shared = gr.Button("Use the shared model", elem_id="teach-shared")
                            teach_clear = gr.Button("Clear my drawings", elem_id="teach-clear")
                        teach_message = gr.Markdown(elem_id="teach-message")
                        comparison = gr.Dataframe(
                            interactive=False, label="Before / after", elem_id="teach-table"
                        )
        preset = gr.State("fast")
        seen_key = gr.State(None)
        image28 = gr.State(None)
        shown_version = gr.State(None)
        personal = gr.State(PersonalSet())  # deep-copied: every visitor gets their own set
        # this visitor's fine-tuned Predictor (~2 MB): dropped 30 min after its last change
        tuned = gr.State(None, time_to_live=1800)
        spark = gr.State([])
        train_timer = gr.Timer(IDLE_TICK)
        draw_timer = gr.Timer(DRAW_TICK, active=False)  # woken by tick while weights change

        private = dict(api_visibility="private", show_progress="hidden")
        controls = [
            model,
            epochs,
            batch_size,
            lr,
            schedule,
            augment,
            label_smoothing,
            seed,
            device,
        ]
        for button, name in (
            (preset_fast, "fast"),
            (preset_tutorial, "tutorial"),
            (preset_improved, "improved"),
        ):
            button.click(
                lambda n=name: dashboard.apply_preset(n),
                None,
                [preset] + controls[:-1],
                api_visibility="private",
                show_progress="hidden",
            )
        start.click(
            dashboard.start,
            [preset] + controls + [token],
            message,
            api_name="start_training",
            api_visibility=train_api,
            show_progress="hidden",
        )
        for button, fn in (
            (pause, dashboard.pause),
            (resume, dashboard.resume),
            (stop, dashboard.stop),
            (reset, dashboard.reset),
        ):
            button.click(
                fn,
                token,
                message,
                api_name=f"{fn.__name__}_training",
                api_visibility=train_api,
                show_progress="hidden",
            )
        # Hidden keys, not States: the browser fires a component's change event whatever
        # brought the new value, a State's only after a queued event.
        epoch_key = gr.Textbox(visible=False, elem_id="epoch-key")
        job_key = gr.Textbox(visible=False, elem_id="job-key")
        tick_outputs = [
            status,
            loss_plot,
            acc_plot,
            speed_plot,
            draw_timer,
            epoch_key,
            job_key,
            seen_key,
        ]
        assert len(tick_outputs) == TICK_OUTPUTS
        train_timer.tick(  # no queue: one plain request per poll, no event stream
            dashboard.tick, [seen_key, image28], tick_outputs, queue=False, **private
        )
        demo.load(lambda: dashboard.tick(None), None, tick_outputs, **private)
        epoch_key.change(
            dashboard.epoch_views, None, [figure, per_class, confusion, class_caption], **private
        )
        job_key.change(
            dashboard.job_views,
            None,
            [message, download, csv_download, png_download, history_table, history_plot]
            + [train_timer],
            **private,
        )

        draw_outputs = [label, probs, seen, answered, image28, shown_version]
        explorer = dashboard.explorer
        why_outputs = [saliency, maps1, maps2, why_caption, spark, spark_plot]
        rescoring = draw_timer.tick(  # the pad's value says whether it still holds a drawing
            dashboard.follow_live_weights,
            [pad, upload, image28, shown_version, tuned, spark],
            draw_outputs + [spark, spark_plot, draw_timer],
            concurrency_limit=None,
            **private,
        )
        pad.change(  # a re-scoring still in flight holds the old drawing: cancel it
            dashboard.read_drawing,
            [pad, tuned],
            draw_outputs + [draw_timer],
            trigger_mode="always_last",
            concurrency_limit=None,
            cancels=[rescoring],
            **private,
        ).then(None, js=AFTER_PAINT_JS).then(
            explorer.after_drawing, [image28, tuned, spark], why_outputs, **private
        )
        # The public reading endpoint: /predict_file is its old name, kept for clients.
        for name in ("predict", "predict_file"):
            gr.api(dashboard.predict_api, api_name=name, concurrency_limit=None)
        upload.upload(
            dashboard.read_upload,
            [upload, tuned],
            draw_outputs + [draw_timer],
            concurrency_limit=None,
            **private,
        ).then(None, js=AFTER_PAINT_JS).then(
            explorer.after_drawing, [image28, tuned, spark], why_outputs, **private
        )
        class_outputs = [per_class, confusion, class_caption]
        gallery_outputs = [misreads, gallery_caption]
        per_digit.expand(
            explorer.open_per_digit,
            [true_pick, read_pick],
            class_outputs + gallery_outputs,
            **private,
        )
        confusion.select(
            explorer.select_cell, None, [true_pick, read_pick] + gallery_outputs, **private
        )
        for pick in (true_pick, read_pick):
            pick.input(explorer.gallery, [true_pick, read_pick], gallery_outputs, **private)
        compare.expand(explorer.history_view, None, [history_table, history_plot], **private)

        teach_add.click(
            explorer.add_example,
            [image28, teach_label, personal],
            [personal, my_drawings, teach_message],
            **private,
        )
        teach_clear.click(
            explorer.clear_examples, personal, [personal, my_drawings, teach_message], **private
        )
        for event in (
            teach_tune.click(  # one fine-tune at a time: the rest queue behind it
                explorer.fine_tune,
                personal,
                [tuned, comparison, teach_message],
                concurrency_limit=1,
                concurrency_id="fine-tune",
                api_visibility="private",
            ),
            teach_shared.click(explorer.use_shared, None, [tuned, teach_message], **private),
        ):
            event.then(dashboard.rescore, [image28, tuned], draw_outputs, **private).then(
                explorer.after_drawing, [image28, tuned, spark], why_outputs, **private
            )
        gr.api(dashboard.status, api_name="status")
    return demo
