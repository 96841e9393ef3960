"""What watching costs in the browser, measured within one run: a Chromium tab switches
between the Train tab and about:blank every few seconds while a long run trains, and the
images/s of the watched windows are compared with their blank neighbours.

bench/dashboard_overhead.py compares whole runs, and consecutive runs here differ by up to
40% (4,500-7,400 images/s unwatched, minutes apart), so its per-round cost swings by +-20
points. Neighbouring windows of one run see the same machine: each watched window is
compared with the mean of the blank windows just before and after it, which cancels a steady
drift. The first --settle seconds after each switch are not counted (loading the page is not
watching it). Each window's rate comes from the run's own step records (steps and training
seconds), as the throughput chart draws it; each window also reports the CPU the hypervisor
gave other guests meanwhile (/proc/stat's steal: 0.00-0.47 of a core here, changing from one
window to the next) and the CPU mode the training was in.

    python bench/dashboard_toggle.py --runs 2 [--epochs 6 --window 6 --settle 2]
    python bench/dashboard_toggle.py --runs 1 --epochs 8 --live-streams 0   # the page polls
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _env import print_header, stolen_seconds
from dashboard_overhead import CHROMIUM_ARGS, chromium_cpu_seconds

from mnist_demo.records import first, of_kind
from mnist_demo.training import config_from_preset

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]
from support import launch  # noqa: E402  (the same launcher the browser tests use)


def latest_step(job) -> tuple[int, float]:
    """(step, training seconds) of the run's latest step record: the seconds leave out the
    in-epoch and end-of-epoch tests, which fall into some windows and not others."""
    steps = of_kind(job.snapshot().records, "step")
    return (steps[-1]["step"], steps[-1]["train_seconds"]) if steps else (0, 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--epochs", type=float, default=6.0, help="each run's length")
    parser.add_argument("--window", type=float, default=6.0, help="seconds per window")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds not counted")
    parser.add_argument(
        "--live-streams",
        type=int,
        default=64,
        help="MNIST_DEMO_LIVE_STREAMS: 0 makes the Train tab poll instead of streaming",
    )
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    print_header("cpu")
    print(f"# load average (1 min) at the start: {os.getloadavg()[0]:.2f}")
    from playwright.sync_api import sync_playwright

    app = launch(Path(tempfile.mkdtemp(prefix="bench-runs-")), live_streams=args.live_streams)
    dashboard, job = app.dashboard, app.dashboard.job
    preset = {**dashboard.train.apply_preset("fast")._asdict(), "epochs": args.epochs}
    device = config_from_preset("fast").device
    costs, rates = [], {True: [], False: []}
    chromium = {True: [], False: []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        page = browser.new_page()
        for run in range(args.runs):
            message = dashboard.train.start(**preset, device=device)
            assert not message.startswith("⚠️"), message
            while latest_step(job)[0] == 0:  # the run's first step record
                time.sleep(0.05)  # a thread in this process fills it: nothing to wait on
            windows: list[tuple[bool, float]] = []  # (watched, images/s) in order
            watched = run % 2 == 1  # runs alternate which comes first
            while job.state.value == "running":
                page.goto(app.url if watched else "about:blank")
                if watched:
                    page.wait_for_selector("#start", timeout=60_000)
                time.sleep(args.settle)  # the page loads and settles: not counted
                (step0, wall0), cpu0 = latest_step(job), chromium_cpu_seconds()
                steal0 = stolen_seconds()
                began = time.perf_counter()
                time.sleep(args.window - args.settle)  # the window being measured
                (step1, wall1), cpu1 = latest_step(job), chromium_cpu_seconds()
                steal = (stolen_seconds() - steal0) / (time.perf_counter() - began)
                if job.state.value != "running" or wall1 <= wall0:
                    break  # the run ended inside the window: not a full window
                batch = first(job.snapshot().records, "start")["config"]["batch_size"]
                rate = (step1 - step0) * batch / (wall1 - wall0)
                rates[watched].append(rate)
                chromium[watched].append((cpu1 - cpu0) / (time.perf_counter() - began))
                windows.append((watched, rate))
                mode = of_kind(job.snapshot().records, "step")[-1].get("parallel", "-")
                print(
                    f"  {'watched' if watched else 'blank  '} {rate:,.0f} images/s, {mode}, "
                    f"Chromium {chromium[watched][-1]:.2f} cores, stolen {steal:.2f} cores",
                    flush=True,
                )
                if len(windows) >= 3 and windows[-2][0] and not windows[-1][0]:
                    (_, before), (_, seen), (_, after) = windows[-3:]
                    costs.append(100 * (1 - 2 * seen / (before + after)))
                    print(
                        f"run {run + 1}: blank {before:,.0f}, watched {seen:,.0f}, blank "
                        f"{after:,.0f} images/s: cost {costs[-1]:.1f}%",
                        flush=True,
                    )
                watched = not watched
            job.stop()
            job.wait(120)
        browser.close()
    app.close()
    print(
        f"\nwatched windows: median {statistics.median(rates[True]):,.0f} images/s, "
        f"Chromium {statistics.median(chromium[True]):.3f} cores; blank windows: "
        f"{statistics.median(rates[False]):,.0f} images/s, "
        f"Chromium {statistics.median(chromium[False]):.3f} cores"
    )
    median, each = statistics.median(costs), [round(c, 1) for c in costs]
    print(
        f"throughput cost of one Chromium tab on the dashboard: median {median:.1f}% "
        f"over {len(costs)} watched windows {each}"
    )
    print(f"# load average (1 min) at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
