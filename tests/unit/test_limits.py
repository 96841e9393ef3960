"""limits.py: the pixel budget, the fine-tune gate, the batch memory cap and the runs-folder cap."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from mnist_demo import limits
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
