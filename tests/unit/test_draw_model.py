"""The Draw tab's model: the user's choice among shipped checkpoints and saved runs, kept
across restarts; by default the best tested one, never an untested or diverged one."""

from __future__ import annotations

import os
import types
from pathlib import Path

import pytest
import torch

from mnist_demo import checkpoints, draw_model
from mnist_demo.job import State
from mnist_demo.models import build_model
from mnist_demo.predict import Predictor
from mnist_demo.settings import AppSettings
from mnist_demo.ui.draw import DrawTab

SHIPPED_BEST = "shipped:improved"  # 99.69%: better than any run below


def save_run(runs: Path, name: str, accuracy: float | None, age: int = 0) -> Path:
    torch.manual_seed(0)
    meta = {} if accuracy is None else {"test_accuracy": accuracy, "epochs_done": 0.4}
    path = checkpoints.save(runs / name, "tutorial", build_model("tutorial").state_dict(), **meta)
    os.utime(path, (1e9 + age, 1e9 + age))  # a larger age is newer
    return path


def test_candidates_list_shipped_then_runs_newest_first_each_with_its_accuracy(tmp_path):
    runs = tmp_path / "runs"
    save_run(runs, "run-1-tutorial.pt", 98.5, age=1)
    save_run(runs, "run-2-tutorial.pt", 10.1, age=2)
    save_run(runs, "run-3-tutorial.pt", None, age=3)
    found = {c.key: c for c in draw_model.candidates(runs)}
    assert list(found) == [
        "shipped:tutorial",
        "shipped:improved",
        "run-3-tutorial.pt",
        "run-2-tutorial.pt",
        "run-1-tutorial.pt",
    ]
    assert found["shipped:improved"].label == "shipped improved CNN: 99.69% test"
    assert found["run-1-tutorial.pt"].label == "run-1-tutorial (tutorial, 0.4 epochs): 98.50% test"
    assert found["run-2-tutorial.pt"].unusable.startswith("diverged (10.1% test")
    assert found["run-3-tutorial.pt"].unusable == "never tested"


def test_the_default_is_the_best_tested_not_the_newest(tmp_path):
    runs = tmp_path / "runs"
    save_run(runs, "run-1-tutorial.pt", 98.54, age=5)  # a stopped run: newest, but worse
    assert draw_model.choose(runs).key == SHIPPED_BEST
    save_run(runs, "run-2-tutorial.pt", 99.8, age=1)
    assert draw_model.choose(runs).key == "run-2-tutorial.pt"


def test_a_remembered_choice_survives_a_restart(tmp_path):
    runs = tmp_path / "runs"
    save_run(runs, "run-1-tutorial.pt", 98.54)
    draw_model.remember(runs, "run-1-tutorial.pt")
    chosen = draw_model.choose(runs)  # what a restarted app loads
    assert (chosen.key, chosen.label) == ("run-1-tutorial.pt", "saved run run-1-tutorial")
    draw_model.remember(runs, "shipped:tutorial")
    assert draw_model.choose(runs).label == "shipped tutorial checkpoint"


@pytest.mark.parametrize("accuracy", [None, 10.0])
def test_an_untested_or_diverged_choice_is_never_loaded(tmp_path, accuracy):
    runs = tmp_path / "runs"
    save_run(runs, "run-1-tutorial.pt", accuracy)
    with pytest.raises(draw_model.ChoiceError, match="cannot answer drawings"):
        draw_model.load(runs, "run-1-tutorial.pt")
    draw_model.remember(runs, "run-1-tutorial.pt")  # say, written by an older version
    assert draw_model.choose(runs).key == SHIPPED_BEST


@pytest.mark.parametrize("key", ["../x.pt", "/etc/passwd", "run-1.pt/../../a", "shipped:nope"])
def test_a_key_names_only_a_file_of_the_runs_folder_or_a_shipped_model(tmp_path, key):
    with pytest.raises(draw_model.ChoiceError):
        draw_model.load(tmp_path / "runs", key)


def test_a_vanished_or_junk_choice_file_falls_back_to_the_best(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / draw_model.CHOICE_FILE).write_text("{not json")
    assert draw_model.remembered(runs) is None and draw_model.choose(runs).key == SHIPPED_BEST
    draw_model.remember(runs, "run-9-tutorial.pt")  # deleted since
    assert draw_model.choose(runs).key == SHIPPED_BEST


def test_key_of_names_shipped_and_run_files():
    assert draw_model.key_of(checkpoints.shipped("improved")) == "shipped:improved"
    assert draw_model.key_of(Path("/x/runs/run-4-tutorial.pt")) == "run-4-tutorial.pt"
    assert draw_model.key_of(None) is None


# --- the Draw tab's selector --------------------------------------------------------------------


def draw_tab(runs: Path, state: State = State.IDLE, **settings) -> DrawTab:
    """The Draw tab over the weights a (re)started app picks; the job only says its state."""
    weights = draw_model.choose(runs)
    predictor = Predictor(weights.checkpoint, weights.label, threads=1, source=weights.source)
    job = types.SimpleNamespace(state=state, runs_dir=runs)
    return DrawTab(job, predictor, None, AppSettings(runs_dir=runs, **settings))


def test_the_selector_offers_usable_checkpoints_with_their_accuracy_and_shows_the_current(
    tmp_path,
):
    runs = tmp_path / "runs"
    save_run(runs, "run-1-tutorial.pt", 98.54, age=1)
    save_run(runs, "run-2-tutorial.pt", 10.1, age=2)  # diverged
    save_run(runs, "run-3-tutorial.pt", None, age=3)  # stopped before any test
    pick = draw_tab(runs).model_choices().draw_pick
    assert pick.choices == [
        ("shipped tutorial CNN: 99.29% test", "shipped:tutorial"),
        ("shipped improved CNN: 99.69% test", SHIPPED_BEST),
        ("run-1-tutorial (tutorial, 0.4 epochs): 98.54% test", "run-1-tutorial.pt"),
    ]
    assert pick.value == SHIPPED_BEST, "the best tested, not the newest"


def test_a_choice_answers_drawings_now_and_after_a_restart(tmp_path):
    runs = tmp_path / "runs"
    save_run(runs, "run-1-tutorial.pt", 98.54)
    tab = draw_tab(runs)
    chosen = tab.choose_model("run-1-tutorial.pt")
    assert "saved run run-1-tutorial" in chosen.draw_pick_message
    assert tab.predictor.version.label == "saved run run-1-tutorial"
    assert tab.predictor.version.source == runs / "run-1-tutorial.pt"
    restarted = draw_tab(runs)
    assert restarted.predictor.version.label == "saved run run-1-tutorial"
    assert restarted.model_choices().draw_pick.value == "run-1-tutorial.pt"


def test_a_choice_is_refused_while_a_run_trains_or_for_an_unusable_checkpoint(tmp_path):
    runs = tmp_path / "runs"
    save_run(runs, "run-1-tutorial.pt", 98.54)
    save_run(runs, "run-2-tutorial.pt", 10.1)
    training = draw_tab(runs, State.RUNNING)
    refused = training.choose_model("run-1-tutorial.pt")
    assert "A run is training" in refused.draw_pick_message
    assert training.predictor.version.number == 1 and draw_model.remembered(runs) is None
    idle = draw_tab(runs)
    for key in ("run-2-tutorial.pt", "../run-1-tutorial.pt"):  # an API caller may send anything
        refused = idle.choose_model(key)
        assert refused.draw_pick_message.startswith("⚠️") and refused.draw_pick.value == SHIPPED_BEST
    assert idle.predictor.version.number == 1 and draw_model.remembered(runs) is None


def test_everyones_model_needs_the_right_to_train(tmp_path):
    runs = tmp_path / "runs"
    save_run(runs, "run-1-tutorial.pt", 98.54)
    off = draw_tab(runs, training="off")
    assert off.model_choices().draw_pick.interactive is False
    assert off.choose_model("run-1-tutorial.pt").draw_pick_message.startswith("⚠️")
    guarded = draw_tab(runs, training="token", token="s3cret")
    refused = guarded.choose_model("run-1-tutorial.pt", "guess")
    assert "needs the access token" in refused.draw_pick_message
    assert guarded.predictor.version.number == 1 and draw_model.remembered(runs) is None
    chosen = guarded.choose_model("run-1-tutorial.pt", "s3cret")
    assert "saved run run-1-tutorial" in chosen.draw_pick_message
    assert draw_model.remembered(runs) == "run-1-tutorial.pt"
