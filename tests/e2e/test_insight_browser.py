"""Seeing inside the network in headless Chromium: misread digits, saliency, teaching."""

from __future__ import annotations

import numpy as np
import pytest
from pages import DESKTOP, LABEL_JS, draw_and_read, open_app

from mnist_demo import checkpoints
from mnist_demo.data import load_mnist
from mnist_demo.words import a_digit, count_of

pytestmark = pytest.mark.e2e


def _biggest_confusion(live_app) -> tuple[int, int, int]:
    """The (true, read as) pair the Draw model confuses most often, and how often."""
    source = live_app.dashboard.predictor.version.source
    probabilities = checkpoints.load_test_probabilities(source)
    assert probabilities is not None, "the shipped checkpoint comes with its test answers"
    labels = load_mnist()[1].labels.numpy()
    matrix = np.zeros((10, 10), dtype=int)
    np.add.at(matrix, (labels, probabilities.argmax(1)), 1)
    np.fill_diagonal(matrix, 0)
    true, read = np.unravel_index(matrix.argmax(), matrix.shape)
    return int(true), int(read), int(matrix[true, read])


def test_a_confusion_cell_opens_its_misread_digits(live_app, browser, screenshots):
    page = open_app(browser, live_app.url)
    page.locator("#per-digit").get_by_text("Per digit").click()
    # Gradio 6.31 renders a table's rows as div.virtual-row, each cell a div.body-cell.
    page.wait_for_function(
        "document.querySelectorAll('#confusion .virtual-row').length >= 10", timeout=30_000
    )
    true, read, count = _biggest_confusion(live_app)
    # Row `true` of the body, column 0 holds the true digit, so `read` is column read + 1.
    cell = page.locator("#confusion .virtual-row").nth(true).locator(".body-cell").nth(read + 1)
    assert cell.inner_text().strip() == str(count)
    cell.click()
    caption_js = "document.querySelector('#gallery-caption').innerText"
    pair = f"{a_digit(true)} read as {a_digit(read)}"
    page.wait_for_function(f"{caption_js}.includes('{pair}')", timeout=15_000)
    assert page.locator("#misreads img").count() == min(count, 24)
    caption = page.locator("#gallery-caption").inner_text()
    assert caption.startswith(f"{count_of(count, 'test image')} of {pair}")
    page.screenshot(path=screenshots / "per-digit.png", full_page=True)


def test_saliency_and_feature_maps_follow_the_drawing(live_app, browser, screenshots):
    page = open_app(browser, live_app.url)
    page.get_by_role("tab", name="Draw").click()
    draw_and_read(page, "7")
    for image in ("#saliency img", "#maps1 img", "#maps2 img"):
        page.wait_for_selector(image, timeout=15_000)
    assert "pushed the answer 7" in page.locator("#why-caption").inner_text()
    first = page.locator("#saliency img").get_attribute("src")
    draw_and_read(page, "0")
    why_js = "document.querySelector('#why-caption').innerText"
    page.wait_for_function(f"{why_js}.includes('pushed the answer 0')", timeout=15_000)
    assert page.locator("#saliency img").get_attribute("src") != first, "a new map per drawing"
    page.screenshot(path=screenshots / "why.png", full_page=True)


# A visible busy tracker's loader animates and its elapsed-time counter counts.
LOADER_MOVES_JS = """() => {
  const shown = '[data-testid="status-tracker"]:not(.hide)';
  const loader = document.querySelector(`${shown} svg g`)?.getAttribute('style');
  const seconds = [...document.querySelectorAll(`${shown} .progress-text`)]
    .map((text) => parseFloat((text.innerText.match(/([0-9.]+)s/) || [])[1] || '0'));
  if (!loader) return false;
  window.__loader ??= loader;
  return loader !== window.__loader && Math.max(...seconds) >= 0.3; }"""


def test_teaching_a_drawing_changes_its_answer(live_app, browser, screenshots):
    page = open_app(browser, live_app.url)
    page.get_by_role("tab", name="Draw").click()
    draw_and_read(page, "1")
    page.locator("#teach").get_by_text("Teach it your handwriting").click()
    page.locator("#teach-label input").click()
    page.get_by_role("option", name="7", exact=True).click()
    page.locator("#teach-add").click()
    page.wait_for_function(
        "document.querySelector('#teach-message').innerText.includes('Added a 7')",
        timeout=10_000,
    )
    page.locator("#teach-tune").click()
    page.wait_for_function(LOADER_MOVES_JS, timeout=30_000)  # ui/idle_frames.py lets it run
    page.wait_for_function(f"{LABEL_JS} === '7'", timeout=90_000)  # the taught answer
    assert (
        "Reads 1 of your 1 drawings correctly (before: 0)"
        in page.locator("#teach-message").inner_text()
    )
    assert "fine-tuned copy" in page.locator("#answered").inner_text()
    page.screenshot(path=screenshots / "teach.png", full_page=True)

    other = browser.new_context().new_page()  # another visitor never gets that model
    other.set_viewport_size(DESKTOP)
    other.goto(live_app.url)
    other.wait_for_selector("#start", timeout=60_000)
    other.get_by_role("tab", name="Draw").click()
    draw_and_read(other, "1")
    assert "fine-tuned" not in other.locator("#answered").inner_text()

    page.locator("#teach-shared").click()  # back to the shared model: a 1 again
    page.wait_for_function(f"{LABEL_JS} === '1'", timeout=15_000)
