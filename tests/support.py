"""Shared by the test tiers: launch the real app on a free loopback port, and test doubles."""

from __future__ import annotations

import re
import socket
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mnist_demo import server
from mnist_demo.settings import AppSettings
from mnist_demo.training import Control
from mnist_demo.ui import Dashboard

# The Train tab's controls for a short default run, as the API and the handlers take them.
TRAINING_ARGS = dict(
    model="tutorial",
    epochs=1,
    batch_size=256,
    lr=0.01,
    schedule="onecycle",
    augment=0,
    label_smoothing=0.1,
    seed=0,
    device="cpu",
)


def chart_points(svg: str) -> dict[str, int]:
    """The data points of a live chart (svgchart's SVG) per series: a line's vertices, or the
    dots of a series drawn as dots only."""
    lines = re.findall(r'class="mark-line" data-series="([^"]*)"><path d="([^"]*)"', svg)
    points = {name: 1 + path.count("L") for name, path in lines}
    symbols = re.findall(r'class="mark-symbol" data-series="([^"]*)"[^>]*>(.*?)</g>', svg)
    for name, dots in symbols:
        points.setdefault(name, dots.count("<path"))
    return points


def chart_dots(svg: str) -> list[str]:
    """The dots' titles of a live chart: "<series>: <value> at epoch <x>"."""
    return re.findall(r"<title>([^<]*)</title>", svg)


@dataclass
class LiveApp:
    url: str
    dashboard: Dashboard
    demo: object

    def close(self) -> None:
        self.dashboard.job.close()
        self.dashboard.job.wait(30)
        self.demo.close()


class WatchedControl(Control):
    """A Control that signals when the loop is actually blocked by a pause."""

    def __init__(self) -> None:
        super().__init__()
        self.blocked = threading.Event()

    def wait_while_paused(self) -> float:
        if self.paused:
            self.blocked.set()
        return super().wait_while_paused()


def wait_status(client, predicate, timeout: float = 60.0) -> dict:
    """Poll /status until `predicate` holds or `timeout` passes; return the last status."""
    deadline = time.monotonic() + timeout
    while True:
        status = client.predict(api_name="/status")
        if predicate(status) or time.monotonic() > deadline:
            return status
        time.sleep(0.2)  # polling a remote server: there is no event to wait on


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(runs_dir: Path, settings: AppSettings | None = None, **overrides) -> LiveApp:
    """The app on a free loopback port: `settings` (say from_env as on a Space) + overrides."""
    settings = replace(settings or AppSettings(runs_dir=runs_dir), **overrides)
    demo, dashboard = server.create(settings)
    port = free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        **server.launch_kwargs(settings, dashboard),
    )
    return LiveApp(f"http://127.0.0.1:{port}/", dashboard, demo)


def draw_digit_png(
    path: Path,
    digit: str,
    size: int = 400,
    ink: int = 0,
    paper: int = 255,
    width: int = 28,
    rgba_layer: bool = False,
) -> Path:
    """A digit drawn as strokes: black on white, or ink only in the alpha of a layer."""
    mode, background = ("RGBA", (0, 0, 0, 0)) if rgba_layer else ("L", paper)
    image = Image.new(mode, (size, size), background)
    pen = ImageDraw.Draw(image)
    color = (0, 0, 0, 255) if rgba_layer else ink
    s = size / 400
    for stroke in STROKES[digit]:
        points = [(200 * s + x * 120 * s, 200 * s + y * 120 * s) for x, y in stroke]
        pen.line(points, fill=color, width=int(width * s), joint="curve")
    image.save(path)
    return path


def _ellipse(rx: float, ry: float, n: int = 36) -> list[tuple[float, float]]:
    t = np.linspace(0, 2 * np.pi, n + 1)
    return list(zip(rx * np.sin(t), -ry * np.cos(t), strict=True))


# Strokes in units of 120 px around the canvas centre, shared with the browser test.
STROKES: dict[str, list[list[tuple[float, float]]]] = {
    "1": [[(0.05, -0.85), (0.0, 0.85)]],
    "0": [_ellipse(0.5, 0.85)],
    "7": [[(-0.6, -0.8), (0.6, -0.8), (-0.05, 0.85)]],
    "4": [[(-0.3, -0.85), (-0.6, 0.25), (0.55, 0.25)], [(0.25, -0.45), (0.25, 0.9)]],
    # not a digit: a scratch back and forth across the pad (the shipped network: "4", 95%).
    # Drawn smaller it becomes a blob, which the not-a-digit check misses (see novelty.py).
    "scribble": [
        [(-1.02, -1.02), (0.85, 0.68), (-0.68, 1.02), (1.02, -0.85), (-1.19, 0.17)]
        + [(1.19, 0.34), (-0.34, -1.19), (0.17, 1.19), (1.02, -0.17), (-1.02, -0.34)]
    ],
}
