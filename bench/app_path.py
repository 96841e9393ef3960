"""From the Start click to the first chart point and to 99%, as a visitor's tab sees them.

The app runs alone in its own process (`python app.py`, as on a Space or with ./run.sh);
`--tabs N` simulated tabs poll the Train tab over HTTP at the page's own interval, sending
the page's own request (POST /gradio_api/component_server, ui/live.py); the first tab clicks
Start with the Train tab's defaults through the public API. A time is taken when a tab's
reply first carries a point on the loss chart, and when it first carries a full-test
accuracy (all 10,000 images, not the in-epoch sample) >= the target on the accuracy chart:
what the visitor would see, not what the job logged.
No browser renders here: bench/dashboard_overhead.py adds a Chromium tab.

    python bench/app_path.py --runs 3
    python bench/app_path.py --runs 1 --device cuda      # bench/gpu_suite.sh
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from _env import print_header

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from _tab import PageTab, full_test_accuracies  # noqa: E402
from support import TRAINING_ARGS, chart_points, free_port  # noqa: E402  (tests' helpers)

from mnist_demo.ui.common import ACTIVE_TICK  # noqa: E402


def serve(runs_dir: Path, port: int, device: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "MNIST_DEMO_RUNS_DIR": str(runs_dir),
        "MNIST_DEMO_TRAINING": "on",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    cmd = [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--device", device]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=runs_dir
    )


def wait_up(url: str, process: subprocess.Popen, timeout: float = 300) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if process.poll() is not None:
            raise SystemExit(f"the app exited with {process.returncode}")
        try:
            if httpx.get(url + "config", timeout=5).status_code == 200:
                return time.monotonic() - began
        except httpx.HTTPError:
            pass
        time.sleep(0.2)  # a server starting in another process: nothing to wait on but time
    raise SystemExit("the app did not come up")


def one_run(url: str, tabs: int, device: str, target: float, timeout: float) -> dict[str, Any]:
    seen: dict[str, float] = {}
    finished = threading.Event()
    clicked = [0.0]
    errors: list[str] = []

    def tab() -> None:
        page = PageTab(url)
        wait = ACTIVE_TICK
        while not finished.wait(wait):
            try:
                reply = page.poll()
            except (httpx.HTTPError, KeyError, ValueError) as err:
                errors.append(repr(err))
                continue
            wait = reply["every"]
            now = time.monotonic()
            charts = reply["charts"]
            if not clicked[0] or not charts or " · step " not in (reply["status"] or ""):
                continue  # before a run's first step the charts show the Draw model's curves
            if chart_points(charts[0]) and "first point" not in seen:
                seen["first point"] = now - clicked[0]
            tests = full_test_accuracies(charts[1])  # not the in-epoch sample
            if any(a >= target for a in tests) and "target" not in seen:
                seen["target"] = now - clicked[0]
                seen["at"] = max(tests)
                finished.set()
        page.close()

    threads = [threading.Thread(target=tab, daemon=True) for _ in range(tabs)]
    for thread in threads:
        thread.start()
    from gradio_client import Client

    starter = Client(url, verbose=False)
    clicked[0] = time.monotonic()
    message = starter.predict(**{**TRAINING_ARGS, "device": device}, api_name="/start_training")
    finished.wait(timeout)
    finished.set()
    for thread in threads:
        thread.join(10)
    status = starter.predict(api_name="/status")
    starter.predict(api_name="/stop_training")
    return {
        "start": message if isinstance(message, str) else message[0],
        "click to first point s": round(seen.get("first point", float("nan")), 2),
        f"click to {target:g}% s": round(seen.get("target", float("nan")), 2),
        "test % seen": seen.get("at"),
        "run's best test %": status.get("best_test_accuracy"),  # under the target: no time
        "state": status.get("state"),
        "poll errors": len(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tabs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--target", type=float, default=99.0)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    print_header(args.device)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        process = serve(Path(tmp), port, args.device)
        try:
            print(f"app up after {wait_up(url, process):.1f} s")
            for _ in range(args.runs):
                results.append(one_run(url, args.tabs, args.device, args.target, args.timeout))
                print(results[-1], flush=True)
                deadline = time.monotonic() + 60
                while (
                    httpx.post(url + "gradio_api/run/status", json={"data": []}, timeout=30).json()[
                        "data"
                    ][0]["state"]
                    in ("running", "stopping", "paused")
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.2)  # the stopped run's test pass and save, in the server
        finally:
            process.terminate()
            process.wait(30)
    for key in ("click to first point s", f"click to {args.target:g}% s"):
        print(f"median {key}: {statistics.median(r[key] for r in results):.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
