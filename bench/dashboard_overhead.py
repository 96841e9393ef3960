"""What watching costs: default-settings training alone vs. from one click in the app with
browser tabs open on the live dashboard; also how often the tabs' status line changed and how
often the server sent them the live charts (Vega-Lite specs, which the browser rebuilds whole).

    python bench/dashboard_overhead.py --tabs 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _env import print_header

from mnist_demo.records import first, of_kind
from mnist_demo.training import config_from_preset, train

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]
from pages import WATCH_TEXT_JS, change_rate  # noqa: E402  (the browser tests' helpers)
from support import launch  # noqa: E402  (the same launcher the browser tests use)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def summarise(history: list[dict]) -> dict:
    """Throughput over the whole run and training seconds until the first epoch at 99%."""
    steps = of_kind(history, "step")
    epochs = of_kind(history, "epoch")
    hit = next((r for r in epochs if r["test_accuracy"] >= 99.0), None)
    batch = first(history, "start")["config"]["batch_size"]
    return dict(
        train_seconds=round(steps[-1]["train_seconds"], 2),
        images_per_second=round(steps[-1]["step"] * batch / steps[-1]["train_seconds"]),
        accuracy=[r["test_accuracy"] for r in epochs],
        seconds_to_99=hit and round(hit["train_seconds"], 2),
        records=len(steps),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tabs", type=int, default=2)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    print_header("cpu")
    print(f"# load average (1 min) at the start: {os.getloadavg()[0]:.2f}")
    alone = summarise(train(config_from_preset("fast", log_every=50, log_seconds=0.25)).history)
    print("alone:", json.dumps(alone), flush=True)

    from playwright.sync_api import sync_playwright

    app = launch(Path(tempfile.mkdtemp(prefix="bench-runs-")))
    sends = []  # the live charts built for a tab's poll: each build is sent
    build_charts = app.dashboard.train.live_charts
    app.dashboard.train.live_charts = lambda records: (
        sends.append(time.perf_counter()) or (build_charts(records))
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        pages = []
        for _ in range(args.tabs):
            page = browser.new_context().new_page()
            page.goto(app.url)
            page.wait_for_selector("#start", timeout=60_000)
            page.wait_for_function("/Idle/.test(document.querySelector('#status').innerText)")
            page.evaluate(WATCH_TEXT_JS, {"status": "#status"})
            pages.append(page)
        clicked = time.perf_counter()
        pages[0].locator("#start").click()
        job = app.dashboard.job
        pages[0].wait_for_function(
            "/Running/.test(document.querySelector('#status').innerText)", timeout=30_000
        )  # the click travels through the queue before the job exists
        while job.snapshot().best_test_accuracy is None or job.snapshot().best_test_accuracy < 99:
            if job.wait(0.2):
                break
        wall_to_99 = time.perf_counter() - clicked
        job.wait(600)
        ended = time.perf_counter()
        rates = [change_rate(page.evaluate("window.__changes.status")) for page in pages]
        chart_rate = sum(clicked <= t <= ended for t in sends) / (ended - clicked) / args.tabs
        browser.close()
    in_app = summarise(job.snapshot().records)
    app.close()
    print("in app:", json.dumps(in_app))
    slower = 100 * (1 - in_app["images_per_second"] / alone["images_per_second"])
    print(f"\n| | alone | app + {args.tabs} tabs |\n|---|---|---|")
    print(f"| images/s | {alone['images_per_second']} | {in_app['images_per_second']} |")
    print(f"| training seconds to 99% | {alone['seconds_to_99']} | {in_app['seconds_to_99']} |")
    print(f"| click to 99% (wall, s) | – | {wall_to_99:.1f} |")
    print(f"| dashboard redraws per second (status line), per tab | – | {rates} |")
    print(f"| live charts sent per second, per tab (three each time) | – | {chart_rate:.2f} |")
    print(f"\nthroughput cost of the dashboard: {slower:.1f}%")
    print(f"# load average (1 min) at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
