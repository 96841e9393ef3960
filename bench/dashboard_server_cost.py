"""The server's share of watching: training alone vs. training while N simulated tabs run the
dashboard's handlers at their real intervals (no browser, so no rendering on these cores).

Each simulated tab calls `Dashboard.tick` every 0.4 s (a full redraw whenever the job moved,
exactly what a browser tab's timer triggers) and `follow_live_weights` every second.

    python bench/dashboard_server_cost.py --tabs 2
"""

from __future__ import annotations

import argparse
import tempfile
import threading
from pathlib import Path

from _env import print_header

from mnist_demo import server
from mnist_demo.settings import AppSettings
from mnist_demo.training import config_from_preset, train
from mnist_demo.ui import ACTIVE_TICK, DRAW_TICK


def images_per_second(records: list[dict]) -> tuple[float, float | None]:
    steps = [r for r in records if r["kind"] == "step"]
    batch = next(r for r in records if r["kind"] == "start")["config"]["batch_size"]
    hit = next((r for r in records if r["kind"] == "epoch" and r["test_accuracy"] >= 99), None)
    return steps[-1]["step"] * batch / steps[-1]["train_seconds"], hit and hit["train_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tabs", type=int, default=2)
    args = parser.parse_args()
    print_header("cpu")
    alone_config = config_from_preset("fast", log_every=50, log_seconds=0.25)  # as the app logs
    alone, alone_99 = images_per_second(train(alone_config).history)

    settings = AppSettings(runs_dir=Path(tempfile.mkdtemp(prefix="bench-runs-")))
    _, dashboard = server.create(settings)
    done = threading.Event()
    redraws = [0] * args.tabs

    def tab(i: int) -> None:
        seen, ticks = None, 0
        while not done.wait(ACTIVE_TICK):
            out = dashboard.tick(seen)
            if out[-1] != seen:
                redraws[i] += 1
            seen = out[-1]
            ticks += 1
            if ticks % round(DRAW_TICK / ACTIVE_TICK) == 0:
                dashboard.follow_live_weights("", None, None, None)

    threads = [threading.Thread(target=tab, args=(i,)) for i in range(args.tabs)]
    for t in threads:
        t.start()
    fast = config_from_preset("fast")  # the Train tab's defaults, as one click sends them
    controls = ("model", "epochs", "batch_size", "lr", "schedule", "augment", "seed", "device")
    print(dashboard.start("fast", *(getattr(fast, name) for name in controls)))
    dashboard.job.wait(600)
    done.set()
    for t in threads:
        t.join(5)
    snap = dashboard.job.snapshot()
    watched, watched_99 = images_per_second(snap.records)
    seconds = snap.records[-1]["wall"]
    print(f"\n| | alone | with {args.tabs} simulated tabs |\n|---|---|---|")
    print(f"| images/s | {alone:,.0f} | {watched:,.0f} |")
    print(f"| training s to 99% | {alone_99:.1f} | {watched_99:.1f} |")
    print(f"| redraws per tab per second | – | {[round(r / seconds, 2) for r in redraws]} |")
    print(f"\nserver-side throughput cost of the dashboard: {100 * (1 - watched / alone):.1f}%")


if __name__ == "__main__":
    main()
