"""What watching costs in the browser: the app's training job with Chromium tabs open on the
live dashboard vs. the same job with the tabs parked on about:blank, in one app and one
browser, rounds alternating the order (this machine drifts by up to 40%). Also how often the
tabs' status line changed, how often the server sent them the live charts, and how much CPU
Chromium itself used per second of training (the tabs share the training's two cores).

    python bench/dashboard_overhead.py --tabs 1 --rounds 4
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _env import print_header

from mnist_demo.records import first, of_kind
from mnist_demo.training import config_from_preset

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


TYPE = re.compile(rb"--type=(\S+)")
UTILITY = re.compile(rb"--utility-sub-type=(\w+)")


def cpu_by_process_type() -> collections.Counter:
    """CPU seconds so far of every Chromium process, summed per type (from /proc).

    Chromium rewrites its processes' command lines into one space-separated string, so the
    type is read with a regular expression; the process without one is the browser.
    """
    tick = os.sysconf("SC_CLK_TCK")
    out: collections.Counter = collections.Counter()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            command = (stat.parent / "cmdline").read_bytes()
            text = stat.read_text()
        except OSError:
            continue
        if b"chromium/chromium" not in command.split(b" ")[0].split(b"\0")[0]:
            continue
        kind = TYPE.search(command)
        name = kind.group(1).decode() if kind else "browser"
        if name == "utility":
            sub = UTILITY.search(command)
            name = sub.group(1).decode() if sub else name  # 'network', 'storage', ...
        fields = text.rsplit(")", 1)[1].split()
        out[name] += (int(fields[11]) + int(fields[12])) / tick
    return out


def chromium_cpu_seconds() -> float:
    """User + system CPU seconds of every Chromium process so far (from /proc)."""
    return sum(cpu_by_process_type().values())


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
    parser.add_argument("--tabs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=4, help="pairs of runs, order alternating")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    print_header("cpu")
    print(f"# load average (1 min) at the start: {os.getloadavg()[0]:.2f}")

    from playwright.sync_api import sync_playwright

    app = launch(Path(tempfile.mkdtemp(prefix="bench-runs-")))
    dashboard, job = app.dashboard, app.dashboard.job
    sends = []  # the live charts built for a tab's poll: each build is sent
    build_charts = dashboard.train.live_charts
    dashboard.train.live_charts = lambda records: (
        sends.append(time.perf_counter()) or (build_charts(records))
    )
    fast = config_from_preset("fast")
    preset = dashboard.train.apply_preset("fast")._asdict()  # the Train tab's defaults

    def one_run(pages: list, watched: bool) -> dict:
        for page in pages:
            if watched:
                page.goto(app.url)
                page.wait_for_selector("#start", timeout=60_000)
                page.wait_for_function(  # the first poll has filled the status line
                    "document.querySelector('#status')?.innerText.trim().length > 0"
                )
                page.evaluate(WATCH_TEXT_JS, {"status": "#status"})
            else:
                page.goto("about:blank")
        cpu, began = chromium_cpu_seconds(), time.perf_counter()
        sends.clear()
        message = dashboard.train.start(**preset, device=fast.device)
        assert not message.startswith("⚠️"), message
        while job.snapshot().best_test_accuracy is None or job.snapshot().best_test_accuracy < 99:
            if job.wait(0.2):
                break
        to_99 = time.perf_counter() - began
        job.wait(600)
        ended = time.perf_counter()
        result = summarise(job.snapshot().records)
        result["start_to_99_wall"] = round(to_99, 1)
        result["chromium_cores"] = round((chromium_cpu_seconds() - cpu) / (ended - began), 3)
        if watched:
            stamps = [page.evaluate("window.__changes.status") for page in pages]
            result["status_redraws_per_s"] = [change_rate(s) for s in stamps]
            result["charts_per_s_per_tab"] = round(len(sends) / (ended - began) / len(pages), 2)
        return result

    costs = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        pages = [browser.new_context().new_page() for _ in range(args.tabs)]
        warm = one_run(pages, watched=False)  # a process's first run pays one-off costs
        print("warm-up (not counted):", json.dumps(warm), flush=True)
        for r in range(args.rounds):
            order = (False, True) if r % 2 == 0 else (True, False)
            runs = {watched: one_run(pages, watched) for watched in order}
            alone, watched = runs[False], runs[True]
            cost = 100 * (1 - watched["images_per_second"] / alone["images_per_second"])
            costs.append(cost)
            print(f"round {r + 1}: unwatched", json.dumps(alone), flush=True)
            print(f"round {r + 1}: watched  ", json.dumps(watched), flush=True)
            print(f"round {r + 1}: cost {cost:.1f}%", flush=True)
        browser.close()
    app.close()
    print(
        f"\nthroughput cost of {args.tabs} Chromium tab(s) on the dashboard: median "
        f"{statistics.median(costs):.1f}% over {args.rounds} rounds {[round(c, 1) for c in costs]}"
    )
    print(f"# load average (1 min) at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
