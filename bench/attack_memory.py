"""Issue 15's memory and disk attacks against `python app.py` as on a Space: RSS and cache measured.

Starts the app in a child process with `SPACE_ID` set (nothing else configured but a temp runs
folder, a temp Gradio cache and a short session idle time), then, as one anonymous client:

1. sessions that each send a drawing just under the body limit, and one 60 MB body;
2. `--images` simultaneous 6300x6300 RGBA PNGs (~150 KB each) to /predict_file;
3. one upload of 20 files of 5 MB; then many single uploads until refused or `--uploads`.

It prints the server's RSS (VmRSS) and peak (VmHWM) from /proc after each step, and the cache's
size on disk. Linux only.

    python bench/attack_memory.py                 # ~1-2 minutes on 2 cores
    python bench/attack_memory.py --sessions 20 --images 10
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def memory(pid: int) -> tuple[float, float]:
    """(RSS, peak RSS) of a process, in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return tuple(int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def noise_png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.frombytes("L", (side, side), os.urandom(side * side)).save(buffer, "PNG")
    return buffer.getvalue()


def big_rgba_png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (side, side), (0, 0, 0, 0)).save(buffer, "PNG")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--uploads", type=int, default=200, help="single 5 MB uploads at most")
    parser.add_argument("--port", type=int, default=7871)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    from _env import print_header

    print_header("cpu")
    work = Path(tempfile.mkdtemp(prefix="attack-"))
    cache = work / "gradio-cache"
    env = {
        **os.environ,
        "SPACE_ID": "bench/attack",
        "MNIST_DEMO_RUNS_DIR": str(work / "runs"),
        "GRADIO_TEMP_DIR": str(cache),
        "MNIST_DEMO_SESSION_IDLE_SECONDS": "20",
        "GRADIO_SERVER_PORT": str(args.port),
        "OMP_NUM_THREADS": "1",
    }
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py")],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{args.port}/"
    http = httpx.Client(base_url=url, timeout=120)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                deps = http.get("config").json()["dependencies"]
                break
            except (httpx.HTTPError, ValueError):
                assert time.monotonic() < deadline and server.poll() is None, "no server"
                time.sleep(0.5)  # start-up: polling a remote server, nothing to wait on
        fn = {d.get("api_name"): i for i, d in enumerate(deps)}

        def report(step: str, extra: str = "") -> None:
            rss, peak = memory(server.pid)
            disk = folder_mb(cache) if cache.exists() else 0.0
            print(f"| {step} | {rss:,.0f} | {peak:,.0f} | {disk:,.1f} | {extra} |", flush=True)

        print("\n| step | RSS MB | peak RSS MB | cache MB | answers |")
        print("|---|---|---|---|---|")
        report("started, idle")

        # 1. sessions with big drawings, and one 60 MB body
        drawing = "data:image/png;base64," + base64.b64encode(noise_png(800)).decode()
        codes: dict[int, int] = {}
        for _ in range(args.sessions):
            body = {"data": [drawing, None], "fn_index": fn["read_drawing"]}
            body["session_hash"] = uuid.uuid4().hex
            code = http.post("gradio_api/queue/join", json=body).status_code
            codes[code] = codes.get(code, 0) + 1
        huge = http.post(
            "gradio_api/queue/join",
            content=b'{"data": ["' + b"A" * (60 << 20) + b'"]}',
            headers={"content-type": "application/json"},
        ).status_code
        time.sleep(5)  # let the queued drawings run: there is no completion to wait on
        size = len(drawing) // 1024
        report(f"{args.sessions} sessions x {size} KB drawing; 60 MB body", f"{codes}; {huge}")

        # 2. simultaneous huge images
        png = big_rgba_png(6300)
        answers: list[str] = []

        def send() -> None:
            try:
                with httpx.Client(base_url=url, timeout=300) as client:
                    files = {"files": ("big.png", png, "image/png")}
                    path = client.post("gradio_api/upload", files=files).json()[0]
                    data = {"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}]}
                    event = client.post("gradio_api/call/predict_file", json=data).json()
                    text = client.get(f"gradio_api/call/predict_file/{event['event_id']}").text
                    answers.append("busy" if "busy" in text else "answered")
            except Exception as err:  # noqa: BLE001 - counted, not raised: the server is measured
                answers.append(type(err).__name__)

        threads = [threading.Thread(target=send) for _ in range(args.images)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(600)
        took = time.monotonic() - started
        summary = {a: answers.count(a) for a in sorted(set(answers))}
        report(
            f"{args.images} x 6300x6300 RGBA PNG ({len(png) // 1024} KB) at once",
            f"{summary}, {took:.0f} s",
        )

        # 3. uploads: many files in one request, then single files until refused
        five = noise_png(2200)[: 5 * 10**6 - 4096]  # just under the 5 MB per-file cap
        many = [("files", (f"f{i}.png", five, "image/png")) for i in range(20)]
        multi = http.post("gradio_api/upload", files=many).status_code
        single: dict[int, int] = {}
        for i in range(args.uploads):  # each a different file: Gradio stores equal bytes once
            distinct = five[:-8] + i.to_bytes(8, "big")
            code = http.post(
                "gradio_api/upload", files=[("files", (f"u{i}.png", distinct, "image/png"))]
            ).status_code
            single[code] = single.get(code, 0) + 1
            if code != 200:
                break
        report("20 x 5 MB in one upload; then distinct single 5 MB uploads", f"{multi}; {single}")

        time.sleep(55)  # the session idle time (20 s) plus a sweep (every 30 s)
        report("after 55 s idle (sessions swept)")
    finally:
        server.terminate()
        server.wait(30)
        http.close()


if __name__ == "__main__":
    main()
