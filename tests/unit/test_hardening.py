"""Ready for a public Space: the app's handlers under bad input, abuse settings and concurrency.

Handlers are called directly on a Dashboard (no server). Most training here is a stand-in for
train() (the `fake` fixture): it emits the same records, honours pause and stop, and ends
after `fake.steps` simulated steps, so the state machine can be hammered from many threads in
well under a second. One test trains for real on a slice of MNIST while visitors draw.
"""

from __future__ import annotations

import asyncio
import base64
import io
import math
import os
import random
import struct
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFile
from support import TRAINING_ARGS, chart_dots, chart_points

from mnist_demo import checkpoints
from mnist_demo import job as job_module
from mnist_demo import limits as caps
from mnist_demo.job import JobLimits, Snapshot, TrainingJob
from mnist_demo.models import build_model
from mnist_demo.predict import Predictor
from mnist_demo.records import EpochRecord, StartRecord, StepRecord
from mnist_demo.settings import AppSettings, SettingsError, from_env
from mnist_demo.training import Control, TrainResult
from mnist_demo.ui import Dashboard
from mnist_demo.ui.common import IDLE_TICK
from mnist_demo.ui.draw import NO_DIGIT, drawing_key
from mnist_demo.ui.live import markdown_line_html
from mnist_demo.ui.train import (
    CHART_SECONDS,
    TickKey,
    TrainTab,
    encode_key,
    parse_key,
    wake_rescoring,
)

BOUND = 60.0  # seconds: the most any wait may take on a loaded 2-core machine
ARGS = dict(preset="fast", **TRAINING_ARGS)
SETTLED = {"idle", "finished", "stopped"}
VALID_STATES = SETTLED | {"running", "paused", "stopping", "failed"}
pytestmark = [  # expected on the way to the messages these tests check
    pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
]


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> checkpoints.Checkpoint:
    return checkpoints.load(checkpoints.shipped("tutorial"))


@pytest.fixture
def make_dashboard(tmp_path, shipped):
    """Dashboards on the shipped weights, writing to tmp_path/runs; all jobs joined afterwards."""
    jobs: list[TrainingJob] = []

    def make(limits: JobLimits | None = None, **settings) -> Dashboard:
        predictor = Predictor(shipped, "shipped tutorial checkpoint", threads=1)
        job = TrainingJob(predictor, runs_dir=tmp_path / "runs", limits=limits)
        jobs.append(job)
        return Dashboard(job, predictor, AppSettings(runs_dir=tmp_path / "runs", **settings))

    yield make
    for job in jobs:
        job.stop()
        assert job.wait(BOUND), "a training thread outlived its test"


@pytest.fixture
def dashboard(make_dashboard) -> Dashboard:
    return make_dashboard()


class EventControl(Control):
    """A Control whose stop also wakes a simulated step at once."""

    def __init__(self) -> None:
        super().__init__()
        self.woken = threading.Event()

    def stop(self) -> None:
        super().stop()
        self.woken.set()


@pytest.fixture
def fake(monkeypatch):
    """Replace the job's train() by a stand-in: `steps` simulated steps of `step_seconds`."""
    # `finish`: a test that must look at a stopping run clears it to hold the run's return
    settings = SimpleNamespace(steps=3, step_seconds=0.002, calls=0, finish=threading.Event())
    settings.finish.set()
    model = build_model("tutorial")

    def fake_train(config, *, control, on_record, **kwargs):
        settings.calls += 1
        total = settings.steps
        on_record(
            StartRecord(
                kind="start",
                device="cpu (fake)",
                mode="fake",
                total_steps=total,
                steps_per_epoch=total,
                config=asdict(config),
            ),
            model,
        )
        done = 0
        for step in range(1, total + 1):
            control.wait_while_paused()
            if control.stopped:
                break
            control.woken.wait(settings.step_seconds)  # the step's "work"; a stop cuts it short
            done = step
            on_record(
                StepRecord(
                    kind="step",
                    epoch=1,
                    step=step,
                    epoch_progress=step / total,
                    loss=1.0,
                    train_accuracy=50.0,
                    lr=config.lr,
                    samples_per_second=1000.0,
                    train_seconds=0.001 * step,
                ),
                model,
            )
        settings.finish.wait(BOUND)
        return TrainResult(
            model=model, config=config, device="cpu (fake)", steps=done, stopped=control.stopped
        )

    monkeypatch.setattr(job_module, "Control", EventControl)
    monkeypatch.setattr(job_module, "train", fake_train)
    return settings


def training_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("training-run-")]


def join_training_threads() -> None:
    for thread in training_threads():
        thread.join(BOUND)
    assert training_threads() == [], "a training thread is still alive"


# --- images -------------------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def blank_png(path: Path, width: int, height: int, rows: int | None = None) -> Path:
    """A 1-bit black PNG of any size, compressed row by row: ~12 KB at 10,000 x 10,000.

    With `rows` < height only that many rows follow the header: a decompression bomb needs
    nothing more, since its size is refused from the header.
    """
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    packer = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)  # filter byte, then 8 pixels per byte
    data = b"".join(packer.compress(row) for _ in range(height if rows is None else rows))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", data + packer.flush())
        + _chunk(b"IEND", b"")
    )
    return path


def digit_one(size: int = 64, mode: str = "L") -> Image.Image:
    """A thick dark '1' on light paper."""
    image = Image.new(mode, (size, size), 255 if mode == "L" else 65535)
    ImageDraw.Draw(image).line([(size // 2, 4), (size // 2, size - 4)], fill=0, width=size // 10)
    return image


def drawing_url(image: Image.Image) -> str:
    """The drawing pad's value: its canvas as a PNG data URL."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def canvas(dot: bool = False) -> dict:
    """A Gradio ImageEditor value: transparent layers, ink only where drawn."""
    layer = np.zeros((400, 400, 4), np.uint8)
    if dot:
        layer[195:205, 195:205, 3] = 255
    background = np.full((400, 400, 4), 255, np.uint8)
    return {"background": background, "layers": [layer], "composite": background}


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> dict[str, object]:
    """Everything a visitor might send that holds no readable digit (files made once)."""
    tmp = tmp_path_factory.mktemp("bad-inputs")
    good = io.BytesIO()
    digit_one(280).save(good, "PNG")
    (tmp / "truncated.png").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (tmp / "text.png").write_text("hello, not an image")
    (tmp / "empty.png").write_bytes(b"")
    Image.new("L", (1, 1), 0).save(tmp / "one-pixel.png")
    return {
        "nothing": None,
        "empty canvas": canvas(),
        "empty editor value": {"background": None, "layers": [], "composite": None},
        "single dot": canvas(dot=True),
        "blank white page": np.full((300, 300, 3), 255, np.uint8),
        "1x1 image": Image.new("L", (1, 1), 0),
        "1x1 file": str(tmp / "one-pixel.png"),
        "10000x10000 png": str(blank_png(tmp / "huge.png", 10_000, 10_000)),
        "decompression bomb": str(blank_png(tmp / "bomb.png", 60_000, 60_000, rows=1)),
        "text file": str(tmp / "text.png"),
        "truncated png": str(tmp / "truncated.png"),
        "empty file": str(tmp / "empty.png"),
        "missing file": str(tmp / "nowhere.png"),
        "garbage bytes": b"\x89PNG\r\n\x1a\n garbage",
        "nan array": np.full((64, 64), np.nan, np.float32),
        "inf array": np.full((64, 64), np.inf, np.float32),
        "5-d array": np.zeros((2, 2, 2, 2, 2)),
        "complex array": np.zeros((32, 32), np.complex64),
        "a number": 7,
        "a list": [[0, 1], [1, 0]],
        "layers of different sizes": {
            "layers": [np.zeros((40, 40, 4), np.uint8), np.zeros((50, 50, 4), np.uint8)]
        },
    }


def assert_no_digit_message(out) -> str:
    """The views of a reading without a digit: no label, no explanation, a short message."""
    note, version = out.answered, out.shown_version
    assert out.label == {} and out.seen is None and out.image28 is None
    assert out.saliency is None and out.why_caption == ""
    assert isinstance(version, int)
    assert note.startswith("⚠️ ") or note in NO_DIGIT.values(), note
    assert len(note) < 400
    return note


# --- bad drawings and files ---------------------------------------------------------------------


BAD = [
    "nothing",
    "empty canvas",
    "empty editor value",
    "single dot",
    "blank white page",
    "1x1 image",
    "1x1 file",
    "10000x10000 png",
    "decompression bomb",
    "text file",
    "truncated png",
    "empty file",
    "missing file",
    "garbage bytes",
    "nan array",
    "inf array",
    "5-d array",
    "complex array",
    "a number",
    "a list",
    "layers of different sizes",
]
EXPECTED = {
    "nothing": NO_DIGIT["empty"],
    "empty canvas": NO_DIGIT["empty"],
    "single dot": NO_DIGIT["a dot"],
    "1x1 image": "need at least 8x8",
    "10000x10000 png": "too large: 10000x10000",
    "decompression bomb": "too large",
    "text file": "not an image",
    "truncated png": "cannot read",
}


@pytest.mark.parametrize("name", BAD)
def test_predict_answers_bad_input_with_a_message_and_never_raises(dashboard, bad_inputs, name):
    value = bad_inputs[name]

    note = assert_no_digit_message(dashboard.draw.predict(value))

    assert EXPECTED.get(name, "") in note


@pytest.mark.parametrize(
    "url, expected",
    [
        ("", NO_DIGIT["empty"]),
        (None, NO_DIGIT["empty"]),
        ("data:image/png;base64,!!!", "not valid base64"),
        ("data:text/html;base64,PGgxPg==", "not an image data URL"),
        ("javascript:alert(1)", "not an image data URL"),
        ("data:image/png;base64," + base64.b64encode(b"GIF89a junk").decode(), "not an image"),
        ("data:image/png;base64," + "A" * (9 * 1024 * 1024), "too large"),
    ],
    ids=["cleared", "none", "bad-base64", "not-image-mime", "js-url", "junk", "huge"],
)
def test_predict_drawing_answers_bad_data_urls_with_a_message(dashboard, url, expected):
    assert expected in assert_no_digit_message(dashboard.draw.predict_drawing(url))


def test_an_oversized_image_is_refused_from_its_header_without_decoding(
    dashboard, tmp_path, monkeypatch
):
    huge = blank_png(tmp_path / "huge.png", 10_000, 10_000)
    assert huge.stat().st_size < 100_000  # tiny on the wire, 100 megapixels decoded

    def no_decoding(image):
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    for value in (str(huge), huge.read_bytes()):
        assert "too large: 10000x10000" in assert_no_digit_message(dashboard.draw.predict(value))


def test_animated_gif_and_16_bit_tiff_are_read_not_refused(dashboard, tmp_path):
    frames = [digit_one(64), Image.new("L", (64, 64), 255), Image.new("L", (64, 64), 0)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    digit_one(64, mode="I;16").save(tmp_path / "deep.tif")
    assert Image.open(tmp_path / "deep.tif").mode == "I;16"

    for path in ("anim.gif", "deep.tif"):
        drawn = dashboard.draw.predict(str(tmp_path / path))
        confidences, note, image28 = drawn.label, drawn.answered, drawn.image28
        assert max(confidences, key=confidences.get) == "1", (path, note)
        assert image28.shape == (28, 28)


def test_a_failed_reading_leaves_the_next_good_one_working(dashboard, tmp_path):
    assert_no_digit_message(
        dashboard.draw.predict(str(blank_png(tmp_path / "h.png", 10_000, 10_000)))
    )
    confidences = dashboard.draw.predict(digit_one(280)).label
    assert max(confidences, key=confidences.get) == "1"


# --- bad hyperparameters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value, named",
    [
        ("lr", math.nan, "learning rate"),
        ("lr", -0.01, "learning rate"),
        ("lr", 0.0, "learning rate"),
        ("lr", 1e9, "learning rate"),
        ("lr", math.inf, "learning rate"),
        ("lr", None, "learning rate"),
        ("lr", "fast please", "learning rate"),
        ("lr", [0.01], "learning rate"),
        ("epochs", 0, "epochs"),
        ("epochs", -1, "epochs"),
        ("epochs", 10**6, "epochs"),
        ("epochs", 1e300, "epochs"),
        ("epochs", 0.01, "epochs"),  # fractions are fine (1.5 epochs), slivers are not
        ("epochs", math.nan, "epochs"),
        ("epochs", math.inf, "epochs"),
        ("epochs", None, "epochs"),
        ("epochs", True, "epochs"),
        ("epochs", "three", "epochs"),
        ("batch_size", 0, "batch size"),
        ("batch_size", -5.0, "batch size"),
        ("batch_size", 10**9, "batch size"),
        ("batch_size", 64.5, "batch size"),
        ("batch_size", None, "batch size"),
        ("seed", -1, "seed"),
        ("seed", 1e30, "seed"),
        ("augment", 99, "augment"),
        ("augment", 1.5, "augment"),
        ("label_smoothing", -0.1, "label smoothing"),
        ("label_smoothing", 0.9, "label smoothing"),
        ("label_smoothing", math.nan, "label smoothing"),
        ("label_smoothing", None, "label smoothing"),
        ("model", "resnet-1000", "model"),
        ("schedule", "chaotic", "schedule"),
        ("device", "meta", "device"),
        ("device", "cuda:99", "cuda"),
        ("preset", "bogus", "preset"),
    ],
)
def test_start_refuses_bad_hyperparameters_with_a_message_and_starts_nothing(
    dashboard, fake, field, value, named
):
    message = dashboard.train.start(**{**ARGS, field: value})

    assert message.startswith("⚠️ ") and named in message, message
    assert fake.calls == 0 and training_threads() == []
    snap = dashboard.job.snapshot()
    assert snap.state == "idle" and snap.run_id == 0 and snap.config is None


def test_the_server_caps_epochs_below_the_sanity_limit(make_dashboard, fake):
    dashboard = make_dashboard(limits=JobLimits(max_epochs=3))

    assert (
        dashboard.train.start(**{**ARGS, "epochs": 4}) == "⚠️ epochs are capped at 3 on this server"
    )
    assert fake.calls == 0
    assert dashboard.train.start(**{**ARGS, "epochs": 3}) == "Run 1 started."
    assert dashboard.job.wait(BOUND)


# --- training off / token -----------------------------------------------------------------------


def test_training_off_refuses_every_command_even_with_a_token(make_dashboard, fake):
    dashboard = make_dashboard(training="off", token="s3cret")
    commands = {
        "start": lambda token: dashboard.train.start(**ARGS, token=token),
        "pause": dashboard.train.pause,
        "resume": dashboard.train.resume,
        "stop": dashboard.train.stop,
        "reset": dashboard.train.reset,
    }

    for name, command in commands.items():
        for token in (None, "", "s3cret"):
            assert command(token) == (
                "Training is disabled on this server; the Draw tab still works."
            ), name

    assert fake.calls == 0 and dashboard.job.snapshot().run_id == 0
    assert dashboard.api.status()["state"] == "idle"  # reading stays open
    assert dashboard.draw.predict(digit_one(280)).label  # and so does drawing


@pytest.mark.parametrize("wrong", [None, "", "s3cre", "s3cret ", "S3CRET", "s3cret\x00"])
def test_token_mode_refuses_a_wrong_token_and_accepts_the_right_one(make_dashboard, fake, wrong):
    fake.steps, fake.step_seconds = 1, BOUND  # the run lasts until stopped
    dashboard = make_dashboard(training="token", token="s3cret")
    refusal = "Training needs the access token of this server."

    assert dashboard.train.start(**ARGS, token=wrong) == refusal
    assert fake.calls == 0
    assert dashboard.train.start(**ARGS, token="s3cret") == "Run 1 started."
    for command in (
        dashboard.train.pause,
        dashboard.train.resume,
        dashboard.train.stop,
        dashboard.train.reset,
    ):
        assert command(wrong) == refusal
    assert dashboard.job.state.value == "running"
    assert dashboard.train.pause("s3cret") == "Paused."
    assert dashboard.train.resume("s3cret") == "Resumed."
    assert dashboard.train.stop("s3cret") == "Stop requested."
    assert dashboard.job.wait(BOUND)
    assert dashboard.train.reset("s3cret").startswith("Reset.")


def test_token_mode_without_a_token_refuses_everyone():
    settings = AppSettings(training="token", token=None)
    assert not any(settings.may_train(t) for t in (None, "", "None", "anything"))


# --- settings from the environment --------------------------------------------------------------


@pytest.mark.parametrize(
    "env, message",
    [
        ({"MNIST_DEMO_TRAINING": "maybe"}, "must be one of"),
        ({"MNIST_DEMO_TRAINING": "token"}, "needs MNIST_DEMO_TOKEN"),
        ({"MNIST_DEMO_TRAINING": "token", "MNIST_DEMO_TOKEN": ""}, "needs MNIST_DEMO_TOKEN"),
        ({"MNIST_DEMO_MAX_EPOCHS": "many"}, "not a number"),
        ({"MNIST_DEMO_MAX_EPOCHS": "0"}, "at least 1"),
        ({"MNIST_DEMO_MAX_EPOCHS": "-3"}, "at least 1"),
        ({"MNIST_DEMO_MAX_EPOCHS": "nan"}, "at least 1"),
        ({"MNIST_DEMO_MAX_EPOCHS": "inf"}, "whole number"),
        ({"MNIST_DEMO_MAX_EPOCHS": "2.5"}, "whole number"),
        ({"MNIST_DEMO_MAX_SECONDS": "soon"}, "not a number"),
        ({"MNIST_DEMO_MAX_SECONDS": "0"}, "at least 1"),
        ({"MNIST_DEMO_MAX_SECONDS": "NaN"}, "at least 1"),
        ({"MNIST_DEMO_QUEUE_SIZE": "0"}, "at least 1"),
        ({"MNIST_DEMO_QUEUE_SIZE": "1e400"}, "whole number"),
        ({"MNIST_DEMO_QUEUE_SIZE": "lots"}, "not a number"),
        ({"MNIST_DEMO_MAX_FILE_SIZE": "big"}, "not a size"),
        ({"MNIST_DEMO_MAX_FILE_SIZE": "-1mb"}, "not a size"),
        ({"MNIST_DEMO_MAX_FILE_SIZE": "5 parsecs"}, "not a size"),
    ],
)
def test_from_env_refuses_bad_values_at_start_up(env, message):
    with pytest.raises(SettingsError, match=message):
        from_env(env)


def test_from_env_reads_a_public_space_configuration(tmp_path):
    settings = from_env(
        {
            "MNIST_DEMO_TRAINING": " Token ",
            "MNIST_DEMO_TOKEN": "s3cret",
            "MNIST_DEMO_MAX_EPOCHS": "5",
            "MNIST_DEMO_MAX_SECONDS": "300",
            "MNIST_DEMO_QUEUE_SIZE": "8.0",
            "MNIST_DEMO_MAX_FILE_SIZE": "2 MB",
            "MNIST_DEMO_RUNS_DIR": str(tmp_path),
        }
    )

    assert (settings.training, settings.token) == ("token", "s3cret")
    assert settings.limits.max_epochs == 5 and settings.limits.max_seconds == 300.0
    assert settings.queue_size == 8 and settings.max_file_size == "2 MB"
    assert settings.runs_dir == tmp_path
    assert not settings.may_train("wrong") and settings.may_train("s3cret")


def test_from_env_defaults_allow_local_use():
    settings = from_env({})
    assert settings.training == "on" and settings.may_train(None)
    assert settings.limits.max_epochs == 200 and settings.limits.max_seconds == math.inf
    assert settings.queue_size == 64 and settings.max_file_size == "5mb"


# --- concurrency --------------------------------------------------------------------------------


def test_fifty_simultaneous_starts_start_exactly_one_run(dashboard, fake):
    fake.steps, fake.step_seconds = 1, BOUND  # the run lasts until stopped
    barrier = threading.Barrier(50)
    answers: list[str] = []

    def press_start() -> None:
        barrier.wait(BOUND)
        answers.append(dashboard.train.start(**ARGS))

    visitors = [threading.Thread(target=press_start) for _ in range(50)]
    for thread in visitors:
        thread.start()
    for thread in visitors:
        thread.join(BOUND)

    assert len(answers) == 50
    assert answers.count("Run 1 started.") == 1
    assert all("already running" in a for a in answers if a != "Run 1 started."), set(answers)
    assert fake.calls == 1 and len(training_threads()) == 1
    assert dashboard.job.snapshot().run_id == 1
    assert dashboard.train.stop() == "Stop requested."
    assert dashboard.job.wait(BOUND)
    assert dashboard.job.snapshot().state == "stopped"
    join_training_threads()


def check_snapshot(snap, last_run_id: int) -> list[str]:
    """What must hold in any snapshot, whatever the interleaving of commands."""
    problems = []
    if snap.state not in VALID_STATES:
        problems.append(f"unknown state {snap.state}")
    if snap.run_id < last_run_id:
        problems.append(f"run_id went back from {last_run_id} to {snap.run_id}")
    if snap.n_records != len(snap.records):
        problems.append("n_records disagrees with the records")
    if any(r["run_id"] != snap.run_id for r in snap.records):
        problems.append(f"records of another run in run {snap.run_id}")
    if snap.state == "idle" and (snap.records or snap.config is not None):
        problems.append("idle with a log or a config")
    if snap.state in {"running", "paused", "stopping"} and snap.config is None:
        problems.append(f"{snap.state} without a config")
    if snap.state not in {"running", "paused", "stopping"} and snap.eta_seconds is not None:
        problems.append(f"an ETA while {snap.state}")
    return problems


@pytest.mark.parametrize("seed", [0, 1])
def test_random_interleavings_of_commands_leave_a_consistent_state(dashboard, fake, seed):
    fake.steps, fake.step_seconds = 5, 0.01  # runs of ~50 ms: long enough to be paused
    commands = {
        "start": lambda: dashboard.train.start(**ARGS),
        "pause": dashboard.train.pause,
        "resume": dashboard.train.resume,
        "stop": dashboard.train.stop,
        "reset": dashboard.train.reset,
    }
    barrier = threading.Barrier(8)
    answers: list[tuple[str, str]] = []
    crashes: list[BaseException] = []
    done = threading.Event()
    problems: list[str] = []

    def visitor(n: int) -> None:
        rng = random.Random(seed * 100 + n)
        barrier.wait(BOUND)
        try:
            for _ in range(60):
                name = rng.choice(list(commands))
                answers.append((name, commands[name]()))
        except BaseException as err:  # recorded, then the test fails on it
            crashes.append(err)

    def viewer() -> None:
        last = 0
        while not done.wait(0.001):  # a dashboard tab polling while the buttons are pressed
            snap = dashboard.job.snapshot()
            problems.extend(check_snapshot(snap, last))
            last = snap.run_id
            if dashboard.api.status()["state"] not in VALID_STATES:
                problems.append("the /status endpoint answered an unknown state")

    watching = threading.Thread(target=viewer)
    watching.start()
    visitors = [threading.Thread(target=visitor, args=(n,)) for n in range(8)]
    for thread in visitors:
        thread.start()
    for thread in visitors:
        thread.join(BOUND)
    done.set()
    watching.join(BOUND)

    assert not crashes and not any(t.is_alive() for t in visitors + [watching])
    assert not problems, problems[:5]
    assert len(answers) == 8 * 60
    assert all(isinstance(message, str) and message for _, message in answers)
    started = sorted(
        int(m.split()[1]) for name, m in answers if name == "start" and m.endswith("started.")
    )
    run_id = dashboard.job.snapshot().run_id
    assert run_id >= 1 and started == list(range(1, run_id + 1)) and fake.calls == run_id
    # Whatever happened, one stop brings the job to rest and the next start works.
    dashboard.train.stop()
    assert dashboard.job.wait(BOUND)
    join_training_threads()
    snap = dashboard.job.snapshot()
    assert snap.state in SETTLED and not check_snapshot(snap, run_id)
    assert dashboard.train.start(**ARGS) == f"Run {run_id + 1} started."
    assert dashboard.job.wait(BOUND) and dashboard.job.state.value == "finished"


def test_visitors_draw_while_a_real_run_publishes_new_weights(
    make_dashboard, tiny_mnist, monkeypatch
):
    """Eight visitors keep drawing during a short real run; every answer is a digit."""
    real_train = job_module.train
    monkeypatch.setattr(  # one torch thread, as conftest explains: the cores are shared
        job_module, "train", lambda config, **kw: real_train(replace(config, threads=1), **kw)
    )
    dashboard = make_dashboard(limits=JobLimits(publish_interval=0.0))
    digit = digit_one(280)
    first_version = dashboard.predictor.version.number
    seen: list[list[int]] = [[] for _ in range(8)]
    crashes: list[BaseException] = []
    finished = threading.Event()

    def visitor(n: int) -> None:
        try:
            while len(seen[n]) < 400:  # bounded, and ends with the run
                out = dashboard.draw.predict(digit)
                assert out.label and out.answered.startswith("Answered by"), out.answered
                seen[n].append(out.shown_version)
                if finished.wait(0.1):  # a visitor's pace; the pad re-scores once a second
                    return
        except BaseException as err:
            crashes.append(err)

    visitors = [threading.Thread(target=visitor, args=(n,)) for n in range(8)]
    for thread in visitors:
        thread.start()
    assert dashboard.train.start(**{**ARGS, "batch_size": 64}) == "Run 1 started."
    assert dashboard.job.wait(BOUND)
    finished.set()
    for thread in visitors:
        thread.join(BOUND)

    assert not crashes, crashes[:1]
    assert dashboard.job.state.value == "finished"
    assert all(versions == sorted(versions) for versions in seen)  # never older weights
    assert max(max(v) for v in seen) > first_version  # the visitors saw live weights
    assert dashboard.predictor.version.label == "training run 1, epoch 1 (final)"


def test_a_viewer_that_goes_away_does_not_stop_the_run(dashboard, fake):
    """Closing a tab only stops its polling; nothing a tab holds can end the shared job."""
    fake.steps, fake.step_seconds = 1, BOUND
    assert dashboard.train.start(**ARGS) == "Run 1 started."
    dashboard.train.tick(None)  # the tab that pressed Start renders once, then is closed

    assert dashboard.job.state.value == "running"
    assert dashboard.train.tick(None).status.startswith(
        "**Running** · run 1"
    )  # a new tab sees the run
    assert dashboard.api.status()["state"] == "running"
    assert dashboard.train.stop() == "Stop requested."
    assert dashboard.job.wait(BOUND)


# --- the drawing follows live weights -----------------------------------------------------------


def timer_update(update) -> bool | None:
    """What a handler told a gr.Timer: True / False for on / off, None for untouched."""
    return None if update == gr.skip() else update.active


def test_a_tab_that_has_seen_the_latest_state_gets_nothing_to_redraw(dashboard):
    first = dashboard.train.tick(None)
    assert first.status.startswith("**Idle**")
    assert all(update == gr.skip() for update in dashboard.train.tick(first.seen_key))


def test_a_poll_leaves_a_buttons_answer_up_until_the_jobs_message_changes(dashboard, fake):
    """The poll never sends the message: job_views does, when the job's key changes."""
    fake.steps, fake.step_seconds = 1, BOUND  # the run holds in its first step
    fake.finish.clear()  # and, once stopped, stays "Stopping…" until the test has looked
    assert dashboard.train.start(**ARGS) == "Run 1 started."
    seen = dashboard.train.tick(None)
    assert dashboard.train.job_views().message == "Run 1 started."
    assert dashboard.train.start(**ARGS).startswith("⚠️ A training run is already running")
    again = dashboard.train.tick(seen.seen_key)
    assert again.job_key in (gr.skip(), seen.job_key), "the tab's 'already running' stays"
    assert dashboard.train.stop() == "Stop requested."
    stopping = dashboard.train.tick(seen.seen_key).job_key
    assert stopping != seen.job_key and stopping.endswith("Stopping…")
    assert dashboard.train.job_views().message == "Stopping…"
    fake.finish.set()
    assert dashboard.job.wait(BOUND)


def start_a_held_run(dashboard, fake) -> None:
    """Start run 1 and return once its start record is visible; it holds in its first step."""
    fake.steps, fake.step_seconds = 1, BOUND
    assert dashboard.train.start(**ARGS) == "Run 1 started."
    deadline = time.monotonic() + BOUND
    while dashboard.job.snapshot().n_records == 0:  # the run's start record, from its thread
        assert time.monotonic() < deadline, "the run never began"
        time.sleep(0.01)


def test_a_poll_after_new_records_redraws_the_status_and_charts_only(dashboard, fake):
    """Each output a poll sends costs every open tab a re-render: send only what moved."""
    start_a_held_run(dashboard, fake)
    first = dashboard.train.tick(None)
    status_and_charts = (first.status, first.loss_plot, first.acc_plot, first.speed_plot)
    assert all(u != gr.skip() for u in status_and_charts)
    key = first.seen_key
    # a tab whose charts lack a record and were drawn longer than CHART_SECONDS ago
    behind = key._replace(
        n_records=key.n_records - 1,
        charted=key.n_records - 1,
        charted_at=key.charted_at - CHART_SECONDS,
    )
    missed_a_record = dashboard.train.tick(behind)
    charts = (missed_a_record.loss_plot, missed_a_record.acc_plot, missed_a_record.speed_plot)
    assert all(chart != gr.skip() for chart in charts), "the three charts"
    assert (missed_a_record.epoch_key, missed_a_record.job_key) == (first.epoch_key, first.job_key)
    paused = dashboard.train.tick(key._replace(state="paused"))
    charts = (paused.loss_plot, paused.acc_plot, paused.speed_plot)
    assert all(chart == gr.skip() for chart in charts), "no new records: charts stay"


def test_the_pages_own_poll_sends_status_and_charts_once_then_only_what_moved(dashboard):
    """TrainTab.poll (ui/live.py): the page keeps the key it got back and sends it again."""
    first = dashboard.train.poll(None)
    assert "<strong>Idle</strong>" in first["status"] and len(first["charts"]) == 3
    assert all(svg.startswith("<svg") for svg in first["charts"])
    assert first["every"] == IDLE_TICK
    again = dashboard.train.poll(first["key"])
    assert again["key"] is again["status"] is again["charts"] is None, "nothing moved"
    key = parse_key(first["key"])
    assert key is not None and key.charted == key.n_records, "the charts it drew"


def test_the_poll_says_when_the_per_epoch_and_per_run_views_moved(dashboard, fake):
    """The page runs `watch` (a Gradio round trip) only when an answer's `watch` changed: at
    a run's start and state changes, never for a step record."""
    idle = dashboard.train.poll(None)
    start_a_held_run(dashboard, fake)
    running = dashboard.train.poll(idle["key"])
    assert running["watch"] not in (None, idle["watch"]), "a run started: new views"
    assert running["live"] and not idle["live"], "the page streams while a run is live"
    key = parse_key(running["key"])
    behind = dashboard.train.poll(encode_key(key._replace(n_records=key.n_records - 1)))
    assert behind["watch"] == running["watch"], "the same views, whatever the tab had seen"
    assert dashboard.train.poll(running["key"])["watch"] is None, "nothing moved, nothing sent"
    assert dashboard.train.stop() == "Stop requested."
    stopping = dashboard.train.poll(running["key"])
    assert stopping["watch"] not in (None, running["watch"])
    assert dashboard.job.wait(BOUND)


def test_the_poll_says_when_an_epochs_figure_follows_its_record(dashboard, fake, monkeypatch):
    """The job draws an epoch's figure after the epoch is shown (job.py): its arrival alone,
    with no new record, must move `watch` so that the page fetches it."""
    start_a_held_run(dashboard, fake)
    before = dashboard.train.poll(None)
    snapshot = dashboard.job.snapshot
    drawn = replace(snapshot(), figure_epochs=snapshot().figure_epochs + 1)
    monkeypatch.setattr(dashboard.job, "snapshot", lambda: drawn)
    after = dashboard.train.poll(before["key"])
    assert after["watch"] not in (None, before["watch"])
    assert after["charts"] is None, "only the per-epoch views moved"
    assert dashboard.train.stop() == "Stop requested."
    assert dashboard.job.wait(BOUND)


@pytest.mark.parametrize(
    "sent",
    [
        None,
        "",
        "not json",
        "[1, 2]",
        '{"run_id": 1}',
        '[null, 0, "idle", "", 0, 1, 0, 0, "x", 0.0]',  # a field of the wrong type
        '[true, 0, "idle", "", 0, 1, 0, 0, 0, 0.0]',
        "[" * 5000,  # longer than any key
        17,
        ["a", "list"],
    ],
)
def test_a_forged_or_stale_poll_key_gets_a_full_answer_not_an_error(dashboard, sent):
    reply = dashboard.train.poll(sent)
    assert reply["status"] is not None and reply["key"] is not None
    assert parse_key(sent) is None


def test_the_poll_status_line_is_escaped_html():
    assert markdown_line_html("**Running** · <b>x</b> & y") == (
        "<p><strong>Running</strong> · &lt;b&gt;x&lt;/b&gt; &amp; y</p>"
    )


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _step(n: int) -> StepRecord:
    return StepRecord(
        kind="step",
        epoch=1,
        step=n,
        epoch_progress=n / 100,
        loss=1.0 / n,
        train_accuracy=90.0,
        lr=1e-3,
        samples_per_second=1000.0,
        train_seconds=0.1 * n,
    )


def _epoch(step: int) -> EpochRecord:
    """Epoch 1's end after `step` steps: the full test read 97.5%."""
    return EpochRecord(
        kind="epoch",
        epoch=1,
        step=step,
        epochs_done=1.0,
        train_loss=0.3,
        train_accuracy=91.0,
        test_accuracy=97.5,
        test_loss=0.1,
        per_class_accuracy=[97.5] * 10,
        confusion=[[0] * 10] * 10,
        epoch_seconds=0.3,
        eval_seconds=0.1,
        train_seconds=0.3,
    )


def _watched_run(dashboard, total_steps: int) -> tuple[FakeClock, TrainTab, list, list[str]]:
    """The Train tab on a fake clock, polling a fake job: the test appends the run's records
    and sets its state (`state[0]`), the tab's polls see them."""
    clock, tab = FakeClock(), dashboard.train
    tab.clock = clock
    records: list = [
        StartRecord(
            kind="start",
            device="cpu",
            mode="fake",
            total_steps=total_steps,
            steps_per_epoch=total_steps,
            config={},
        )
    ]
    state = ["running"]
    tab.job = SimpleNamespace(snapshot=lambda: _snapshot(state[0], records))
    return clock, tab, records, state


def _snapshot(state: str, records: list) -> Snapshot:
    steps = [r for r in records if r["kind"] == "step"]
    return Snapshot(
        state=state,
        run_id=1,
        message=f"Run 1 {state}.",
        records=list(records),
        n_records=len(records),
        config={"epochs": 1},
        device="cpu",
        latest_step=steps[-1] if steps else None,
        latest_epoch=None,
        best_test_accuracy=None,
        eta_seconds=None,
        checkpoint=None,
    )


def _points(plot: str) -> int:
    """How many data points a live chart's SVG draws."""
    return sum(chart_points(plot).values())


def test_the_charts_redraw_at_most_every_chart_seconds_and_the_status_every_poll(dashboard):
    """A record every 0.25 s, a poll every 0.3 s: the status line follows each poll that saw
    a new record; the three charts, which the browser rebuilds whole, follow at most every
    CHART_SECONDS, and each send carries every record so far."""
    clock, tab, records, _ = _watched_run(dashboard, total_steps=100)
    seen, statuses, charts, began = None, 0, [], clock.now
    for poll in range(1, 35):  # 10 seconds
        clock.now = began + 0.3 * poll
        while len(records) - 1 < (clock.now - began) / 0.25:
            records.append(_step(len(records)))
        view = tab.tick(seen)
        seen = view.seen_key
        statuses += view.status != gr.skip()
        sent = [view.loss_plot, view.acc_plot, view.speed_plot]
        assert all(p == gr.skip() for p in sent) or all(p != gr.skip() for p in sent)
        if view.acc_plot != gr.skip():
            charts.append(clock.now)
            assert _points(view.loss_plot) == len(records) - 1, "every step so far"
    assert statuses == 34, "every poll saw a new record"
    gaps = [b - a for a, b in zip(charts, charts[1:], strict=False)]
    assert min(gaps) >= max(CHART_SECONDS, 0.5) - 1e-9, "at most twice a second"
    assert len(charts) >= 10 / (CHART_SECONDS + 0.3) - 1, "no slower than one per two polls"

    # the records stop: the charts catch up once, then nothing is sent
    clock.now += 1
    view = tab.tick(seen)
    if seen.charted != seen.n_records:  # the last poll's record was still to draw
        assert _points(view.loss_plot) == len(records) - 1
        seen = view.seen_key
    clock.now += 1
    assert all(u == gr.skip() for u in tab.tick(seen))


def test_a_throttled_chart_catches_up_later_and_a_finished_run_is_drawn_at_once(dashboard):
    clock, tab, records, state = _watched_run(dashboard, total_steps=3)
    records.append(_step(1))
    first = tab.tick(None)
    assert _points(first.loss_plot) == 1
    records.append(_step(2))
    clock.now += CHART_SECONDS / 2
    soon = tab.tick(first.seen_key)
    assert soon.status != gr.skip() and soon.loss_plot == gr.skip(), "throttled"
    clock.now += CHART_SECONDS / 4
    assert all(u == gr.skip() for u in tab.tick(soon.seen_key)), "still within the interval"
    clock.now += CHART_SECONDS / 4
    later = tab.tick(soon.seen_key)
    assert _points(later.loss_plot) == 2, "the missed point, once the interval passed"

    # the run's last step and its test arrive; it finishes right after a chart was sent
    records.append(_step(3))
    clock.now += 0.01
    throttled = tab.tick(later.seen_key)
    assert throttled.loss_plot == gr.skip()
    records.append(_epoch(3))
    state[0] = "finished"
    clock.now += 0.01
    final = tab.tick(throttled.seen_key)
    assert _points(final.loss_plot) == 3, "the whole run, at once"
    full_tests = [t for t in chart_dots(final.acc_plot) if t.startswith("test: all 10,000")]
    assert full_tests == ["test: all 10,000: 97.5 at epoch 1"]


def test_tabs_watching_the_same_run_share_one_build_of_its_charts(dashboard):
    """Every tab polling a run gets the charts of its records; the specs are built once per
    record count, not once per tab (the second tab's poll was a full rebuild)."""
    clock, tab, records, _ = _watched_run(dashboard, total_steps=10)
    builds = []
    build = tab.live_charts
    tab.live_charts = lambda rs: builds.append(len(rs)) or build(rs)
    records.append(_step(1))
    first, second = tab.tick(None), tab.tick(None)
    assert _points(first.loss_plot) == _points(second.loss_plot) == 1
    assert builds == [2], "one build for both tabs"
    records.append(_step(2))
    clock.now += CHART_SECONDS
    a, b = tab.tick(first.seen_key), tab.tick(second.seen_key)
    assert _points(a.loss_plot) == _points(b.loss_plot) == 2, "a new record: new charts"
    assert builds == [2, 3]


def test_the_views_after_an_epoch_or_a_state_change_match_their_outputs(dashboard):
    views = dashboard.train.epoch_views()
    assert views._fields == ("figure", "per_class", "confusion", "class_caption")
    job = dashboard.train.job_views()
    downloads = (job.download, job.csv_download, job.png_download)
    assert job.message == dashboard.job.snapshot().message and len(downloads) == 3


def test_the_warm_up_drawing_goes_the_whole_way_and_is_read_as_a_one(dashboard):
    assert dashboard.draw.warm_up() == "1"


def test_a_drawing_is_rescored_while_weights_change_and_the_timer_sleeps_when_idle(dashboard, fake):
    drawn = dashboard.draw.predict(digit_one())
    image28, shown = drawn.image28, drawn.shown_version
    pad = "data:image/png;base64,..."  # any non-empty value: the pad still holds a drawing
    key = drawing_key(pad)  # ...the one the views show

    idle = dashboard.draw.follow_live_weights(pad, None, image28, shown, drawn_key=key)
    rest = idle._replace(draw_timer=gr.skip())
    assert all(u == gr.skip() for u in rest) and timer_update(idle.draw_timer) is False
    assert (
        timer_update(dashboard.train.tick(None, image28).draw_timer) is None
    )  # idle: nothing to wake

    fake.steps, fake.step_seconds = 1, BOUND  # the run holds in its first step
    assert dashboard.train.start(**ARGS) == "Run 1 started."
    assert (
        timer_update(dashboard.train.tick(None, image28).draw_timer) is True
    )  # a tab opened mid-run
    assert timer_update(dashboard.train.tick(None).draw_timer) is None, (
        "no drawing: nothing to re-score"
    )
    name, weights, _ = dashboard.predictor.weights()
    dashboard.predictor.set_weights(name, weights, "training run 1, epoch 0.50")  # as the job

    live = dashboard.draw.follow_live_weights(pad, None, image28, shown, drawn_key=key)
    assert live.label and live.shown_version > shown, "the run's weights re-score the drawing"
    assert timer_update(live.draw_timer) is None  # stays on while the job is active
    cleared = dashboard.draw.follow_live_weights("", None, image28, shown, drawn_key=key)
    assert cleared.label == gr.skip() and timer_update(cleared.draw_timer) is False, (
        "nothing to follow"
    )
    assert timer_update(dashboard.draw.read_drawing("").draw_timer) is None
    assert timer_update(dashboard.draw.read_drawing(drawing_url(digit_one())).draw_timer) is True

    assert dashboard.train.stop() == "Stop requested."
    assert dashboard.job.wait(BOUND)
    final = dashboard.predictor.version.number  # the stopped run's weights, once re-scored
    done = dashboard.draw.follow_live_weights(pad, None, image28, final, drawn_key=key)
    assert done.label == gr.skip() and timer_update(done.draw_timer) is False


@pytest.mark.parametrize(
    ("before", "now", "wake"),
    [
        (None, ("running", 7), True),  # a tab opened mid-run
        (None, ("idle", 1), None),
        (("idle", 1), ("running", 2), True),  # a run starts
        (("running", 2), ("running", 9), None),  # already on: never restart its interval
        (("running", 9), ("finished", 10), True),  # the final weights
        (("finished", 10), ("finished", 11), True),  # a shared fine-tune
        (("finished", 10), ("finished", 10), None),
    ],
)
def test_the_dashboard_wakes_the_draw_timer_only_on_transitions(before, now, wake):
    def key(state_weights):
        state, weights = state_weights
        return TickKey(1, 5, state, "", 0, weights, 0)

    seen = None if before is None else key(before)
    update = wake_rescoring(seen, key(now), now[0] == "running")
    assert timer_update(update) is wake


def test_visitors_readings_count_as_requests_in_flight_for_the_training_loop(
    dashboard, monkeypatch
):
    """The job's training loop pauses while this count is above zero (limits.GiveWay)."""
    from mnist_demo import predict

    counted: list[int] = []
    real = predict.Weights.predict

    def spy(self, image):
        counted.append(dashboard.job.in_flight.count)
        return real(self, image)

    monkeypatch.setattr(predict.Weights, "predict", spy)
    url = drawing_url(digit_one(280))
    dashboard.draw.read_drawing(url)
    asyncio.run(dashboard.api.predict_api(url))  # read on the event loop
    monkeypatch.setattr(caps, "INLINE_PIXELS", 100)
    asyncio.run(dashboard.api.predict_api(url))  # read in a worker thread
    assert counted == [1, 1, 1] and dashboard.job.in_flight.count == 0


def test_the_api_reads_a_small_image_on_the_event_loop_and_a_large_one_in_a_thread(
    dashboard, monkeypatch
):
    """A worker thread per call made the server hand the GIL back and forth with its event
    loop: 20 API clients' p95 was 1.35x a bare Gradio app's, 1.01x read inline."""
    from mnist_demo import predict

    threads: list[int] = []
    real = predict.Weights.predict

    def spy(self, image):
        threads.append(threading.get_ident())
        return real(self, image)

    monkeypatch.setattr(predict.Weights, "predict", spy)
    url = drawing_url(digit_one(280))
    small = asyncio.run(dashboard.api.predict_api(url))
    loop_thread = threading.get_ident()  # asyncio.run runs the loop in this thread
    monkeypatch.setattr(caps, "INLINE_PIXELS", 280 * 280 - 1)
    large = asyncio.run(dashboard.api.predict_api(url))
    assert threads[0] == loop_thread and threads[1] != loop_thread
    assert small == large and small["label"] == "1"


def test_a_small_api_image_never_waits_for_the_pixel_budget(dashboard, monkeypatch):
    """The event loop must not block: with the small-image budget all taken (by large
    decodes elsewhere), a drawing is still read at once, not after the budget's wait."""
    budget = caps.SMALL_DECODES
    monkeypatch.setattr(budget, "wait", 30.0)
    url = drawing_url(digit_one(280))
    with budget.hold(budget.units):
        began = time.perf_counter()
        answer = asyncio.run(dashboard.api.predict_api(url))
    assert answer["label"] == "1" and time.perf_counter() - began < 10
    monkeypatch.setattr(caps, "INLINE_PIXELS", 100)  # the threaded path does wait, and says so
    monkeypatch.setattr(budget, "wait", 0.0)
    with budget.hold(budget.units), pytest.raises(gr.Error, match="busy"):
        asyncio.run(dashboard.api.predict_api(url))


def test_a_runs_first_point_and_each_full_test_are_drawn_without_waiting(dashboard):
    """The throttle spares the browser, not the visitor: the first point of a run and each
    full test (the number people wait for) go out on the poll that sees them."""
    clock, tab, records, _ = _watched_run(dashboard, total_steps=3)
    before = tab.tick(None)  # the Draw model's curves, just sent
    records.append(_step(1))
    clock.now += 0.01
    first = tab.tick(before.seen_key)
    assert _points(first.loss_plot) == 1, "the run's first point at once"
    records.append(_step(2))
    clock.now += 0.01
    assert tab.tick(first.seen_key).loss_plot == gr.skip(), "a step within the interval waits"
    records.append(_epoch(2))
    clock.now += 0.01
    tested = tab.tick(first.seen_key)
    assert tested.acc_plot != gr.skip(), "a full test at once"
    assert "test: all 10,000: 97.5 at epoch 1" in chart_dots(tested.acc_plot)


# What the app's start-up (`python app.py`, with Gradio's launch replaced by a no-op) must
# leave unimported: pyplot, which Gradio 6.31's check around every event (in the event loop)
# imported while matplotlib's backend was unresolved, and torchvision with the torch._dynamo
# it imports (2.3-3.7 s of start-up, for a tile grid); and its objects out of the GC's scans.
START_AND_LIST_MODULES = """import gc, json, sys
import gradio as gr
gr.Blocks.launch = lambda self, *args, **kwargs: None
from mnist_demo.launch import main
main([])
from gradio.utils import MatplotlibBackendMananger
with MatplotlibBackendMananger():
    pass
heavy = ("matplotlib.pyplot", "torchvision", "torch._dynamo")
print(json.dumps([name for name in heavy if name in sys.modules]))
print(gc.get_freeze_count() > 1000)"""


def test_the_app_starts_and_serves_events_without_pyplot_or_torchvision(tmp_path):
    """The first event imported pyplot in the event loop: 0.6-0.8 s in which the server
    answered no one; torchvision cost every start-up seconds; a full collection over the
    start-up's objects held every thread 215-256 ms (BENCHMARKS.md, thirteenth session).
    The start-up includes a drawing's explanation, which tiles feature maps."""
    env = {**os.environ, "MNIST_DEMO_RUNS_DIR": str(tmp_path / "runs")}
    done = subprocess.run(
        [sys.executable, "-c", START_AND_LIST_MODULES],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-2:] == ["[]", "True"]
