"""How long the server's event loop is held while visitors call it: every request waits then.

Launches the app in this process on a free loopback port (optionally training a default run),
then a probe thread posts a callback to the server's event loop every 10 ms and times how long
it waits to run. Meanwhile N plain-HTTP clients (bench/load_test.py's, in a second process)
each send M drawings to /predict_file, several rounds, the first right after launch. Every hold
over `--stack-ms` has the loop thread's stack printed: what held it.

    python bench/event_loop_holds.py                  # 6 clients x 8, 3 rounds, idle app
    python bench/event_loop_holds.py --train          # the same while the default run trains

The thirteenth session found two holds this way (BENCHMARKS.md): the upload cache's walk
(0.42-0.49 s once a second) and pyplot imported by the first event (0.6-0.8 s).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import threading
import time
import traceback
import warnings
from pathlib import Path

from _env import print_header

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


class LoopProbe:
    """Posts a callback to `loop` every `every` seconds and records how late each one ran."""

    def __init__(self, loop: asyncio.AbstractEventLoop, every: float, stack_ms: float) -> None:
        self.loop, self.every, self.stack_ms = loop, every, stack_ms
        self.holds: list[tuple[str, float]] = []  # (phase, ms)
        self.stacks: list[tuple[str, float, str]] = []
        self.phase = "start"
        self._stop = threading.Event()
        ident: list[int] = []
        ready = threading.Event()
        loop.call_soon_threadsafe(lambda: (ident.append(threading.get_ident()), ready.set()))
        ready.wait(10)
        self.loop_thread = ident[0]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ran = threading.Event()
            began = time.perf_counter()
            self.loop.call_soon_threadsafe(ran.set)
            stack = None
            if not ran.wait(self.stack_ms / 1000):
                frame = sys._current_frames().get(self.loop_thread)
                if frame is not None:
                    lines = traceback.format_stack(frame)
                    stack = "".join([x for x in lines if "importlib" not in x][-12:])
                ran.wait(120)
            held = 1000 * (time.perf_counter() - began)
            self.holds.append((self.phase, held))
            if stack is not None:
                self.stacks.append((self.phase, held, stack))
            time.sleep(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def server_loop() -> asyncio.AbstractEventLoop:
    """uvicorn's running loop (Gradio does not expose it): the one running loop in the process."""
    with warnings.catch_warnings():  # isinstance on every object touches deprecated ones
        warnings.simplefilter("ignore")
        loops = [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop)]
    running = [loop for loop in loops if loop.is_running()]
    if len(running) != 1:
        sys.exit(f"expected one running event loop, found {len(running)}")
    return running[0]


def full_collections(collections: list[tuple[str, int, float]], phase: str) -> str:
    """How many full (generation 2) collections ran in the phase, and the longest."""
    ms = [took for p, generation, took in collections if p == phase and generation == 2]
    return f"{len(ms)} ({max(ms):.0f})" if ms else "0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--requests", type=int, default=8, help="drawings per client per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train", action="store_true", help="a default run trains meanwhile")
    parser.add_argument("--no-freeze", action="store_true", help="leave start-up to the GC (A/B)")
    parser.add_argument("--stack-ms", type=float, default=100, help="print what held it longer")
    args = parser.parse_args()
    print_header()

    import load_test
    from support import launch

    from mnist_demo import server

    app = launch(Path(tempfile.mkdtemp(prefix="loop-holds-runs-")))
    probe = LoopProbe(server_loop(), every=0.01, stack_ms=args.stack_ms)  # before it is frozen
    if not args.no_freeze:
        server.freeze_start_up()  # as `python app.py` does
    collections: list[tuple[str, int, float]] = []  # (phase, generation, ms): GC holds the GIL
    began: list[float] = []

    def on_gc(stage: str, info: dict) -> None:
        if stage == "start":
            began[:] = [time.perf_counter()]
        elif began:
            ms = 1000 * (time.perf_counter() - began[0])
            collections.append((probe.phase, info["generation"], ms))

    gc.callbacks.append(on_gc)
    job = app.dashboard.job
    try:
        if args.train:
            defaults = app.dashboard.train.apply_preset("fast")._asdict()
            print("#", app.dashboard.train.start(**{**defaults, "epochs": 3, "device": "cpu"}))
        clients_args = argparse.Namespace(
            clients=args.clients,
            endpoint="/predict_file",
            max_seconds=300.0,
            same_image=False,
            http=True,
        )
        clients = load_test.Clients(app.url, clients_args)
        assert clients.read() == "ready"
        rounds = []
        for number in range(1, args.rounds + 1):
            probe.phase = f"round {number}"
            rounds.append((probe.phase, clients.round(args.requests)))
        clients.close()
    finally:
        probe.stop()
        job.stop()
        job.wait(60)
        app.close()

    gc.callbacks.remove(on_gc)
    print(
        "\n| phase | calls p95 ms | holds | hold p50 ms | p99 ms | max ms | > stack-ms "
        "| gen-2 collections (longest ms) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for phase, result in rounds:
        ms = [r["ms"] for r in result["results"] if r["error"] is None]
        holds = sorted(h for p, h in probe.holds if p == phase)
        if not holds or not ms:
            continue
        p95 = load_test.percentile(ms, 0.95)
        print(
            f"| {phase} | {p95:.0f} | {len(holds)} | {holds[len(holds) // 2]:.1f} "
            f"| {load_test.percentile(holds, 0.99):.1f} | {holds[-1]:.1f} "
            f"| {sum(h > args.stack_ms for h in holds)} | {full_collections(collections, phase)} |"
        )
    for phase, held, stack in probe.stacks[:5]:
        print(f"\n== {phase}: the loop held {held:.0f} ms, here:\n{stack}")


if __name__ == "__main__":
    main()
