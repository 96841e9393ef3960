"""Steps a visitor takes in the browser tests: open the app, draw a digit, clear the pad."""

from __future__ import annotations

import time

from support import STROKES

# Headless Chromium as the browser tests and bench/browser_profile.py start it.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
STROKE_SCALE = 80  # px per stroke unit: the digit spans ~150 px of the 280 px canvas


# Counts the animation frames the page is given (installed before the page's own scripts).
COUNT_FRAMES_JS = """(() => { const native = window.requestAnimationFrame.bind(window);
  window.__frames = 0; window.requestAnimationFrame = (callback) =>
    native((time) => { window.__frames += 1; callback(time); }); })();"""
FRAMES_IN_JS = """async (ms) => { const before = window.__frames;
  await new Promise((done) => setTimeout(done, ms)); return window.__frames - before; }"""


def open_app(browser, url: str, viewport=DESKTOP):
    """A new page on the app, once its Train tab is there (`browser` or a browser context).

    Its live view's status line (`#status`, in a gr.HTML) is waited for too: it can mount
    after the Start button, and a test reading it at once met null once in CI.
    """
    is_browser = hasattr(browser, "contexts")  # a context has its own viewport already
    page = browser.new_page(viewport=viewport) if is_browser else browser.new_page()
    page.goto(url)
    page.wait_for_selector("#start", timeout=60_000)
    page.wait_for_selector("#status", state="attached", timeout=60_000)
    return page


# Widths of elements measured in one script: a live chart's <svg> is replaced on every poll,
# so a box asked for in two steps (find, then measure) can belong to one already gone.
WIDTHS_JS = """(selectors) => selectors.map((s) => {
  const element = document.querySelector(s);
  return element ? element.getBoundingClientRect().width : null; })"""


# How many times the page has polled Gradio's server function (the live view's fallback).
POLLS_JS = """performance.getEntriesByType('resource')
  .filter((entry) => entry.name.includes('component_server')).length"""


# Counts the event streams the page opens (installed before the page's own scripts), and
# lets a test say the tab was hidden or shown again, as switching tabs does.
COUNT_STREAMS_JS = """(() => { const Native = window.EventSource; window.__streams = 0;
  window.EventSource = function (...args) { window.__streams += 1; return new Native(...args); };
  window.EventSource.prototype = Native.prototype; })();"""
SET_HIDDEN_JS = """(hidden) => { Object.defineProperty(document, 'hidden',
  {value: hidden, configurable: true}); document.dispatchEvent(new Event('visibilitychange')); }"""


def widths(page, selectors: list[str]) -> dict[str, float | None]:
    """Each selector's current width in px (None where nothing matches)."""
    return dict(zip(selectors, page.evaluate(WIDTHS_JS, selectors), strict=True))


def canvas_centre(page) -> tuple[float, float]:
    box = page.locator("#drawpad canvas").bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def draw(page, digit: str) -> float:
    """Draw the digit's strokes; return the time of the last pen-up (perf_counter)."""
    cx, cy = canvas_centre(page)
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

# Times (performance.now) at which each watched element's text changed, without the text of
# Gradio's progress tracker: window.__changes[key] for page.evaluate(WATCH_TEXT_JS, {key: css}).
WATCH_TEXT_JS = """(selectors) => { window.__changes = {};
  const text = (el) => { const copy = el.cloneNode(true);
    copy.querySelectorAll('[data-testid=status-tracker]').forEach((t) => t.remove());
    return copy.textContent; };
  for (const [key, selector] of Object.entries(selectors)) {
    const el = document.querySelector(selector); let last = text(el);
    window.__changes[key] = [];
    new MutationObserver(() => { const now = text(el); if (now !== last) {
      last = now; window.__changes[key].push(performance.now()); } })
    .observe(el, {subtree: true, childList: true, characterData: true}); } }"""


def change_rate(stamps: list[float]) -> float:
    """Changes per second between the first and the last of WATCH_TEXT_JS's times."""
    span = (stamps[-1] - stamps[0]) / 1000 if len(stamps) > 1 else 0.0
    return round((len(stamps) - 1) / span, 2) if span else 0.0


def clear(page) -> None:
    page.locator("#drawpad .clear").click()
    page.wait_for_function(f"!/[0-9]/.test({LABEL_JS})", timeout=10_000)


def draw_and_read(page, digit: str) -> None:
    """On a clear pad, draw the digit and wait until the app reads it as that digit."""
    clear(page)
    draw(page, digit)
    page.wait_for_function(f"{LABEL_JS} === '{digit}'", timeout=15_000)


# Pen-up -> label shown, timed inside the page: from the canvas's pointerup event to the first
# animation frame after the label's text became a digit (the frame that paints it). The test
# also times it from Python, which adds the harness's own CDP round trips (a few ms).
ROUND_TRIPS_JS = """() => {
  window.__roundTrips = []; let start = null;
  document.querySelector('#drawpad canvas')
    .addEventListener('pointerup', () => { start = performance.now(); }, true);
  const label = document.querySelector('#label');
  new MutationObserver(() => {
    const text = ((label.querySelector('.output-class') || {}).innerText || '').trim();
    if (start === null || !/^[0-9]$/.test(text)) return;
    const from = start, dom = performance.now(); start = null;
    requestAnimationFrame(() => window.__roundTrips.push(
      {label: text, dom_ms: dom - from, frame_ms: performance.now() - from}));
  }).observe(label, {subtree: true, childList: true, characterData: true});
}"""


def watch_round_trips(page) -> None:
    """Start timing every pen-up -> label in the page (see ROUND_TRIPS_JS)."""
    page.wait_for_selector("#label")  # on a loaded machine the tab may still be rendering
    page.evaluate(ROUND_TRIPS_JS)


def last_round_trip(page, seen: int) -> dict:
    """The round trip recorded after the first `seen` ones: label, dom_ms, frame_ms."""
    page.wait_for_function(f"window.__roundTrips.length > {seen}", timeout=10_000)
    return page.evaluate("window.__roundTrips")[-1]
