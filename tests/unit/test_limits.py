"""limits.py: the pixel budget, the fine-tune gate, the batch memory cap and the runs-folder cap."""

from __future__ import annotations

import io
import math
import threading
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from mnist_demo import limits, sketch
from mnist_demo.limits import Busy, FineTuneGate, PixelBudget

BOUND = 60.0


def test_the_pixel_budget_never_holds_more_than_its_units_at_once():
    budget = PixelBudget(100, wait=0.05)
    answers: list[str] = []

    def other_request(units: int) -> None:
        try:
            with budget.hold(units):
                answers.append(f"decoded {units}")
        except Busy:
            answers.append(f"busy {units}")

    with budget.hold(70):
        for units in (70, 30):  # 70 more does not fit beside it; 30 does, at once
            thread = threading.Thread(target=other_request, args=(units,))
            thread.start()
            thread.join(BOUND)
        assert budget.used == 70
    other_request(70)  # room again once the first left
    assert answers == ["busy 70", "decoded 30", "decoded 70"] and budget.used == 0


def test_the_pixel_budget_refuses_after_its_wait_and_lets_one_huge_image_through_alone():
    budget = PixelBudget(100, wait=0.05)
    with budget.hold(10**9):  # larger than the budget: allowed alone, counted as all of it
        assert budget.used == 100
        with pytest.raises(Busy), budget.hold(1):
            pass
    assert budget.used == 0


def test_the_fine_tune_gate_refuses_beyond_one_running_and_max_waiting():
    gate = FineTuneGate(max_waiting=1, wait=BOUND)
    running, release, admitted = threading.Event(), threading.Event(), threading.Event()

    def runner() -> None:
        with gate.turn():
            running.set()
            release.wait(BOUND)

    def waiter() -> None:
        admitted.set()
        with gate.turn():
            pass

    threads = [threading.Thread(target=runner)]
    threads[0].start()
    assert running.wait(BOUND)
    threads.append(threading.Thread(target=waiter))
    threads[1].start()
    assert admitted.wait(BOUND)
    deadline = time.monotonic() + BOUND  # the waiter counts itself, then waits for its turn
    while gate.admitted < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # polling a count: the waiter blocks inside the gate, no event to share
    with pytest.raises(Busy), gate.turn():  # one runs, one waits: a third is refused at once
        pass
    release.set()
    for thread in threads:
        thread.join(BOUND)
    with gate.turn():  # free again
        pass


def test_max_batch_size_follows_the_memory_and_the_model():
    gib = 2**30
    assert limits.max_batch_size("tutorial", gib) == gib // limits.TRAIN_BYTES_PER_IMAGE["tutorial"]
    assert limits.max_batch_size("improved", gib) < limits.max_batch_size("tutorial", gib)
    assert limits.max_batch_size("tutorial", 1) == 1
    assert 256 <= limits.max_batch_size("tutorial", gib) < 16384  # the attack's batch is refused


def test_runs_to_delete_keeps_the_newest_the_best_and_the_protected():
    accuracy = {1: 99.3, 2: 10.0, 3: 98.0, 4: 97.0, 5: 11.0, 6: 96.0, 7: 95.0}
    gone = limits.runs_to_delete(range(1, 8), accuracy, keep_newest=2, keep_best=2, protect=[4])
    assert gone == {2, 5}  # kept: 6, 7 (newest), 1, 3 (best), 4 (the Draw tab's)


def test_prune_runs_deletes_every_file_of_a_dropped_run_and_nothing_else(tmp_path: Path):
    for run_id in range(1, 6):
        for suffix in (".pt", ".csv", ".png", ".test-probs.npz"):
            (tmp_path / f"run-{run_id}-tutorial{suffix}").write_bytes(b"x")
    (tmp_path / "history.json").write_text("{}")
    (tmp_path / ".run-9-tutorial.pt.abc.tmp").write_bytes(b"half")  # another save in flight
    accuracy = {1: 99.0, 2: 50.0, 3: 60.0, 4: 70.0, 5: 80.0}

    deleted = limits.prune_runs(tmp_path, accuracy, keep_newest=2, keep_best=1, protect=[2])

    assert sorted({limits.run_id_of(p) for p in deleted}) == [3]
    left = {p.name for p in tmp_path.iterdir()}
    assert "history.json" in left and ".run-9-tutorial.pt.abc.tmp" in left
    assert not any(name.startswith("run-3-") for name in left)
    assert limits.largest_run_id(tmp_path) == 9  # a half-written file's number counts too
    assert limits.prune_runs(tmp_path, accuracy, keep_newest=0, keep_best=0) == []  # 0: keep all


# --- training gives way to visitors -------------------------------------------------------------


class FakeLoad:
    """InFlight's interface on a fake clock: requests in flight until `until` (fake seconds)."""

    def __init__(self, until: float = math.inf) -> None:
        self.now, self.until = 0.0, until
        self.waits: list[float] = []

    @property
    def count(self) -> int:
        return int(self.now < self.until)

    def wait_idle(self, timeout: float) -> bool:
        self.waits.append(timeout)
        self.now = min(self.now + timeout, max(self.now, self.until))
        return not self.count

    def step(self, give_way: limits.GiveWay, seconds: float) -> float:
        """A training step of `seconds`, then the loop's call."""
        self.now += seconds
        return give_way(seconds)


def test_training_does_not_pause_when_no_request_is_in_flight():
    load = FakeLoad(until=0.0)
    give_way = limits.GiveWay(load, share=0.25, clock=lambda: load.now)
    assert [load.step(give_way, 0.04) for _ in range(50)] == [0.0] * 50
    assert load.waits == []


def test_under_endless_requests_training_keeps_its_share_of_its_speed_alone():
    load = FakeLoad()  # requests in flight for ever
    give_way = limits.GiveWay(load, share=0.25, clock=lambda: load.now)
    steps = 400
    for _ in range(steps):
        load.step(give_way, 0.04)
    kept = steps * 0.04 / load.now  # speed now / speed alone
    assert 0.25 <= kept < 0.26  # it does give way, and no more than the bound allows
    assert max(load.waits) <= give_way.max_credit  # never one long pause


def test_steps_already_slowed_by_the_load_earn_less_pause():
    load = FakeLoad()
    give_way = limits.GiveWay(load, share=0.25, clock=lambda: load.now)
    load.step(give_way, 0.04)  # the pace alone
    start = load.now
    for _ in range(200):
        load.step(give_way, 0.08)  # the load halved the step's speed: only 0.08 s more each
    assert 200 * 0.04 / (load.now - start) == pytest.approx(0.25, rel=0.02)
    for _ in range(200):
        load.step(give_way, 0.2)  # slower than 4x: no pause at all
    assert load.waits[-1] > 0 and give_way.credit < 0
    waits = len(load.waits)
    load.step(give_way, 0.2)
    assert len(load.waits) == waits  # in debt: went on at once


def test_training_resumes_as_soon_as_the_requests_are_served():
    load = FakeLoad(until=0.05)  # one request, served 10 ms after the step ends
    give_way = limits.GiveWay(load, share=0.25, clock=lambda: load.now)
    paused = load.step(give_way, 0.04)
    assert paused == pytest.approx(0.01)
    assert load.step(give_way, 0.04) == 0.0


def test_in_flight_counts_requests_and_wakes_a_waiter_when_the_last_one_leaves():
    in_flight = limits.InFlight()
    entered, leave, woke = threading.Event(), threading.Event(), threading.Event()

    def request() -> None:
        with in_flight.serving():
            entered.set()
            leave.wait(BOUND)

    def training() -> None:
        if in_flight.wait_idle(BOUND):
            woke.set()

    server = threading.Thread(target=request)
    server.start()
    assert entered.wait(BOUND) and in_flight.count == 1
    assert not in_flight.wait_idle(0.0)
    waiter = threading.Thread(target=training)
    waiter.start()
    assert not woke.is_set()
    leave.set()
    waiter.join(BOUND)
    server.join(BOUND)
    assert woke.is_set() and in_flight.count == 0


def test_give_way_refuses_a_share_outside_zero_to_one():
    with pytest.raises(ValueError, match="share"):
        limits.GiveWay(limits.InFlight(), share=0)


# --- drawings never wait behind large images ----------------------------------------------------


def png_bytes(width: int, height: int) -> bytes:
    image = Image.new("L", (width, height), 255)
    ImageDraw.Draw(image).line([(width // 2, 0), (width // 2, height)], 0, max(2, width // 20))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_a_drawing_is_read_at_once_while_a_large_image_decodes_and_a_second_large_one_is_refused():
    drawing, large = png_bytes(280, 280), png_bytes(5000, 1000)  # 5 MP: over the small limit
    assert limits.decode_budget(280 * 280) is not limits.decode_budget(5000 * 1000)
    with limits.LARGE_DECODES.hold(10**12):  # a large upload decoding now
        began = time.monotonic()
        assert sketch.to_mnist(drawing) is not None
        with pytest.raises(sketch.SketchError, match="busy"):
            sketch.to_mnist(large)
        waited = time.monotonic() - began
    assert waited < 5  # refused at once, not queued
    assert sketch.to_mnist(large) is not None  # once the first is done, it is read
