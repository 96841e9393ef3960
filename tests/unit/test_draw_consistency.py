"""Every view of the Draw tab shows one drawing read by one weights version (issue 17).

Two races this guards against, seen in the browser: the explanation kept describing the
shipped network after a run had replaced it (it was recomputed only on pen-up), and after a
fast two-stroke 4 it kept showing the first stroke and "answer 6" (answer and explanation were
two events, and the first drawing's explanation could land after the second's).
"""

from __future__ import annotations

import base64
import io

import gradio as gr
import numpy as np
import pytest
from PIL import Image, ImageDraw

from mnist_demo import checkpoints
from mnist_demo.job import TrainingJob
from mnist_demo.predict import Predictor
from mnist_demo.settings import AppSettings
from mnist_demo.ui import Dashboard
from mnist_demo.ui.draw import BLANK_UPLOAD, NOT_A_DIGIT, drawing_key

SIDE = 280
FOUR_FIRST = [(90, 40), (60, 170), (200, 170)]  # the first stroke of a 4: the open angle
FOUR_SECOND = [(160, 90), (160, 250)]  # the upright


def pad_url(*strokes, width: int = 20) -> str:
    """A drawing as the pad sends it: black strokes on white, a PNG data URL."""
    im = Image.new("L", (SIDE, SIDE), 255)
    draw = ImageDraw.Draw(im)
    for stroke in strokes:
        draw.line(stroke, fill=0, width=width, joint="curve")
    buffer = io.BytesIO()
    im.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture
def dashboard(tmp_path):
    shipped = checkpoints.load(checkpoints.shipped("tutorial"))
    predictor = Predictor(shipped, "shipped tutorial checkpoint", threads=1)
    job = TrainingJob(predictor, runs_dir=tmp_path / "runs")
    yield Dashboard(job, predictor, AppSettings(runs_dir=tmp_path / "runs"))
    job.stop()
    assert job.wait(60)


def image(update):
    """An image output's value: views send images as updates (the value, and a CSS class)."""
    return update["value"] if isinstance(update, dict) else update


def answer_of(view) -> str:
    return max(view.label, key=view.label.get)


def assert_one_reading(view, version: int) -> None:
    """Answer, note and explanation agree on the answer and name the same weights version."""
    assert view.shown_version == version
    assert f"weights v{version})" in view.answered
    assert f"Weights v{version}:" in view.why_caption
    assert f"answer **{answer_of(view)}**" in view.why_caption
    assert image(view.saliency) is not None and image(view.maps1) is not None
    assert view.saliency.get("elem_classes") == [], "not marked as being replaced"


def test_the_explanation_follows_new_weights_with_the_answer(dashboard):
    url = pad_url([(140, 40), (140, 240)])
    first = dashboard.draw.read_drawing(url)
    assert_one_reading(first, 1)
    assert "the 16 maps" in first.why_caption  # the tutorial network

    improved = checkpoints.load(checkpoints.shipped("improved"))  # as a finished run publishes
    dashboard.predictor.set_weights("improved", improved.state_dict, "training run 1 (final)")
    followed = dashboard.draw.follow_live_weights(
        url, None, first.image28, first.shown_version, drawn_key=first.drawn_key
    )

    assert_one_reading(followed, 2)
    assert "the 32 maps" in followed.why_caption and "training run 1 (final)" in followed.answered
    assert not np.array_equal(image(followed.maps1), image(first.maps1))


def test_a_fast_second_stroke_gets_its_own_answer_and_explanation(dashboard):
    one_stroke, two_strokes = pad_url(FOUR_FIRST), pad_url(FOUR_FIRST, FOUR_SECOND)

    first = dashboard.draw.read_drawing(one_stroke)
    second = dashboard.draw.read_drawing(two_strokes)

    assert_one_reading(first, 1)
    assert_one_reading(second, 1)
    assert second.drawn_key == drawing_key(two_strokes) != first.drawn_key
    assert not np.array_equal(image(second.saliency), image(first.saliency)), "the 2nd drawing"


def test_the_answer_comes_first_and_its_explanation_in_the_same_event(dashboard):
    steps = list(dashboard.draw.stream_drawing(pad_url(FOUR_FIRST, FOUR_SECOND)))

    assert len(steps) == 2
    answer, explained = steps
    assert answer.label and answer.saliency == {"__type__": "update", "elem_classes": ["stale"]}
    assert "Explaining the answer **4** of weights v1" in answer.why_caption
    assert explained.label == answer.label and explained.shown_version == answer.shown_version
    assert_one_reading(dashboard.draw.read_drawing(pad_url(FOUR_FIRST, FOUR_SECOND)), 1)


def test_a_late_re_scoring_of_an_older_drawing_changes_nothing(dashboard):
    one_stroke, two_strokes = pad_url(FOUR_FIRST), pad_url(FOUR_FIRST, FOUR_SECOND)
    first = dashboard.draw.read_drawing(one_stroke)
    name, state, _ = dashboard.predictor.weights()
    dashboard.predictor.set_weights(name, state, "training run 1, epoch 0.12")

    # The timer fired after the second stroke reached the pad, before its views came back:
    # the views (and the state it was sent) still belong to the first stroke.
    late = dashboard.draw.follow_live_weights(
        two_strokes, None, first.image28, first.shown_version, drawn_key=first.drawn_key
    )

    views = late._replace(draw_timer=gr.skip())
    assert all(view == gr.skip() for view in views), "the second stroke's own event decides"


def test_clear_empties_every_view_and_the_upload(dashboard):
    cleared = dashboard.draw.read_drawing("")

    assert cleared.upload is None and cleared.image28 is None and cleared.label == {}
    assert cleared.saliency is None and cleared.why_caption == ""


def test_uploads_that_hold_no_digit_say_so_without_folders(dashboard, tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), "white").save(blank)
    broken = tmp_path / "photo.png"
    broken.write_bytes(b"not really a png")

    assert dashboard.draw.read_upload(str(blank)).answered == BLANK_UPLOAD
    message = dashboard.draw.read_upload(str(broken)).answered
    assert "photo.png" in message and str(tmp_path) not in message


def test_a_dash_keeps_its_answer_with_the_not_a_digit_hint(dashboard):
    dash = dashboard.draw.read_drawing(pad_url([(40, 140), (240, 150)]))
    four = dashboard.draw.read_drawing(pad_url(FOUR_FIRST, FOUR_SECOND))

    assert dash.label and dash.answered.startswith(NOT_A_DIGIT)
    assert answer_of(four) == "4" and NOT_A_DIGIT not in four.answered
