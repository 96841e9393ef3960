"""Looking inside the network: per-digit view and run comparison (Train tab), why this answer,
the sparkline and teaching (Draw tab).

`Explorer` holds the handlers (callable without a server); the `build_*` functions lay out each
part where its tab puts it, and wire it. It reads the job and the predictor, calls the engine
(insight, teach, history) and returns named views. The training job and the shared predictor
are never changed here, except by an operator-enabled shared teaching mode.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import gradio as gr
import numpy as np
import pandas as pd
from gradio.components.plot import AltairPlotData
from pandas.io.formats.style import Styler

from .. import charts, checkpoints, insight, teach
from ..checkpoints import Checkpoint
from ..data import load_mnist
from ..job import ACTIVE, Snapshot, TrainingJob
from ..limits import Busy, FineTuneGate
from ..predict import Prediction, Predictor, Weights, WeightsVersion
from ..records import epoch_position, epochs_done, run_label
from ..runfiles import RunFiles
from ..settings import AppSettings
from ..words import a_digit, count_of
from .common import PRIVATE, Components, outputs, skip_all

log = logging.getLogger(__name__)

# workers for fine-tune requests: 1 running + 2 waiting in the gate, and spares that refuse
# the rest at once, so abandoned requests drain from the shared queue in milliseconds
FINE_TUNE_WORKERS = 6

GALLERY_SIZE = 24  # misread test digits shown for one (true, read as) pair
SPARK_POINTS = 300  # per drawing: one point per re-scoring, about one a second
ANY = "any"
DIGIT_CHOICES = [ANY] + [str(d) for d in range(10)]
TILE_SIDE = 56  # px per feature map in the grids, whatever the map's own size
TEACH_STEPS = 60
TEACH_SECONDS = 20.0

# Short headers: on a phone a column is ~28 px wide. Row = true digit, column = read as.
CONFUSION_COLUMNS = ["true"] + [str(d) for d in range(10)]
RIGHT_CELL, MISREAD_RGB = "#e8f3ea", (228, 87, 86)  # diagonal; mistakes, darker = more


def vega(spec: dict[str, Any]) -> AltairPlotData:
    """A Vega-Lite spec for gr.Plot, which the browser draws (Gradio's Altair path, without
    Altair: the spec is built as plain data in charts.py). As a "line" chart, Gradio fits it
    to its box and applies the theme's fonts."""
    return AltairPlotData(chart="line", plot=json.dumps(spec))


class ClassView(NamedTuple):
    per_class: Any  # bar plot of test accuracy per digit
    confusion: Any  # the 10x10 table
    class_caption: Any


class GalleryView(NamedTuple):
    misreads: Any
    gallery_caption: Any


class PerDigitView(NamedTuple):
    per_class: Any
    confusion: Any
    class_caption: Any
    misreads: Any
    gallery_caption: Any


class CellView(NamedTuple):
    true_pick: Any
    read_pick: Any
    misreads: Any
    gallery_caption: Any


class HistoryView(NamedTuple):
    history_table: Any  # the runs, newest first (hidden before any run)
    history_plot: Any  # test accuracy against epochs, one line per run
    history_loss_plot: Any  # training loss (log axis) against epochs, one line per run
    run_pick: Any  # which run's files the download buttons offer


class RunDownloads(NamedTuple):
    run_checkpoint: Any
    run_csv: Any
    run_figure: Any


RUN_FILES = ("checkpoint", "csv", "figure")  # RunFiles.existing()'s names, in RunDownloads' order


class ExplainView(NamedTuple):
    saliency: Any
    maps1: Any  # the first conv stage's feature maps, tiled
    maps2: Any
    why_caption: Any


class TrackView(NamedTuple):
    spark: Any
    spark_plot: Any


class ExamplesView(NamedTuple):
    personal: Any  # this visitor's PersonalSet
    my_drawings: Any
    teach_message: Any


class FineTuneView(NamedTuple):
    tuned: Any  # this visitor's fine-tuned Predictor, or None for the shared one
    comparison: Any
    teach_message: Any


class SharedModelView(NamedTuple):
    tuned: Any
    teach_message: Any


def confusion_frame(matrix: Any) -> Styler:
    """The 10x10 counts as a heatmap table, the true digit first (what a click reports).

    A heat map because people find the big mistakes by colour faster than by reading 100
    counts; a table because a cell stays clickable. Mistakes are shaded on a log scale (a
    handful of 3-for-5 misreads must still show next to 30 of 4-for-9), right answers pale.
    """
    matrix = np.asarray(matrix, dtype=np.int64)
    frame = pd.DataFrame(matrix, columns=CONFUSION_COLUMNS[1:])
    frame.insert(0, CONFUSION_COLUMNS[0], [str(d) for d in range(10)])
    mistakes = matrix.copy()
    np.fill_diagonal(mistakes, 0)
    shade = np.log1p(mistakes) / np.log1p(max(int(mistakes.max()), 1))
    r, g, b = MISREAD_RGB
    styles = [
        [""]
        + [
            f"background-color: {RIGHT_CELL}"
            if i == j
            else (
                f"background-color: rgba({r}, {g}, {b}, {0.15 + 0.85 * shade[i, j]:.2f})"
                if mistakes[i, j]
                else ""
            )
            for j in range(10)
        ]
        for i in range(10)
    ]
    return frame.style.apply(lambda _: pd.DataFrame(styles, columns=frame.columns), axis=None)


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
        self.fine_tunes = FineTuneGate()  # one runs, two wait, the rest are told to come back

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

    def class_view(self) -> ClassView:
        """Per-digit accuracy, the confusion matrix and a caption saying which weights."""
        label, probabilities = self._probabilities()
        labels = load_mnist()[1].labels.numpy()
        matrix = insight.confusion_matrix(labels, probabilities.argmax(1))
        return self._class_outputs(label, matrix)

    def open_per_digit(self, true_choice: Any, read_choice: Any) -> PerDigitView:
        """Opening the panel: the class view and the picked pair's gallery in one event.

        Two chained events would let a quick click on a cell be overwritten by the gallery
        of the pair picked before it.
        """
        return PerDigitView(*self.class_view(), *self.gallery(true_choice, read_choice))

    def class_view_from(self, snap: Snapshot) -> ClassView | None:
        """The same view from the latest epoch record (no test pass needed), or None."""
        epoch = snap.latest_epoch
        if not epoch or "confusion" not in epoch:
            return None
        label = run_label(snap.run_id, epochs_done(epoch))
        return self._class_outputs(label, np.asarray(epoch["confusion"]))

    @staticmethod
    def _class_outputs(label: str, matrix: np.ndarray) -> ClassView:
        accuracy = 100.0 * np.trace(matrix) / max(matrix.sum(), 1)
        caption = (
            f"Test set read by **{label}**: {accuracy:.2f}% right. Rows are the true digit, "
            "columns what the network read; click a cell to see those test images."
        )
        per_class = insight.per_class_accuracy(matrix)
        floor = np.nanmin(per_class) if np.isfinite(per_class).any() else 0.0
        low = max(0.0, float(np.floor(floor)) - 1.0)  # zoom in: the bars differ by tenths
        return ClassView(
            per_class=gr.BarPlot(value=per_class_frame(per_class), y_lim=[low, 100]),
            confusion=confusion_frame(matrix),
            class_caption=caption,
        )

    def gallery(self, true_choice: Any, read_choice: Any) -> GalleryView:
        """Misread test digits for a (true, read as) pair, most confident mistakes first."""
        true, read = _digit_or_none(true_choice), _digit_or_none(read_choice)
        if true is not None and true == read:
            return GalleryView(
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
        what = f"{'any digit' if true is None else a_digit(true)} read as " + (
            "something else" if read is None else a_digit(read)
        )
        if not found:
            return GalleryView(
                gr.Gallery(value=[], visible=False), f"No test image of {what} ({label})."
            )
        items = [
            (insight.gallery_image(m), f"{m.true}→{m.predicted} {m.confidence:.0%}") for m in found
        ]
        if len(found) < count:
            shown = f"the {len(found)} most confident below"
        else:
            shown = "it is below" if count == 1 else "all below"
        # A lone image keeps the grid's tile size (not the whole width) and its caption.
        gallery = gr.Gallery(
            value=items, visible=True, columns=8, object_fit="contain", preview=False
        )
        return GalleryView(
            gallery, f"{count_of(count, 'test image')} of {what} ({label}); {shown}."
        )

    def select_cell(self, evt: gr.SelectData) -> CellView:
        """A click on the confusion table -> the pair's dropdowns and gallery."""
        row, column = evt.index
        true = str(row)
        read = ANY if column == 0 else str(column - 1)
        return CellView(true, read, *self.gallery(true, read))

    def history_view(self) -> HistoryView:
        """The runs table, their test-accuracy and loss curves overlaid, and the picker of a
        run's downloads; before any run, charts that say what will appear there."""
        runs = self.job.history.runs()
        rows = [
            {
                "run": run.run_id,
                "model": run.model,
                # what it trained, of what it was asked: "2.37 of 20" for a stopped run
                "epochs": f"{round(run.epochs_done, 2):g} of {asked:g}",
                "batch": run.config.get("batch_size"),
                "lr": run.config.get("lr"),
                "best test %": round(run.best_test_accuracy, 2),
                "train s": round(run.train_seconds, 1),
                "device": run.device,
                "state": run.state,
                "finished": run.finished_at[:16].replace("T", " "),
            }
            for run in reversed(runs)
            for asked in [run.config.get("epochs", run.epochs)]
        ]
        empty = "Each run you train adds its line here, finished or stopped."
        accuracy = charts.line_spec(
            charts.history_frame(runs),
            "test_accuracy",
            title="Test accuracy (%) against epochs, every run",
            y_title="test accuracy (%)",
            color="run",
            empty=empty,
        )
        loss = charts.line_spec(
            charts.history_loss_frame(runs),
            "loss",
            title="Training loss (log scale) against epochs",
            y_title="loss",
            log_y=True,
            color="run",
            empty=empty,
        )
        picks = [
            (
                f"#{run.run_id} {run.model}, {round(run.epochs_done, 2):g} epoch"
                + "s" * (round(run.epochs_done, 2) != 1)
                + f", {run.final_test_accuracy:.2f}% test",
                run.run_id,
            )
            for run in reversed(runs)
        ]
        return HistoryView(
            # no table at all before a run: an empty one shows made-up headers
            history_table=gr.Dataframe(
                value=pd.DataFrame(rows) if rows else None, visible=bool(rows)
            ),
            history_plot=vega(accuracy),
            history_loss_plot=vega(loss),
            # no value: a run picked before (its downloads shown) stays picked
            run_pick=gr.Dropdown(choices=picks, visible=bool(picks)),
        )

    def run_downloads(self, run_id: Any) -> RunDownloads:
        """The picked run's checkpoint, metrics CSV and figure: those still on disk (a run
        stays downloadable after Reset and restarts, as long as its files are kept)."""
        run = next((r for r in self.job.history.runs() if r.run_id == run_id), None)
        found = (
            {} if run is None else RunFiles.of(self.job.runs_dir, run.run_id, run.model).existing()
        )
        return RunDownloads(
            *(gr.DownloadButton(value=found.get(name), visible=name in found) for name in RUN_FILES)
        )

    # --- why this answer, and the sparkline (Draw tab) ----------------------------------------

    def explain(self, image28: np.ndarray | None, tuned: Predictor | None) -> ExplainView:
        """Saliency overlay and the feature maps of each conv stage, by the current weights."""
        return self.explain_with((tuned or self.predictor).current(), image28)

    @staticmethod
    def explain_with(weights: Weights, image28: np.ndarray | None) -> ExplainView:
        """Why `weights` answer what they do for a drawing; the caption names the version."""
        if image28 is None:
            return ExplainView(None, None, None, "")
        image = np.asarray(image28, dtype=np.float32)
        explanation = weights.explain(image)
        first, second = explanation.feature_maps[:2]
        version = explanation.version
        caption = (
            f"Red-yellow: the ink that pushed the answer **{explanation.label}** most "
            f"(SmoothGrad × input). Below: the {len(first)} maps of the first conv stage and "
            f"the {len(second)} of the second, brighter = stronger response. "
            f"Weights v{version.number}: {version.label}."
        )
        return ExplainView(
            saliency=insight.heat_overlay(image, explanation.saliency),
            maps1=_tiles(first),
            maps2=_tiles(second),
            why_caption=caption,
        )

    def track(self, prediction: Prediction, spark: list | None) -> TrackView:
        """Add the re-scored drawing to its sparkline: P(its current answer) over training."""
        step = self.job.latest_step()
        if prediction.probabilities is None or step is None:
            return skip_all(TrackView)
        x = round(epoch_position(step), 3)
        points = [*(spark or []), (x, [float(p) for p in prediction.probabilities])][-SPARK_POINTS:]
        digit = prediction.label
        frame = pd.DataFrame(
            {"epoch": [p[0] for p in points], "probability": [p[1][digit] for p in points]}
        )
        plot = gr.LinePlot(
            value=frame,
            visible=len(points) > 1,
            title=f"P(this drawing is {a_digit(digit)}) as the network trains",
        )
        return TrackView(spark=points, spark_plot=plot)

    # --- teach it (Draw tab, per visitor) -------------------------------------------------------

    @staticmethod
    def _examples(personal: teach.PersonalSet) -> list:
        images, labels = personal.arrays()
        return [
            ((255 * image).round().astype(np.uint8), f"#{i + 1}: {a_digit(label)}")
            for i, (image, label) in enumerate(zip(images, labels, strict=True))
        ]

    def add_example(self, image28: Any, choice: Any, personal: teach.PersonalSet) -> ExamplesView:
        """Store the current drawing with the visitor's label in their own set."""
        if self.settings.teaching == "off":
            return ExamplesView(personal, gr.skip(), "Teaching is turned off on this server.")
        label = _digit_or_none(choice)
        if label is None:
            return ExamplesView(personal, gr.skip(), "Pick the digit this drawing really is.")
        try:
            message = personal.add(None if image28 is None else np.asarray(image28), label)
        except ValueError as err:
            return ExamplesView(personal, gr.skip(), f"⚠️ {err}")
        return ExamplesView(personal, self._examples(personal), message)

    def clear_examples(self, personal: teach.PersonalSet) -> ExamplesView:
        return ExamplesView(teach.PersonalSet(), [], personal.clear())

    def fine_tune(self, personal: teach.PersonalSet, token: str | None = None) -> FineTuneView:
        """Fine-tune a private copy of the shared weights on MNIST + this visitor's drawings.

        In shared mode the result replaces everyone's Draw model, but only for a visitor who
        may train (the access token when training is token-protected).
        """
        if self.settings.teaching == "off":
            return FineTuneView(gr.skip(), gr.skip(), "Teaching is turned off on this server.")
        if len(personal) == 0:
            return FineTuneView(
                gr.skip(), gr.skip(), "Add at least one drawing with its label first."
            )
        try:
            # a visitor's request like a reading: a CPU training run gives way while it runs
            with self.fine_tunes.turn(), self.job.in_flight.serving():
                return self._fine_tune(personal, token)
        except Busy:
            busy = "Other visitors' fine-tunes are running; try again in a minute."
            return FineTuneView(gr.skip(), gr.skip(), busy)

    def _fine_tune(self, personal: teach.PersonalSet, token: str | None) -> FineTuneView:
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
            return FineTuneView(gr.skip(), gr.skip(), f"⚠️ {err}")
        tuned = Predictor(
            Checkpoint(result.model_name, result.state_dict),
            f"your fine-tuned copy of {version.label}",
            threads=1,
        )
        message = result.summary()
        if self.settings.teaching == "shared" and not self.settings.may_share(token):
            message += (
                " Only you see this model: replacing everyone's needs the access token (Train tab)."
            )
        elif self.settings.teaching == "shared":
            self.predictor.set_weights(
                result.model_name, result.state_dict, "the shared model, fine-tuned by a visitor"
            )
            tuned, message = None, message + " Shared mode: everyone now uses these weights."
        else:
            message += " Only you see this model; **Use the shared model** switches back."
        return FineTuneView(tuned, self._comparison(result), message)

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
    def use_shared() -> SharedModelView:
        return SharedModelView(None, "Back on the shared model.")


# --- layout: each part where its tab puts it ------------------------------------------------


def build_per_digit(c: Components) -> None:
    """The Train tab's "Per digit" accordion (wired in wire_per_digit)."""
    with gr.Accordion(
        "Per digit: what it gets wrong", open=False, elem_id="per-digit"
    ) as c.per_digit:
        c.class_caption = gr.Markdown(elem_id="class-caption")
        c.per_class = gr.BarPlot(
            x="digit",
            y="accuracy",
            sort="x",
            title="Test accuracy per digit (%)",
            height=200,
            elem_id="per-class",
            show_label=False,
        )
        c.confusion = gr.Dataframe(
            headers=CONFUSION_COLUMNS,
            interactive=False,
            label="Confusion matrix: click a cell to see those test images",
            column_widths=["7.5%"] + ["9.25%"] * 10,
            elem_id="confusion",
        )
        with gr.Row():
            c.true_pick = gr.Dropdown(
                DIGIT_CHOICES, value=ANY, label="True digit", elem_id="true-pick"
            )
            c.read_pick = gr.Dropdown(
                DIGIT_CHOICES, value=ANY, label="Read as", elem_id="read-pick"
            )
        c.gallery_caption = gr.Markdown(elem_id="gallery-caption")
        c.misreads = gr.Gallery(
            columns=8,
            height="auto",
            visible=False,
            label="Misread test digits",
            show_label=False,
            elem_id="misreads",
        )


def build_compare(c: Components) -> None:
    """The Train tab's "Compare runs" accordion: curves of every run, the table, downloads."""
    with gr.Accordion("Compare runs", open=False, elem_id="compare") as c.compare:
        with gr.Row():
            # Vega-Lite (charts.line_spec): any run length, a log loss axis, readable ticks
            c.history_plot = gr.Plot(elem_id="history-plot", show_label=False)
            c.history_loss_plot = gr.Plot(elem_id="history-loss-plot", show_label=False)
        c.history_table = gr.Dataframe(
            interactive=False, label="Runs, newest first", elem_id="history-table", visible=False
        )
        with gr.Row(equal_height=False):
            c.run_pick = gr.Dropdown(
                label="Download a run's files", elem_id="run-pick", visible=False, scale=3
            )
            c.run_checkpoint = gr.DownloadButton(
                "Checkpoint", visible=False, elem_id="run-checkpoint", size="sm"
            )
            c.run_csv = gr.DownloadButton(
                "Metrics (CSV)", visible=False, elem_id="run-csv", size="sm"
            )
            c.run_figure = gr.DownloadButton(
                "Figure (PNG)", visible=False, elem_id="run-figure", size="sm"
            )


def build_teach(c: Components) -> None:
    """The Draw tab's "Teach it your handwriting" accordion."""
    with gr.Accordion("Teach it your handwriting", open=False, elem_id="teach"):
        gr.Markdown(
            "Misread? Say which digit it is and add it to your drawings, then "
            "fine-tune: a private copy of the model trains a few seconds on "
            "MNIST plus your drawings. Other visitors never see them."
        )
        with gr.Row(equal_height=True):
            c.teach_label = gr.Dropdown(
                [str(d) for d in range(10)],
                value=None,
                label="This drawing is a…",
                elem_id="teach-label",
            )
            c.teach_add = gr.Button("Add to my drawings", elem_id="teach-add")
        c.my_drawings = gr.Gallery(
            columns=8,
            height=130,
            allow_preview=False,
            label="My drawings",
            elem_id="my-drawings",
        )
        with gr.Row():
            c.teach_tune = gr.Button(
                "Fine-tune on MNIST + my drawings",
                variant="primary",
                elem_id="teach-tune",
            )
            c.teach_shared = gr.Button("Use the shared model", elem_id="teach-shared")
            c.teach_clear = gr.Button("Clear my drawings", elem_id="teach-clear")
        c.teach_message = gr.Markdown(elem_id="teach-message")
        c.comparison = gr.Dataframe(
            interactive=False, label="Before / after", elem_id="teach-table"
        )


def wire_train_parts(c: Components, explorer: Explorer) -> None:
    """The per-digit view's and the comparison's own events."""
    c.per_digit.expand(
        explorer.open_per_digit, [c.true_pick, c.read_pick], outputs(PerDigitView, c), **PRIVATE
    )
    c.confusion.select(explorer.select_cell, None, outputs(CellView, c), **PRIVATE)
    for pick in (c.true_pick, c.read_pick):
        pick.input(explorer.gallery, [c.true_pick, c.read_pick], outputs(GalleryView, c), **PRIVATE)
    c.compare.expand(explorer.history_view, None, outputs(HistoryView, c), **PRIVATE)
    c.run_pick.input(explorer.run_downloads, c.run_pick, outputs(RunDownloads, c), **PRIVATE)


def wire_teach(c: Components, explorer: Explorer, redraw: Callable[[Any], Any]) -> None:
    """Teaching's events; `redraw(event)` chains the Draw tab's re-reading of the drawing."""
    c.teach_add.click(
        explorer.add_example,
        [c.image28, c.teach_label, c.personal],
        outputs(ExamplesView, c),
        **PRIVATE,
    )
    c.teach_clear.click(explorer.clear_examples, c.personal, outputs(ExamplesView, c), **PRIVATE)
    tune = c.teach_tune.click(  # one fine-tune at a time, two wait: Explorer.fine_tunes
        explorer.fine_tune,
        [c.personal, c.token],  # the Train tab's token: shared teaching needs training rights
        outputs(FineTuneView, c),
        concurrency_limit=FINE_TUNE_WORKERS,
        concurrency_id="fine-tune",
        api_visibility="private",
    )
    shared = c.teach_shared.click(explorer.use_shared, None, outputs(SharedModelView, c), **PRIVATE)
    for event in (tune, shared):
        redraw(event)
