"""Where a Train tab's browser CPU goes, by Chromium process: renderer, browser, network, GPU.

The app in this process, one headless Chromium tab on the Train tab: first idle, then while
a default-settings run trains (started as the Start button does), each window's CPU per
process type from /proc. The renderer draws the page; the browser and network processes
carry its requests, which is what a page that polls pays per update and a streamed page
does not. `--live-streams 0` makes the page poll throughout (MNIST_DEMO_LIVE_STREAMS);
`--rounds N` repeats it all with a fresh app each time, and `--ab` alternates the rounds
between streams allowed and not. (While idle the page polls either way.)

    python bench/browser_processes.py [--window 8 --rounds 2 --ab]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _env import print_header
from dashboard_overhead import cpu_by_process_type

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]
from pages import CHROMIUM_ARGS, open_app  # noqa: E402  (browser test helpers)
from support import TRAINING_ARGS, launch  # noqa: E402


def window(seconds: float) -> dict[str, float]:
    """Cores each process type used over the next `seconds`."""
    before, began = cpu_by_process_type(), time.perf_counter()
    time.sleep(seconds)  # the window being measured: the page and the run go on by themselves
    after, span = cpu_by_process_type(), time.perf_counter() - began
    used = {k: (after[k] - before.get(k, 0.0)) / span for k in after}
    return {k: round(v, 3) for k, v in sorted(used.items()) if v >= 0.0005}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--window", type=float, default=8.0, help="seconds per window")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--live-streams", type=int, default=64)
    parser.add_argument("--ab", action="store_true", help="alternate streaming and polling")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    print_header("cpu")
    from playwright.sync_api import sync_playwright

    for round_ in range(args.rounds):
        streams = (64 if round_ % 2 == 0 else 0) if args.ab else args.live_streams
        app = launch(Path(tempfile.mkdtemp(prefix="bench-runs-")), live_streams=streams)
        mode = "stream" if streams else "poll"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            open_app(browser, app.url)
            time.sleep(3)  # the page mounts: not counted
            idle = window(args.window)
            print(f"{mode} idle     {sum(idle.values()):.3f} cores {idle}", flush=True)
            message = app.dashboard.train.start("fast", **{**TRAINING_ARGS, "epochs": 3})
            assert message.endswith("started."), message
            time.sleep(2)  # the run's first records
            for _ in range(2):
                seen = window(args.window)
                print(f"{mode} watching {sum(seen.values()):.3f} cores {seen}", flush=True)
            browser.close()
        app.close()


if __name__ == "__main__":
    main()
