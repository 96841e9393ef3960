"""The Train tab's live view: the status line and the three charts, sent to the page.

A `gr.Timer` event costs the browser Gradio's whole event round trip on every poll (loading
states for each output, the component updates): a Train tab watching a run cost headless
Chromium 0.13-0.14 of a core that way, on the cores a local run trains on. Here one `gr.HTML`
holds the status line and the loss and accuracy charts (the throughput chart is a second,
static `gr.HTML` beside the figure), and its own script writes `TrainTab.poll`'s answers into
those elements. While a run is live and the tab is shown the answers come down one
server-sent event stream (`LiveStream`); otherwise (idle, in the background, or where no
stream can be had) the page polls the same function through Gradio's server functions (a
POST to /component_server per answer). What changes once per epoch or per run
(the figure, the downloads, the Draw tab's re-scoring) still follows Gradio events, which
the page starts when an answer says they moved (`TrainTab.watch`, through a hidden button).

Each answer carries an opaque key (what the tab has been sent): the stream keeps it, a polling
page sends it back, so each answer holds only what moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import math
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..guards import refuse
from .common import ACTIVE_TICK, WATCH_BUTTON

log = logging.getLogger(__name__)

# The elements the poll writes into (the ids are the ones the charts had as components). The
# throughput chart is a gr.HTML of its own, beside the tutorial's figure in the next row.
SKELETON = """<div id="status"></div>
<div class="chart-row"><div id="loss-plot"></div><div id="acc-plot"></div></div>"""
SPEED_SKELETON = '<div class="live-chart"></div>'
SPEED_CHART = "#speed-plot .live-chart"
STREAM_URL = "live/stream"  # relative to the page, so it follows a Space's or proxy's prefix

# `element` and `server` are given by gr.HTML's js_on_load. The page polls `TrainTab.poll`
# through the server function at the pace each answer asks (`every`; polls start that far
# apart, the round trip included). While a run is live (`live`) and the tab is shown, it
# switches to the stream (`LiveStream`), which the server ends with an "idle" event once the
# run is over: an idle tab or a hidden one holds no connection (a browser has 6 per host over
# HTTP/1.1, and Gradio's heartbeat takes one per tab). Where no stream can be had (refused,
# or all in use) the page keeps polling. A failed poll (the server restarting, a network
# blip) is retried at the idle pace. Nothing starts before every chart's element is mounted
# (the first answer could come before the throughput chart's gr.HTML exists). A chart whose
# SVG did not change is not rewritten. When an answer's `watch` changed, the page clicks the
# hidden button whose Gradio event brings the per-epoch and per-run views (TrainTab.watch).
POLL_JS = """
const status = element.querySelector('#status');
const charts = () => [element.querySelector('#loss-plot'), element.querySelector('#acc-plot'),
  document.querySelector('%(speed)s')];
let key = null, source = null, streams = true, timer = null, polling = false, watched = null;
function show(reply) {
  if (reply.watch != null && reply.watch !== watched) {
    const button = document.getElementById('%(watch)s');
    if (button !== null) {
      watched = reply.watch;
      button.click();
    }
  }
  if (reply.status !== null) status.innerHTML = reply.status;
  if (reply.charts) charts().forEach((chart, i) => {
    if (chart.__drawn !== reply.charts[i]) {
      chart.innerHTML = reply.charts[i];
      chart.__drawn = reply.charts[i];
    }
  });
}
async function poll() {
  if (polling || source !== null) return;
  polling = true;
  clearTimeout(timer);
  const began = performance.now();
  let wait = %(idle)s, live = false;
  try {
    const reply = await server.poll(key);
    key = reply.key ?? key;
    show(reply);
    live = reply.live;
    wait = document.hidden ? Math.max(reply.every, %(idle)s) : reply.every;
  } finally {
    polling = false;
    if (live && streams && !document.hidden) stream();
    else timer = setTimeout(poll, Math.max(0, wait * 1000 - (performance.now() - began)));
  }
}
function drop() {
  if (source !== null) source.close();
  source = null;
  key = null;  // the next poll answers everything
}
function stream() {
  let heard = false;
  const own = source = new EventSource('%(stream)s');
  own.onmessage = (event) => { heard = true; show(JSON.parse(event.data)); };
  own.addEventListener('idle', () => { if (source === own) { drop(); poll(); } });
  own.onerror = () => {
    if (source !== own || own.readyState !== EventSource.CLOSED) return;  // it reconnects
    streams = heard;  // refused from the start: this server has no stream for this tab
    drop();
    poll();
  };
}
function start() {
  if (charts().includes(null)) return setTimeout(start, 100);
  poll();
}
document.addEventListener('visibilitychange', () => {
  if (document.hidden && source !== null) {
    drop();
    poll();
  } else if (!document.hidden) {
    poll();  // at once: a run may have started meanwhile
  }
});
start();
"""


def poll_js(idle_seconds: float) -> str:
    """The page's script: polls (at least `idle_seconds` apart when hidden or after a failed
    poll), and the stream while a run is live and the tab is shown."""
    return POLL_JS % {
        "idle": idle_seconds,
        "speed": SPEED_CHART,
        "stream": STREAM_URL,
        "watch": WATCH_BUTTON,
    }


def markdown_line_html(line: str) -> str:
    """HTML for one status line in the Markdown subset it uses: text and **bold**."""
    escaped = html.escape(line, quote=False)
    return "<p>" + re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped) + "</p>"


class LiveStream:
    """ASGI middleware: GET .../live/stream answers the Train tab's live view as server-sent
    events, one `poll(key)` answer each time it moved, `every` seconds apart.

    A poll through Gradio's server functions is one HTTP request per update, and in headless
    Chromium the requests cost about as much as drawing what they bring (BENCHMARKS.md, tenth
    session); a stream sends the same answers down one open response. The stream keeps the
    key, so the page sends nothing back. At most `max_streams` are open at once (a visitor
    cannot hold the server's connections or its poll thread): beyond that, 503, and the page
    polls instead. Once answers have asked for the idle pace for `idle_seconds` (no run is
    live) the stream sends an "idle" event and ends, and the page polls until a run starts.
    A stream also ends after `max_seconds` (the browser opens a new one), when its visitor
    leaves, and when the server stops (Gradio's stop_event, as its heartbeats do), so that
    closing the app never waits on an open tab.
    """

    def __init__(
        self,
        app: Any,
        poll: Callable[[Any], dict[str, Any]],
        max_streams: int = 64,
        max_seconds: float = 600.0,
        idle_seconds: float = 30.0,
    ) -> None:
        self.app, self.poll = app, poll
        self.max_streams, self.max_seconds = max_streams, max_seconds
        self.idle_seconds = idle_seconds
        self.open = 0
        # one thread for every stream's polls: each is short (the charts are built once per
        # record for all tabs) and a stream waits for its own answer only
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="live-stream")

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/" + STREAM_URL):
            return await self.app(scope, receive, send)
        if scope.get("method") != "GET":
            return await refuse(send, 405, "The live stream is read with GET.")
        if self.open >= self.max_streams:  # the page polls instead
            return await refuse(send, 503, "Every live stream is in use; poll instead.")
        self.open += 1
        try:
            await self._stream(scope, receive, send)
        finally:
            self.open -= 1

    async def _stream(self, scope: dict, receive: Callable, send: Callable) -> None:
        loop = asyncio.get_running_loop()
        stop = getattr(scope.get("app"), "stop_event", None)  # set by Blocks.close()
        gone = asyncio.Event()

        async def watch() -> None:  # the visitor left: stop at once
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        def over() -> bool:
            return gone.is_set() or (stop is not None and stop.is_set()) or loop.time() > ends

        watcher = asyncio.create_task(watch())
        key, ends, idle_since = None, loop.time() + self.max_seconds, math.inf
        try:
            await send({"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS})
            # the browser reopens an ended stream after this many ms (its default is ~3 s)
            await send({"type": "http.response.body", "body": b"retry: 500\n\n", "more_body": True})
            while not over():
                reply = await loop.run_in_executor(self.executor, self.poll, key)
                idle_since = math.inf if reply["live"] else min(idle_since, loop.time())
                if loop.time() - idle_since >= self.idle_seconds:
                    await send({"type": "http.response.body", "body": IDLE, "more_body": True})
                    break
                if reply["key"] is not None:
                    key = reply["key"]
                    event = b"data: " + json.dumps(reply).encode() + b"\n\n"
                    await send({"type": "http.response.body", "body": event, "more_body": True})
                # at the live pace even when idle: an unchanged answer sends nothing, and a
                # run started from another tab shows here within one tick
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(gone.wait(), min(reply["every"], ACTIVE_TICK))
            if not gone.is_set():
                await send({"type": "http.response.body", "body": b""})
        except Exception:  # a failed poll ends this stream only; the browser opens another
            log.exception("live stream failed")
        finally:
            watcher.cancel()


IDLE = b"event: idle\ndata: {}\n\n"  # no run is live: the page goes back to polling
STREAM_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),  # proxies pass each event on at once
]
