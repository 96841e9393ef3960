"""Assemble the app: the handlers of each tab and the API, and the Blocks that show them.

Each tab builds itself (`train.build`, `draw.build`, `api.build`); what they share is made
here and passed in `c`: the per-visitor States, the draw timer, the hidden button that the live
view clicks, and the hidden view keys.
"""

from __future__ import annotations

import gradio as gr

from ..job import TrainingJob
from ..predict import Predictor
from ..settings import AppSettings
from ..teach import PersonalSet
from . import api, draw, explore, train
from .common import DRAW_TICK, WATCH_BUTTON, Components


class Dashboard:
    """Every handler of the app, per tab, bound to one job, one predictor and the settings."""

    def __init__(self, job: TrainingJob, predictor: Predictor, settings: AppSettings) -> None:
        self.job, self.predictor, self.settings = job, predictor, settings
        self.explorer = explore.Explorer(job, predictor, settings)
        self.train = train.TrainTab(job, predictor, settings, self.explorer)
        self.draw = draw.DrawTab(job, predictor, self.explorer, settings)
        self.api = api.Api(job, predictor)


def build_app(dashboard: Dashboard) -> gr.Blocks:
    """Lay out both tabs and the API, and wire every event to the dashboard's handlers."""
    c = Components()
    with gr.Blocks(title="MNIST live: train it, draw for it") as demo:
        gr.Markdown(
            "# MNIST live\nTrain the classic tutorial CNN in seconds and watch it learn; "
            "then draw a digit and see what the network sees."
        )
        # Shared by both tabs: per-visitor state, the timer, the button, (below) the view keys.
        c.preset = gr.State("fast")
        c.seen_key = gr.State(None)
        c.image28 = gr.State(None)
        c.shown_version = gr.State(None)
        c.drawn_key = gr.State(None)  # which drawing the Draw tab's views show (drawing_key)
        c.personal = gr.State(PersonalSet())  # deep-copied: every visitor gets their own set
        # this visitor's fine-tuned Predictor (~2 MB): dropped 30 min after its last change
        c.tuned = gr.State(None, time_to_live=1800)
        c.spark = gr.State([])
        # clicked by the live view's script when per-epoch or per-run views moved (live.py)
        c.watch_now = gr.Button(visible="hidden", elem_id=WATCH_BUTTON)
        c.draw_timer = gr.Timer(DRAW_TICK, active=False)  # woken by the poll while weights move
        with gr.Tabs():
            train.build(c, dashboard.train, dashboard.settings)
            draw.build(c, dashboard.draw, dashboard.explorer)
        # Hidden keys, not States: the browser fires a component's change event whatever
        # brought the new value, a State's only after a queued event.
        c.epoch_key = gr.Textbox(visible=False, elem_id="epoch-key")
        c.job_key = gr.Textbox(visible=False, elem_id="job-key")
        train.wire_poll(c, demo, dashboard.train)
        draw.wire_model_choice(c, dashboard.draw)
        explore.wire_train_parts(c, dashboard.explorer)
        api.build(c, dashboard.api)
    return demo
