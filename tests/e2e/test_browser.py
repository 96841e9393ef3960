"""A person's session in headless Chromium: draw digits, then train and watch, in two tabs."""

from __future__ import annotations

import json
import statistics
import time

import pytest
from pages import (
    COUNT_FRAMES_JS,
    COUNT_STREAMS_JS,
    DESKTOP,
    FRAMES_IN_JS,
    LABEL_JS,
    PHONE,
    POLLS_JS,
    SET_HIDDEN_JS,
    clear,
    draw,
    last_round_trip,
    open_app,
    watch_round_trips,
    widths,
)
from support import TRAINING_ARGS, launch

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def no_run_left_behind(live_app):
    """Each test starts with no run going, even after one that failed mid-run."""
    yield
    live_app.dashboard.job.stop()
    assert live_app.dashboard.job.wait(30), "the run did not stop"


def test_drawn_digits_are_recognised(live_app, browser, screenshots):
    page = open_app(browser, live_app.url)
    page.get_by_role("tab", name="Draw").click()
    watch_round_trips(page)
    in_page, from_python = [], []
    for digit in ["1", "0", "7", "1", "1", "1"]:
        clear(page)
        recorded = page.evaluate("window.__roundTrips.length")
        pen_up = draw(page, digit)
        try:
            page.wait_for_function(f"{LABEL_JS} === '{digit}'", timeout=15_000)
        except Exception:
            page.screenshot(path=screenshots / f"failed-{digit}.png", full_page=True)
            said = page.evaluate(LABEL_JS)
            raise AssertionError(f"drew {digit}, the app says {said!r}") from None
        if digit == "1":  # one stroke: the time from pen-up to label is the round trip
            from_python.append(time.perf_counter() - pen_up)
            trip = last_round_trip(page, recorded)
            assert trip["label"] == "1" and 0 < trip["dom_ms"] <= trip["frame_ms"], trip
            in_page.append(trip["frame_ms"] / 1000)
    assert page.locator("#seen img").count() == 1, "the 28x28 view is shown"
    assert "Answered by" in page.locator("#answered").inner_text()
    page.wait_for_selector("#saliency img", timeout=15_000)  # the explanation follows
    page.screenshot(path=screenshots / "draw.png", full_page=True)
    (screenshots / "draw_latency.json").write_text(
        json.dumps(
            {
                "round_trip_seconds": in_page,  # pen-up event -> label painted, in the page
                "median": statistics.median(in_page),
                "from_python_seconds": from_python,  # plus the harness's CDP round trips
                "from_python_median": statistics.median(from_python),
            }
        )
    )


def test_an_idle_tab_draws_no_animation_frames(live_app, browser):
    """Gradio's status trackers leave animation loops running (60-120 frames a second,
    ~0.09 of a core in headless Chromium per idle tab); ui/idle_frames.py stops the hidden
    ones. Measured here after the first second (Gradio animates the page it mounts): 235-255
    frames in 2 s without it, 4-8 with it (a poll's hidden trackers ask for one each)."""
    context = browser.new_context(viewport=DESKTOP)
    context.add_init_script(COUNT_FRAMES_JS)  # runs before the app's page script
    page = open_app(context, live_app.url)
    page.wait_for_function("document.querySelector('#status')?.innerText.trim().length > 0")
    page.evaluate(FRAMES_IN_JS, 1000)  # the first second: mounting's own animation
    frames = page.evaluate(FRAMES_IN_JS, 2000)
    context.close()
    assert frames <= 20, f"{frames} animation frames in 2 s on an idle page"


def test_training_is_live_in_every_tab(live_app, browser, screenshots):
    page = open_app(browser, live_app.url)
    page.locator("#start").click()
    page.wait_for_function(
        "document.querySelector('#status').innerText.includes('img/s')", timeout=60_000
    )
    assert "Running" in page.locator("#status").inner_text()
    first = page.locator("#status").inner_text()
    page.wait_for_function(
        f"document.querySelector('#status').innerText !== {json.dumps(first)}", timeout=10_000
    )
    page.wait_for_selector("#loss-plot svg.marks", timeout=15_000)  # the first chart drawn
    polls = page.evaluate(POLLS_JS)  # a live run: the page has switched to its stream
    now = page.locator("#status").inner_text()
    page.wait_for_function(
        f"document.querySelector('#status').innerText !== {json.dumps(now)}", timeout=10_000
    )
    assert page.evaluate(POLLS_JS) == polls, "the live view came by polling, not by its stream"

    other = browser.new_context().new_page()  # a second visitor, opened mid-run
    other.set_viewport_size(DESKTOP)
    other.goto(live_app.url)
    other.wait_for_function(
        "document.querySelector('#status') && "
        "document.querySelector('#status').innerText.includes('Running')",
        timeout=30_000,
    )
    run = live_app.dashboard.job.snapshot().run_id
    assert f"run {run}" in other.locator("#status").inner_text()
    other.locator("#start").click()  # a second Start only explains itself
    other.wait_for_function(
        "document.querySelector('#message').innerText.includes('already')", timeout=10_000
    )
    charts = ("#loss-plot svg", "#acc-plot svg", "#speed-plot svg")
    page.wait_for_function(  # each chart drawn at least once (the page polls them)
        f"{json.dumps(charts)}.every((s) => document.querySelector(s))", timeout=15_000
    )
    for chart, width in widths(page, charts).items():  # text stays text-sized
        assert 0 < width <= 500, f"{chart} is {width}px wide"
    page.screenshot(path=screenshots / "train.png", full_page=True)

    page.locator("#stop").click()
    page.wait_for_function(
        "document.querySelector('#status').innerText.includes('Stopped')", timeout=30_000
    )
    other.wait_for_function(
        "document.querySelector('#status').innerText.includes('Stopped')", timeout=30_000
    )
    assert live_app.dashboard.job.snapshot().run_id == run, "exactly one job ran"


def test_a_hidden_tab_closes_its_stream_and_opens_a_new_one_when_shown(live_app, browser):
    """During a run a shown tab streams; in the background it holds no stream and polls at
    the idle pace; shown again, it streams again (a new stream, starting with everything)."""
    context = browser.new_context(viewport=DESKTOP)
    context.add_init_script(COUNT_STREAMS_JS)
    page = open_app(context, live_app.url)
    message = live_app.dashboard.train.start("fast", **{**TRAINING_ARGS, "epochs": 3})
    assert message.endswith("started."), message
    page.wait_for_function("window.__streams === 1", timeout=30_000)
    polls = page.evaluate(POLLS_JS)
    page.evaluate(SET_HIDDEN_JS, True)
    page.wait_for_function(f"({POLLS_JS}) > {polls}", timeout=10_000)
    page.evaluate(SET_HIDDEN_JS, False)
    page.wait_for_function("window.__streams === 2", timeout=10_000)
    context.close()


def test_a_tab_without_a_stream_polls(tmp_path, browser):
    """With no live stream to be had (MNIST_DEMO_LIVE_STREAMS=0 here; all in use, or a proxy
    that refuses them, on a Space) the page polls Gradio's server function and still follows
    the run."""
    app = launch(tmp_path, live_streams=0)
    try:
        page = open_app(browser, app.url)
        message = app.dashboard.train.start("fast", **{**TRAINING_ARGS, "epochs": 0.25})
        assert message.endswith("started."), message
        page.wait_for_function(
            "document.querySelector('#status').innerText.includes('img/s')", timeout=60_000
        )
        page.wait_for_selector("#speed-plot svg.marks", timeout=15_000)
        polls = page.evaluate(POLLS_JS)
        page.wait_for_function(f"({POLLS_JS}) > {polls}", timeout=10_000)  # it goes on polling
    finally:
        app.close()


def test_a_finished_run_shows_the_tutorials_figure_and_its_downloads(live_app, browser):
    page = open_app(browser, live_app.url)
    message = live_app.dashboard.train.start("fast", **{**TRAINING_ARGS, "epochs": 0.25})
    assert message.endswith("started."), message
    page.wait_for_function(
        "document.querySelector('#status').innerText.includes('Finished')", timeout=60_000
    )
    # The job's PNG, served from the runs folder and loaded by the page.
    page.wait_for_function(
        "(document.querySelector('#tutorial-figure img') || {}).naturalWidth > 0",
        timeout=15_000,
    )
    for button in ("#download", "#csv-download", "#png-download"):
        page.locator(button).wait_for(state="visible", timeout=15_000)


def test_layout_fits_a_phone(live_app, browser, screenshots):
    page = open_app(browser, live_app.url, viewport=PHONE)
    page.wait_for_function(
        "/Idle|Stopped|Finished/.test(document.querySelector('#status').innerText)",
        timeout=30_000,
    )
    for tab in ("Train", "Draw"):
        page.get_by_role("tab", name=tab).click()
        if tab == "Draw":
            page.wait_for_selector("#drawpad canvas", timeout=10_000)
            box = page.locator("#drawpad canvas").bounding_box()
            assert box["width"] >= 250, "the canvas stays big enough to draw on with a thumb"
        if tab == "Train":  # one chart per line, not four postage stamps
            page.wait_for_selector("#loss-plot svg", timeout=30_000)
            for chart in ("#loss-plot", "#acc-plot", "#speed-plot"):
                width = page.locator(chart).bounding_box()["width"]
                assert width >= 300, f"{chart} is {width:.0f}px wide on a phone"
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"] + 1, f"{tab} tab scrolls sideways on a phone ({width}px)"
        page.screenshot(path=screenshots / f"phone-{tab.lower()}.png", full_page=True)
