"""A browser tab's Train-tab poll over HTTP, for the benchmarks that simulate tabs.

The page polls the status line and the charts itself (mnist_demo/ui/live.py): a POST to
Gradio's /component_server calling `TrainTab.poll` with the key the last answer gave it.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from mnist_demo.charts import TEST_ALL

LIVE_ELEM_ID = "live"  # the gr.HTML whose script polls (ui/train.py)


class PageTab:
    """One tab's session and key; `poll()` is one request as the page's script sends it."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=60)
        config = self.client.get("config").json()
        self.component = next(
            c["id"] for c in config["components"] if c["props"].get("elem_id") == LIVE_ELEM_ID
        )
        self.session = uuid.uuid4().hex[:11]
        self.key: str | None = None

    def poll(self) -> dict[str, Any]:
        """The answer: status (HTML or None), charts (three SVGs or None), key, every."""
        body = {
            "data": self.key,
            "component_id": self.component,
            "fn_name": "poll",
            "session_hash": self.session,
        }
        reply = self.client.post("gradio_api/component_server", json=body)
        reply.raise_for_status()
        answer = reply.json()
        self.key = answer["key"] or self.key
        return answer

    def close(self) -> None:
        self.client.close()


def full_test_accuracies(accuracy_svg: str) -> list[float]:
    """The full-test (all 10,000) accuracies on a live accuracy chart: its dots' titles."""
    titles = re.findall(r"<title>([^<]*)</title>", accuracy_svg)
    prefix = f"{TEST_ALL}: "
    return [float(t[len(prefix) :].split()[0]) for t in titles if t.startswith(prefix)]
