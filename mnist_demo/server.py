"""Assemble the app: settings -> predictor (last good weights) -> job -> Gradio Blocks."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gradio as gr

from . import checkpoints
from .job import TrainingJob
from .predict import Predictor
from .settings import AppSettings
from .ui import CSS, THEME, Dashboard, build_app

log = logging.getLogger(__name__)


def last_good_predictor(runs_dir: Path) -> Predictor:
    """The newest loadable run in `runs_dir`, else the shipped tutorial checkpoint.

    A file that fails to load (say, a crash mid-write left junk) is skipped with a warning:
    the app always starts, and never with broken weights.
    """
    candidates = (
        sorted(runs_dir.glob("run-*.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
        if runs_dir.is_dir()
        else []
    )
    for path in candidates:
        try:
            return Predictor(checkpoints.load(path), f"saved run {path.stem}", threads=1)
        except checkpoints.CheckpointError as err:
            log.warning("skipping unusable checkpoint: %s", err)
    return Predictor(
        checkpoints.load(checkpoints.shipped("tutorial")), "shipped tutorial checkpoint", threads=1
    )


def create(settings: AppSettings) -> tuple[gr.Blocks, Dashboard]:
    predictor = last_good_predictor(settings.runs_dir)
    job = TrainingJob(predictor, runs_dir=settings.runs_dir, limits=settings.limits)
    dashboard = Dashboard(job, predictor, settings)
    demo = build_app(dashboard)
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=4)
    return demo, dashboard


def launch_kwargs(settings: AppSettings) -> dict[str, Any]:
    """Options every launch uses: looks, upload cap, no monitoring dashboard."""
    return dict(
        theme=THEME,
        css=CSS,
        max_file_size=settings.max_file_size,
        enable_monitoring=False,
        footer_links=["api"],
    )
