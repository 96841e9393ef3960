"""Web-side caps: request sizes, the upload cache, idle sessions and readable type errors.

Gradio 6.31 accepts any request body (a 60 MB drawing went into a visitor's session), keeps
every session until 10,000 exist (a session without a browser is never closed), caps upload
size per file only (20 files of 5 MB in one request were kept) and answers a wrongly typed
value with HTTP 500 and no message. These guards sit around the app Gradio builds.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.utils import _parse_file_size

from . import folder_size

log = logging.getLogger(__name__)

UPLOAD_PATH = "/gradio_api/upload"
MULTIPART_SLACK = 64 * 1024  # bytes of multipart framing allowed on top of one file
WALK_TIMEOUT = 300.0  # seconds: a walk of the upload cache taking longer is given up


class BodyLimit:
    """ASGI middleware: refuse request bodies over a size with 413, before Gradio reads them.

    An upload may carry one file up to `max_file` (plus framing); any other request (a queue
    join, a drawing's data URL) `max_body`. Bodies are counted as they arrive, so a chunked
    request without a Content-Length is cut off too. Uploads are also refused (507) while the
    upload cache holds `cache_bytes` or more, until Gradio's delete_cache frees it.
    """

    def __init__(
        self,
        app: Any,
        max_body: int,
        max_file: int,
        cache_dir: str | None = None,
        cache_bytes: int | None = None,
    ) -> None:
        self.app, self.max_body, self.max_upload = app, max_body, max_file + MULTIPART_SLACK
        self.cache = CacheMeter(Path(cache_dir), cache_bytes) if cache_dir and cache_bytes else None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        upload = scope.get("path", "").endswith(UPLOAD_PATH)
        limit = self.max_upload if upload else self.max_body
        if upload and self.cache is not None and self.cache.full():
            return await refuse(send, 507, "The upload cache is full; try again in a while.")
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:  # the server stops reading at the length declared
            if not length.isdigit() or int(length) > limit:
                return await refuse(send, 413, _too_large(limit))
            if upload and self.cache is not None:
                self.cache.add(int(length))
            return await self.app(scope, receive, send)
        # Chunked, no length: read up to the limit here, then hand the app what was read.
        # (An error raised inside the app's receive would reach the client as a 400.)
        messages, received = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > limit:
                return await refuse(send, 413, _too_large(limit))
            if not message.get("more_body", False):
                break
        if upload and self.cache is not None:
            self.cache.add(received)
        replay = iter(messages)

        async def replayed() -> dict:
            return next(replay, None) or await receive()

        await self.app(scope, replayed, send)


def _too_large(limit: int) -> str:
    return f"Request body exceeds the maximum allowed size ({limit:,} bytes)."


async def refuse(send: Callable, status: int, text: str) -> None:
    """Answer an HTTP request from an ASGI middleware with `status` and a one-line reason."""
    body = text.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(body)),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class CacheMeter:
    """The size of a folder tree for a request to check without touching the disk.

    An upload's check starts a walk of the folder in a thread of its own when the last one is
    old enough (what Gradio stored and deleted meanwhile), and uploads admitted since the
    walk began are added to its total, so a burst cannot overshoot the limit between walks.
    The walk never runs in the event loop: done there once a second, a cache of 5,891 files
    (20,271 folders) held every request for 0.42-0.49 s each time, and the first of six
    drawings sent at once took 0.6 s instead of 0.17 (BENCHMARKS.md, thirteenth session).
    Nor in the server's process (folder_size.measure): its Python shared the loop's GIL.
    Walks start `every` seconds apart and at least `spacing` times their own length, so a
    large cache costs at most 1/`spacing` of a core, and only while uploads come.
    """

    def __init__(self, folder: Path, limit: int, every: float = 5.0, spacing: float = 20.0) -> None:
        self.folder, self.limit, self.every, self.spacing = folder, limit, every, spacing
        self._walked = 0  # bytes found by the last finished walk
        self._admitted = 0  # bytes admitted since that walk began
        self._walks = 0
        self._next_walk: float | None = None  # monotonic time; None: walk at the first check
        self._walking = False
        self._changed = threading.Condition()

    def size(self) -> int:
        with self._changed:
            return self._walked + self._admitted

    def add(self, nbytes: int) -> None:
        """Count an upload just admitted until a walk that began after it sees it on disk."""
        with self._changed:
            self._admitted += nbytes

    def full(self) -> bool:
        """Is the folder at its limit, as last measured? May start a walk in the background."""
        now = time.monotonic()
        with self._changed:
            due = not self._walking and (self._next_walk is None or now >= self._next_walk)
            if due:
                self._walking = True
            size = self._walked + self._admitted
        if due:
            threading.Thread(target=self._walk, name="cache-meter", daemon=True).start()
        return size >= self.limit

    def wait_for_walks(self, count: int, timeout: float) -> bool:
        """Block until `count` walks have finished since the meter was made; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._walks >= count, timeout)

    def _walk(self) -> None:
        began = time.monotonic()
        with self._changed:
            admitted_before = self._admitted
        walked = None
        try:
            walked = folder_size.measure(self.folder, WALK_TIMEOUT)
        except (OSError, ValueError, subprocess.SubprocessError) as err:
            log.warning("could not measure the upload cache: %s", err)
        finally:
            with self._changed:
                if walked is not None:
                    # Uploads admitted during the walk may or may not have been seen: keep
                    # counting them (an overestimate for one walk at most, never an under-).
                    self._walked, self._admitted = walked, self._admitted - admitted_before
                self._walks += 1
                self._walking = False
                self._next_walk = began + max(self.every, self.spacing * (time.monotonic() - began))
                self._changed.notify_all()


def app_kwargs(settings: Any, cache_dir: str) -> dict[str, Any]:
    """FastAPI arguments for demo.launch(app_kwargs=...): the body-size middleware."""
    from starlette.middleware import Middleware

    middleware = Middleware(
        BodyLimit,
        max_body=_parse_file_size(settings.max_body),
        max_file=_parse_file_size(settings.max_file_size),
        cache_dir=cache_dir,
        cache_bytes=_parse_file_size(settings.cache_size),
    )
    return {"middleware": [middleware]}


# --- sessions -----------------------------------------------------------------------------------


class SessionSweeper:
    """Forget sessions not seen for `idle` seconds (closed tabs after `closed` seconds).

    Gradio keeps each session's state and a copy of every input it was sent (a 7 MB data URL
    stayed, per session, for good) until 10,000 sessions exist; it marks a session closed
    when its tab disconnects but frees only gr.State values, an hour later. An open tab polls
    every few seconds, so `idle` only catches scripts and long-gone visitors.
    """

    def __init__(self, demo: gr.Blocks, idle: float, closed: float = 60.0) -> None:
        self.demo, self.idle, self.closed = demo, idle, closed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self, now: float | None = None) -> int:
        """Drop expired sessions now; return how many were dropped."""
        holder = getattr(self.demo, "state_holder", None)
        if holder is None:
            return 0
        now = time.time() if now is None else now
        dropped = 0
        for session_id, last in list(holder.time_last_used.items()):
            session = holder.session_data.get(session_id)
            age = now - last.timestamp()
            limit = self.closed if session is not None and session.is_closed else self.idle
            if age < limit:
                continue
            with holder.lock:
                session = holder.session_data.pop(session_id, None)
                holder.time_last_used.pop(session_id, None)
            if session is not None:
                for component, value, _ in session.state_components:
                    _delete_callback(component, value)
                dropped += 1
        if dropped:
            log.info("freed %d idle sessions", dropped)
        return dropped

    def start(self, every: float = 30.0) -> SessionSweeper:
        def run() -> None:
            while not self._stop.wait(every):
                try:
                    self.sweep()
                except Exception:  # a sweep must never end the thread
                    log.exception("session sweep failed")

        self._thread = threading.Thread(target=run, name="session-sweeper", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()


def _delete_callback(component: Any, value: Any) -> None:
    try:
        component.delete_callback(value)
    except Exception:
        log.exception("a state's delete callback failed")


# --- typed inputs -------------------------------------------------------------------------------


def strict_number(component: gr.Number | gr.Slider, name: str) -> gr.Number | gr.Slider:
    """Refuse a non-number (None, true, "abc", [1]) with a message the client can read.

    Gradio's own check compares the raw value with the bounds: "abc" raised a TypeError that
    reached the client as HTTP 500 with `error: null`, and `true` became 1.
    """
    preprocess = component.preprocess

    def checked(payload: Any) -> Any:
        if payload is None:
            raise gr.Error(f"{name} is missing")
        if isinstance(payload, bool) or not isinstance(payload, (int, float)):
            raise gr.Error(f"{name} must be a number, got {payload!r:.40}")
        try:
            return preprocess(payload)
        except gr.Error:
            raise
        except (TypeError, ValueError, OverflowError) as err:
            raise gr.Error(f"{name}: {err}") from None

    component.preprocess = checked
    return component
