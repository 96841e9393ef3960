"""The server's share of watching: the app's training job with no tab polling vs. the same job
while N simulated tabs poll the dashboard at the real interval (no browser, so no rendering
on these cores), interleaved in one process.

Each simulated tab polls every ACTIVE_TICK seconds, as a browser tab's timer does; a tab that
holds no drawing fires nothing else. By default it calls `Dashboard.tick` directly; with
`--http` it sends the browser's own request (POST /gradio_api/run/tick with its session) to
the app served on 127.0.0.1, so Gradio's routing, state and JSON encoding are counted too.
Rounds alternate which comes first (watched/unwatched, then unwatched/watched, ...): this
machine drifts by up to 40%, and a single comparison swings by +-20 points, so the cost is
the median of the rounds' paired costs.

    python bench/dashboard_server_cost.py --tabs 2 --http --rounds 6
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from _env import print_header

from mnist_demo import server
from mnist_demo.records import first, is_kind, of_kind
from mnist_demo.settings import AppSettings
from mnist_demo.training import config_from_preset
from mnist_demo.ui.common import ACTIVE_TICK

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support import launch  # noqa: E402  (the launcher the browser tests use)


def images_per_second(records: list[dict]) -> tuple[float, float | None]:
    steps = of_kind(records, "step")
    batch = first(records, "start")["config"]["batch_size"]
    hit = next((r for r in records if is_kind(r, "epoch") and r["test_accuracy"] >= 99), None)
    return steps[-1]["step"] * batch / steps[-1]["train_seconds"], hit and hit["train_seconds"]


def _seconds(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tabs", type=int, default=2)
    parser.add_argument("--http", action="store_true", help="poll over HTTP like a browser")
    parser.add_argument("--rounds", type=int, default=4, help="pairs of runs, order alternating")
    args = parser.parse_args()
    print_header("cpu")
    runs_dir = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    if args.http:
        app = launch(runs_dir)
        dashboard = app.dashboard
        tick_index = next(i for i, fn in app.demo.fns.items() if fn.api_name == "tick")
    else:
        app, (_, dashboard) = None, server.create(AppSettings(runs_dir=runs_dir))

    def direct_poll() -> Callable[[], bool]:
        seen = None

        def poll() -> bool:
            nonlocal seen
            out = dashboard.train.tick(seen)
            moved, seen = out[-1] != seen, out[-1]
            return moved

        return poll

    def http_poll() -> Callable[[], bool]:
        client = httpx.Client(base_url=app.url, timeout=30)
        body = dict(data=[None, None], fn_index=tick_index, session_hash=uuid.uuid4().hex[:11])

        def poll() -> bool:
            reply = client.post("gradio_api/run/tick", json=body)
            reply.raise_for_status()
            return isinstance(reply.json()["data"][0], str)  # the status line, not a skip

        return poll

    fast = config_from_preset("fast")  # the Train tab's defaults, as one click sends them
    preset = dashboard.train.apply_preset("fast")._asdict()  # every control, by name

    def one_run(tabs: int) -> tuple[float, float | None, list[float]]:
        """(images/s, training s to 99%, redraws per tab per second) of one default run."""
        done = threading.Event()
        redraws = [0] * tabs

        def tab(i: int) -> None:
            poll = http_poll() if args.http else direct_poll()
            while not done.wait(ACTIVE_TICK):
                redraws[i] += poll()

        threads = [threading.Thread(target=tab, args=(i,)) for i in range(tabs)]
        for t in threads:
            t.start()
        message = dashboard.train.start(**preset, device=fast.device)
        assert not message.startswith("⚠️"), message
        dashboard.job.wait(600)
        done.set()
        for t in threads:
            t.join(5)
        records = dashboard.job.snapshot().records
        speed, to_99 = images_per_second(records)
        return speed, to_99, [round(r / records[-1]["wall"], 2) for r in redraws]

    warm = one_run(0)  # a process's first run pays one-off costs; not counted
    print(f"warm-up run (not counted): {warm[0]:,.0f} images/s")
    how = "over HTTP" if args.http else "calling the handler"
    print(
        f"| round | unwatched images/s | with {args.tabs} tabs ({how}) | cost | "
        "s to 99% unwatched / watched | redraws per tab per s |"
    )
    print("|---|---:|---:|---:|---|---|")
    costs, alone_all, watched_all = [], [], []
    for r in range(args.rounds):
        order = (0, args.tabs) if r % 2 == 0 else (args.tabs, 0)
        result = {tabs: one_run(tabs) for tabs in order}
        (alone, alone_99, _), (watched, watched_99, redraws) = result[0], result[args.tabs]
        cost = 100 * (1 - watched / alone)
        costs.append(cost)
        alone_all.append(alone)
        watched_all.append(watched)
        print(
            f"| {r + 1} | {alone:,.0f} | {watched:,.0f} | {cost:.1f}% | "
            f"{_seconds(alone_99)} / {_seconds(watched_99)} | {redraws} |",
            flush=True,
        )
    if app is not None:
        app.close()
    print(
        f"\nserver-side throughput cost of the dashboard: median {statistics.median(costs):.1f}% "
        f"over {args.rounds} rounds (medians {statistics.median(alone_all):,.0f} unwatched, "
        f"{statistics.median(watched_all):,.0f} watched images/s)"
    )


if __name__ == "__main__":
    main()
