"""Checkpoints: round trip with metadata, atomic save, and a loader that trusts nothing."""

from __future__ import annotations

import os
import pickle
import shlex
from dataclasses import asdict

import numpy as np
import pytest
import torch

from mnist_demo import checkpoints
from mnist_demo.checkpoints import CheckpointError
from mnist_demo.models import build_model
from mnist_demo.training import TrainConfig


@pytest.fixture
def tutorial_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return build_model("tutorial").state_dict()


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_save_load_round_trip_keeps_weights_and_metadata(tmp_path, tutorial_state):
    config = asdict(TrainConfig())
    path = checkpoints.save(
        tmp_path / "sub" / "run.pt", "tutorial", tutorial_state, config=config, epoch=2,
        test_accuracy=98.76,
    )  # fmt: skip

    loaded = checkpoints.load(path)

    assert path == tmp_path / "sub" / "run.pt"  # parent folders are created
    assert loaded.model_name == "tutorial"
    assert_same_weights(loaded.state_dict, tutorial_state)
    assert loaded.metadata["config"] == config
    assert loaded.metadata["epoch"] == 2 and loaded.metadata["test_accuracy"] == 98.76
    assert loaded.metadata["versions"]["torch"] == torch.__version__
    assert {"numpy", "python"} <= loaded.metadata["versions"].keys()
    assert "saved_at" in loaded.metadata
    assert_same_weights(loaded.build().state_dict(), tutorial_state)
    assert not loaded.build().training


def test_improved_model_round_trips_including_batchnorm_buffers(tmp_path):
    model = build_model("improved")
    model(torch.randn(8, 1, 28, 28))  # training-mode forward: running stats move
    path = checkpoints.save(tmp_path / "improved.pt", "improved", model.state_dict())

    loaded = checkpoints.load(path)

    assert loaded.model_name == "improved"
    assert_same_weights(loaded.state_dict, model.state_dict())


def test_cpu_state_dict_is_a_detached_copy():
    model = build_model("tutorial")
    copy = checkpoints.cpu_state_dict(model)
    with torch.no_grad():
        model.fc2.bias.add_(1.0)  # training goes on after the copy was taken
    assert not torch.equal(copy["fc2.bias"], model.fc2.bias)
    assert not any(t.requires_grad for t in copy.values())


# --- atomic save --------------------------------------------------------------------------------


def test_failed_save_leaves_the_old_file_intact_and_no_temp_file(
    tmp_path, tutorial_state, monkeypatch
):
    path = checkpoints.save(tmp_path / "model.pt", "tutorial", tutorial_state, epoch=1)
    good_bytes = path.read_bytes()

    def torch_save_that_dies_midway(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip archive")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torch_save_that_dies_midway)
    other = build_model("tutorial").state_dict()
    with pytest.raises(OSError, match="disk full"):
        checkpoints.save(path, "tutorial", other, epoch=2)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no .tmp left behind
    assert path.read_bytes() == good_bytes
    monkeypatch.undo()
    assert checkpoints.load(path).metadata["epoch"] == 1


def test_save_replaces_an_existing_checkpoint(tmp_path, tutorial_state):
    path = checkpoints.save(tmp_path / "model.pt", "tutorial", tutorial_state, epoch=1)
    newer = build_model("tutorial").state_dict()
    checkpoints.save(path, "tutorial", newer, epoch=2)

    loaded = checkpoints.load(path)
    assert loaded.metadata["epoch"] == 2
    assert_same_weights(loaded.state_dict, newer)
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


# --- what the loader refuses --------------------------------------------------------------------


def test_missing_file_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        checkpoints.load(tmp_path / "absent.pt")


@pytest.mark.parametrize("cut", ["empty", "random", "head", "half", "all-but-tail"])
def test_corrupt_files_are_checkpoint_errors(tmp_path, tutorial_state, cut):
    good = checkpoints.save(tmp_path / "good.pt", "tutorial", tutorial_state).read_bytes()
    content = {
        "empty": b"",
        "random": np.random.default_rng(0).bytes(4096),
        "head": good[:100],
        "half": good[: len(good) // 2],
        "all-but-tail": good[:-10],
    }[cut]
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)

    with pytest.raises(CheckpointError, match="bad.pt"):
        checkpoints.load(bad)


def test_oversized_file_is_refused_before_reading(tmp_path, tutorial_state, monkeypatch):
    path = checkpoints.save(tmp_path / "model.pt", "tutorial", tutorial_state)
    monkeypatch.setattr(checkpoints, "MAX_CHECKPOINT_BYTES", 1000)
    with pytest.raises(CheckpointError, match="too large"):
        checkpoints.load(path)


def test_improved_weights_labelled_tutorial_are_refused(tmp_path):
    improved = build_model("improved").state_dict()
    path = checkpoints.save(tmp_path / "mislabelled.pt", "tutorial", improved)
    with pytest.raises(CheckpointError, match="do not fit the 'tutorial' architecture.*key"):
        checkpoints.load(path)


def test_state_dict_with_a_missing_key_is_refused(tmp_path, tutorial_state):
    del tutorial_state["fc2.bias"]
    path = checkpoints.save(tmp_path / "partial.pt", "tutorial", tutorial_state)
    with pytest.raises(CheckpointError, match="fc2.bias"):
        checkpoints.load(path)


def test_wrong_shape_is_refused(tmp_path, tutorial_state):
    tutorial_state["fc2.weight"] = torch.zeros(11, 128)  # eleven classes
    path = checkpoints.save(tmp_path / "eleven.pt", "tutorial", tutorial_state)
    with pytest.raises(CheckpointError, match="architecture.*size mismatch for fc2.weight"):
        checkpoints.load(path)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([1, 2, 3], "not an mnist-demo checkpoint"),
        ({"weights": "yes"}, "no format marker"),
        ({"format": checkpoints.FORMAT, "model": "resnet", "state_dict": {}}, "unknown model"),
        ({"format": checkpoints.FORMAT, "model": "tutorial", "state_dict": [1]}, "state_dict"),
        ({"format": checkpoints.FORMAT, "model": "tutorial"}, "state_dict"),
    ],
    ids=["list", "no-marker", "unknown-model", "state-not-dict", "no-state"],
)
def test_payloads_that_are_not_our_checkpoints_are_refused(tmp_path, payload, message):
    path = tmp_path / "other.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=message):
        checkpoints.load(path)


def test_metadata_that_is_not_a_mapping_is_refused(tmp_path, tutorial_state):
    path = tmp_path / "odd.pt"
    payload = {"format": checkpoints.FORMAT, "model": "tutorial", "state_dict": tutorial_state}
    torch.save({**payload, "metadata": [1, 2]}, path)
    with pytest.raises(CheckpointError, match="metadata"):
        checkpoints.load(path)


class Exploit:
    """Unpickling this runs a shell command: what a hostile 'checkpoint' would carry."""

    def __init__(self, marker) -> None:
        self.command = f"touch {shlex.quote(str(marker))}"

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, tutorial_state, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    if writer == "pickle":
        path.write_bytes(pickle.dumps(Exploit(marker), protocol=2))  # torch's protocol
    else:
        payload = {"format": checkpoints.FORMAT, "model": "tutorial", "state_dict": tutorial_state}
        torch.save({**payload, "metadata": {"note": Exploit(marker)}}, path)

    # The file is armed: an unsafe load would run the command.
    if writer == "pickle":
        pickle.loads(path.read_bytes())
    else:
        torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()

    with pytest.raises(CheckpointError, match="refused, not plain weights"):
        checkpoints.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["tutorial", "improved"])
def test_bare_state_dict_is_accepted_and_its_architecture_guessed(tmp_path, name):
    model = build_model(name)
    path = tmp_path / "bare.pt"
    torch.save(model.state_dict(), path)

    loaded = checkpoints.load(path)

    assert loaded.model_name == name
    assert loaded.metadata == {}
    assert_same_weights(loaded.state_dict, model.state_dict())


def test_bare_state_dict_of_an_unknown_network_is_refused(tmp_path):
    path = tmp_path / "linear.pt"
    torch.save(torch.nn.Linear(784, 10).state_dict(), path)
    with pytest.raises(CheckpointError, match="unknown model"):
        checkpoints.load(path)


def test_shipped_path_points_into_the_repository():
    assert checkpoints.shipped("tutorial") == checkpoints.REPO_ROOT / "checkpoints/tutorial.pt"
    with pytest.raises(KeyError):
        checkpoints.shipped("resnet")


def test_shipped_tutorial_checkpoint_loads_if_present():
    path = checkpoints.shipped("tutorial")
    if not path.is_file():
        pytest.skip(f"{path} is not committed yet")
    loaded = checkpoints.load(path)
    assert loaded.model_name == "tutorial"
    assert {"config", "test_accuracy", "versions"} <= loaded.metadata.keys()
