"""A person's session in headless Chromium: draw digits, then train and watch, in two tabs."""

from __future__ import annotations

import json
import statistics
import time

import pytest
from support import STROKES

pytestmark = pytest.mark.e2e

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
STROKE_SCALE = 80  # px per stroke unit: the digit spans ~150 px of the 280 px canvas


def _open(browser, url: str, viewport=DESKTOP):
    page = browser.new_page(viewport=viewport)
    page.goto(url)
    page.wait_for_selector("#start", timeout=60_000)
    return page


def _canvas_centre(page) -> tuple[float, float]:
    box = page.locator("#drawpad canvas").bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def _draw(page, digit: str) -> float:
    """Draw the digit's strokes; return the time of the last pen-up (perf_counter)."""
    cx, cy = _canvas_centre(page)
    pen_up = 0.0
    for stroke in STROKES[digit]:
        points = [(cx + x * STROKE_SCALE, cy + y * STROKE_SCALE) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
            for t in (0.25, 0.5, 0.75, 1.0):
                page.mouse.move(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t)
        pen_up = time.perf_counter()
        page.mouse.up()
    return pen_up


LABEL_JS = "((document.querySelector('#label .output-class') || {}).innerText || '').trim()"


def _clear(page) -> None:
    page.locator("#drawpad .clear").click()
    page.wait_for_function(f"!/[0-9]/.test({LABEL_JS})", timeout=10_000)


def test_drawn_digits_are_recognised(live_app, browser, screenshots):
    page = _open(browser, live_app.url)
    page.get_by_role("tab", name="Draw").click()
    latencies = []
    for digit in ["1", "0", "7", "1", "1", "1"]:
        _clear(page)
        pen_up = _draw(page, digit)
        try:
            page.wait_for_function(f"{LABEL_JS} === '{digit}'", timeout=15_000)
        except Exception:
            page.screenshot(path=screenshots / f"failed-{digit}.png", full_page=True)
            said = page.evaluate(LABEL_JS)
            raise AssertionError(f"drew {digit}, the app says {said!r}") from None
        if digit == "1":  # one stroke: the time from pen-up to label is the round trip
            latencies.append(time.perf_counter() - pen_up)
    assert page.locator("#seen img").count() == 1, "the 28x28 view is shown"
    assert "Answered by" in page.locator("#answered").inner_text()
    page.screenshot(path=screenshots / "draw.png", full_page=True)
    (screenshots / "draw_latency.json").write_text(
        json.dumps({"round_trip_seconds": latencies, "median": statistics.median(latencies)})
    )


def test_training_is_live_in_every_tab(live_app, browser, screenshots):
    page = _open(browser, live_app.url)
    page.locator("#start").click()
    page.wait_for_function(
        "document.querySelector('#status').innerText.includes('img/s')", timeout=60_000
    )
    assert "Running" in page.locator("#status").inner_text()
    first = page.locator("#status").inner_text()
    page.wait_for_function(
        f"document.querySelector('#status').innerText !== {json.dumps(first)}", timeout=10_000
    )
    page.wait_for_selector("#loss-plot canvas, #loss-plot svg", timeout=15_000)

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
    page.screenshot(path=screenshots / "train.png", full_page=True)

    page.locator("#stop").click()
    page.wait_for_function(
        "document.querySelector('#status').innerText.includes('Stopped')", timeout=30_000
    )
    other.wait_for_function(
        "document.querySelector('#status').innerText.includes('Stopped')", timeout=30_000
    )
    assert live_app.dashboard.job.snapshot().run_id == run, "exactly one job ran"


def test_layout_fits_a_phone(live_app, browser, screenshots):
    page = _open(browser, live_app.url, viewport=PHONE)
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
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"] + 1, f"{tab} tab scrolls sideways on a phone ({width}px)"
        page.screenshot(path=screenshots / f"phone-{tab.lower()}.png", full_page=True)
