"""The Draw tab in the browser: one consistent answer, the answer in view on a phone, the
not-a-digit hint, and undo (issue 17). Screenshots land in artifacts/screenshots."""

from __future__ import annotations

import re

import pytest
from pages import DESKTOP, LABEL_JS, PHONE, clear, draw, open_app
from support import TRAINING_ARGS

pytestmark = pytest.mark.e2e

# The weights version the answer names ("(weights v3)") and the one the explanation names
# ("Weights v3:"), and the answer the explanation explains ("answer **7**").
VERSIONS_JS = """() => {
  const answered = document.querySelector('#answered').innerText;
  const why = document.querySelector('#why-caption').innerText;
  const a = answered.match(/weights v(\\d+)\\)/), w = why.match(/Weights v(\\d+):/);
  const explained = why.match(/answer (\\d)/);
  const label = ((document.querySelector('#label .output-class') || {}).innerText || '').trim();
  return {answer: a && +a[1], why: w && +w[1], explained: explained && explained[1], label,
          answered, caption: why};
}"""
CONSISTENT_JS = f"""() => {{ const v = ({VERSIONS_JS})();
  return v.answer !== null && v.answer === v.why && v.explained === v.label; }}"""


# Every view follows a new answer in the same event: ~1 s on an idle machine is the target
# (timed in benchmarks, not here); this bound only says "it does follow", on 2 cores that the
# browser shares with the server and a training run.
FOLLOW_MS = 10_000


def versions(page) -> dict:
    return page.evaluate(VERSIONS_JS)


def open_draw(browser, url, viewport=DESKTOP):
    page = open_app(browser, url, viewport=viewport)
    page.get_by_role("tab", name="Draw").click()
    page.wait_for_selector("#drawpad canvas")
    return page


def test_a_fast_two_stroke_digit_gets_one_consistent_answer(live_app, browser, screenshots):
    page = open_draw(browser, live_app.url)
    for attempt in range(4):
        clear(page)
        draw(page, "4")  # the second stroke starts right after the first pen-up
        page.wait_for_function(f"{LABEL_JS} === '4'", timeout=15_000)
        page.wait_for_function(CONSISTENT_JS, timeout=FOLLOW_MS)
        seen = versions(page)
        assert seen["explained"] == "4", (attempt, seen)
    page.screenshot(path=screenshots / "draw-two-strokes.png", full_page=True)


def test_on_a_phone_the_answer_is_in_view_right_after_drawing(live_app, browser, screenshots):
    page = open_draw(browser, live_app.url, viewport=PHONE)
    draw(page, "7")
    page.wait_for_function(f"{LABEL_JS} === '7'", timeout=15_000)
    assert page.evaluate("window.scrollY") == 0, "drawing must not scroll the page"
    for selector in ("#drawpad canvas", "#label", "#probs"):
        box = page.locator(selector).bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], (selector, box)
    page.screenshot(path=screenshots / "phone-draw-answer.png")  # the viewport, as seen


def test_a_scribble_keeps_its_answer_with_a_hint(live_app, browser, screenshots):
    page = open_draw(browser, live_app.url)
    clear(page)
    draw(page, "scribble")
    page.wait_for_function(
        "document.querySelector('#answered').innerText.includes(\"doesn't look much like\")",
        timeout=15_000,
    )
    assert re.fullmatch(r"[0-9]", page.evaluate(LABEL_JS)), "the answer stays visible"
    page.wait_for_function(CONSISTENT_JS, timeout=5_000)
    page.screenshot(path=screenshots / "draw-scribble.png", full_page=True)


def test_undo_takes_back_the_last_stroke(live_app, browser, screenshots):
    page = open_draw(browser, live_app.url)
    clear(page)
    draw(page, "1")
    page.wait_for_function(f"{LABEL_JS} === '1'", timeout=15_000)
    draw(page, "scribble")  # a slip of the pen over the 1
    page.wait_for_function(f"{LABEL_JS} !== '1'", timeout=15_000)
    page.keyboard.press("Control+z")
    page.wait_for_function(f"{LABEL_JS} === '1'", timeout=15_000)
    page.wait_for_function(CONSISTENT_JS, timeout=FOLLOW_MS)
    page.locator("#drawpad .undo").click()  # the button takes back the 1 itself
    page.wait_for_function(f"!/[0-9]/.test({LABEL_JS})", timeout=10_000)
    page.screenshot(path=screenshots / "draw-undo.png", full_page=True)


def test_the_explanation_follows_live_and_final_weights(live_app, browser, screenshots):
    page = open_draw(browser, live_app.url)
    clear(page)
    draw(page, "7")
    page.wait_for_function(CONSISTENT_JS, timeout=15_000)
    before = versions(page)
    assert "the 32 maps" in before["caption"]  # the shipped improved network answers first

    # Training runs the tutorial network (16 and 32 maps): each published version must reach
    # every view, and the finished run's final weights too.
    started = live_app.dashboard.train.start(preset="fast", **{**TRAINING_ARGS, "epochs": 0.25})
    assert started.startswith("Run"), started
    page.wait_for_function(
        f"() => {{ const v = ({VERSIONS_JS})(); return v.answer > {before['answer']}; }}",
        timeout=60_000,
    )
    page.wait_for_function(CONSISTENT_JS, timeout=FOLLOW_MS)
    live = versions(page)
    assert "the 16 maps" in live["caption"] and "training run" in live["answered"], live
    page.screenshot(path=screenshots / "draw-live-weights.png", full_page=True)

    assert live_app.dashboard.job.wait(120), "the quarter-epoch run finishes"
    final = live_app.dashboard.predictor.version.number
    page.wait_for_function(
        f"() => {{ const v = ({VERSIONS_JS})(); return v.answer === {final}; }}", timeout=5_000
    )
    page.wait_for_function(CONSISTENT_JS, timeout=FOLLOW_MS)
    done = versions(page)
    assert "the 16 maps" in done["caption"], done
    assert "epoch 0.25 (final)" in done["answered"], "the epochs it saw, not 'epoch 1'"
    page.screenshot(path=screenshots / "draw-after-run.png", full_page=True)
