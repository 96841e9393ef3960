"""Many visitors drawing while the one job trains: prediction latency and training throughput.

Launches the app in this process on a free loopback port. N gradio_client clients run in a
second process (so their work does not share the server's GIL) and send drawings to
/predict_file: first a short round with nothing training (the latency floor), then, after a
default-settings run has been measured alone for a baseline, M drawings each while it trains.
Every drawing is a different hand-jittered digit, as visitors' drawings are; `--same-image`
sends one file from every client instead (Gradio 6.31 rewrites an identical cached output in
place while another request may be downloading it). `--http` replaces gradio_client by plain
HTTP (upload, queue, result), which leaves out the client library's own CPU time.

    python bench/load_test.py              # bare Gradio app and this app: 3 x 20 x 25 each
    python bench/load_test.py --quick      # the same in ~1 minute (6 clients x 8)
    python bench/load_test.py --http       # the server's share alone
    python bench/load_test.py --warm-idle  # also this app warm with nothing training
    python bench/load_test.py --cache-files 75000  # an upload cache an hour of visitors left
    python bench/load_test.py --training-thread  # train in the server's thread (A/B)
    python bench/load_test.py --no-give-way  # a training thread does not pause for requests

The bare Gradio app (one File input, a handler that returns a constant) runs in a process of
its own beside this app, and the same clients run against both: a warm-up round each, this
app's first calls (idle), then, after a run has trained alone for a baseline, `--pairs`
measured rounds of each, alternating (bare, this app, bare, ...): training is paused for the
bare app's rounds, so both see the machine as it drifts. The ratio of the two p95s over all
rounds is checked against issue 15's target: <= 1.25, 0 errors, training >= 25% of its speed
alone (over this app's rounds); each round's own ratio is printed too. One round of 500 calls
lasts ~6 s and its p95 turns on a few bursts: single rounds gave 0.90-1.51 for one build.
`--no-bare` skips the bare app. Each row gives the 1-minute load average when it started.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DIGITS = "017"


# --- the clients (the second process) -----------------------------------------------------------


def draw(path: Path, rng, digit: str) -> Path:
    """A digit from the browser test's strokes, each point and the pen width jittered."""
    from PIL import Image, ImageDraw
    from support import STROKES

    image = Image.new("L", (400, 400), 255)
    pen = ImageDraw.Draw(image)
    for stroke in STROKES[digit]:
        points = [
            (200 + (x + rng.normal(0, 0.04)) * 120, 200 + (y + rng.normal(0, 0.04)) * 120)
            for x, y in stroke
        ]
        pen.line(points, fill=0, width=int(rng.integers(20, 36)), joint="curve")
    image.save(path)
    return path


class HttpVisitor:
    """One API call in plain HTTP: upload, then one POST (or join the queue and read the stream).

    gradio_client spends ~150 ms of its own CPU per call on this machine; this measures the
    server with almost none of that.
    """

    def __init__(self, url: str) -> None:
        import uuid

        import httpx

        self.http = httpx.Client(base_url=url, timeout=120)
        # One session per visitor, as a browser tab (and gradio_client) keeps: a new session
        # per call made Gradio build per-session state every time (22% of the server's CPU).
        self.session = uuid.uuid4().hex
        deps = self.http.get("config").json()["dependencies"]
        self.functions = {d.get("api_name"): i for i, d in enumerate(deps)}
        self.queued = {d.get("api_name"): d.get("queue") is not False for d in deps}

    def predict(self, value, api_name: str) -> list:
        def upload(path: str) -> dict:
            with open(path, "rb") as f:
                files = {"files": (Path(path).name, f.read(), "image/png")}
            uploaded = self.http.post("gradio_api/upload", files=files)
            uploaded.raise_for_status()
            return {"path": uploaded.json()[0], "meta": {"_type": "gradio.FileData"}}

        if api_name == "/predict":
            data = {"background": upload(value["background"]), "layers": [], "composite": None}
        else:
            data = upload(value)
        session = self.session
        body = {"data": [data], "fn_index": self.functions[api_name[1:]], "session_hash": session}
        if not self.queued[api_name[1:]]:  # an endpoint off the queue: one POST, one answer
            answer = self.http.post(f"gradio_api/run{api_name}", json=body)
            answer.raise_for_status()
            return answer.json()["data"]
        self.http.post("gradio_api/queue/join", json=body).raise_for_status()
        params = {"session_hash": session}
        with self.http.stream("GET", "gradio_api/queue/data", params=params) as stream:
            for line in stream.iter_lines():
                message = json.loads(line[5:]) if line.startswith("data:") else {}
                if message.get("msg") == "process_completed":
                    break
        if not message.get("success"):
            raise RuntimeError(f"the app answered an error: {message.get('output')}")
        return message["output"]["data"]


def worker(args: argparse.Namespace) -> None:
    """Connect N clients, say "ready", then run each round the parent asks for ("ROUND n")."""
    from gradio_client import Client

    # ssl_verify=False: gradio_client 1.x opens three httpx clients per call, and each one
    # loads the system's CA bundle into a new SSL context, even for http:// (~145 ms of CPU a
    # call, measured with yappi). On loopback http there is no TLS to verify; without this the
    # load generator alone needs 81 CPU-seconds for 500 calls on these 2 cores.
    def connect(url: str):
        return HttpVisitor(url) if args.http else Client(url, verbose=False, ssl_verify=False)

    connected = [connect(args.worker) for _ in range(args.clients)]  # not timed
    collections = Collections()
    folder = Path(tempfile.mkdtemp(prefix="load-test-"))
    atexit.register(shutil.rmtree, folder, True)
    print("ready", flush=True)
    for number, line in enumerate(sys.stdin):
        before = len(collections.pauses)
        result = run_round(args, connected, folder, number, requests=int(line.split()[1]))
        result["client_gc"] = collections.since(before)
        gc.collect()  # the round's garbage, between rounds (see run_round)
        print(json.dumps(result), flush=True)


def run_round(args, connected: list, folder: Path, number: int, requests: int) -> dict:
    """Every client sends `requests` drawings, one after another, all clients at once."""
    import numpy as np
    from gradio_client import handle_file

    same = draw(folder / "same.png", np.random.default_rng(0), DIGITS[0])
    results: list[dict] = []
    cpu: dict[str, dict[str, float]] = {}  # at the barrier (drawings made) and at the end
    server = args.server_pid
    began = [0.0]  # when every client has its drawings: the round's clock starts

    def at_barrier() -> None:
        # The load generator's own full collections (127-182 ms over gradio_client's
        # objects, one in every round) stall all its clients at once: a burst of slow calls
        # that is not the server's. It collects between rounds instead.
        gc.disable()
        cpu.setdefault("start", cpu_seconds(server))
        began[0] = time.perf_counter()

    barrier = threading.Barrier(len(connected), action=at_barrier)
    deadline = time.monotonic() + args.max_seconds

    def visitor(c: int) -> None:
        client, rng = connected[c], np.random.default_rng([number, c])
        paths = [  # drawn before the round: the load is the calls, not making the drawings
            same
            if args.same_image
            else draw(folder / f"{c}-{r}.png", rng, DIGITS[(c + r) % len(DIGITS)])
            for r in range(requests)
        ]
        barrier.wait()
        for r in range(requests):
            if time.monotonic() > deadline:
                break
            path = paths[r]
            digit = DIGITS[0] if args.same_image else DIGITS[(c + r) % len(DIGITS)]
            value = str(path) if args.http else handle_file(str(path))
            if args.endpoint == "/predict":
                value = {"background": value, "layers": [], "composite": None}
            start = time.perf_counter()
            try:
                out = client.predict(value, api_name=args.endpoint)
                answer = out if isinstance(out, dict) else out[0]  # gradio_client vs raw HTTP
                got = answer["label"]
                error = None if got is not None else f"no digit: {answer['note'][:80]}"
            except Exception as err:  # counted and reported, never fatal
                got, error = None, f"{type(err).__name__}: {str(err)[:120]}"
            ms = 1000 * (time.perf_counter() - start)
            at = start - began[0]  # seconds into the round
            results.append(dict(ms=ms, error=error, right=got == digit, at=at))

    started = time.perf_counter()
    threads = [threading.Thread(target=visitor, args=(c,)) for c in range(len(connected))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(args.max_seconds + 120)
    end = cpu_seconds(server)
    gc.enable()
    used = {k: v - cpu["start"][k] for k, v in end.items()} if "start" in cpu else None
    seconds = time.perf_counter() - started
    return dict(seconds=seconds, results=results, cpu=used, began=began[0])


# --- the server, the run and the report (this process) ------------------------------------------


class Clients:
    """The client process, driven line by line; every read has a deadline."""

    def __init__(self, url: str, args: argparse.Namespace, server_pid: int) -> None:
        command = [sys.executable, __file__, "--worker", url, "--clients", str(args.clients)]
        command += ["--server-pid", str(server_pid)]
        command += ["--endpoint", args.endpoint, "--max-seconds", str(args.max_seconds)]
        command += ["--same-image"] if args.same_image else []
        command += ["--http"] if args.http else []
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.timeout = args.max_seconds + 300

    def _pump(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def read(self) -> str:
        line = self.lines.get(timeout=self.timeout)
        if line is None:
            sys.exit(f"the client process ended (exit code {self.process.wait()})")
        return line

    def round(self, requests: int) -> dict:
        load = f"{os.getloadavg()[0]:.1f}"  # before: the round itself adds to it
        self.process.stdin.write(f"ROUND {requests}\n")
        self.process.stdin.flush()
        while not (line := self.read()).startswith("{"):  # skip anything a library printed
            continue
        return {**json.loads(line), "load": load}

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(60)


def cpu_seconds(server_pid: int) -> dict[str, float]:
    """CPU seconds so far: the machine's busy and idle, the server process's (its training
    process's not included), this (client) process's."""
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait

    def process(pid: int | str) -> float:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / tick  # utime + stime

    return dict(
        busy=(sum(fields[:8]) - idle) / tick,
        idle=idle / tick,
        server=process(server_pid),
        clients=process("self"),
    )


def cpu_line(name: str, load: dict) -> str:
    """Where a round's CPU went, in cores (of os.cpu_count()) over its wall time."""
    used = load["cpu"]
    seconds = (used["busy"] + used["idle"]) / (os.cpu_count() or 1)  # the timed part's wall
    per_call = 1000 * (used["server"] + used["clients"]) / max(1, len(load["results"]))
    return (
        f"- {name}: server {used['server'] / seconds:.2f} cores, clients "
        f"{used['clients'] / seconds:.2f}, machine idle {used['idle'] / seconds:.2f} of "
        f"{os.cpu_count()}; server + clients {per_call:.1f} CPU-ms a call"
    )


class Collections:
    """The garbage collector's pauses in this process (gc.callbacks): (generation, seconds)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._began = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._began))

    def since(self, n: int) -> str:
        """The collections after the first `n`: how many, and the longest."""
        pauses = self.pauses[n:]
        if not pauses:
            return "none"
        longest = max(pauses, key=lambda p: p[1])
        full = sum(1 for g, _ in pauses if g == 2)
        return f"{len(pauses)} ({full} full), longest {1000 * longest[1]:.0f} ms (gen {longest[0]})"


def tail_starts(results: list[dict]) -> str:
    """When the round's slowest 5% of calls started, in seconds from its start."""
    ms = [r["ms"] for r in results if r["error"] is None]
    if not ms:
        return "–"
    slow = percentile(ms, 0.95)
    starts = sorted(r["at"] for r in results if r["error"] is None and r["ms"] >= slow)
    span = max(r["at"] for r in results)
    return f"started at {', '.join(f'{t:.1f}' for t in starts)} s of {span:.1f} s"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def row(name: str, load: dict, expected: int, train: str) -> tuple[str, list[float], list[str]]:
    """A table row for one round of calls, and the round's times and errors."""
    results = load["results"]
    ms = [r["ms"] for r in results if r["error"] is None]
    errors = [r["error"] for r in results if r["error"] is not None]
    timing = (
        f"{statistics.median(ms):.0f} | {percentile(ms, 0.95):.0f} | {max(ms):.0f}"
        if ms
        else "– | – | –"
    )
    line = (
        f"| {name} | {len(results)}/{expected} | {len(errors)} "
        f"| {sum(r['right'] for r in results)} | {timing} "
        f"| {len(results) / load['seconds']:.1f} | {train} | {load.get('load', '–')} |"
    )
    return line, ms, errors


def serve_bare() -> None:
    """A bare Gradio app with the same endpoint and outputs and a trivial handler, served in
    this process (its own, as a Space's would be) until stdin closes; prints its URL."""
    import gradio as gr
    from support import free_port

    from mnist_demo import server

    with gr.Blocks() as demo:
        file, label, note = gr.File(type="filepath"), gr.Label(), gr.Markdown()
        gr.Button().click(
            lambda path: ({"7": 1.0}, "bare"), file, [label, note], api_name="predict_file"
        )
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True)
    server.freeze_start_up()  # as `python app.py` does for this app
    print(f"url http://127.0.0.1:{port}/", flush=True)
    sys.stdin.read()  # until the bench closes it
    demo.close()


class BareApp:
    """The bare Gradio app in a process of its own, alive beside this app, so that its rounds
    and this app's can alternate: the machine's drift falls on both alike."""

    def __init__(self) -> None:
        command = [sys.executable, __file__, "--bare-server"]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for line in self.process.stdout:
            if line.startswith("url "):
                self.url = line.split()[1]
                return
        sys.exit(f"the bare app did not start (exit code {self.process.wait()})")

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=25, help="predictions per client")
    parser.add_argument("--idle-requests", type=int, default=2, help="per client, before training")
    parser.add_argument(
        "--warm-idle",
        action="store_true",
        help="after the idle round, a measured one of --requests with nothing training yet: "
        "this app's own cost against the bare app's",
    )
    endpoints = ["/predict_file", "/predict"]
    parser.add_argument("--endpoint", default=endpoints[0], choices=endpoints)
    parser.add_argument("--baseline-seconds", type=float, default=10.0)
    parser.add_argument("--max-seconds", type=float, default=300.0, help="cap on each round")
    parser.add_argument("--epochs", type=int, default=12, help="enough to outlast the load")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--train-threads",
        type=int,
        default=0,
        help="the app's MNIST_DEMO_TRAIN_THREADS (0 = all cores)",
    )
    parser.add_argument("--same-image", action="store_true", help="one file from every client")
    parser.add_argument("--http", action="store_true", help="plain HTTP clients, not gradio_client")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare Gradio app")
    parser.add_argument(
        "--training-thread",
        action="store_true",
        help="train in a thread of the server, not a process of its own as the app does (A/B)",
    )
    parser.add_argument(
        "--no-give-way", action="store_true", help="training never pauses for requests (A/B)"
    )
    parser.add_argument(
        "--give-way-share",
        type=float,
        default=None,
        help="training's floor while it gives way (default: the app's JobLimits)",
    )
    parser.add_argument(
        "--niceness",
        type=int,
        default=None,
        help="training's, thread or process (default: the app's)",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="the server process's sys.setswitchinterval, seconds (default: the app's)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="6 clients x 8, 5 s baseline, 3 epochs (~1 min)"
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=3,
        help="measured rounds of each app, alternating bare / this app (training paused for "
        "the bare app's); the ratio is over all of them",
    )
    parser.add_argument(
        "--cache-files",
        type=int,
        default=0,
        help="uploads already in the (new) upload cache, as an hour of visitors leaves them",
    )
    parser.add_argument(
        "--dump", default=None, help="write every round's calls (JSON) here, for a closer look"
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # the clients' URL
    parser.add_argument("--server-pid", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.clients, args.requests, args.baseline_seconds, args.epochs = 6, 8, 5.0, 3
        args.pairs = 1
    root = Path(__file__).resolve().parent.parent
    sys.path[:0] = [str(root), str(root / "tests")]  # this tree's app, not an installed one
    if args.worker:
        return worker(args)
    if args.bare_server:
        return serve_bare()
    # Both apps' upload caches (read when gradio is imported): the machine's own /tmp/gradio
    # held 75,000 uploads from earlier runs, which this app's cache meter walks
    cache = Path(tempfile.mkdtemp(prefix="load-test-cache-"))
    atexit.register(shutil.rmtree, cache, True)
    os.environ["GRADIO_TEMP_DIR"] = str(cache)
    fill_cache(cache, args.cache_files)

    from _env import print_header
    from support import launch  # the same launcher the api and browser tests use

    from mnist_demo import job as job_module
    from mnist_demo import server
    from mnist_demo.job import JobLimits
    from mnist_demo.training import resolve_device

    device = str(resolve_device(args.device))
    print_header(device)
    kind = "plain-HTTP" if args.http else "gradio_client"
    print(f"# load: {args.clients} {kind} clients x {args.requests} {args.endpoint}, loopback only")
    print(f"# upload cache: a new folder, {args.cache_files:,} uploads in it to begin with")
    bare = bare_clients = bare_idle = None
    if not args.no_bare:
        bare = BareApp()
        bare_clients = Clients(bare.url, args, bare.process.pid)
        assert bare_clients.read() == "ready"
        if args.idle_requests:  # warm-up, as the app's idle round is
            bare_idle = bare_clients.round(args.idle_requests)
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    if args.niceness is not None:  # read when a run (or the training process) starts
        job_module.TRAINING_NICENESS = job_module.PROCESS_NICENESS = args.niceness
    limits = JobLimits()
    if args.no_give_way or args.give_way_share is not None:
        limits = JobLimits(give_way_share=1.0 if args.no_give_way else args.give_way_share)
    runs = Path(tempfile.mkdtemp(prefix="load-test-runs-"))
    atexit.register(shutil.rmtree, runs, True)
    from mnist_demo.settings import AppSettings

    # (an older tree, for A/B, has no training process: it trains in a thread)
    process = {"training_process": not args.training_thread}
    has_process = "training_process" in AppSettings.__dataclass_fields__
    app = launch(
        runs, train_threads=args.train_threads, limits=limits, **(process if has_process else {})
    )
    server.freeze_start_up()  # as `python app.py` does: no full collections over start-up's
    dashboard, demo = app.dashboard, app.demo
    job = dashboard.job
    clients = Clients(app.url, args, os.getpid())
    server_gc = Collections()
    pairs: list[tuple[dict | None, dict, tuple[float | None, int, float]]] = []
    try:
        assert clients.read() == "ready"
        idle = clients.round(args.idle_requests) if args.idle_requests else None
        warm = clients.round(args.requests) if args.warm_idle else None
        defaults = dashboard.train.apply_preset("fast")._asdict()  # the Train tab's, untouched
        started = dashboard.train.start(**{**defaults, "epochs": args.epochs, "device": device})
        print(f"# training: {started} (fast preset, {args.epochs} epochs)", flush=True)
        deadline = time.monotonic() + 120
        while job.snapshot().latest_step is None:  # data loading, then the first 10 steps
            assert time.monotonic() < deadline and not job.wait(0.2), job.snapshot().message
        base_from = job.snapshot().n_records - 1
        base_load = f"{os.getloadavg()[0]:.1f}"
        time.sleep(args.baseline_seconds)  # the measurement window itself
        snap = job.snapshot()
        batch = snap.config["batch_size"]
        base_rate, base_steps, _ = training_during(snap.records[base_from:], batch)
        gc_before = len(server_gc.pauses)
        for _ in range(args.pairs):
            bare_round = None
            if bare_clients is not None:
                job.pause()
                time.sleep(PAUSE_SETTLE)  # the step in progress ends; then nothing trains
                bare_round = bare_clients.round(args.requests)
                job.resume()
                seen = job.snapshot().n_records
                while job.snapshot().n_records == seen:  # training again before the load
                    assert not job.wait(0.05), job.snapshot().message
            load_from = job.snapshot().n_records - 1
            load = clients.round(args.requests)
            snap = job.snapshot()
            pairs.append((bare_round, load, training_during(snap.records[load_from:], batch)))
            if snap.state != "running":
                print(f"# the run ended ({snap.state}) after {len(pairs)} pair(s)", flush=True)
                break
        server_gc_line = server_gc.since(gc_before)
    finally:
        clients.close()
        if bare_clients is not None:
            bare_clients.close()
            bare.close()
        job.stop()
        job.wait(60)
        demo.close()
    if args.dump:  # every call: when it started (s into its round) and how long it took
        rounds = {"idle": idle, "warm": warm, "pairs": [p[:2] for p in pairs]}
        rounds["records"] = [r for r in job.snapshot().records if r.get("kind") != "start"]
        rounds["run_started_at"] = getattr(job._run, "started_at", None)  # records' "wall" 0
        Path(args.dump).write_text(json.dumps(rounds, default=str))
    report(
        args,
        Measurements(
            bare_idle,
            idle,
            warm,
            pairs,
            base_rate,
            base_steps,
            base_load,
            server_gc_line,
            limits,
            has_process,
        ),
    )


@dataclass
class Measurements:
    """Everything one run of the bench measured, for the report."""

    bare_idle: dict | None  # the bare app's first calls
    idle: dict | None  # this app's first calls, nothing training
    warm: dict | None  # --warm-idle: a measured round, nothing training
    pairs: list[tuple[dict | None, dict, tuple[float | None, int, float]]]  # bare, app, training
    base_rate: float | None  # training alone, images a second
    base_steps: int
    base_load: str
    server_gc: str
    limits: Any
    has_process: bool


def fill_cache(cache: Path, files: int) -> None:
    """`files` uploads of 300 bytes, each in a folder of its own as Gradio stores them."""
    for n in range(files):
        folder = cache / f"{n:040x}"
        folder.mkdir()
        (folder / "image.png").write_bytes(bytes(300))


PAUSE_SETTLE = 1.0  # seconds for a paused run's last step to end before the bare app's round


def training_during(records: list[dict], batch_size: int) -> tuple[float | None, int, float]:
    """Training's images a second over `records`, its steps, and its seconds of training."""
    from mnist_demo.records import of_kind

    steps = of_kind(records, "step")
    pairs = list(zip(steps, steps[1:], strict=False))
    seconds = sum(b["train_seconds"] - a["train_seconds"] for a, b in pairs)
    done = steps[-1]["step"] - steps[0]["step"] if steps else 0
    return (done * batch_size / seconds if seconds > 0 else None), done, seconds


def report(args: argparse.Namespace, run: Measurements) -> None:
    """The table, where the CPU went, and the ratio against issue 15's target."""
    from mnist_demo import job as job_module

    pairs, idle, warm = run.pairs, run.idle, run.warm
    base_rate, base_steps, base_load = run.base_rate, run.base_steps, run.base_load
    expected = args.clients * args.requests
    print(
        "\n| round | done | errors | read right | p50 ms | p95 ms | max ms | req/s "
        "| training img/s (steps) | load avg |"
    )
    print("|---" * 10 + "|")
    idle_errors: list[str] = []
    if run.bare_idle:  # a new session's first calls cost more, in any Gradio app
        first = args.clients * args.idle_requests
        print(row("bare Gradio app, first calls", run.bare_idle, first, "–")[0])
    if idle:
        idle_line, _, idle_errors = row(
            "this app, first calls, no training", idle, args.clients * args.idle_requests, "–"
        )
        print(idle_line)
    warm_ms: list[float] = []
    if warm:
        warm_line, warm_ms, _ = row(
            f"warm, no training, {args.clients} x {args.requests}", warm, expected, "–"
        )
        print(warm_line)
    alone = f"{base_rate:,.0f} ({base_steps})" if base_rate else "–"
    window = f"training alone, {args.baseline_seconds:.0f} s"
    print(f"| {window} | – | – | – | – | – | – | – | {alone} | {base_load} |")
    bare_all: list[dict] = []
    load_all: list[dict] = []
    errors: list[str] = []
    bare_errors: list[str] = []
    images = seconds = 0.0
    steps = 0
    for n, (bare, load, (rate, done, train_seconds)) in enumerate(pairs, 1):
        if bare:
            line, _, found = row(f"bare Gradio app, round {n}", bare, expected, "–")
            print(line)
            bare_all += bare["results"]
            bare_errors += found
        train = f"{rate:,.0f} ({done})" if rate else f"– ({done})"
        line, _, found = row(f"this app while training, round {n}", load, expected, train)
        print(line)
        load_all += load["results"]
        errors += found
        images, seconds, steps = (
            images + (rate or 0) * train_seconds,
            seconds + train_seconds,
            steps + done,
        )
    load_rate = images / seconds if seconds else None
    print()
    for n, (bare, load, _) in enumerate(pairs, 1):
        for name, measured in ((f"bare, round {n}", bare), (f"while training, round {n}", load)):
            if measured and measured.get("cpu"):
                print(cpu_line(name, measured))
    for name, measured in (("idle", idle), ("warm, no training", warm)):
        if measured and measured.get("cpu"):
            print(cpu_line(name, measured))
    for name, found in (("idle", idle_errors), ("while training", errors)):
        for error in sorted(set(found))[:5]:
            print(f"- {name}: error x{found.count(error)}: {error}")
    complete = len(load_all) == expected * len(pairs)
    in_thread = args.training_thread or not run.has_process
    nice = getattr(job_module, "TRAINING_NICENESS" if in_thread else "PROCESS_NICENESS")
    limits = run.limits
    print(
        f"\ntargets: zero errors {'yes' if complete and not errors else 'NO'}; "
        f"training in {'a thread' if in_thread else 'a process'}; give way "
        f"{'off' if args.no_give_way else f'on ({limits.give_way_share:.0%} floor)'}, "
        f"training at nice {nice}; training progressing {'yes' if steps > 0 else 'NO'} "
        f"({len(pairs)} round(s) of each app, alternating; training paused for the bare app's)"
    )
    for n, (bare, load, _) in enumerate(pairs, 1):
        for name, measured in ((f"bare, round {n}", bare), (f"while training, round {n}", load)):
            if measured:  # where the slowest 5% fell: in bursts, or spread over the round
                print(f"slowest 5%, {name}: {tail_starts(measured['results'])}")
    clients_gc = "; ".join(str(load.get("client_gc")) for _, load, _ in pairs)
    print(f"garbage collections while training: server {run.server_gc}; clients {clients_gc}")
    bare_ms = [r["ms"] for r in bare_all if r["error"] is None]
    ms = [r["ms"] for r in load_all if r["error"] is None]
    if bare_ms and warm_ms:
        own = percentile(warm_ms, 0.95) / percentile(bare_ms, 0.95)
        print(f"ratio with nothing training: p95 / bare Gradio p95 = {own:.2f}")
    if bare_ms and ms:
        each = [
            percentile([r["ms"] for r in load["results"] if r["error"] is None], 0.95)
            / percentile([r["ms"] for r in bare["results"] if r["error"] is None], 0.95)
            for bare, load, _ in pairs
        ]
        ratio = percentile(ms, 0.95) / percentile(bare_ms, 0.95)
        kept = load_rate / base_rate if load_rate and base_rate else 0.0
        print(
            f"ratio of each round: {', '.join(f'{r:.2f}' for r in each)}\n"
            f"ratio: p95 while training / bare Gradio p95 = {ratio:.2f} over {len(pairs)} "
            f"round(s) of each ({percentile(ms, 0.95):.0f} / {percentile(bare_ms, 0.95):.0f} "
            f"ms; {'<=' if ratio <= 1.25 else '>'} 1.25); training kept {kept:.0%} of its "
            f"speed alone ({'>=' if kept >= 0.25 else '<'} 25%); bare errors {len(bare_errors)}"
        )


if __name__ == "__main__":
    main()
