"""The Train tab: the shared run's controls, its live charts and downloads.

`TrainTab` holds the handlers (callable without a server); `build` lays the tab out and wires
its events. The per-digit view and the run comparison sit in this tab but belong to
`explore`; the poll also wakes the Draw tab's re-scoring timer, passed in as `c.draw_timer`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import gradio as gr

from .. import charts, checkpoints
from ..job import Snapshot, TrainingJob
from ..models import MODELS
from ..predict import Predictor
from ..records import StepRecord, count, epoch_position, is_kind, of_kind
from ..settings import AppSettings
from ..training import (
    PRESETS,
    SCHEDULES,
    ConfigError,
    TrainConfig,
    available_devices,
    config_from_preset,
)
from . import explore, live
from .common import (
    ACTIVE_STATES,
    ACTIVE_TICK,
    IDLE_TICK,
    PRIVATE,
    Components,
    as_float,
    as_int,
    outputs,
    skip_all,
)
from .explore import Explorer

PRESET_LABELS = {
    "fast": "Fast (default)",
    "tutorial": "Tutorial settings",
    "improved": "Improved model",
}

log = logging.getLogger(__name__)


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _epoch_progress(step: StepRecord, epochs: float) -> str:
    """'epoch 3/20' for whole epochs; 'epoch 1.37 of 1.5' when the run ends mid-epoch."""
    if float(epochs).is_integer():
        return f"epoch {step['epoch']}/{int(epochs)}"
    return f"epoch {epoch_position(step):.2f} of {epochs:g}"


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


class PresetView(NamedTuple):
    """A preset's values for the controls (the device stays as the visitor set it)."""

    preset: str
    model: str
    epochs: float
    batch_size: int
    lr: float
    schedule: str
    augment: int
    label_smoothing: float
    seed: int


CONTROLS = (*PresetView._fields[1:], "device")  # Start's inputs after the preset, by name


# The live charts' fastest redraw in a tab, in seconds: twice a second looks live, and each
# redraw replaces three SVGs in the page, on the cores training uses (when they were Vega
# charts, rebuilt from their specs at every 0.3 s poll, they kept the page 85-96% busy on
# our loaded 2-core machine: bench/browser_profile.py). The status line follows each poll.
CHART_SECONDS = 0.5


class TickKey(NamedTuple):
    """What a tab last saw of the job: a poll redraws only the parts whose fields moved."""

    run_id: int | None
    n_records: int
    state: str
    message: str
    n_history: int
    weights: int
    n_epochs: int
    figures: int = 0  # epochs the run's figure shows: it is drawn after its epoch's record
    charted: int = -1  # the n_records the tab's charts draw (they lag by CHART_SECONDS at most)
    charted_at: float = -math.inf  # when those charts were sent (TrainTab.clock)


def encode_key(key: TickKey) -> str:
    """A TickKey for the page to keep and send back (JSON; -inf spelt as JSON allows)."""
    return json.dumps(list(key))


def parse_key(sent: Any) -> TickKey | None:
    """The TickKey a page sent back, or None for anything else (a new tab, a stale or
    forged key): the next poll then answers everything."""
    try:
        fields = json.loads(sent) if isinstance(sent, str) and len(sent) < 4096 else None
    except ValueError:
        return None
    if not isinstance(fields, list) or len(fields) != len(TickKey._fields):
        return None
    types = (
        (int, type(None)),
        int,
        str,
        str,
        int,
        int,
        int,
        int,
        int,
        (int, float),
    )
    if not all(
        isinstance(f, t) and not isinstance(f, bool) for f, t in zip(fields, types, strict=True)
    ):
        return None
    return TickKey(*fields)


def _milestone_since(records: list, charted: int) -> bool:
    """Did a record a visitor waits for arrive after the first `charted` records: the run's
    first step (the charts leave the Draw model's curves) or a full test of 10,000 images?"""
    first_step = next((i for i, r in enumerate(records) if is_kind(r, "step")), None)
    if first_step is None:
        return False
    return first_step >= charted or any(is_kind(r, "epoch") for r in records[charted:])


class TickView(NamedTuple):
    """What a tab's polls get (`TrainTab.tick`): `poll` sends the first four to the page,
    `watch` the rest as Gradio outputs (`WatchView`)."""

    status: Any
    loss_plot: Any
    acc_plot: Any
    speed_plot: Any
    draw_timer: Any  # the Draw tab's re-scoring timer, woken when weights start moving
    epoch_key: Any  # its change runs epoch_views
    job_key: Any  # its change runs job_views
    seen_key: Any  # the TickKey this tab has now seen


class WatchView(NamedTuple):
    """`watch`'s outputs: what follows Gradio events (the page's live view shows the rest)."""

    draw_timer: Any
    epoch_key: Any
    job_key: Any
    seen_key: Any


class LiveCharts(NamedTuple):
    loss_plot: Any
    acc_plot: Any
    speed_plot: Any


class EpochView(NamedTuple):
    figure: Any
    per_class: Any
    confusion: Any
    class_caption: Any


class JobView(NamedTuple):
    message: Any
    download: Any
    csv_download: Any
    png_download: Any
    history_table: Any  # the runs compared: explore.HistoryView's fields
    history_plot: Any
    history_loss_plot: Any
    run_pick: Any


class TrainTab:
    """The Train tab's handlers, bound to the job, the predictor and the settings."""

    def __init__(
        self, job: TrainingJob, predictor: Predictor, settings: AppSettings, explorer: Explorer
    ) -> None:
        self.job, self.predictor, self.settings = job, predictor, settings
        self.explorer = explorer
        self.clock: Callable[[], float] = time.monotonic  # the charts' throttle; tests fake it
        # (weights version, its epoch records, its name) and (version, figure path): the
        # idle Train tab shows the Draw model's own training, read once per version
        self._history_cache: tuple[int, list, str] | None = None
        self._idle_figure_cache: tuple[int, str] | None = None
        self._charts_cache: tuple[tuple, LiveCharts] | None = None  # see _shared_live_charts

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
                epochs=as_float(epochs, "epochs"),
                batch_size=as_int(batch_size, "batch size"),
                lr=as_float(lr, "learning rate"),
                schedule=schedule,
                augment=as_int(augment, "augment"),
                label_smoothing=as_float(label_smoothing, "label smoothing"),
                seed=as_int(seed, "seed"),
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

    @staticmethod
    def apply_preset(name: str) -> PresetView:
        """The preset's name (kept per tab) and its values for the controls."""
        config: TrainConfig = config_from_preset(name)
        return PresetView(name, *(getattr(config, f) for f in PresetView._fields[1:]))

    # --- the dashboard's poll -----------------------------------------------------------------

    def tick(
        self, seen: TickKey | None, drawing: Any = None, *, with_charts: bool = True
    ) -> TickView:
        """What moved since a tab last looked: status line and charts (the page's `poll`
        sends those), and the keys and the draw timer (the slower `watch` sends those;
        `with_charts=False` there, so it never builds charts it does not send).

        What changes once per epoch (figure, per-digit view) or per run state (message,
        downloads, runs, poll interval) follows the hidden epoch_key and job_key in their
        own change events. `drawing` is the tab's 28x28 drawing, if any: only then is there
        something for the draw timer to re-score.
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
            snap.figure_epochs,
        )
        seen = TickKey(*seen) if seen is not None and len(seen) == len(key) else None
        idle = not of_kind(records, "step")
        active = snap.state in ACTIVE_STATES
        now = self.clock()
        charts_moved = with_charts and (
            seen is None
            or seen.run_id != key.run_id
            or (idle and seen.weights != key.weights)  # the Draw model's curves are shown
            or (
                seen.charted != key.n_records
                # at most every CHART_SECONDS while the run adds records; a run's last
                # records (its end), its first point and each full test are drawn at once
                and (
                    not active
                    or now - seen.charted_at >= CHART_SECONDS
                    or _milestone_since(records, seen.charted)
                )
            )
        )
        if charts_moved:
            key = key._replace(charted=key.n_records, charted_at=now)
        elif seen is not None:
            key = key._replace(charted=seen.charted, charted_at=seen.charted_at)
        if seen == key:
            return skip_all(TickView)
        plots = self._shared_live_charts(key, records) if charts_moved else skip_all(LiveCharts)
        # The status goes with every update, even when only a chart caught up: skipping it
        # there left the loss and accuracy charts painted blank in headless Chromium
        # (drawn, but covered) at a run's end, three runs out of three.
        return TickView(
            status=status_markdown(snap),
            **plots._asdict(),
            draw_timer=wake_rescoring(seen, key, active) if drawing is not None else gr.skip(),
            # its change runs epoch_views (idle: the Draw model's figure)
            epoch_key=f"{key.run_id}/{key.n_epochs}/{key.figures}"
            + (f"/w{key.weights}" if idle else ""),
            # idle, the weights too: the Draw model's choice changed (in any tab)
            job_key=f"{key.run_id}/{key.state}/{key.n_history}/{key.message}"
            + ("" if active else f"/w{key.weights}"),
            seen_key=key,
        )

    def watch(self, seen: TickKey | None, drawing: Any = None) -> WatchView:
        """The keys whose changes run epoch_views and job_views, and the Draw tab's re-scoring
        timer (the status line and charts come from `poll`). The page asks for it when it
        loads and whenever a `poll` answer's `watch` changed."""
        view = self.tick(seen, drawing, with_charts=False)
        return WatchView(view.draw_timer, view.epoch_key, view.job_key, view.seen_key)

    def poll(self, seen: Any) -> dict[str, Any]:
        """The live view's answer (ui/live.py: streamed, or polled by the page): the status
        line as HTML and the three charts' SVG when they moved since `seen` (the key the tab
        was last given, as sent), the key for next time and the seconds to wait.

        Measured on this 2-core machine, one headless Chromium tab watching a run
        (bench/dashboard_toggle.py, the training's images/s in watched windows against their
        blank neighbours; BENCHMARKS.md ninth and tenth sessions): the gr.Timer poll that fed
        four components cost the browser 0.13-0.14 of a core and the training a median 12.3%;
        this answer polled by the page 0.09 and 11.2% (20 windows), streamed 0.07-0.08 and
        6.3% (21 windows).

        `watch` names the per-epoch and per-run views (epoch_key and job_key): when it differs
        from the last one the page saw, the page clicks the hidden button that runs `watch`.
        """
        view = self.tick(parse_key(seen))
        moved = view.seen_key != gr.skip()
        charts_sent = moved and view.loss_plot != gr.skip()
        active = self.job.snapshot().state in ACTIVE_STATES
        return {
            "key": encode_key(view.seen_key) if moved else None,
            "status": live.markdown_line_html(view.status) if moved else None,
            "charts": [view.loss_plot, view.acc_plot, view.speed_plot] if charts_sent else None,
            "every": ACTIVE_TICK if active else IDLE_TICK,
            "live": active,  # a run is live: the page streams (ui/live.py)
            "watch": f"{view.epoch_key}|{view.job_key}" if moved else None,
        }

    def _shared_live_charts(self, key: TickKey, records: list) -> LiveCharts:
        """live_charts, built once per record count (and idle weights) for every tab: tabs
        watching the same run would otherwise each rebuild the same three charts."""
        idle = not of_kind(records, "step")
        cache_key = (key.run_id, len(records), key.weights if idle else None)
        cached = self._charts_cache
        if cached is not None and cached[0] == cache_key:
            return cached[1]
        plots = self.live_charts(records)
        self._charts_cache = (cache_key, plots)  # one tuple store: no lock needed
        return plots

    def live_charts(self, records: list) -> LiveCharts:
        """Loss (log axis, real values), accuracy (train; test on the sample during epochs
        and on all 10,000 at their ends) and throughput. Before a run's first step: the
        curves the Draw model's own training left in its checkpoint, or charts saying what
        will appear."""
        if not of_kind(records, "step"):
            return self._idle_charts()
        loss = charts.line_svg(
            charts.loss_rows(records),
            "loss",
            title="Training loss (log scale)",
            y_title="loss",
            log_y=True,
        )
        accuracy = charts.line_svg(
            charts.accuracy_rows(records),
            "accuracy",
            title="Accuracy (%)",
            y_title="%",
        )
        speed = charts.line_svg(
            charts.speed_rows(records),
            "images/s",
            title="Throughput (images/s)",
            y_title="images/s",
            height=160,
        )
        return LiveCharts(loss, accuracy, speed)

    def _idle_charts(self) -> LiveCharts:
        epochs, name = self._draw_model_history()
        loss_frame, acc_frame = charts.epoch_frames(epochs)
        how = f"How {name} learned (kept in its checkpoint)" if epochs else ""
        press = "Press Start: {} of the new run appears here."
        loss = charts.line_svg(
            loss_frame,
            "loss",
            title="Training loss per epoch (log scale)" if epochs else "Training loss",
            subtitle=how,
            y_title="loss",
            log_y=True,
            empty=press.format("the training loss"),
        )
        accuracy = charts.line_svg(
            acc_frame,
            "accuracy",
            title="Accuracy (%) per epoch" if epochs else "Accuracy (%)",
            subtitle=how,
            y_title="%",
            empty=press.format("train and test accuracy"),
        )
        speed = charts.line_svg(
            charts.speed_rows([]),
            "images/s",
            title="Throughput (images/s)",
            y_title="images/s",
            height=160,
            empty=press.format("the training speed"),
        )
        return LiveCharts(loss, accuracy, speed)

    def _draw_model_history(self) -> tuple[list, str]:
        """The epoch records kept with the Draw model's checkpoint, and what to call it."""
        version = self.predictor.version
        cached = self._history_cache
        if cached is not None and cached[0] == version.number:
            return cached[1], cached[2]
        epochs: list = []
        if version.source is not None:
            try:
                epochs = of_kind(
                    checkpoints.load(version.source).metadata.get("history", []), "epoch"
                )
            except checkpoints.CheckpointError as err:
                log.warning("no training curves for %s: %s", version.label, err)
        self._history_cache = (version.number, epochs, f"the {version.label}")
        return epochs, f"the {version.label}"

    def epoch_views(self) -> EpochView:
        """After an epoch (or in a new tab): the job's figure and the per-digit view; before
        any run, the Draw model's own figure."""
        snap = self.job.snapshot()
        class_view = self.explorer.class_view_from(snap) or skip_all(explore.ClassView)
        figure = snap.figure
        if figure is None and not of_kind(snap.records, "step"):
            figure = self._idle_figure()
        return EpochView(gr.Image(value=figure, visible=bool(figure)), *class_view)

    def _idle_figure(self) -> str | None:
        """The tutorial figure of the Draw model's training, drawn once per weights version."""
        epochs, _ = self._draw_model_history()
        if not epochs:
            return None
        number = self.predictor.version.number
        if self._idle_figure_cache is None or self._idle_figure_cache[0] != number:
            path = self.job.runs_dir / f".draw-model-{number}.png"
            try:
                checkpoints.atomic_write_bytes(path, charts.figure_png(epochs))
            except OSError as err:
                log.warning("could not draw the Draw model's figure: %s", err)
                return None
            self._idle_figure_cache = (number, str(path))
        return self._idle_figure_cache[1]

    def job_views(self) -> JobView:
        """When the run's state or message changes (or in a new tab): the job's message,
        downloads, the runs compared, and the poll's interval.

        The message goes only then, so a button's answer in this tab (say "already running")
        stays up until the job's own message changes.
        """
        snap = self.job.snapshot()
        exports = snap.exports
        history = self.explorer.history_view()
        return JobView(
            message=snap.message,
            download=gr.DownloadButton(value=snap.checkpoint, visible=bool(snap.checkpoint)),
            csv_download=gr.DownloadButton(value=exports.get("csv"), visible="csv" in exports),
            png_download=gr.DownloadButton(value=exports.get("png"), visible="png" in exports),
            **history._asdict(),
        )


def wake_rescoring(seen: TickKey | None, key: TickKey, active: bool) -> Any:
    """The draw timer's update: on when a run starts or idle weights change, else untouched.

    Only for a tab that holds a drawing. DrawTab.follow_live_weights puts the timer back to
    sleep once the job is idle and the drawing is up to date. Only transitions are sent, so
    the timer's interval is never restarted.
    """
    if seen is None:
        return gr.Timer(active=True) if active else gr.skip()
    was_active = seen.state in ACTIVE_STATES
    weights_moved = seen.weights != key.weights
    if (active and not was_active) or (not active and weights_moved):
        return gr.Timer(active=True)
    return gr.skip()


def build(c: Components, tab: TrainTab, settings: AppSettings) -> None:
    """Lay out the Train tab into `c` and wire its events."""
    defaults = config_from_preset("fast")
    with gr.Tab("Train", id="train"), gr.Row(equal_height=False, elem_id="train-row"):
        # On a phone (common.CSS) the buttons come first, then the status and the charts,
        # then the settings: the two columns' parts are re-ordered, not duplicated.
        with gr.Column(scale=1, min_width=300, elem_id="train-controls"):
            with gr.Group(elem_id="train-buttons"):
                c.start = gr.Button("Start training", variant="primary", elem_id="start")
                with gr.Row():
                    c.pause = gr.Button("Pause", size="sm", min_width=60, elem_id="pause")
                    c.resume = gr.Button("Resume", size="sm", min_width=60, elem_id="resume")
                    c.stop = gr.Button(
                        "Stop", size="sm", variant="stop", min_width=60, elem_id="stop"
                    )
                    c.reset = gr.Button("Reset", size="sm", min_width=60, elem_id="reset")
                c.message = gr.Markdown(elem_id="message")
            with gr.Row(elem_id="train-presets"):
                c.preset_buttons = {
                    name: gr.Button(PRESET_LABELS.get(name, name), size="sm", min_width=60)
                    for name in PRESETS
                }
            c.model = gr.Dropdown(list(MODELS), value=defaults.model, label="Model")
            c.epochs = gr.Slider(
                0.25,
                min(50, settings.limits.max_epochs),
                step=0.25,
                value=defaults.epochs,
                label="Epochs",
            )
            with gr.Row():
                c.batch_size = gr.Number(
                    defaults.batch_size,
                    precision=0,
                    minimum=1,
                    maximum=60000,
                    label="Batch size",
                    min_width=100,
                )
                c.lr = gr.Number(
                    defaults.lr, label="Learning rate (peak)", step=1e-4, min_width=100
                )
            with gr.Accordion("More settings", open=False):
                c.schedule = gr.Radio(list(SCHEDULES), value=defaults.schedule, label="Schedule")
                c.augment = gr.Slider(
                    0,
                    4,
                    step=1,
                    value=defaults.augment,
                    label="Augmentation: random shift (px)",
                )
                c.label_smoothing = gr.Slider(
                    0,
                    0.5,
                    step=0.05,
                    value=defaults.label_smoothing,
                    label="Label smoothing",
                    info="Target: 1 - s on the label, plus s/10 on every digit",
                )
                c.seed = gr.Number(defaults.seed, precision=0, minimum=0, label="Seed")
                c.device = gr.Dropdown(
                    available_devices(), value=settings.default_device, label="Device"
                )
            c.token = gr.Textbox(
                label="Access token", type="password", visible=settings.training == "token"
            )
        with gr.Column(scale=3, elem_id="train-views"):

            def poll(seen: Any) -> dict[str, Any]:  # Gradio marks it: a function, not a method
                return tab.poll(seen)

            # the status line and the charts (SVG drawn here, svgchart.py), which the page
            # gets from the live stream or polls for (ui/live.py); the chart rows wrap: one
            # chart per line on a phone
            c.live = gr.HTML(
                live.SKELETON,
                js_on_load=live.poll_js(IDLE_TICK),
                server_functions=[poll],
                elem_id="live",
                padding=False,
            )
            with gr.Row(elem_classes="chart-row"):
                c.speed_plot = gr.HTML(live.SPEED_SKELETON, elem_id="speed-plot", padding=False)
                c.figure = gr.Image(  # its title is in the PNG: nothing drawn over it
                    label="The tutorial's figure",
                    show_label=False,
                    buttons=[],
                    visible=False,
                    type="filepath",
                    interactive=False,
                    elem_id="tutorial-figure",
                )
            with gr.Row():
                c.download = gr.DownloadButton(
                    "Download checkpoint", visible=False, elem_id="download", size="sm"
                )
                c.csv_download = gr.DownloadButton(
                    "Metrics (CSV)", visible=False, elem_id="csv-download", size="sm"
                )
                c.png_download = gr.DownloadButton(
                    "Figure (PNG)", visible=False, elem_id="png-download", size="sm"
                )
            explore.build_per_digit(c)
            explore.build_compare(c)

    train_api = "public" if settings.training != "off" else "private"
    for name, button in c.preset_buttons.items():
        button.click(lambda n=name: tab.apply_preset(n), None, outputs(PresetView, c), **PRIVATE)
    c.start.click(
        tab.start,
        [c.preset, *(getattr(c, name) for name in CONTROLS), c.token],
        c.message,
        api_name="start_training",
        api_visibility=train_api,
        show_progress="hidden",
    )
    for button, fn in (
        (c.pause, tab.pause),
        (c.resume, tab.resume),
        (c.stop, tab.stop),
        (c.reset, tab.reset),
    ):
        button.click(
            fn,
            c.token,
            c.message,
            api_name=f"{fn.__name__}_training",
            api_visibility=train_api,
            show_progress="hidden",
        )


def wire_poll(c: Components, demo: gr.Blocks, tab: TrainTab) -> None:
    """`watch` and the two views it triggers (after both tabs exist: it wakes the Draw tab)."""
    c.watch_now.click(  # no queue: one plain request, no event stream
        tab.watch, [c.seen_key, c.image28], outputs(WatchView, c), queue=False, **PRIVATE
    )
    demo.load(lambda: tab.watch(None), None, outputs(WatchView, c), **PRIVATE)
    c.epoch_key.change(tab.epoch_views, None, outputs(EpochView, c), **PRIVATE)
    c.job_key.change(tab.job_views, None, outputs(JobView, c), **PRIVATE)
