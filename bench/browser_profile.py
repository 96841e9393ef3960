"""Where a Train tab spends the browser's CPU while a run trains: Chrome's sampling profiler.

The app in this process, one headless Chromium tab on the Train tab, the default run started
from it; after a 2 s warm-up the page is profiled for --seconds. Reports the page's busy
time, the dashboard's redraws (status-line text changes) and busy milliseconds per redraw,
then the functions with the most time of their own and a few known totals (Gradio's
loading-status pass, Vega's plot evaluation, Svelte's flush).

    python bench/browser_profile.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import collections
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _env import print_header

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]
from pages import CHROMIUM_ARGS, WATCH_TEXT_JS, open_app  # noqa: E402  (browser test helpers)
from support import launch  # noqa: E402

TOTALS = ("update_loading_stati_state", "evaluate", "flush", "(garbage collector)")


def summarise(profile: dict) -> tuple[float, collections.Counter, collections.Counter]:
    """Busy seconds, self time per function and total time per function, in microseconds."""
    nodes = {node["id"]: node for node in profile["nodes"]}
    own = collections.Counter()
    for node_id, delta in zip(profile["samples"], profile["timeDeltas"], strict=False):
        own[node_id] += delta

    def name(node_id: int) -> str:
        frame = nodes[node_id]["callFrame"]
        return f"{frame['functionName'] or '(anonymous)'} {frame['url'].rsplit('/', 1)[-1]}"

    by_name, total = collections.Counter(), collections.Counter()
    for node_id, micros in own.items():
        by_name[name(node_id)] += micros

    def walk(node_id: int) -> int:
        micros = own.get(node_id, 0) + sum(walk(c) for c in nodes[node_id].get("children", []))
        total[nodes[node_id]["callFrame"]["functionName"]] += micros
        return micros

    walk(profile["nodes"][0]["id"])
    idle = sum(v for k, v in by_name.items() if k.startswith("(idle)"))
    return (sum(own.values()) - idle) / 1e6, by_name, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    print_header("cpu")
    from playwright.sync_api import sync_playwright

    app = launch(Path(tempfile.mkdtemp(prefix="bench-runs-")))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        page = open_app(browser, app.url)
        page.wait_for_function("/Idle/.test(document.querySelector('#status').innerText)")
        cdp = page.context.new_cdp_session(page)
        cdp.send("Profiler.enable")
        cdp.send("Profiler.setSamplingInterval", {"interval": 500})  # microseconds
        page.locator("#start").click()
        page.wait_for_function(
            "/Running/.test(document.querySelector('#status').innerText)", timeout=30_000
        )
        time.sleep(2)
        page.evaluate(WATCH_TEXT_JS, {"status": "#status"})
        cdp.send("Profiler.start")
        started = time.perf_counter()
        time.sleep(args.seconds)
        profile = cdp.send("Profiler.stop")["profile"]
        span = time.perf_counter() - started
        redraws = len(page.evaluate("window.__changes.status"))
        running = app.dashboard.job.state.value == "running"
        app.dashboard.job.stop()
        app.dashboard.job.wait(60)
        browser.close()
    app.close()

    busy, by_name, total = summarise(profile)
    print(f"profiled {span:.1f} s, training the whole time: {running}")
    print(f"page busy {busy:.2f} s, {redraws} redraws ({redraws / span:.2f}/s)")
    print(f"busy per redraw: {1000 * busy / max(redraws, 1):.0f} ms\n\nmost time of their own:")
    for name, micros in by_name.most_common(12):
        print(f"  {micros / 1000:7.0f} ms  {name}")
    print("totals:")
    for name in TOTALS:
        print(f"  {total[name] / 1000:7.0f} ms  {name}")


if __name__ == "__main__":
    main()
