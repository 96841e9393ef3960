"""The 'see inside' handlers: per-digit view, gallery, explanations, teaching, run history."""

from __future__ import annotations

import json
import types
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import pytest

from mnist_demo import checkpoints
from mnist_demo.data import load_mnist
from mnist_demo.history import summarise
from mnist_demo.job import TrainingJob
from mnist_demo.predict import Predictor
from mnist_demo.settings import AppSettings
from mnist_demo.teach import PersonalSet
from mnist_demo.training import config_from_preset
from mnist_demo.ui import explore
from mnist_demo.ui.explore import Explorer, confusion_frame
from mnist_demo.words import a_digit, count_of

SHIPPED = checkpoints.shipped("tutorial")


@pytest.fixture
def make_explorer(tmp_path, monkeypatch):
    # A fine-tune stops at TEACH_STEPS or TEACH_SECONDS: on a loaded machine the time budget
    # cut it short and a tuned model had not learned yet. These tests are about who gets the
    # model, so only the step count ends a fine-tune here.
    monkeypatch.setattr(explore, "TEACH_SECONDS", 3600.0)
    jobs = []

    def make(**settings) -> Explorer:
        predictor = Predictor.from_file(SHIPPED, "shipped tutorial checkpoint", threads=1)
        job = TrainingJob(predictor, runs_dir=tmp_path / "runs")
        jobs.append(job)
        return Explorer(job, predictor, AppSettings(runs_dir=tmp_path / "runs", **settings))

    yield make
    for job in jobs:
        job.stop()
        assert job.wait(60)


@pytest.fixture
def a_one() -> np.ndarray:
    test = load_mnist()[1]
    return test.images[2].numpy() / 255.0  # the test set's third image is a 1


def value(update):
    """The value inside a Gradio component update, as the handler built it."""
    value = update.value if hasattr(update, "value") else update
    if isinstance(value, dict) and "columns" in value:  # a native plot keeps rows + columns
        return pd.DataFrame(value["data"], columns=value["columns"])
    if isinstance(value, list) and value and isinstance(value[0], dict):  # a gallery's items
        return [(item.get("image"), item.get("caption")) for item in value]
    return value


def test_the_shipped_checkpoint_comes_with_its_cached_test_answers():
    probabilities = checkpoints.load_test_probabilities(SHIPPED)
    labels = load_mnist()[1].labels.numpy()
    accuracy = 100 * (probabilities.argmax(1) == labels).mean()
    metadata = checkpoints.load(SHIPPED).metadata
    assert accuracy == pytest.approx(metadata["test_accuracy"], abs=0.011)


def test_a_changed_checkpoint_makes_its_cached_answers_stale(tmp_path):
    copy = tmp_path / "tutorial.pt"
    copy.write_bytes(SHIPPED.read_bytes())
    checkpoints.save_test_probabilities(copy, np.full((10_000, 10), 0.1, np.float32))
    assert checkpoints.load_test_probabilities(copy) is not None
    copy.write_bytes(SHIPPED.read_bytes() + b"\0")
    assert checkpoints.load_test_probabilities(copy) is None
    checkpoints.probabilities_path(copy).write_bytes(b"not a zip")
    assert checkpoints.load_test_probabilities(copy) is None


def test_the_class_view_reads_the_cached_answers_of_the_draw_model(make_explorer):
    explorer = make_explorer()
    bars, table, caption = explorer.class_view()
    assert "shipped tutorial checkpoint" in caption and "99.29% right" in caption
    frame = value(bars)
    assert list(frame["digit"]) == [str(d) for d in range(10)]
    assert (frame["accuracy"] > 97).all()
    assert table.data.shape == (10, 11)
    assert int(table.data.iloc[:, 1:].to_numpy().sum()) == 10_000


def test_opening_the_panel_gives_the_class_view_and_the_picked_pairs_gallery_at_once(
    make_explorer,
):
    explorer = make_explorer()
    view = explorer.open_per_digit("4", "9")
    table, caption, gallery_caption = view.confusion, view.class_caption, view.gallery_caption
    assert caption == explorer.class_view().class_caption
    assert table.data.equals(explorer.class_view().confusion.data)
    assert gallery_caption == explorer.gallery("4", "9").gallery_caption
    assert "a 4 read as a 9" in gallery_caption


def test_the_gallery_shows_a_confusion_most_confident_first(make_explorer):
    explorer = make_explorer()
    gallery, caption = explorer.gallery("4", "9")
    items = value(gallery)
    count = int(caption.split()[0])
    assert 0 < len(items) == min(count, 24)
    assert all(text.startswith("4→9") for _, text in items)
    confidences = [int(text.split()[-1].rstrip("%")) for _, text in items]
    assert confidences == sorted(confidences, reverse=True)
    assert "read correctly" in explorer.gallery("3", "3").gallery_caption
    assert explorer.gallery("any", "any").gallery_caption.startswith("71 test images of any digit")


def test_the_gallery_refuses_what_is_not_a_digit(make_explorer):
    explorer = make_explorer()
    for bad in ("12", "x", "-1"):
        with pytest.raises(gr.Error):
            explorer.gallery(bad, "any")


def test_a_confusion_cell_click_picks_its_pair(make_explorer):
    explorer = make_explorer()
    true, read, gallery, caption = explorer.select_cell(types.SimpleNamespace(index=[7, 3]))
    assert (true, read) == ("7", "2") and "a 7 read as a 2" in caption
    true, read, _, caption = explorer.select_cell(types.SimpleNamespace(index=[5, 0]))
    assert (true, read) == ("5", "any") and "a 5 read as something else" in caption


def test_explain_gives_a_heat_map_and_both_conv_stages(make_explorer, a_one):
    overlay, first, second, caption = make_explorer().explain(a_one, None)
    assert overlay.shape == (224, 224, 3) and overlay.dtype == np.uint8
    assert first.ndim == second.ndim == 3
    assert "the 16 maps" in caption and "the 32" in caption and "answer **1**" in caption
    assert "Weights v1: shipped tutorial checkpoint" in caption
    assert make_explorer().explain(None, None) == (None, None, None, "")


def test_teaching_is_private_by_default(make_explorer, a_one):
    explorer = make_explorer()
    before = explorer.predictor.version.number
    personal, items, message = explorer.add_example(a_one, "7", PersonalSet())
    assert message.startswith("Added a 7") and len(items) == 1
    tuned, table, message = explorer.fine_tune(personal)
    assert isinstance(tuned, Predictor) and "Only you see this model" in message
    assert tuned.predict_preprocessed(a_one).label == 7
    assert explorer.predictor.version.number == before, "the shared model is untouched"
    assert explorer.predictor.predict_preprocessed(a_one).label == 1
    assert isinstance(table, pd.DataFrame) and table["read after"][0].startswith("7")


def test_shared_teaching_publishes_to_everyone(make_explorer, a_one):
    explorer = make_explorer(teaching="shared")
    personal, _, _ = explorer.add_example(a_one, "7", PersonalSet())
    tuned, _, message = explorer.fine_tune(personal)
    assert tuned is None and "everyone" in message
    assert explorer.predictor.predict_preprocessed(a_one).label == 7


def test_shared_teaching_needs_the_token_when_training_does(make_explorer, a_one):
    explorer = make_explorer(teaching="shared", training="token", token="s3cret")
    personal, _, _ = explorer.add_example(a_one, "7", PersonalSet())
    before = explorer.predictor.version.number

    tuned, _, message = explorer.fine_tune(personal, "wrong")

    assert isinstance(tuned, Predictor) and "needs the access token" in message
    assert explorer.predictor.version.number == before  # everyone still reads a 1
    assert explorer.predictor.predict_preprocessed(a_one).label == 1
    tuned, _, message = explorer.fine_tune(personal, "s3cret")
    assert tuned is None and explorer.predictor.predict_preprocessed(a_one).label == 7


def test_a_fine_tune_counts_as_a_request_the_training_run_gives_way_to(
    make_explorer, a_one, monkeypatch
):
    explorer = make_explorer()
    personal, _, _ = explorer.add_example(a_one, "7", PersonalSet())
    counted = []
    real = explore.teach.fine_tune
    monkeypatch.setattr(
        explore.teach,
        "fine_tune",
        lambda *a, **k: counted.append(explorer.job.in_flight.count) or real(*a, **k),
    )

    explorer.fine_tune(personal)

    assert counted == [1] and explorer.job.in_flight.count == 0


def test_a_busy_fine_tune_gate_answers_at_once(make_explorer, a_one):
    explorer = make_explorer()
    personal, _, _ = explorer.add_example(a_one, "7", PersonalSet())
    explorer.fine_tunes.max_waiting = -1  # as if one ran and two waited already

    before = explorer.predictor.version.number

    _, _, message = explorer.fine_tune(personal)

    assert message == "Other visitors' fine-tunes are running; try again in a minute."
    assert explorer.predictor.version.number == before


def test_teaching_can_be_turned_off_and_needs_a_label_and_a_drawing(make_explorer, a_one):
    off = make_explorer(teaching="off")
    assert "turned off" in off.add_example(a_one, "7", PersonalSet()).teach_message
    assert "turned off" in off.fine_tune(PersonalSet()).teach_message
    explorer = make_explorer()
    assert "Pick the digit" in explorer.add_example(a_one, None, PersonalSet()).teach_message
    assert "draw one first" in explorer.add_example(None, "7", PersonalSet()).teach_message
    assert "at least one drawing" in explorer.fine_tune(PersonalSet()).teach_message


def test_a_finished_run_lands_in_the_history_with_its_exports(make_explorer):
    explorer = make_explorer()
    job = explorer.job
    ok, _ = job.start(
        config_from_preset("fast", epochs=1, max_steps=20, log_every=5, device="cpu", threads=1)
    )
    assert ok and job.wait(120)
    snap = job.snapshot()
    assert set(snap.exports) == {"csv", "png"} and snap.n_history == 1
    bars, table, caption = explorer.class_view_from(snap)
    # 20 steps of 235: the epochs its weights saw, not the epoch counter's "epoch 1"
    assert f"training run {snap.run_id}, epoch 0.09" in caption
    assert int(table.data.iloc[:, 1:].to_numpy().sum()) == 10_000
    assert "training run" in explorer.class_view().class_caption, (
        "the gallery uses the run's own pass"
    )
    view = explorer.history_view()
    assert list(view.history_table.value["data"][0])[:1] == [snap.run_id]
    assert len(rows(spec(view.history_plot))) >= 8, "the run's in-epoch test curve"
    csv = Path(snap.exports["csv"]).read_text().splitlines()
    assert csv[0].startswith("kind,epoch,epochs_done,step") and len(csv) > 3
    assert Path(snap.exports["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert checkpoints.load_test_probabilities(snap.checkpoint) is not None

    # Its files stay downloadable from Compare runs, also after Reset (the job forgets the run)
    assert job.reset()[0] and job.snapshot().checkpoint is None
    (pick,) = explorer.history_view().run_pick.choices
    assert pick[1] == snap.run_id and pick[0].startswith(f"#{snap.run_id} tutorial")
    files = explorer.run_downloads(snap.run_id)
    assert [b.visible for b in files] == [True, True, True]
    names = [b.value["orig_name"] for b in files]
    stem = f"run-{snap.run_id}-tutorial"
    assert names == [f"{stem}.pt", f"{stem}.csv", f"{stem}.png"]
    (job.runs_dir / f"{stem}.csv").unlink()  # deleted by hand: its button goes, not a 404
    assert [b.visible for b in explorer.run_downloads(snap.run_id)] == [True, False, True]
    assert not any(b.visible for b in explorer.run_downloads(999))


def rows(spec: dict) -> list[dict]:
    """A Vega-Lite chart's data: each layer carries its own rows (charts.line_spec)."""
    return [row for layer in spec["layer"] for row in layer.get("data", {}).get("values", [])]


def spec(plot) -> dict:
    """The Vega-Lite spec a gr.Plot update carries."""
    return json.loads(plot.plot)


def test_compare_runs_before_any_run_says_what_will_appear(make_explorer):
    view = make_explorer().history_view()
    assert view.history_table.visible is False, "no table of made-up headers"
    assert view.run_pick.visible is False
    for plot in (view.history_plot, view.history_loss_plot):
        (layer,) = spec(plot)["layer"]
        assert "Each run you train adds its line here" in layer["encoding"]["text"]["value"]


def test_compare_runs_draws_every_run_length_with_the_epochs_it_made(make_explorer):
    """A quarter-epoch run, a one-epoch run and a 20-epoch run stopped in its third epoch."""
    explorer = make_explorer()

    def run(run_id: int, epochs: float, done: float) -> list:
        start = dict(
            kind="start",
            device="cpu",
            mode="eager",
            total_steps=9,
            config={"model": "tutorial", "epochs": epochs, "batch_size": 256, "lr": 0.01},
        )
        points = [i * done / 8 for i in range(1, 9)]
        return [
            start,
            *(
                dict(
                    kind="step",
                    epoch=int(x) + 1,
                    step=i,
                    epoch_progress=x % 1 or 1.0,
                    loss=0.5 / (1 + 4 * x),
                    train_accuracy=90.0 + x,
                    lr=0.01,
                    samples_per_second=5e3,
                    train_seconds=float(i),
                )
                for i, x in enumerate(points, 1)
            ),
            *(
                dict(
                    kind="probe",
                    epoch=int(x) + 1,
                    step=i,
                    epochs_done=x,
                    test_accuracy=95.0 + x,
                    test_loss=0.1,
                    images=500,
                    seconds=0.01,
                )
                for i, x in enumerate(points, 1)
            ),
            dict(
                kind="epoch",
                epoch=int(-(-done // 1)),
                step=8,
                epochs_done=done,
                train_loss=0.1,
                train_accuracy=97.0,
                test_accuracy=98.0 + done / 10,
                test_loss=0.05,
                epoch_seconds=1.0,
                eval_seconds=0.1,
                train_seconds=8.0,
            ),
        ]

    for run_id, epochs, done, state in (
        (1, 0.25, 0.25, "finished"),
        (2, 1, 1.0, "finished"),
        (3, 20, 2.37, "stopped"),
    ):
        explorer.job.history.add(summarise(run_id, run(run_id, epochs, done), state, "cpu"))
    view = explorer.history_view()
    table = view.history_table.value
    epochs_column = [row[table["headers"].index("epochs")] for row in table["data"]]
    assert epochs_column == ["2.37 of 20", "1 of 1", "0.25 of 0.25"], "newest first, x of y"
    accuracy, loss = spec(view.history_plot), spec(view.history_loss_plot)
    by_run = pd.DataFrame(rows(accuracy)).groupby("run")["epoch"].agg(["size", "max"])
    assert by_run["size"].tolist() == [8, 8, 8], "every run its own line of real points"
    assert by_run["max"].tolist() == [0.25, 1.0, 2.37]
    assert loss["layer"][0]["encoding"]["y"]["scale"] == {"type": "log"}
    losses = [v["loss"] for v in rows(loss)]
    assert max(losses) == pytest.approx(0.5 / (1 + 4 * 0.25 / 8), abs=1e-5), "loss, not log10"
    assert accuracy["layer"][0]["encoding"]["x"]["axis"]["format"] == "~g", "1, not 1.000000"
    assert [label for label, _ in view.run_pick.choices] == [
        "#3 tutorial, 2.37 epochs, 98.24% test",
        "#2 tutorial, 1 epoch, 98.10% test",
        "#1 tutorial, 0.25 epochs, 98.03% test",
    ]


def test_run_ids_continue_after_a_restart(tmp_path):
    predictor = Predictor.from_file(SHIPPED, threads=1)
    first = TrainingJob(predictor, runs_dir=tmp_path)
    first.start(config_from_preset("fast", epochs=1, max_steps=5, device="cpu", threads=1))
    assert first.wait(120)
    again = TrainingJob(predictor, runs_dir=tmp_path)
    again.start(config_from_preset("fast", epochs=1, max_steps=5, device="cpu", threads=1))
    assert again.wait(120)
    assert again.snapshot().run_id == 2
    assert sorted(p.name for p in tmp_path.glob("run-*.pt")) == [
        "run-1-tutorial.pt",
        "run-2-tutorial.pt",
    ]


def test_confusion_frame_puts_the_true_digit_first_and_shades_mistakes():
    matrix = np.eye(10, dtype=int) * 3
    matrix[3, 5], matrix[4, 9] = 1, 30
    styled = confusion_frame(matrix)
    frame, css = styled.data, styled.export()
    assert list(frame.columns[:2]) == ["true", "0"]
    assert frame.iloc[4, 5] == 3 and frame.iloc[4, 10] == 30 and frame.iloc[4, 0] == "4"
    colours = styled._compute().ctx  # (row, column) -> [(property, value)]
    assert colours[(4, 10)] == [("background-color", "rgba(228, 87, 86, 1.00)")]
    assert colours[(3, 6)][0][1].startswith("rgba(228, 87, 86, 0.")  # a lone misread shows
    assert colours[(2, 3)] == [("background-color", "#e8f3ea")]  # the diagonal is right
    assert css


def test_captions_count_and_name_digits_as_english_does(make_explorer):
    assert (a_digit(8), a_digit("0"), a_digit(7)) == ("an 8", "a 0", "a 7")
    assert (count_of(1, "test image"), count_of(1200, "test image")) == (
        "1 test image",
        "1,200 test images",
    )
    caption = make_explorer().gallery("8", "3").gallery_caption
    assert "of an 8 read as a 3" in caption and "1 test images" not in caption
