"""Metric records -> long-format frames for live plots, and the tutorial's twin-axis figure.

Pure functions: no torch, no Gradio. Live charts are Gradio native plots fed with small frames
(downsampled); the twin-axis figure needs matplotlib and is drawn once per epoch at most.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from .records import EpochRecord, Record, StartRecord, StepRecord, epoch_position, is_kind, of_kind

if TYPE_CHECKING:
    from .history import RunSummary

MAX_POINTS = 400  # per series: a smooth curve that still redraws in a few ms at 2 Hz
LOSS_COLOR, ACC_COLOR = "#1f77b4", "#d62728"  # the tutorial figure's blue loss, red accuracy


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


def _epoch_position(record: StepRecord) -> float:
    return round(epoch_position(record), 3)


def _epochs_done(record: EpochRecord | StartRecord | dict[str, Any]) -> float:
    """Where a test result sits on the epoch axis: 1.5 after half of a second epoch, 0 for
    the untrained weights (a start record's)."""
    if is_kind(record, "start"):  # run-history points carry no kind
        return 0.0
    return record.get("epochs_done", record["epoch"])


def loss_frame(records: Sequence[Record]) -> pd.DataFrame:
    """log10 of the training loss per logged step (the tutorial plots loss on a log axis)."""
    rows = [
        {"epoch": _epoch_position(r), "log10 loss": round(math.log10(max(r["loss"], 1e-6)), 3)}
        for r in _steps(records)
    ]
    return pd.DataFrame(rows, columns=["epoch", "log10 loss"])


def accuracy_frame(records: Sequence[Record]) -> pd.DataFrame:
    """Train accuracy (running, per logged step) and test accuracy (per epoch), in percent."""
    rows = [
        {"epoch": _epoch_position(r), "accuracy": round(r["train_accuracy"], 2), "series": "train"}
        for r in _steps(records)
    ]
    tests = [
        {"epoch": float(_epochs_done(r)), "accuracy": r["test_accuracy"], "series": "test"}
        for r in records
        if is_kind(r, "epoch") or (is_kind(r, "start") and "test_accuracy" in r)
    ]
    # Gradio 6.31's plot takes its series from the first data it draws: a series that first
    # appears later gets no line or legend. So nothing is drawn before the first step, and a
    # test point without a value (not drawn) names the test series until there is one.
    if not rows:
        tests = []
    elif not tests:
        tests = [{"epoch": rows[0]["epoch"], "accuracy": None, "series": "test"}]
    return pd.DataFrame(rows + tests, columns=["epoch", "accuracy", "series"])


def speed_frame(records: Sequence[Record]) -> pd.DataFrame:
    """Training throughput in images per second per logged step."""
    rows = [
        {"epoch": _epoch_position(r), "images/s": round(r["samples_per_second"])}
        for r in _steps(records)
    ]
    return pd.DataFrame(rows, columns=["epoch", "images/s"])


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


def tutorial_figure(records: Sequence[Record]):
    """The tutorial's figure: mean train loss per epoch (log, left), accuracies (right)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    from matplotlib.figure import Figure

    epochs = of_kind(records, "epoch")
    x = [_epochs_done(r) for r in epochs]
    fig = Figure(figsize=(5, 3.2), dpi=100, layout="constrained")
    ax1 = fig.add_subplot()
    ax1.plot(x, [r["train_loss"] for r in epochs], "-o", color=LOSS_COLOR, label="train loss")
    ax1.set_xlabel("Epoch")
    ax1.set_ylabel("Loss", color=LOSS_COLOR)
    ax1.tick_params(axis="y", labelcolor=LOSS_COLOR)
    ax1.set_yscale("log")
    if len(x) > 1:
        ax1.set_xlim(x[0], x[-1])
    ax2 = ax1.twinx()
    ax2.plot(
        x, [r["train_accuracy"] for r in epochs], "-o", color=ACC_COLOR, label="train accuracy"
    )
    ax2.plot(x, [r["test_accuracy"] for r in epochs], "--o", color=ACC_COLOR, label="test accuracy")
    ax2.set_ylabel("Accuracy (%)", color=ACC_COLOR)
    ax2.tick_params(axis="y", labelcolor=ACC_COLOR)
    fig.suptitle("The tutorial's figure: loss and accuracy per epoch", fontsize="medium")
    fig.legend(loc="outside lower center", ncols=3, fontsize="small", frameon=False)
    return fig


def history_frame(runs: Sequence[RunSummary]) -> pd.DataFrame:
    """Test accuracy per epoch of several runs, long format, for one overlaid line chart.

    Run ids restart at 1 when the app restarts, so a label that is already taken gets the
    run's finishing time appended: each run keeps its own line and colour.
    """
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for run in runs:
        base = run.label
        label = f"{base} ({run.finished_at[11:16]})" if base in seen else base  # HH:MM
        copy = 2
        while label in seen:
            label, copy = f"{base} ({copy})", copy + 1
        seen.add(label)
        rows += [
            {"epoch": _epochs_done(point), "test_accuracy": point["test_accuracy"], "run": label}
            for point in run.epochs_curve
            if "epoch" in point and "test_accuracy" in point
        ]
    return pd.DataFrame(rows, columns=["epoch", "test_accuracy", "run"])


def figure_png(records: Sequence[Record]) -> bytes:
    """The tutorial figure as PNG bytes (for a download; the caller writes them atomically)."""
    fig = tutorial_figure(records)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png")
    finally:
        fig.clear()  # a bare Figure is not tracked by pyplot; clearing frees its artists now
    return buffer.getvalue()
