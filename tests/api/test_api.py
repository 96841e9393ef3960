"""The public API as a gradio_client user sees it, against the app launched on loopback."""

from __future__ import annotations

import base64
import gzip
import shutil
import tempfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from support import TRAINING_ARGS, draw_digit_png, launch, wait_status

from mnist_demo import draw_model
from mnist_demo.data import BUNDLED_DIR

pytestmark = pytest.mark.api


def _label(result: dict) -> str | None:
    return result["label"]


def _mnist_test_digit(index: int) -> tuple[np.ndarray, int]:
    images = gzip.decompress((BUNDLED_DIR / "t10k-images-idx3-ubyte.gz").read_bytes())[16:]
    labels = gzip.decompress((BUNDLED_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes())[8:]
    return np.frombuffer(images, np.uint8).reshape(-1, 28, 28)[index], labels[index]


def test_only_documented_endpoints_are_public(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/predict", "/predict_file", "/status", "/start_training", "/stop_training"} <= names
    internal = {"/tick", "/follow_live_weights", "/apply_preset", "/lambda"}
    assert not names & internal, names


def test_predict_takes_a_sketchpad_value(client, tmp_path):
    layer = draw_digit_png(tmp_path / "layer.png", "7", rgba_layer=True)
    white = tmp_path / "white.png"
    Image.new("RGB", (400, 400), "white").save(white)
    composite = draw_digit_png(tmp_path / "composite.png", "7")
    value = {
        "background": handle_file(str(white)),
        "layers": [handle_file(str(layer))],
        "composite": handle_file(str(composite)),
    }
    result = client.predict(value, api_name="/predict")
    assert _label(result) == "7"
    assert set(result["probabilities"]) == {str(d) for d in range(10)}  # all ten, not a top 3
    assert result["probabilities"]["7"] > 0.5
    assert abs(sum(result["probabilities"].values()) - 1) < 1e-3
    assert result["weights"] == f"shipped {draw_model.DRAW_MODEL} checkpoint"


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_predict_file_reads_mnist_digits_drawn_dark_on_light(client, tmp_path, index):
    digit, truth = _mnist_test_digit(index)
    big = Image.fromarray(255 - digit).resize((280, 280), Image.Resampling.BILINEAR)
    path = tmp_path / f"digit{index}.png"
    big.save(path)
    result = client.predict(handle_file(str(path)), api_name="/predict_file")
    assert _label(result) == str(truth)


def test_predict_reads_an_image_file(client, tmp_path):
    seven = draw_digit_png(tmp_path / "seven.png", "7")  # a black 7 on white
    for api_name in ("/predict", "/predict_file"):  # the old name stays an alias
        result = client.predict(handle_file(str(seven)), api_name=api_name)
        assert _label(result) == "7", result
        assert result["weights"] == f"shipped {draw_model.DRAW_MODEL} checkpoint"


def test_predict_reads_a_data_url(client, tmp_path):
    seven = draw_digit_png(tmp_path / "seven.png", "7")
    url = "data:image/png;base64," + base64.b64encode(seven.read_bytes()).decode()
    assert _label(client.predict(url, api_name="/predict")) == "7"


@pytest.mark.parametrize("where", ["opaque layer", "background only", "composite only"])
def test_predict_reads_an_editor_value_wherever_its_ink_is(client, tmp_path, where):
    seven = handle_file(str(draw_digit_png(tmp_path / "seven.png", "7")))
    white = tmp_path / "white.png"
    Image.new("RGB", (400, 400), "white").save(white)
    clear = tmp_path / "clear.png"
    Image.new("RGBA", (400, 400), (0, 0, 0, 0)).save(clear)
    value = {
        "opaque layer": {"background": handle_file(str(white)), "layers": [seven]},
        "background only": {"background": seven, "layers": [handle_file(str(clear))]},
        "composite only": {"background": None, "layers": [], "composite": seven},
    }[where]
    assert _label(client.predict(value, api_name="/predict")) == "7"


def test_a_blank_image_is_an_answer_without_a_digit(client, tmp_path):
    white = tmp_path / "white.png"
    Image.new("RGB", (400, 400), "white").save(white)
    result = client.predict(handle_file(str(white)), api_name="/predict")
    assert result["label"] is None and result["probabilities"] is None
    assert "blank" in result["note"]


@pytest.mark.parametrize(
    "value, message",
    [
        ("not-an-image", "not an image file"),
        (12, "expected an image"),
        ("hello", "data:image"),
        ("data:image/png;base64,!!!", "not valid base64"),
        ({"layers": "x"}, "must be a list"),
    ],
)
def test_what_cannot_be_read_is_an_error_the_client_receives(client, tmp_path, value, message):
    if value == "not-an-image":
        bad = tmp_path / "not-an-image.png"
        bad.write_text("hello")
        value = handle_file(str(bad))
    with pytest.raises(AppError, match=message) as caught:
        client.predict(value, api_name="/predict")
    assert "/tmp/" not in str(caught.value) and "/gradio/" not in str(caught.value)  # no paths


def test_status_reports_state_and_weights(client):
    status = client.predict(api_name="/status")
    assert status["state"] in {"idle", "finished", "stopped"}
    assert status["weights"]["model"] == draw_model.DRAW_MODEL
    assert "records" not in status


def test_training_starts_reports_progress_and_stops(client, live_app):
    message = client.predict(**TRAINING_ARGS, token="", api_name="/start_training")
    assert "started" in message.lower()
    again = client.predict(**TRAINING_ARGS, token="", api_name="/start_training")
    assert "already" in again.lower()
    status = wait_status(client, lambda s: s["latest_step"] is not None)
    assert status["state"] == "running"
    assert status["latest_step"]["samples_per_second"] > 0
    assert status["weights"]["label"].startswith("training run")
    client.predict(token="", api_name="/stop_training")
    status = wait_status(client, lambda s: s["state"] == "stopped", timeout=30)
    assert status["state"] == "stopped"
    client.predict(token="", api_name="/reset_training")
    assert client.predict(api_name="/status")["state"] == "idle"


def test_files_in_a_runs_folder_outside_the_working_directory_are_served():
    """A Space keeps its runs on persistent storage (/data): checkpoints must download."""
    outside = Path(tempfile.mkdtemp(prefix="mnist-runs-", dir="/var/tmp"))  # not cwd, not /tmp
    try:
        app = launch(outside)
        export = outside / "run-1-tutorial.csv"
        export.write_text("step,loss\n1,2.3\n")
        reply = httpx.get(f"{app.url}gradio_api/file={export}", timeout=30)
        app.close()
        assert reply.status_code == 200 and reply.text.startswith("step,loss")
    finally:
        shutil.rmtree(outside, ignore_errors=True)


def test_the_app_as_launched_trains_in_a_process_and_reads_with_its_weights(tmp_path):
    """`python app.py` trains in a child process (MNIST_DEMO_TRAINING_PROCESS, default on):
    a run started through the API finishes there, and the drawings it then reads are read
    with that run's weights, in this process."""
    from gradio_client import Client

    from mnist_demo.settings import from_env

    settings = from_env({"MNIST_DEMO_RUNS_DIR": str(tmp_path)})
    assert settings.training_process
    app = launch(tmp_path, settings)
    try:
        client = Client(app.url, verbose=False, ssl_verify=False)
        args = {**TRAINING_ARGS, "epochs": 0.25}
        client.predict(**args, token="", api_name="/start_training")
        status = wait_status(client, lambda s: s["state"] == "finished", timeout=120)
        assert status["state"] == "finished", status["message"]
        assert app.dashboard.job.served is not None  # the job trained in its process
        seven = draw_digit_png(tmp_path / "7.png", "7")
        answer = client.predict(handle_file(str(seven)), api_name="/predict")
        assert answer["weights"] == status["weights"]["label"]
        assert answer["weights"].startswith("training run 1")
    finally:
        app.close()
