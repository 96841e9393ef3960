"""Assemble the app: settings -> predictor (last good weights) -> job -> Gradio Blocks."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import gradio as gr

from . import draw_model
from .job import TrainingJob
from .predict import Predictor
from .settings import AppSettings
from .ui import CSS, THEME, Dashboard, build_app

log = logging.getLogger(__name__)


def remove_stale_temp_files(runs_dir: Path) -> None:
    """Delete half-written files (checkpoints, exports, history) a killed save left behind."""
    for tmp in runs_dir.glob(".*.tmp") if runs_dir.is_dir() else []:
        try:
            tmp.unlink()
            log.info("removed stale temporary file %s", tmp.name)
        except OSError as err:
            log.warning("could not remove %s: %s", tmp.name, err)


def last_good_predictor(runs_dir: Path) -> Predictor:
    """A Predictor over the weights `draw_model.choose` picks (shared with the CLI)."""
    weights = draw_model.choose(runs_dir)
    return Predictor(weights.checkpoint, weights.label, threads=1, source=weights.source)


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
    log.debug("warm-up drawing read as %s", dashboard.draw.warm_up())
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
