"""Crash safety: SIGKILL while saving or training never leaves a broken checkpoint behind, and
a restarted app loads the chosen (else the best tested) run, skipping whatever a crash left.

Children are real processes killed with SIGKILL: no handler, no `finally`, no flush. Each kill
is triggered by a line the child prints (so it lands where we mean it to), sometimes after a
small random delay (so it also lands where we did not think of).
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from mnist_demo import checkpoints, draw_model, server
from mnist_demo.checkpoints import CheckpointError
from mnist_demo.models import build_model
from mnist_demo.settings import AppSettings

BOUND = 60.0  # seconds: the most any wait may take on a loaded 2-core machine

# Saves the same checkpoint path over and over, announcing each save before and after it.
# With a stall generation, that save writes half of its bytes and then hangs until killed.
SAVER = """
import io, sys
import torch
from mnist_demo import checkpoints
from mnist_demo.models import build_model

path, generation, stall = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
state = build_model("tutorial").state_dict()
real_save = torch.save

def half_then_hang(obj, f):
    buffer = io.BytesIO()
    real_save(obj, buffer)
    f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    f.flush()
    print("half-written", flush=True)
    sys.stdin.readline()  # hold here, mid-write, until the parent kills us

while True:
    if generation == stall:
        torch.save = half_then_hang
    print(f"saving {generation}", flush=True)
    checkpoints.save(path, "tutorial", state, generation=generation, test_accuracy=99.0)
    print(f"saved {generation}", flush=True)
    generation += 1
"""


class Child:
    """A subprocess whose output lines arrive on a queue, so every read has a deadline."""

    def __init__(self, args: list[str], cwd: Path, stream: str = "stdout") -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-u", *args],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE if stream == "stdout" else subprocess.DEVNULL,
            stderr=subprocess.PIPE if stream == "stderr" else subprocess.DEVNULL,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        pipe = self.process.stdout if stream == "stdout" else self.process.stderr
        threading.Thread(target=self._pump, args=(pipe,), daemon=True).start()

    def _pump(self, pipe) -> None:
        for line in pipe:
            self.lines.put(line.strip())
        self.lines.put(None)  # end of output

    def wait_for(self, predicate) -> list[str]:
        """Read lines until one satisfies `predicate`; all lines read so far."""
        seen: list[str] = []
        deadline = time.monotonic() + BOUND
        while True:
            line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, f"the child ended early; it said {seen[-5:]}"
            seen.append(line)
            if predicate(line):
                return seen

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(BOUND) == -signal.SIGKILL
        self.process.stdin.close()


@pytest.fixture
def saver(tmp_path: Path) -> Path:
    script = tmp_path / "saver.py"
    script.write_text(SAVER)
    return script


def leftovers(folder: Path, final: Path) -> list[Path]:
    """Files in `folder` other than `final`: only temp files of interrupted saves may be there."""
    return [p for p in folder.iterdir() if p != final]


def test_sigkill_while_saving_keeps_the_last_whole_checkpoint(tmp_path, saver):
    runs = tmp_path / "runs"
    final = runs / "run-1-tutorial.pt"

    # First kill: at a moment chosen by chance, somewhere around the nth save.
    rng = random.Random(1)
    child = Child([str(saver), str(final), "0", "-1"], tmp_path)
    target = rng.randint(1, 6)
    said = child.wait_for(lambda line: line == f"saving {target}")
    time.sleep(rng.uniform(0, 0.01))  # anywhere in the save: mkstemp, write, fsync, rename
    child.kill()
    confirmed = max(int(s.split()[1]) for s in said if s.startswith("saved "))

    loaded = checkpoints.load(final)  # whole, whatever the moment of the kill

    assert loaded.metadata["generation"] >= confirmed
    for junk in leftovers(runs, final):
        assert junk.name.startswith(f".{final.name}.") and junk.name.endswith(".tmp")

    # Second kill: the restarted saver is stopped with half of a new checkpoint written.
    last = loaded.metadata["generation"] + 2
    before = set(leftovers(runs, final))
    child = Child([str(saver), str(final), str(last - 1), str(last)], tmp_path)
    child.wait_for(lambda line: line == "half-written")
    child.kill()

    assert checkpoints.load(final).metadata["generation"] == last - 1
    (half,) = set(leftovers(runs, final)) - before
    assert half.name.startswith(f".{final.name}.") and half.suffix == ".tmp"
    with pytest.raises(CheckpointError, match="corrupt"):
        checkpoints.load(half)  # what writing in place would have left at the final path
    assert list(runs.glob("run-*.pt")) == [final]  # the app never looks at temp files
    draw_model.remember(runs, final.name)  # as the job does when it adopts a run
    assert server.last_good_predictor(runs).version.label == "saved run run-1-tutorial"


def test_sigkill_during_cli_training_keeps_the_previous_checkpoint(tmp_path):
    rng = random.Random(2)
    out = tmp_path / "runs" / "run-1-tutorial.pt"
    previous = build_model("tutorial").state_dict()
    checkpoints.save(out, "tutorial", previous, note="the previous good run")
    command = ["-m", "mnist_demo", "train", "--epochs", "1", "--max-steps", "40"]
    command += ["--threads", "1", "--device", "cpu", "--log-every", "5", "--out", str(out)]
    child = Child(command, tmp_path, stream="stderr")  # one kill: each start costs seconds
    child.wait_for(lambda line: line.startswith("training on cpu"))
    time.sleep(rng.uniform(0, 0.5))  # a moment somewhere in the 40 steps
    child.kill()

    loaded = checkpoints.load(out)
    assert loaded.metadata.get("note") == "the previous good run"
    assert all(torch.equal(loaded.state_dict[k], v) for k, v in previous.items())
    assert leftovers(out.parent, out) == []  # it never got as far as saving


class Exploit:
    """Unpickling this runs a shell command: what a hostile 'checkpoint' would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def crashed_runs_dir(runs: Path, marker: Path) -> None:
    """One good old run under everything else a crash, a bug or an attacker could leave; the
    remembered Draw model is the torn one. The good run tested better than the shipped
    checkpoints, so the best tested fallback is that run."""
    runs.mkdir()
    good = build_model("tutorial").state_dict()
    checkpoints.save(runs / "run-1-tutorial.pt", "tutorial", good, note="good", test_accuracy=99.9)
    checkpoints.save(runs / "run-2-tutorial.pt", "tutorial", good, test_accuracy=99.0)
    whole = (runs / "run-2-tutorial.pt").read_bytes()
    (runs / "run-2-tutorial.pt").write_bytes(whole[: len(whole) // 2])  # a torn write
    checkpoints.save(runs / "run-3-improved.pt", "tutorial", good, test_accuracy=99.0)
    payload = torch.load(runs / "run-3-improved.pt", weights_only=True)
    torch.save({**payload, "model": "improved"}, runs / "run-3-improved.pt")  # wrong network
    armed = {"format": checkpoints.FORMAT, "model": "tutorial", "state_dict": good}
    torch.save({**armed, "metadata": {"x": Exploit(marker)}}, runs / "run-4-tutorial.pt")
    (runs / "run-5-tutorial.pt").symlink_to(runs / "gone.pt")  # dangling
    (runs / ".run-6-tutorial.pt.abc123.tmp").write_bytes(whole[:1000])  # a killed save's temp
    (runs / "run-7-tutorial.pt").write_bytes(b"")  # killed before the first byte
    (runs / "run-8-tutorial.pt").mkdir()  # not even a file
    for age, name in enumerate(sorted(p.name for p in runs.iterdir() if not p.is_symlink())):
        os.utime(runs / name, (1e9 + age, 1e9 + age))  # newest last, whatever the disk says
    draw_model.remember(runs, "run-2-tutorial.pt")


def test_restart_skips_every_broken_run_and_loads_the_best_good_one(tmp_path, caplog):
    runs, marker = tmp_path / "runs", tmp_path / "pwned"
    crashed_runs_dir(runs, marker)

    predictor = server.last_good_predictor(runs)

    assert predictor.version.label == "saved run run-1-tutorial"
    assert not marker.exists(), "a checkpoint's pickle ran code"
    skipped = " ".join(r.getMessage() for r in caplog.records)
    for name in ("run-2", "run-3", "run-4", "run-5", "run-7", "run-8"):
        assert name in skipped, name  # each skipped file is named in the log
    assert ".run-6" not in skipped  # temp files are not candidates at all


def test_the_app_starts_cleanly_with_the_last_good_model_after_crashes(tmp_path):
    runs, marker = tmp_path / "runs", tmp_path / "pwned"
    crashed_runs_dir(runs, marker)

    demo, dashboard = server.create(AppSettings(runs_dir=runs))

    status = dashboard.api.status()
    assert status["state"] == "idle"
    assert status["weights"]["label"] == "saved run run-1-tutorial"
    assert dashboard.draw.predict(None).answered  # the handlers answer
    assert not marker.exists()
    demo.close()


def test_with_no_loadable_run_the_app_falls_back_to_the_shipped_checkpoint(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "run-1-tutorial.pt").write_bytes(b"PK\x03\x04 not really a zip")

    shipped = f"shipped {draw_model.DRAW_MODEL} checkpoint"
    assert server.last_good_predictor(runs).version.label == shipped
    assert server.last_good_predictor(tmp_path / "missing").version.label == shipped


def test_a_diverged_run_is_never_the_model_a_restart_loads(tmp_path):
    runs = tmp_path / "runs"
    good = build_model("tutorial").state_dict()
    checkpoints.save(runs / "run-1-tutorial.pt", "tutorial", good, test_accuracy=99.9)
    checkpoints.save(runs / "run-2-tutorial.pt", "tutorial", good, test_accuracy=9.8)
    os.utime(runs / "run-1-tutorial.pt", (1, 1))  # run 2 is the newest
    draw_model.remember(runs, "run-2-tutorial.pt")  # say, by an older version
    assert server.last_good_predictor(runs).version.label == "saved run run-1-tutorial"


def test_start_up_removes_half_written_temp_files(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    stale = [
        runs / ".run-3-tutorial.pt.abc123.tmp",  # a checkpoint
        runs / ".history.json.x1y2.tmp",  # the run history
        runs / ".run-3-tutorial.csv.q9.tmp",  # an export
    ]
    for path in stale:
        path.write_bytes(b"half a file")
    kept = runs / "history.json"
    kept.write_text("{}")
    server.remove_stale_temp_files(runs)
    assert not any(path.exists() for path in stale) and kept.exists()
