"""Caps that keep one process serving everyone, whatever a single visitor sends.

Engine side only (no Gradio, no web framework): how many image pixels may be decoded at once,
how big a training batch fits in memory, how many visitors' fine-tunes may wait, and which
finished runs the runs folder keeps. guards.py applies the web-side caps.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


class Busy(RuntimeError):
    """A shared resource stayed taken for longer than a request may wait; try again later."""


class PixelBudget:
    """Bounds the memory of image decodes running at once, whoever sends them.

    A request holds `pixels x bands` of the budget while it decodes and shrinks its image:
    a 40-megapixel RGBA PNG peaks at ~300 MB of RSS in sketch.py (measured, BENCHMARKS.md),
    so 40 of them at once took 11.5 GB. Beyond the budget a request waits up to `wait`
    seconds, then is refused; a drawing (280x280) never waits behind more than the budget.
    """

    def __init__(self, units: int, wait: float = 10.0) -> None:
        if units < 1:
            raise ValueError(f"budget must be positive, got {units}")
        self.units, self.wait = units, wait
        self._used = 0
        self._cond = threading.Condition()

    @property
    def used(self) -> int:
        with self._cond:
            return self._used

    @contextmanager
    def hold(self, units: int) -> Iterator[None]:
        """Take `units` for the block; Busy if they do not free up within `wait` seconds."""
        units = max(0, min(int(units), self.units))  # one image up to the budget always fits alone
        with self._cond:
            if not self._cond.wait_for(lambda: self._used + units <= self.units, self.wait):
                raise Busy("the server is busy reading other large images")
            self._used += units
        try:
            yield
        finally:
            with self._cond:
                self._used -= units
                self._cond.notify_all()


# One pair per process: the memory and cores they guard are the process's. Small images (a
# drawing is 280x280, a phone screenshot ~2.6 MP) have their own budget, so a drawing never
# waits behind large uploads. A large image (up to sketch.MAX_PIXELS, 40 MP: ~300 MB and 3.5 s
# of one core to decode as RGBA) decodes one at a time, keeping a core for everyone else, and
# one that finds the budget taken is refused at once ("busy, try again") instead of holding
# one of the event's few slots while it waits: 40 such uploads at once took 144 s to answer,
# and a waiting one kept every other /predict_file caller queued behind it (BENCHMARKS.md).
SMALL_IMAGE_PIXELS = 4_000_000
SMALL_DECODES = PixelBudget(8 * SMALL_IMAGE_PIXELS * 4, wait=10.0)
LARGE_DECODES = PixelBudget(40_000_000 * 4, wait=0.0)


# An API image of at most this many pixels in all is read on the server's event loop itself
# (ui/api.py), with no pixel budget (one at a time: 4 MB): 2.4-3.4 ms of one core for a
# 400x400 drawing, ~14 ms for an RGB 1000x1000 PNG (bench/predict_latency.py --sides). In a
# worker thread the same call cost the server ~3x its work under load, the thread and the
# loop handing the GIL back and forth at every numpy and torch call: 20 API clients' p95,
# nothing training, was 1.42x a bare Gradio app's, 0.99-1.02x inline (bench/load_test.py
# --warm-idle; BENCHMARKS.md, fifteenth session). Larger images go to a thread and budgets.
INLINE_PIXELS = 1_000_000


def decode_budget(pixels: int) -> PixelBudget:
    """The budget an image of `pixels` decodes within."""
    return SMALL_DECODES if pixels <= SMALL_IMAGE_PIXELS else LARGE_DECODES


class FineTuneGate:
    """One fine-tune runs; at most `max_waiting` more wait; the rest are refused at once.

    Gradio's queue is shared by every event: 70 abandoned fine-tune requests (joined, never
    read) filled it for ~10 minutes. With this gate behind a generous concurrency limit, each
    extra request costs a refusal of a few milliseconds, and no request waits longer than the
    fine-tunes ahead of it (`max_waiting` x the fine-tune's own time cap).
    """

    def __init__(self, max_waiting: int = 2, wait: float = 60.0) -> None:
        self.max_waiting, self.wait = max_waiting, wait
        self._admitted = 0  # running + waiting
        self._count_lock = threading.Lock()
        self._run_lock = threading.Lock()

    @property
    def admitted(self) -> int:
        """Requests running or waiting now."""
        with self._count_lock:
            return self._admitted

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Run the block when this request's turn comes; Busy if too many wait already."""
        with self._count_lock:
            if self._admitted > self.max_waiting:
                raise Busy(f"{self._admitted} fine-tunes are running or waiting")
            self._admitted += 1
        try:
            if not self._run_lock.acquire(timeout=self.wait):
                raise Busy("the fine-tunes ahead took too long")
            try:
                yield
            finally:
                self._run_lock.release()
        finally:
            with self._count_lock:
                self._admitted -= 1


# --- training gives way to visitors -------------------------------------------------------------


class InFlight:
    """How many visitors' requests are being served right now (the UI counts them in)."""

    def __init__(self, on_serve: Callable[[], None] | None = None) -> None:
        self._count = 0
        self._cond = threading.Condition()
        self.on_serve = on_serve  # told of each request as it starts

    @property
    def count(self) -> int:
        with self._cond:
            return self._count

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Count the block as a request in flight."""
        if self.on_serve is not None:
            self.on_serve()
        with self._cond:
            self._count += 1
        try:
            yield
        finally:
            with self._cond:
                self._count -= 1
                if not self._count:
                    self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until no request is in flight or `timeout` seconds pass; True if idle."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._count, timeout)


class GiveWay:
    """Called by the training loop after each CPU step: pause while requests are in flight,
    bounded so that training keeps at least `share` of its speed alone.

    Each step earns `fastest / share - step` seconds of pause, `fastest` being the quickest
    step seen (the unloaded pace): at 25% a 40 ms step may be followed by up to 120 ms of
    waiting, less when load already slowed the step itself. Unused credit is kept up to
    `max_credit` seconds, so a short burst of requests gets the cores at once; a debt (steps
    slowed by the load) is forgotten beyond `max_credit` too.
    """

    def __init__(
        self,
        in_flight: InFlight,
        share: float = 0.25,
        max_credit: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        self.in_flight, self.share, self.max_credit, self.clock = (
            in_flight,
            share,
            max_credit,
            clock,
        )
        self.fastest = math.inf
        self.credit = 0.0  # seconds of pause earned and not yet taken
        self.paused = 0.0  # seconds paused in all, for benchmarks and logs

    def __call__(self, step_seconds: float) -> float:
        """Pause while requests are in flight, within the credit; the seconds paused."""
        self.fastest = min(self.fastest, step_seconds)
        earned = self.fastest / self.share - step_seconds
        self.credit = max(-self.max_credit, min(self.max_credit, self.credit + earned))
        if self.credit <= 0 or not self.in_flight.count:
            return 0.0
        began = self.clock()
        self.in_flight.wait_idle(self.credit)
        paused = max(0.0, self.clock() - began)
        self.credit -= paused
        self.paused += paused
        return paused


# --- training memory ----------------------------------------------------------------------------

# Bytes of RSS one training image costs per step on the CPU. The app's loop at batch 16384
# (tutorial CNN) took RSS from 1.9 to 14 GB: ~740 KB an image (activations, gradients, the CPU
# replicas' copies). A bare forward/backward/Adam step costs 191 KB an image for the tutorial
# CNN and 857 KB for the improved one (batch 1024 minus 64, measured); the improved model's
# figure is the tutorial's scaled by that ratio. A model not listed uses the larger one.
TRAIN_BYTES_PER_IMAGE = {"tutorial": 750_000, "improved": 3_300_000}


def max_batch_size(model: str, memory_bytes: int) -> int:
    """The largest batch whose step fits in `memory_bytes` (at least 1)."""
    per_image = TRAIN_BYTES_PER_IMAGE.get(model, max(TRAIN_BYTES_PER_IMAGE.values()))
    return max(1, memory_bytes // per_image)


# --- the runs folder ----------------------------------------------------------------------------

RUN_FILE = re.compile(r"run-(\d+)-")


def run_id_of(path: Path) -> int | None:
    """The run number in a runs-folder file name ('run-12-tutorial.pt' -> 12), else None."""
    match = RUN_FILE.match(path.name.lstrip("."))
    return int(match.group(1)) if match else None


def largest_run_id(runs_dir: Path) -> int:
    """The largest run number of any file in the folder (0 if none), half-written ones too."""
    if not runs_dir.is_dir():
        return 0
    ids = (run_id_of(path) for path in runs_dir.iterdir())
    return max((i for i in ids if i is not None), default=0)


def runs_to_delete(
    run_ids: Iterable[int],
    accuracy: dict[int, float],
    keep_newest: int,
    keep_best: int,
    protect: Iterable[int] = (),
) -> set[int]:
    """Which runs go: all but the newest `keep_newest`, the best `keep_best` and `protect`."""
    ids = sorted(set(run_ids))
    keep = set(ids[-keep_newest:] if keep_newest > 0 else [])
    ranked = sorted((i for i in ids if i in accuracy), key=lambda i: (-accuracy[i], -i))
    keep |= set(ranked[:keep_best])
    keep |= set(protect)
    return set(ids) - keep


def prune_runs(
    runs_dir: Path,
    accuracy: dict[int, float],
    keep_newest: int,
    keep_best: int,
    protect: Iterable[int] = (),
) -> list[Path]:
    """Delete the files of runs beyond the caps (runs_to_delete); return what was deleted."""
    if not runs_dir.is_dir() or keep_newest <= 0:  # 0: keep everything
        return []
    files: dict[int, list[Path]] = {}
    for path in runs_dir.iterdir():
        run_id = run_id_of(path)
        if run_id is not None and not path.name.startswith("."):
            files.setdefault(run_id, []).append(path)
    deleted = []
    for run_id in sorted(runs_to_delete(files, accuracy, keep_newest, keep_best, protect)):
        for path in files[run_id]:
            try:
                path.unlink()
                deleted.append(path)
            except OSError as err:
                log.warning("could not delete old run file %s: %s", path.name, err)
    if deleted:
        log.info("runs folder cap: deleted %d files of old runs", len(deleted))
    return deleted
