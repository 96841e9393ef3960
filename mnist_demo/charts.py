"""Metric records -> chart data: rows and frames, the live charts as SVG, Vega-Lite specs for
the charts that change once per run (Compare runs), and the tutorial's twin-axis figure.

Pure functions: no torch, no Gradio. The loss needs a log axis, which Gradio's native plots
lack: the live charts, redrawn twice a second, are SVG drawn here (svgchart.py says why not
Vega for them); Compare runs is Vega-Lite (plain dicts) that the browser draws. The twin-axis
figure needs matplotlib and is drawn once per epoch at most.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from .records import Record, StepRecord, epoch_position, epochs_done, is_kind, of_kind
from .svgchart import SeriesStyle, line_chart

if TYPE_CHECKING:
    from .history import RunSummary

MAX_POINTS = 400  # per series: a smooth curve that still redraws in a few ms at 2 Hz
# The tutorial figure's blue loss and red accuracy; test accuracy is dashed, as in the
# tutorial, and purple so that it also differs by colour (red/green would not, for many).
LOSS_COLOR, TRAIN_COLOR, TEST_COLOR = "#1f77b4", "#d62728", "#7b3294"
TRAIN = "train"
TRAIN_LOSS = "train loss"
TEST_ALL = "test: all 10,000"  # the full test set, at each epoch's end (and untrained)
# At least this many epoch records: the figure plots one point per epoch, like the tutorial's;
# shorter runs plot what was measured during the epochs.
PER_EPOCH_FROM = 4


def sample_label(images: int) -> str:
    """The in-epoch test series' name: says it is a sample, and of how many images."""
    return f"test: {images:,}-image sample"


def downsample(rows: Sequence[Any], max_points: int = MAX_POINTS) -> list[Any]:
    """Every k-th row (always keeping the last) so long runs stay cheap to draw."""
    if len(rows) <= max_points:
        return list(rows)
    stride = -(-len(rows) // max_points)
    picked = list(rows[::stride])
    if picked[-1] is not rows[-1]:
        picked.append(rows[-1])
    return picked


def _steps(records: Sequence[Record]) -> list[StepRecord]:
    return downsample(of_kind(records, "step"))


def _x(record: Any) -> float:
    """A record's place on the epoch axis, rounded for small payloads."""
    return round(epoch_position(record) if is_kind(record, "step") else epochs_done(record), 4)


def _full_tests(records: Sequence[Record]) -> list[Any]:
    return [
        r for r in records if is_kind(r, "epoch") or (is_kind(r, "start") and "test_accuracy" in r)
    ]


def loss_rows(records: Sequence[Record]) -> list[dict[str, Any]]:
    """The training loss per logged step (plain cross-entropy, for a log axis).

    Rows (plain dicts) are what the live charts send; building the same data as a pandas
    frame and reading it back cost ~1 ms a chart, most of a poll's chart work.
    """
    return [{"epoch": _x(r), "loss": r["loss"], "series": TRAIN_LOSS} for r in _steps(records)]


def accuracy_rows(records: Sequence[Record]) -> list[dict[str, Any]]:
    """Train accuracy per logged step; test accuracy on the sample during the epochs and on
    all 10,000 images at each epoch's end (two series, named as such), in percent."""
    rows = [
        {"epoch": _x(r), "accuracy": round(r["train_accuracy"], 2), "series": TRAIN}
        for r in _steps(records)
    ]
    rows += [
        {"epoch": _x(r), "accuracy": r["test_accuracy"], "series": sample_label(r["images"])}
        for r in downsample(of_kind(records, "probe"))
    ]
    rows += [
        {"epoch": _x(r), "accuracy": r["test_accuracy"], "series": TEST_ALL}
        for r in _full_tests(records)
    ]
    return rows


def speed_rows(records: Sequence[Record]) -> list[dict[str, Any]]:
    """Training throughput in images per second per logged step (one series, "images/s")."""
    return [
        {"epoch": _x(r), "images/s": round(r["samples_per_second"]), "series": "images/s"}
        for r in _steps(records)
    ]


def loss_frame(records: Sequence[Record]) -> pd.DataFrame:
    """loss_rows as a frame."""
    return pd.DataFrame(loss_rows(records), columns=["epoch", "loss", "series"])


def accuracy_frame(records: Sequence[Record]) -> pd.DataFrame:
    """accuracy_rows as a frame."""
    return pd.DataFrame(accuracy_rows(records), columns=["epoch", "accuracy", "series"])


def epoch_frames(epochs: Sequence[Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Loss and accuracy frames of a run known only by its epoch records (a checkpoint's
    history): one point per epoch, as the tutorial plots them."""
    loss = pd.DataFrame(
        [{"epoch": _x(r), "loss": r["train_loss"], "series": TRAIN_LOSS} for r in epochs],
        columns=["epoch", "loss", "series"],
    )
    acc = pd.DataFrame(
        [
            {"epoch": _x(r), "accuracy": r[key], "series": series}
            for r in epochs
            for key, series in (("train_accuracy", TRAIN), ("test_accuracy", TEST_ALL))
        ],
        columns=["epoch", "accuracy", "series"],
    )
    return loss, acc


# --- Vega-Lite specs for the browser -----------------------------------------------------------


def series_style(series: str) -> SeriesStyle:
    """How every chart draws a series: train red and solid, test purple and dashed, the full
    test as dots only (never joined: nothing was measured between two of them), the rest blue."""
    if series == TRAIN:
        return SeriesStyle(TRAIN_COLOR)
    if series.startswith("test"):
        return SeriesStyle(TEST_COLOR, dashed=True, dots_only=series == TEST_ALL)
    return SeriesStyle(LOSS_COLOR)


def line_spec(
    frame: pd.DataFrame,
    y: str,
    *,
    title: str,
    y_title: str,
    subtitle: str = "",
    log_y: bool = False,
    color: str = "series",
    height: int = 220,
    empty: str = "",
) -> dict[str, Any]:
    """A Vega-Lite chart of `frame` against epochs (Compare runs): one line per `color` value;
    a test series dashed; the full test as dots only (a line between two full tests was never
    measured).

    `empty` is the chart's text while there is no data, so a chart is never a blank box.
    The browser compiles the whole spec on every update, so the spec holds no expressions:
    dashes come from a scale and each layer carries its own rows, not a filter.
    """
    values = frame.dropna(subset=[y]).to_dict("records")
    series = list(dict.fromkeys(row[color] for row in values))
    palette = color == "series"
    scale: dict[str, Any] = (
        {"domain": series, "range": [series_style(s).color for s in series]} if palette else {}
    )
    encoding: dict[str, Any] = {
        "x": {
            "field": "epoch",
            "type": "quantitative",
            "title": "epoch",
            "scale": {"zero": True, "nice": False},
            "axis": {"format": "~g", "tickMinStep": 0.05},
        },
        "y": {
            "field": y,
            "type": "quantitative",
            "title": y_title,
            "scale": {"type": "log"} if log_y else {"zero": False},
            "axis": {"format": "~g" if log_y else ".4~r"},
        },
    }
    encoding["tooltip"] = [
        {"field": color, "type": "nominal"},
        {"field": "epoch", "type": "quantitative", "format": ".3~f"},
        {"field": y, "type": "quantitative", "format": ".4~g"},
    ]
    lines = [row for row in values if not series_style(row[color]).dots_only]
    dots = [row for row in values if series_style(row[color]).dots_only]
    line_series = list(dict.fromkeys(row[color] for row in lines))
    dashes = {
        "field": color,
        "type": "nominal",
        "scale": {
            "domain": line_series,
            "range": [[6, 3] if series_style(s).dashed else [1, 0] for s in line_series],
        },
        "legend": None,
    }
    layers: list[dict[str, Any]] = [
        {
            "data": {"values": lines},
            "mark": {
                "type": "line",
                "point": {"filled": True, "strokeOpacity": 0} if len(values) < 40 else False,
                "clip": True,
            },
            "encoding": {**encoding, "strokeDash": dashes if palette else {"value": [1, 0]}},
        }
    ]
    if dots:
        layers.append(
            {
                "data": {"values": dots},
                "mark": {"type": "point", "filled": True, "size": 70, "strokeOpacity": 0},
                "encoding": encoding,
            }
        )
    if not values:
        layers = [
            {
                "data": {"values": [{}]},
                "mark": {"type": "text", "fontSize": 13, "fill": "#6b7280", "stroke": None},
                "encoding": {"text": {"value": empty or "No data yet."}},
            }
        ]
    # The colour is shared by the layers, at the top: Gradio's line charts recolour each
    # layer's own colour scale with the theme's palette, and the series' colours mean something.
    legend = {"orient": "bottom", "labelLimit": 260, "title": None}
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        # SVG, not vega-embed's default canvas: titles, ticks and legends are text in the page
        # (screen readers and the browser tests read them)
        "usermeta": {"embedOptions": {"renderer": "svg"}},
        "title": {"text": title, "subtitle": subtitle, "anchor": "start", "fontSize": 13},
        "height": height,
        "encoding": {"color": {"field": color, "type": "nominal", "scale": scale, "legend": legend}}
        if values
        else {},
        "layer": layers,
    }


def line_svg(data: pd.DataFrame | Sequence[dict[str, Any]], y: str, **options: Any) -> str:
    """line_spec's chart as an SVG string (svgchart.py says why the live charts use it)."""
    rows = data.to_dict("records") if isinstance(data, pd.DataFrame) else data
    names = dict.fromkeys(row[options.get("color", "series")] for row in rows)
    return line_chart(rows, y, {name: series_style(name) for name in names}, **options)


def probability_bars_html(probabilities: Sequence[float] | None) -> str:
    """Ten horizontal bars as plain HTML: a browser lays them out in well under a millisecond,
    where a plot component takes tens on the drawing's critical path."""
    probs = [float(p) for p in probabilities] if probabilities is not None else [0.0] * 10
    top = max(range(10), key=probs.__getitem__) if probabilities is not None else None
    rows = "".join(
        f'<div class="prob-row{" top" if d == top else ""}"><span>{d}</span>'
        f'<span class="prob-bar"><i style="width:{100 * p:.1f}%"></i></span>'
        f"<span>{100 * p:.1f}%</span></div>"
        for d, p in enumerate(probs)
    )
    return f'<div class="prob-bars" role="list" aria-label="All ten probabilities">{rows}</div>'


def _in_run_style(series: str) -> tuple[str, dict[str, Any]]:
    """How the figure draws an accuracy series of a run within its epochs: train solid, the
    full test as dots (never joined: nothing was measured between them), the sample dashed."""
    label = f"test accuracy ({series[6:]})"
    if series == TRAIN:
        return "-", dict(color=TRAIN_COLOR, lw=1, label="train accuracy")
    if series == TEST_ALL:
        return "o", dict(color=TEST_COLOR, ms=6, label=label)
    return "--.", dict(color=TEST_COLOR, lw=1.2, label=label)


def use_agg_backend() -> None:
    """Draw off-screen (Agg): a server has no display.

    The app calls this at start-up too: Gradio 6.31 asks matplotlib for its backend around
    every event, in the server's event loop, and while the backend was unresolved the first
    event imported pyplot there (0.6-0.8 s in which no request on the server was served).
    """
    import matplotlib

    matplotlib.use("Agg")


def prepare_figure() -> None:
    """Import what the first figure needs now (~0.5 s), e.g. in a training process before
    its run, not at its first epoch's end."""
    use_agg_backend()
    import matplotlib.figure  # noqa: F401
    import matplotlib.ticker  # noqa: F401


def tutorial_figure(records: Sequence[Record]):
    """The tutorial's twin-axis figure: training loss (log, left), accuracies (right).

    A run of PER_EPOCH_FROM epochs or more is drawn per epoch, like the tutorial's (mean train
    loss, train and test accuracy after each epoch); a shorter run is drawn from what was
    measured during it (loss and train accuracy per logged step, the sample's test accuracy),
    with the full test's result as dots. Train solid, test dashed.
    """
    use_agg_backend()
    from matplotlib.figure import Figure
    from matplotlib.ticker import LogFormatterSciNotation

    epochs = of_kind(records, "epoch")
    steps = of_kind(records, "step")
    fig = Figure(figsize=(5.6, 3.4), dpi=100, layout="constrained")
    ax1 = fig.add_subplot()
    ax2 = ax1.twinx()
    if len(epochs) >= PER_EPOCH_FROM or not steps:
        x = [epochs_done(r) for r in epochs]
        marker = "" if len(x) >= PER_EPOCH_FROM else "o"
        ax1.plot(
            x, [r["train_loss"] for r in epochs], "-" + marker, color=LOSS_COLOR, label="train loss"
        )
        ax2.plot(
            x,
            [r["train_accuracy"] for r in epochs],
            "-" + marker,
            color=TRAIN_COLOR,
            label="train accuracy",
        )
        ax2.plot(
            x,
            [r["test_accuracy"] for r in epochs],
            "--" + marker,
            color=TEST_COLOR,
            label="test accuracy",
        )
        if len(x) > 1:
            ax1.set_xlim(x[0], x[-1])
        title = "Loss and accuracy per epoch"
    else:
        loss, acc = loss_frame(records), accuracy_frame(records)
        ax1.plot(loss["epoch"], loss["loss"], "-", color=LOSS_COLOR, lw=1, label="train loss")
        for series, rows in acc.groupby("series", sort=False):
            fmt, style = _in_run_style(series)
            ax2.plot(rows["epoch"], rows["accuracy"], fmt, **style)
        ax1.set_xlim(0, max(_x(steps[-1]), 1e-3))
        title = "Loss and accuracy during training"
    ax1.set_xlabel("Epoch")
    ax1.set_ylabel("Loss", color=LOSS_COLOR)
    ax1.tick_params(axis="y", labelcolor=LOSS_COLOR)
    ax1.set_yscale("log")

    # loss values as numbers (0.2, 0.1, 0.05), not 2x10^-1: what the live chart shows;
    # matplotlib still picks which ticks get a label
    class PlainLog(LogFormatterSciNotation):
        def __call__(self, x: float, pos: int | None = None) -> str:
            return f"{x:g}" if super().__call__(x, pos) else ""

    ax1.yaxis.set_major_formatter(PlainLog())
    ax1.yaxis.set_minor_formatter(PlainLog(labelOnlyBase=False))
    ax2.set_ylabel("Accuracy (%)", color=TRAIN_COLOR)
    ax2.tick_params(axis="y", labelcolor=TRAIN_COLOR)
    fig.suptitle(title, fontsize="medium")
    handles = len(ax1.get_lines()) + len(ax2.get_lines())
    fig.legend(
        loc="outside lower center", ncols=3 if handles == 3 else 2, fontsize="small", frameon=False
    )
    return fig


def _run_labels(runs: Sequence[RunSummary]) -> list[str]:
    """Legend names: run ids restart at 1 when the app restarts, so a label already taken
    gets the run's finishing time appended and each run keeps its own line and colour."""
    labels: list[str] = []
    for run in runs:
        base = run.label
        label = f"{base} ({run.finished_at[11:16]})" if base in labels else base  # HH:MM
        copy = 2
        while label in labels:
            label, copy = f"{base} ({copy})", copy + 1
        labels.append(label)
    return labels


def history_frame(runs: Sequence[RunSummary]) -> pd.DataFrame:
    """Test accuracy against epochs of several runs, long format, for one overlaid chart:
    the in-epoch sample's curve where the run has one, else its per-epoch full tests."""
    rows: list[dict[str, Any]] = []
    for run, label in zip(runs, _run_labels(runs), strict=True):
        curve = run.test_curve or [
            [epochs_done(p), p["test_accuracy"]]
            for p in run.epochs_curve
            if "epoch" in p and "test_accuracy" in p
        ]
        rows += [{"epoch": x, "test_accuracy": acc, "run": label} for x, acc in curve]
    return pd.DataFrame(rows, columns=["epoch", "test_accuracy", "run"])


def history_loss_frame(runs: Sequence[RunSummary]) -> pd.DataFrame:
    """Training loss against epochs of several runs (per logged step, or per epoch)."""
    rows: list[dict[str, Any]] = []
    for run, label in zip(runs, _run_labels(runs), strict=True):
        curve = run.loss_curve or [
            [epochs_done(p), p["train_loss"]] for p in run.epochs_curve if "train_loss" in p
        ]
        rows += [{"epoch": x, "loss": loss, "run": label} for x, loss in curve]
    return pd.DataFrame(rows, columns=["epoch", "loss", "run"])


def figure_png(records: Sequence[Record]) -> bytes:
    """The tutorial figure as PNG bytes (for a download; the caller writes them atomically)."""
    fig = tutorial_figure(records)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png")
    finally:
        fig.clear()  # a bare Figure is not tracked by pyplot; clearing frees its artists now
    return buffer.getvalue()
