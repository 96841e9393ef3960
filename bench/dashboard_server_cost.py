"""The server's share of watching: training alone vs. training while N simulated tabs poll the
dashboard at the real interval (no browser, so no rendering on these cores).

Each simulated tab polls every ACTIVE_TICK seconds, as a browser tab's timer does; a tab that
holds no drawing fires nothing else. By default it calls `Dashboard.tick` directly; with
`--http` it sends the browser's own request (POST /gradio_api/run/tick with its session) to
the app served on 127.0.0.1, so Gradio's routing, state and JSON encoding are counted too.

    python bench/dashboard_server_cost.py --tabs 2 [--http]
"""

from __future__ import annotations

import argparse
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
from mnist_demo.training import config_from_preset, train
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
    args = parser.parse_args()
    print_header("cpu")
    alone_config = config_from_preset("fast", log_every=50, log_seconds=0.25)  # as the app logs
    alone, alone_99 = images_per_second(train(alone_config).history)

    runs_dir = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    if args.http:
        app = launch(runs_dir)
        dashboard = app.dashboard
        tick_index = next(i for i, fn in app.demo.fns.items() if fn.api_name == "tick")
    else:
        app, (_, dashboard) = None, server.create(AppSettings(runs_dir=runs_dir))
    done = threading.Event()
    redraws = [0] * args.tabs

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

    def tab(i: int) -> None:
        poll = http_poll() if args.http else direct_poll()
        while not done.wait(ACTIVE_TICK):
            redraws[i] += poll()

    threads = [threading.Thread(target=tab, args=(i,)) for i in range(args.tabs)]
    for t in threads:
        t.start()
    fast = config_from_preset("fast")  # the Train tab's defaults, as one click sends them
    preset = dashboard.train.apply_preset("fast")._asdict()  # every control, by name
    print(dashboard.train.start(**preset, device=fast.device))
    dashboard.job.wait(600)
    done.set()
    for t in threads:
        t.join(5)
    snap = dashboard.job.snapshot()
    watched, watched_99 = images_per_second(snap.records)
    seconds = snap.records[-1]["wall"]
    if app is not None:
        app.close()
    how = "over HTTP" if args.http else "calling the handler"
    print(f"\n| | alone | with {args.tabs} simulated tabs ({how}) |\n|---|---|---|")
    print(f"| images/s | {alone:,.0f} | {watched:,.0f} |")
    print(f"| training s to 99% | {_seconds(alone_99)} | {_seconds(watched_99)} |")
    print(f"| redraws per tab per second | – | {[round(r / seconds, 2) for r in redraws]} |")
    print(f"\nserver-side throughput cost of the dashboard: {100 * (1 - watched / alone):.1f}%")


if __name__ == "__main__":
    main()
