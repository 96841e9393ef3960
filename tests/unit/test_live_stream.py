"""The Train tab's live stream (ui/live.py LiveStream): what it sends, and that it always ends."""

from __future__ import annotations

import asyncio
import json

from mnist_demo.ui.live import STREAM_URL, LiveStream


class Script:
    """A poll that answers from a list (then "nothing moved"), recording the keys sent back."""

    def __init__(self, replies: list[dict]) -> None:
        self.replies, self.keys = list(replies), []

    def __call__(self, key):
        self.keys.append(key)
        if self.replies:
            return self.replies.pop(0)
        return {"key": None, "status": None, "charts": None, "every": 0.001, "live": True}


def answer(key: str) -> dict:
    return {"key": key, "status": f"<p>{key}</p>", "charts": None, "every": 0.001, "live": True}


def events(sent: list[dict]) -> list[dict]:
    """The `data:` events in what the middleware sent, decoded."""
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return [json.loads(chunk[6:]) for chunk in body.split(b"\n\n") if chunk.startswith(b"data: ")]


async def request(stream, *, method="GET", path="/" + STREAM_URL, leave_after=None, app=None):
    """One request; the visitor leaves once `leave_after` events arrived (or never)."""
    sent, left = [], asyncio.Event()

    async def receive():
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)
        if leave_after is not None and len(events(sent)) >= leave_after:
            left.set()

    scope = {"type": "http", "method": method, "path": path, "app": app}
    await asyncio.wait_for(stream(scope, receive, send), timeout=10)
    return sent


async def passed_on(scope, receive, send):
    await send({"type": "http.response.start", "status": 204, "headers": []})


def test_other_paths_reach_the_app():
    stream = LiveStream(passed_on, Script([]))
    sent = asyncio.run(request(stream, path="/gradio_api/info"))
    assert sent[0]["status"] == 204


def test_a_stream_sends_each_moved_answer_once_and_keeps_the_key():
    script = Script([answer("a"), answer("b")])
    stream = LiveStream(passed_on, script)
    sent = asyncio.run(request(stream, leave_after=2))
    assert sent[0]["status"] == 200
    assert (b"content-type", b"text/event-stream") in sent[0]["headers"]
    assert [e["status"] for e in events(sent)] == ["<p>a</p>", "<p>b</p>"]
    assert script.keys[:2] == [None, "a"]  # each poll gets the last key it was given
    assert stream.open == 0


def test_unchanged_answers_send_nothing():
    script = Script(
        [answer("a")]
        + [{"key": None, "status": None, "charts": None, "every": 0.001, "live": True}] * 20
        + [answer("b")]
    )
    stream = LiveStream(passed_on, script)
    sent = asyncio.run(request(stream, leave_after=2))
    assert [e["status"] for e in events(sent)] == ["<p>a</p>", "<p>b</p>"]


def test_streams_beyond_the_cap_are_refused_and_freed_after():
    script = Script([])  # nothing moves: the first visitor stays until told
    stream = LiveStream(passed_on, script, max_streams=1)

    async def two_at_once():
        first = asyncio.create_task(request(stream, leave_after=1))
        while stream.open == 0:
            await asyncio.sleep(0)
        refused = await request(stream)
        script.replies.append(answer("x"))  # an event: the first visitor leaves
        await first
        return refused

    assert asyncio.run(two_at_once())[0]["status"] == 503
    assert stream.open == 0


def test_only_get_opens_a_stream():
    sent = asyncio.run(request(LiveStream(passed_on, Script([])), method="POST"))
    assert sent[0]["status"] == 405


def test_a_stream_ends_when_the_server_stops():
    class App:
        stop_event = asyncio.Event()

    App.stop_event.set()
    sent = asyncio.run(request(LiveStream(passed_on, Script([answer("a")])), app=App()))
    assert sent[-1] == {"type": "http.response.body", "body": b""}  # ended, not left open


def test_a_stream_ends_after_its_time():
    stream = LiveStream(passed_on, Script([]), max_seconds=0.05)
    sent = asyncio.run(request(stream))
    assert sent[-1] == {"type": "http.response.body", "body": b""}
    assert b"retry:" in sent[1]["body"]  # the browser reopens it quickly


def test_a_failing_poll_ends_only_its_stream():
    def poll(key):
        raise RuntimeError("boom")

    stream = LiveStream(passed_on, poll)
    sent = asyncio.run(request(stream))
    assert sent[0]["status"] == 200 and stream.open == 0


def test_a_stream_with_no_run_live_says_idle_and_ends():
    """Answers at the idle pace for idle_seconds: an "idle" event, the end, the page polls."""
    idle = {"key": "a", "status": "<p>Idle</p>", "charts": None, "every": 2.0, "live": False}
    stream = LiveStream(passed_on, Script([idle]), idle_seconds=0)
    sent = asyncio.run(request(stream))
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert body.endswith(b"event: idle\ndata: {}\n\n") and sent[-1]["body"] == b""
    assert stream.open == 0


def test_a_live_run_keeps_its_stream_open():
    live = [answer(str(i)) for i in range(5)]  # a run is live
    stream = LiveStream(passed_on, Script(live), idle_seconds=0)
    sent = asyncio.run(request(stream, leave_after=5))
    assert len(events(sent)) == 5 and b"event: idle" not in b"".join(
        m.get("body", b"") for m in sent[1:]
    )
