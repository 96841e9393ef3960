"""The Draw tab's round trip in the page: pen-up to answer painted, and to its explanation.

The app in this process, one headless Chromium tab on the Draw tab, nothing training. A "1" is
drawn --n times on a cleared pad (one stroke: its pen-up is the drawing's last); the page
times, from the canvas's pointerup, the animation frame that paints the label (the browser
test's measure, tests/e2e/pages.py) and the one that paints the explanation's caption ("Weights
vN: ..."). The first --warmup drawings are left out: first calls into torch and the image code.

    python bench/draw_round_trip.py [--n 20]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from _env import print_header

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]
from pages import CHROMIUM_ARGS, clear, draw, open_app  # noqa: E402
from support import launch  # noqa: E402

# Pen-up -> the frames that paint the label and the explanation's caption, per drawing.
TIMES_JS = """() => {
  window.__trips = []; let start = null, answered = null;
  document.querySelector('#drawpad canvas')
    .addEventListener('pointerup', () => { start = performance.now(); answered = null; }, true);
  const label = document.querySelector('#label'), why = document.querySelector('#why-caption');
  const frame = (from) => new Promise((done) =>
    requestAnimationFrame(() => done(performance.now() - from)));
  new MutationObserver(async () => {
    const text = ((label.querySelector('.output-class') || {}).innerText || '').trim();
    if (start === null || answered !== null || !/^[0-9]$/.test(text)) return;
    answered = frame(start);
  }).observe(label, {subtree: true, childList: true, characterData: true});
  new MutationObserver(async () => {
    if (start === null || answered === null || !/Weights v\\d+:/.test(why.innerText)) return;
    const from = start; start = null;
    window.__trips.push({answer_ms: await answered, explained_ms: await frame(from)});
  }).observe(why, {subtree: true, childList: true, characterData: true});
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="drawings timed")
    parser.add_argument("--warmup", type=int, default=2, help="drawings before the clock")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    print_header("cpu")
    from playwright.sync_api import sync_playwright

    app = launch(Path(tempfile.mkdtemp(prefix="bench-runs-")))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        page = open_app(browser, app.url)
        page.get_by_role("tab", name="Draw").click()
        page.wait_for_selector("#drawpad canvas")
        page.evaluate(TIMES_JS)
        for i in range(args.warmup + args.n):
            clear(page)
            draw(page, "1")
            page.wait_for_function(f"window.__trips.length > {i}", timeout=15_000)
        trips = page.evaluate("window.__trips")[args.warmup :]
        browser.close()
    app.close()

    for key in ("answer_ms", "explained_ms"):
        xs = [t[key] for t in trips]
        q = statistics.quantiles(xs, n=10)
        print(f"{key:<13} median {statistics.median(xs):6.1f}  p10 {q[0]:6.1f}  p90 {q[-1]:6.1f}")
    print("answer_ms", " ".join(f"{t['answer_ms']:.0f}" for t in trips))


if __name__ == "__main__":
    main()
