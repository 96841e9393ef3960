"""What every tab of the app shares: poll rates, the look, and outputs by name.

A handler returns a NamedTuple whose fields are its outputs; the layout keeps its components
as attributes of one namespace with the same names, and `outputs(View, c)` lists them in the
View's order. Adding an output is a new field and a component of that name, nothing else.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, NamedTuple

import gradio as gr

from ..job import ACTIVE
from ..training import ConfigError

# Seconds between dashboard polls: live vs. waiting. Live, 0.45 s keeps the status line at
# ~2.1 redraws/s (target >= 2) and costs the training that shares the cores with a Chromium
# tab less than 0.3 s did: 5,232-5,621 vs 4,359-4,894 images/s, click to 99% 14.4-15.0 vs
# 15.9-17.4 s (bench/dashboard_overhead.py --tabs 1, interleaved, idle 2-core machine).
ACTIVE_TICK, IDLE_TICK = 0.45, 2.0
# The Train tab's per-epoch and per-run views (figure, downloads) and the Draw tab's re-scoring
# follow Gradio events that the page starts when the live view's answer says they moved
# (`watch` in TrainTab.poll, ui/live.py), not a timer: a 1-s gr.Timer cost a watching headless
# Chromium ~0.025 of a core, a third of all it spent (BENCHMARKS.md, eleventh session).
WATCH_BUTTON = "watch-now"  # elem_id of the hidden button the page clicks
DRAW_TICK = 1.0  # seconds between re-scoring the drawing with live weights
ACTIVE_STATES = frozenset(state.value for state in ACTIVE)  # as snapshots spell them
PNG = "png"  # the Draw tab's images: 3x faster to encode than Gradio's default WebP
# Starting the explanation's event costs the browser ~30 ms of bookkeeping: let the label
# paint first.
AFTER_PAINT_JS = "() => new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)))"
PRIVATE = dict(api_visibility="private", show_progress="hidden")  # UI events, not the API

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
/* The live charts and the figure: side by side while each gets 300 px, else one per line. */
.chart-row { display: flex; gap: var(--layout-gap); flex-wrap: wrap !important; }
.chart-row > * { flex: 1 1 300px !important; min-width: min(300px, 100%) !important; }
/* Small galleries: tiles keep their size (Gradio stretches a lone image to the full width,
   cropping it and hiding its caption). */
#misreads .grid-container, #my-drawings .grid-container {
  grid-template-columns: repeat(auto-fill, minmax(72px, 96px)) !important;
  grid-auto-rows: auto !important; }
#misreads .thumbnail-item, #my-drawings .thumbnail-item { aspect-ratio: 1; height: auto; }
#misreads .grid-wrap { height: auto !important; max-height: none !important; }
.stale img { opacity: 0.3; transition: opacity 0.2s; }  /* an explanation being replaced */
/* Phone: the answer beside its ten bars, right under the pad, all in the first screen. */
@media (max-width: 640px) {
  #answer-column { flex-direction: row !important; flex-wrap: wrap; align-items: flex-start; }
  #answer-column > #label { flex: 0 0 30%; min-width: 0 !important; }
  #answer-column > #label .confidence-set { display: none; }
  #answer-column > #probs { flex: 1 1 60%; min-width: 0 !important; }
  #answer-column > #probs .prob-bars { padding-top: 4px; gap: 1px; }
  #answer-column > :not(#label):not(#probs) { flex: 1 1 100%; }
  /* 11 columns in ~300 px: 4-digit counts fit at 10 px with no cell padding */
  #confusion .body-cell, #confusion .header-cell { padding: 2px 0 !important;
    font-size: 10px !important; letter-spacing: -0.3px; }
  #confusion .cell-wrap { padding: 0 !important; justify-content: center; }
  /* Train tab: buttons, then the status line and the charts, then the settings. */
  #train-controls, #train-views { display: contents; }
  #train-row { flex-direction: column; }
  #train-controls > * { order: 3; }
  #train-controls > #train-buttons { order: 1; }
  #train-views > * { order: 2; }
  #train-views > #per-digit, #train-views > #compare { order: 4; }
}
.compact-buttons button { min-width: 0; }
"""
THEME = gr.themes.Soft(primary_hue="orange", secondary_hue="blue")


class Components(SimpleNamespace):
    """Every component of the app by name: tabs add theirs, and read the ones they share."""


def outputs(view: type[NamedTuple], c: Components) -> list[Any]:
    """The components named by `view`'s fields, in its order: a handler's outputs."""
    return [getattr(c, name) for name in view._fields]


def skip_all(view: type[NamedTuple]) -> Any:
    """A `view` that changes nothing (each output skipped)."""
    return view(*(gr.skip() for _ in view._fields))


def or_none(frame):
    """An empty frame leaves Gradio 6.31's native plot unable to draw later updates."""
    return frame if len(frame) else None


def as_int(value: Any, name: str) -> int:
    number = as_float(value, name)
    if not math.isfinite(number) or number != int(number):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    return int(number)


def as_float(value: Any, name: str) -> float:
    if value is None or isinstance(value, bool):
        raise ConfigError(f"{name} is missing")
    try:
        return float(value)
    except (TypeError, ValueError):  # API callers can send any JSON: "abc", [1], {}
        raise ConfigError(f"{name} must be a number, got {value!r:.40}") from None
