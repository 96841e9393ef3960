"""Assemble the app: settings -> predictor (last good weights) -> job -> Gradio Blocks."""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.utils import get_upload_folder
from starlette.middleware import Middleware

from . import charts, draw_model, guards
from .job import TrainingJob
from .predict import Predictor
from .settings import AppSettings
from .ui import CSS, THEME, Dashboard, build_app
from .ui.idle_frames import PageScript
from .ui.live import LiveStream

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


# Every queued event has a concurrency limit: with None, 40 large images decoded at once took
# 11.5 GB. 4 per event keeps both cores busy with short requests; the pixel budget (limits.py)
# bounds what those few may decode together.
EVENT_CONCURRENCY = 4
# Uploads and outputs Gradio copies into its cache: checked every 10 minutes, deleted after an
# hour (and all at shutdown). A visitor's page re-fetches nothing older than its last update.
DELETE_CACHE = (600, 3600)


def bound(demo: gr.Blocks, settings: AppSettings) -> None:
    """Caps on what Gradio does with requests, applied to the built app before it is queued.

    Every event gets a concurrency limit, every number input a readable type check, and the
    cache a deletion schedule. The body-size middleware and session cap are in launch_kwargs.
    """
    for fn in demo.fns.values():
        if fn.concurrency_limit is None:
            fn.concurrency_limit = EVENT_CONCURRENCY
    for block in demo.blocks.values():
        if isinstance(block, (gr.Number, gr.Slider)) and block.interactive is not False:
            guards.strict_number(block, block.label or "a number")
    demo.delete_cache = DELETE_CACHE


def create(settings: AppSettings) -> tuple[gr.Blocks, Dashboard]:
    for name, value in QUIET_GRADIO_ANALYTICS.items():
        os.environ.setdefault(name, value)  # read when the queue is made, below
    charts.use_agg_backend()  # before any event: Gradio asks for it in the event loop
    remove_stale_temp_files(settings.runs_dir)
    predictor = last_good_predictor(settings.runs_dir)
    job = TrainingJob(
        predictor,
        runs_dir=settings.runs_dir,
        limits=settings.limits,
        process=settings.training_process,
    )
    dashboard = Dashboard(job, predictor, settings)
    log.debug("warm-up drawing read as %s", dashboard.draw.warm_up())
    if settings.training != "off":
        job.warm_up()
    demo = build_app(dashboard)
    bound(demo, settings)
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=EVENT_CONCURRENCY)
    guards.SessionSweeper(demo, idle=settings.session_idle_seconds).start()
    return demo, dashboard


def freeze_start_up() -> None:
    """Keep what the server process built at start-up out of the garbage collector's scans.

    It lives as long as the server; scanned, one full collection held every thread (and so
    every request) 215-256 ms (BENCHMARKS.md, thirteenth session). Garbage is collected
    first, so none is kept for good. For the server's own process only: an app built in a
    process that goes on (a test session) would keep whatever it later drops.
    """
    gc.collect()
    gc.freeze()


def launch_kwargs(settings: AppSettings, dashboard: Dashboard) -> dict[str, Any]:
    """Options every launch uses: looks, upload and body caps, sessions kept, no monitoring,
    the page script that stops hidden status trackers drawing frames (ui/idle_frames.py) and
    the Train tab's live stream (ui/live.py).

    The runs folder may be outside the working directory (a Space's persistent /data): its
    checkpoints, exports and figures are served from there.
    """
    app = guards.app_kwargs(settings, get_upload_folder())
    app["middleware"].append(Middleware(PageScript))
    stream = Middleware(LiveStream, poll=dashboard.train.poll, max_streams=settings.live_streams)
    app["middleware"].append(stream)
    return dict(
        allowed_paths=[str(settings.runs_dir)],
        theme=THEME,
        css=CSS,
        max_file_size=settings.max_file_size,
        app_kwargs=app,
        state_session_capacity=settings.max_sessions,
        enable_monitoring=False,
        footer_links=["api"],
    )
