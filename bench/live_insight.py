"""Everything live at once: training, the per-digit view, drawing with explanations, sparkline.

The app in this process; two headless Chromium tabs on the same machine. Tab A watches the
Train tab with the per-digit view open; tab B draws a "1" again and again while a job trains.
Reports tab A's dashboard refresh rate, tab B's round trips (pen-up -> label, and pen-up ->
saliency caption), how often the per-digit view refreshed, and the sparkline's points.

    python bench/live_insight.py --draws 15 --epochs 3 [--train-threads 1] [--no-watcher]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _env import print_header

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]
from pages import (  # noqa: E402  (browser test steps)
    DESKTOP,
    LABEL_JS,
    WATCH_TEXT_JS,
    change_rate,
    clear,
    draw,
    open_app,
)
from support import TRAINING_ARGS, launch  # noqa: E402

from mnist_demo.records import of_kind  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=15)
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--train-threads", type=int, default=0, help="as MNIST_DEMO_TRAIN_THREADS")
    parser.add_argument("--no-watcher", action="store_true", help="only the drawing tab")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    print_header("cpu")
    from playwright.sync_api import sync_playwright

    app = launch(Path(tempfile.mkdtemp(prefix="bench-runs-")), train_threads=args.train_threads)
    job = app.dashboard.job
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        watcher = (
            None if args.no_watcher else open_app(browser.new_context(viewport=DESKTOP), app.url)
        )
        if watcher:
            watcher.locator("#per-digit").get_by_text("Per digit").click()
            watcher.wait_for_function("document.querySelector('#class-caption').innerText.length")
            watcher.evaluate(WATCH_TEXT_JS, {"status": "#status", "classes": "#class-caption"})
        drawer = open_app(browser.new_context(viewport=DESKTOP), app.url)
        drawer.get_by_role("tab", name="Draw").click()

        message = app.dashboard.train.start("fast", **{**TRAINING_ARGS, "epochs": args.epochs})
        print("#", message, flush=True)
        while not job.latest_step():
            time.sleep(0.1)
        to_label, to_why, stuck = [], [], []
        for _ in range(args.draws):
            if not job.latest_step() or job.state.value != "running":
                break
            try:
                clear(drawer)
            except Exception:  # counted: the label did not empty within 10 s of Clear
                stuck.append(drawer.evaluate(LABEL_JS))
                drawer.screenshot(path=ROOT / "artifacts" / f"clear-stuck-{len(stuck)}.png")
                continue
            pen_up = draw(drawer, "1")
            drawer.wait_for_function(f"{LABEL_JS} === '1'", timeout=30_000)
            to_label.append(1000 * (time.perf_counter() - pen_up))
            drawer.wait_for_function(
                "document.querySelector('#why-caption').innerText.includes('answer 1')",
                timeout=30_000,
            )
            to_why.append(1000 * (time.perf_counter() - pen_up))
        for _ in range(30):  # the last drawing stays: the sparkline gathers points
            spark_visible = drawer.locator("#spark").is_visible()
            if spark_visible or job.state.value != "running":
                break
            time.sleep(0.5)
        job.wait(600)
        changes = watcher.evaluate("window.__changes") if watcher else {"status": [], "classes": []}
        browser.close()
    snap = job.snapshot()
    app.close()
    epochs = of_kind(snap.records, "epoch")
    steps = of_kind(snap.records, "step")
    result = dict(
        draws=len(to_label),
        label_ms_median=round(statistics.median(to_label)),
        label_ms=[round(x) for x in to_label],
        explanation_ms_median=round(statistics.median(to_why)),
        dashboard_updates_per_second=change_rate(changes["status"]),
        per_digit_refreshes=len(changes["classes"]),
        epochs=len(epochs),
        test_accuracy=[r["test_accuracy"] for r in epochs],
        images_per_second=round(steps[-1]["step"] * 256 / steps[-1]["train_seconds"]),
        sparkline_shown=spark_visible,
        clears_not_emptied=stuck,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
