"""Where a Train tab spends the browser's CPU while a run trains: Chrome's sampling profiler.

The app in this process, one headless Chromium tab on the Train tab, the default run started
from it; after a 2 s warm-up the page is profiled for --seconds. Reports the page's busy
time and the browser's CPU seconds, the dashboard's redraws (status-line text changes), the
live charts the server sent, busy milliseconds per redraw, then the functions with the most
time of their own and a few known totals (Gradio's loading-status pass, Vega's plot
evaluation, Svelte's flush).

    python bench/browser_profile.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import collections
import os
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

import mnist_demo  # noqa: E402

# How many times each chart was rebuilt: vega-embed replaces a chart's <svg> on every update
# (a resize re-renders inside the same one, so this counts updates received, not paints).
WATCH_SVGS_JS = """(ids) => { window.__svgs = {}; for (const id of ids) { window.__svgs[id] = 0;
  new MutationObserver((list) => { for (const m of list) for (const n of m.addedNodes)
    if (n.nodeName === 'svg' || n.querySelector?.('svg')) window.__svgs[id] += 1; })
  .observe(document.getElementById(id), {subtree: true, childList: true}); } }"""
CHARTS = ["loss-plot", "acc-plot", "speed-plot"]

TOTALS = ("update_loading_stati_state", "evaluate", "flush", "(garbage collector)")


def cpu_seconds_of_children() -> float:
    """CPU seconds used so far by this process's descendants (the browser's processes)."""
    parents, times = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid], times[pid] = int(fields[1]), int(fields[11]) + int(fields[12])
    ours = {os.getpid()}
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in ours and pid not in ours:
                ours.add(pid)
                changed = True
    return sum(times[pid] for pid in ours - {os.getpid()}) / os.sysconf("SC_CLK_TCK")


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
    sends = []  # when the server built the live charts for the tab (each build is sent)
    build_charts = app.dashboard.train.live_charts
    app.dashboard.train.live_charts = lambda records: (
        sends.append(time.perf_counter()) or (build_charts(records))
    )
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
        page.evaluate(WATCH_SVGS_JS, CHARTS)
        cdp.send("Profiler.start")
        started, browser_cpu, app_cpu = time.perf_counter(), cpu_seconds_of_children(), os.times()
        time.sleep(args.seconds)
        profile = cdp.send("Profiler.stop")["profile"]
        span = time.perf_counter() - started
        browser_cpu = cpu_seconds_of_children() - browser_cpu
        app_cpu = sum(os.times()[:2]) - sum(app_cpu[:2])
        svgs = page.evaluate("window.__svgs")
        sent = sum(started <= t <= started + span for t in sends)
        redraws = len(page.evaluate("window.__changes.status"))
        running = app.dashboard.job.state.value == "running"
        app.dashboard.job.stop()
        app.dashboard.job.wait(60)
        browser.close()
    app.close()

    busy, by_name, total = summarise(profile)
    print(f"# code: {Path(mnist_demo.__file__).parent}, load average {os.getloadavg()[0]:.2f}")
    print(f"profiled {span:.1f} s, training the whole time: {running}")
    print(f"page busy {busy:.2f} s, {redraws} redraws ({redraws / span:.2f}/s)")
    print(f"live charts sent (all three each time): {sent} ({sent / span:.2f}/s)")
    print(f"<svg> elements added per chart (Vega charts; the SVG ones are not seen): {svgs}")
    print(f"CPU seconds: browser {browser_cpu:.2f}, app process (server + training) {app_cpu:.2f}")
    print(f"busy per redraw: {1000 * busy / max(redraws, 1):.0f} ms\n\nmost time of their own:")
    for name, micros in by_name.most_common(12):
        print(f"  {micros / 1000:7.0f} ms  {name}")
    print("totals:")
    for name in TOTALS:
        print(f"  {total[name] / 1000:7.0f} ms  {name}")


if __name__ == "__main__":
    main()
