"""The server's share of watching: the app's training job with no tab polling vs. the same job
while N simulated tabs poll the dashboard at the real interval (no browser, so no rendering
on these cores), interleaved in one process.

Each simulated tab polls as a browser tab's page does (ui/live.py): the status line and charts
at the interval each answer gives (ACTIVE_TICK during a run), and the Gradio event of the
per-epoch and per-run views whenever an answer's `watch` changed; a tab that holds no
drawing fires nothing else. By default it calls `TrainTab.poll` and `TrainTab.watch`
directly; with `--http` it sends the browser's own requests (POST /gradio_api/component_server and
/gradio_api/run/watch, with its session) to the app served on 127.0.0.1, so Gradio's routing,
state and JSON encoding are counted too.
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
from collections.abc import Callable
from pathlib import Path

from _env import print_header

from mnist_demo import server
from mnist_demo.records import first, is_kind, of_kind
from mnist_demo.settings import AppSettings
from mnist_demo.training import config_from_preset
from mnist_demo.ui.common import ACTIVE_TICK

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _tab import PageTab  # noqa: E402
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
        watch_index = next(i for i, fn in app.demo.fns.items() if fn.api_name == "watch")
    else:
        app, (_, dashboard) = None, server.create(AppSettings(runs_dir=runs_dir))

    def direct_poll() -> Callable[[], tuple[bool, float]]:
        seen, watched, views = None, None, None

        def poll() -> tuple[bool, float]:
            """The page's poll and, when its views moved, the Gradio one, as a browser tab
            sends them: (was the status redrawn, seconds to the next poll)."""
            nonlocal seen, watched, views
            answer = dashboard.train.poll(seen)
            seen = answer["key"] or seen
            if answer["watch"] not in (None, views):
                views, watched = answer["watch"], dashboard.train.watch(watched).seen_key
            return answer["status"] is not None, answer["every"]

        return poll

    def http_poll() -> Callable[[], tuple[bool, float]]:
        page, views = PageTab(app.url), None
        body = dict(data=[None, None], fn_index=watch_index, session_hash=page.session)

        def poll() -> tuple[bool, float]:
            nonlocal views
            answer = page.poll()
            if answer["watch"] not in (None, views):  # Gradio keeps its key in the session
                views = answer["watch"]
                page.client.post("gradio_api/run/watch", json=body).raise_for_status()
            return answer["status"] is not None, answer["every"]

        return poll

    fast = config_from_preset("fast")  # the Train tab's defaults, as one click sends them
    preset = dashboard.train.apply_preset("fast")._asdict()  # every control, by name

    def one_run(tabs: int) -> tuple[float, float | None, list[float]]:
        """(images/s, training s to 99%, redraws per tab per second) of one default run."""
        done = threading.Event()
        redraws = [0] * tabs

        def tab(i: int) -> None:
            poll, wait = http_poll() if args.http else direct_poll(), ACTIVE_TICK
            while not done.wait(wait):
                redrawn, wait = poll()
                redraws[i] += redrawn

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
