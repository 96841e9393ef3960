"""From `python app.py` to the app's first answer, as a user (or a Space) waits for it.

Starts `python app.py` from this tree with a fresh runs folder and a free port, polls `/`
until it answers 200, and prints the seconds and the server's RSS at that moment (VmRSS from
/proc, Linux), then stops it. Each run is a new process: imports and the warm-up drawing are
paid every time, as after a reboot (the OS's file cache aside).

    python bench/startup.py --runs 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _env import print_header

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support import free_port  # noqa: E402


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def one_start(timeout: float) -> tuple[float, float | None]:
    """Seconds from launch to the first 200 on `/`, and the RSS then."""
    port = free_port()
    env = {**os.environ, "MNIST_DEMO_RUNS_DIR": tempfile.mkdtemp(prefix="startup-runs-")}
    env["GRADIO_SERVER_PORT"] = str(port)
    began = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while time.perf_counter() - began < timeout:
            if server.poll() is not None:
                sys.exit(f"app.py exited with code {server.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                    return time.perf_counter() - began, rss_mb(server.pid)
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        sys.exit(f"no answer within {timeout} s")
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    print_header()
    seconds = []
    for run in range(1, args.runs + 1):
        took, rss = one_start(args.timeout)
        seconds.append(took)
        memory = f"{rss:,.0f} MB" if rss is not None else "unknown"
        print(f"run {run}: up after {took:.2f} s, RSS {memory}", flush=True)
    print(f"median: {statistics.median(seconds):.2f} s")


if __name__ == "__main__":
    main()
