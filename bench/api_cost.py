"""Where one API call's time goes: upload, the predict request, a bare GET, and our handler.

The idle app in this process; one plain-HTTP client in a second process making 50 calls of
each kind one after another, so nothing queues: this is the per-call cost that bounds how
many calls a second the server can answer under load (bench/load_test.py).

    python bench/api_cost.py
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _env import print_header

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support import draw_digit_png, launch  # noqa: E402

CALLS = 50
CLIENT = r"""
import json, sys, time
import httpx
url, png, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
http = httpx.Client(base_url=url, timeout=60)
deps = http.get("config").json()["dependencies"]
fn = {d.get("api_name"): i for i, d in enumerate(deps)}["predict_file"]
data = open(png, "rb").read()

def upload():
    answer = http.post("gradio_api/upload", files={"files": ("7.png", data, "image/png")})
    answer.raise_for_status()
    return answer.json()[0]

def predict(path):  # the queue protocol, as gradio_client speaks it
    body = {"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}], "fn_index": fn,
            "session_hash": "cost"}
    http.post("gradio_api/queue/join", json=body).raise_for_status()
    with http.stream("GET", "gradio_api/queue/data", params={"session_hash": "cost"}) as s:
        for line in s.iter_lines():
            if '"process_completed"' in line:
                return json.loads(line[5:])["output"]["data"][0]["label"]

def mean_ms(fn, *args):
    start = time.perf_counter()
    results = [fn(*args) for _ in range(calls)]
    return round(1000 * (time.perf_counter() - start) / calls, 1), results[-1]

for _ in range(5):
    predict(upload())
upload_ms, path = mean_ms(upload)
predict_ms, label = mean_ms(predict, path)
config_ms, _ = mean_ms(lambda: http.get("config"))
print(json.dumps(dict(upload_ms=upload_ms, predict_ms=predict_ms, get_config_ms=config_ms,
                      label=label)))
"""


def main() -> None:
    print_header("cpu")
    app = launch(Path(tempfile.mkdtemp(prefix="bench-runs-")))
    png = draw_digit_png(Path(tempfile.mkdtemp()) / "7.png", "7")
    try:
        client = subprocess.run(
            [sys.executable, "-c", CLIENT, app.url, str(png), str(CALLS)],
            capture_output=True,
            text=True,
            check=True,
        )
        over_http = json.loads(client.stdout.strip().splitlines()[-1])
        value = {"path": str(png)}  # the FileData that Gradio hands the handler
        loop = asyncio.new_event_loop()  # the handler is a coroutine (it reads on the loop)
        for _ in range(5):
            loop.run_until_complete(app.dashboard.api.predict_api(value))
        start = time.perf_counter()
        for _ in range(CALLS):
            loop.run_until_complete(app.dashboard.api.predict_api(value))
        loop.close()
        handler_ms = round(1000 * (time.perf_counter() - start) / CALLS, 1)
    finally:
        app.close()
    print(json.dumps({**over_http, "handler_ms": handler_ms}))


if __name__ == "__main__":
    main()
