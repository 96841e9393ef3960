"""Assemble the app: settings -> predictor (last good weights) -> job -> Gradio Blocks."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import gradio as gr

from . import checkpoints
from .job import TrainingJob
from .predict import Predictor
from .settings import AppSettings
from .ui import CSS, THEME, Dashboard, build_app

log = logging.getLogger(__name__)


# The Draw tab's model before anyone trains: the improved CNN reads 99.2% of re-drawn MNIST
# test digits against the tutorial CNN's 98.9% (BENCHMARKS.md), at ~1 ms per prediction.
DRAW_MODEL = "improved"
GOOD_ACCURACY = 90.0  # percent: a diverged run (say lr 10, ~10%) is saved but never reloaded


def remove_stale_temp_files(runs_dir: Path) -> None:
    """Delete half-written files (checkpoints, exports, history) a killed save left behind."""
    for tmp in runs_dir.glob(".*.tmp") if runs_dir.is_dir() else []:
        try:
            tmp.unlink()
            log.info("removed stale temporary file %s", tmp.name)
        except OSError as err:
            log.warning("could not remove %s: %s", tmp.name, err)


def last_good_predictor(runs_dir: Path) -> Predictor:
    """The newest loadable run in `runs_dir` that tested >= 90%, else a shipped checkpoint.

    A file that fails to load (say, a crash mid-write left junk) is skipped with a warning:
    the app always starts, and never with broken weights.
    """
    for path in _newest_first(runs_dir.glob("run-*.pt") if runs_dir.is_dir() else []):
        try:
            checkpoint = checkpoints.load(path)
        except checkpoints.CheckpointError as err:
            log.warning("skipping unusable checkpoint %s: %s", path.name, err)
            continue
        accuracy = checkpoint.metadata.get("test_accuracy")
        if not isinstance(accuracy, (int, float)) or accuracy < GOOD_ACCURACY:
            log.warning(
                "skipping %s: test accuracy %s is below %s%%", path.name, accuracy, GOOD_ACCURACY
            )
            continue
        return Predictor(checkpoint, f"saved run {path.stem}", threads=1, source=path)
    shipped = checkpoints.shipped(DRAW_MODEL)
    return Predictor(
        checkpoints.load(shipped), f"shipped {DRAW_MODEL} checkpoint", threads=1, source=shipped
    )


def _newest_first(paths) -> list[Path]:
    """Paths by modification time, newest first; a dangling link or a vanished file is left out."""
    dated = []
    for path in paths:
        try:
            dated.append((path.stat().st_mtime, path))
        except OSError:
            log.warning("skipping unreadable checkpoint entry: %s", path)
    return [path for _, path in sorted(dated, reverse=True)]


# Gradio's queue keeps every event's timing for its monitoring dashboard (off here) and, after
# each event, rebuilds a pandas summary of up to 10,000 of them: ~25 ms of CPU per event on
# this 2-core machine, on every drawing, timer tick and API call. Nothing here reads it.
# Operators who turn monitoring on can still set these variables themselves.
QUIET_GRADIO_ANALYTICS = {
    "GRADIO_ANALYTICS_CACHE_FREQUENCY": str(10**9),  # events between summaries: never
    "GRADIO_ANALYTICS_MAX_EVENTS": "1000",  # timings kept (memory)
}


def create(settings: AppSettings) -> tuple[gr.Blocks, Dashboard]:
    for name, value in QUIET_GRADIO_ANALYTICS.items():
        os.environ.setdefault(name, value)  # read when the queue is made, below
    remove_stale_temp_files(settings.runs_dir)
    predictor = last_good_predictor(settings.runs_dir)
    job = TrainingJob(predictor, runs_dir=settings.runs_dir, limits=settings.limits)
    dashboard = Dashboard(job, predictor, settings)
    log.debug("warm-up drawing read as %s", dashboard.warm_up())
    demo = build_app(dashboard)
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=4)
    return demo, dashboard


def launch_kwargs(settings: AppSettings) -> dict[str, Any]:
    """Options every launch uses: looks, upload cap, no monitoring dashboard.

    The runs folder may be outside the working directory (a Space's persistent /data): its
    checkpoints, exports and figures are served from there.
    """
    return dict(
        allowed_paths=[str(settings.runs_dir)],
        theme=THEME,
        css=CSS,
        max_file_size=settings.max_file_size,
        enable_monitoring=False,
        footer_links=["api"],
    )
