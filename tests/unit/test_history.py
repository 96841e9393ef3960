"""history: run summaries, their JSON file (atomic, corruption-proof), CSV export, and charts."""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from mnist_demo import charts
from mnist_demo.history import CSV_COLUMNS, RunHistory, RunSummary, records_csv, summarise
from mnist_demo.records import StepRecord

CONFIG = dict(model="tutorial", epochs=3, batch_size=256, lr=0.01, seed=0)


def step(epoch: int, step_: int, seconds: float) -> StepRecord:
    return StepRecord(
        kind="step",
        epoch=epoch,
        step=step_,
        epoch_progress=0.5,
        loss=0.3,
        train_accuracy=91.0,
        lr=0.005,
        samples_per_second=5000.0,
        train_seconds=seconds,
        run_id=4,  # the job adds these; they must not disturb anything
        wall=1.0,
    )


def epoch(n: int, test_accuracy: float, seconds: float) -> dict:
    return dict(
        kind="epoch",
        epoch=n,
        step=10 * n,
        train_loss=0.5 / n,
        train_accuracy=90.0 + n,
        test_accuracy=test_accuracy,
        test_loss=0.1,
        epoch_seconds=4.0,
        eval_seconds=0.5,
        train_seconds=seconds,
    )


def records() -> list[dict]:
    """Two epochs, then a stop part-way through the third."""
    start = dict(
        kind="start", device="cpu (2 threads)", mode="eager", total_steps=30, config=CONFIG
    )
    return [
        start,
        step(1, 5, 2.0),
        epoch(1, 98.5, 4.0),
        epoch(2, 98.9, 8.0),
        step(3, 25, 10.5),
    ]


def summary(run_id: int = 1, **changes) -> RunSummary:
    result = summarise(run_id, records(), "stopped", "cpu (2 threads)")
    assert result is not None
    return replace(result, **changes)


# --- summarise ---------------------------------------------------------------------------------


def test_summarise_a_stopped_run():
    result = summarise(4, records(), "stopped", "cuda (NVIDIA H100)")

    assert result is not None
    assert (result.run_id, result.model, result.state) == (4, "tutorial", "stopped")
    assert result.config == CONFIG
    assert result.best_test_accuracy == 98.9 and result.final_test_accuracy == 98.9
    assert result.epochs == 2
    assert result.train_seconds == 10.5  # the steps after the last test pass count too
    assert result.device == "cuda (NVIDIA H100)"
    assert datetime.fromisoformat(result.finished_at).tzinfo is not None
    assert result.epochs_curve == [
        dict(epoch=1, train_loss=0.5, train_accuracy=91.0, test_accuracy=98.5, train_seconds=4.0),
        dict(epoch=2, train_loss=0.25, train_accuracy=92.0, test_accuracy=98.9, train_seconds=8.0),
    ]
    assert result.label == "#4 tutorial bs256 lr0.01"


def test_summarise_best_is_not_always_final_and_device_defaults_to_the_start_record():
    rows = records()[:3] + [epoch(2, 97.0, 8.0)]
    result = summarise(2, rows, "finished")
    assert result is not None
    assert (result.best_test_accuracy, result.final_test_accuracy) == (98.5, 97.0)
    assert result.device == "cpu (2 threads)"


def test_summarise_without_a_finished_epoch_is_none_and_state_is_checked():
    assert summarise(1, records()[:2], "stopped", "cpu") is None
    with pytest.raises(ValueError, match="state must be one of finished, stopped"):
        summarise(1, records(), "failed", "cpu")


# --- RunHistory --------------------------------------------------------------------------------


def test_history_survives_a_restart(tmp_path: Path):
    path = tmp_path / "history.json"
    history = RunHistory(path)
    first, second = summary(1), summary(2, state="finished", model="improved")
    history.add(first)
    history.add(second)

    reloaded = RunHistory(path)

    assert reloaded.runs() == [first, second]  # oldest first, every field intact
    assert json.loads(path.read_text())["format"] == "mnist-demo-history/1"
    assert reloaded.next_run_id() == 3


def test_history_keeps_only_the_newest_runs(tmp_path: Path):
    path = tmp_path / "history.json"
    history = RunHistory(path, limit=3)
    for run_id in range(1, 6):
        history.add(summary(run_id))

    assert [r.run_id for r in history.runs()] == [3, 4, 5]
    assert [r.run_id for r in RunHistory(path, limit=3).runs()] == [3, 4, 5]
    assert [r.run_id for r in RunHistory(path, limit=2).runs()] == [4, 5]


def test_clear_empties_the_file_too(tmp_path: Path):
    path = tmp_path / "history.json"
    history = RunHistory(path)
    history.add(summary())
    history.clear()
    assert history.runs() == [] and RunHistory(path).runs() == []
    assert history.next_run_id() == 1


@pytest.mark.parametrize(
    "content",
    [
        b"{ not json",
        b"\xff\xfe\x00garbage",
        b'{"format": "something-else", "runs": []}',
        b'{"format": "mnist-demo-history/1", "runs": [{"run_id": 1}]}',
        b'{"format": "mnist-demo-history/1", "runs": "many"}',
        b"[]",
    ],
)
def test_a_corrupt_file_is_set_aside_and_history_starts_empty(tmp_path: Path, caplog, content):
    path = tmp_path / "history.json"
    path.write_bytes(content)

    with caplog.at_level(logging.WARNING, logger="mnist_demo.history"):
        history = RunHistory(path)

    assert history.runs() == []
    assert "unreadable" in caplog.text
    assert path.with_suffix(".corrupt").read_bytes() == content  # kept for a post-mortem
    history.add(summary())
    assert [r.run_id for r in RunHistory(path).runs()] == [1]


def test_saving_leaves_no_temp_files(tmp_path: Path):
    path = tmp_path / "history.json"
    history = RunHistory(path)
    for run_id in range(3):
        history.add(summary(run_id))
    history.clear()
    history.add(summary(9))
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]


def test_a_failed_save_is_logged_not_raised(tmp_path: Path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    history = RunHistory(blocker / "history.json")

    with caplog.at_level(logging.ERROR, logger="mnist_demo.history"):
        history.add(summary())

    assert "could not save run history" in caplog.text
    assert len(history.runs()) == 1  # still shown for this session


def test_concurrent_adds_are_all_kept(tmp_path: Path):
    path = tmp_path / "history.json"
    history = RunHistory(path, limit=100)

    def add_many(offset: int) -> None:
        for i in range(5):
            history.add(summary(offset + i))

    threads = [threading.Thread(target=add_many, args=(10 * n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    expected = sorted(10 * n + i for n in range(4) for i in range(5))
    assert sorted(r.run_id for r in history.runs()) == expected
    assert sorted(r.run_id for r in RunHistory(path, limit=100).runs()) == expected


def test_limit_must_be_positive(tmp_path: Path):
    with pytest.raises(ValueError, match="limit"):
        RunHistory(tmp_path / "history.json", limit=0)


# --- CSV ---------------------------------------------------------------------------------------


def test_records_csv_has_one_row_per_record_and_blanks_where_absent():
    text = records_csv(records())

    lines = text.splitlines()
    assert lines[0] == (
        "kind,epoch,epochs_done,step,train_seconds,loss,train_accuracy,test_accuracy,test_loss,"
        "samples_per_second,lr"
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["kind"] for r in rows] == ["start", "step", "epoch", "epoch", "step"]
    assert set(rows[0].values()) == {"start", ""}  # a start record has none of the metrics
    assert rows[1]["loss"] == "0.3" and rows[1]["test_accuracy"] == ""
    assert rows[2]["test_accuracy"] == "98.5" and rows[2]["loss"] == ""
    assert all(list(r) == list(CSV_COLUMNS) for r in rows)  # extra fields left out


def test_records_csv_of_nothing_is_just_the_header():
    assert records_csv([]) == ",".join(CSV_COLUMNS) + "\n"


# --- charts: comparison frame and PNG ----------------------------------------------------------


def test_history_frame_overlays_each_run_under_its_own_label():
    first = summary(1)
    second = summary(2, model="improved", config={**CONFIG, "batch_size": 128, "lr": 0.004})

    frame = charts.history_frame([first, second])

    assert list(frame.columns) == ["epoch", "test_accuracy", "run"]
    assert frame["run"].unique().tolist() == [
        "#1 tutorial bs256 lr0.01",
        "#2 improved bs128 lr0.004",
    ]
    assert frame["test_accuracy"].tolist() == [98.5, 98.9, 98.5, 98.9]
    assert frame["epoch"].tolist() == [1, 2, 1, 2]


def test_history_frame_keeps_runs_with_the_same_id_apart():
    """Run ids restart with the app; two '#1' runs must still be two lines."""
    runs = [
        summary(1, finished_at="2025-01-01T09:15:00+00:00"),
        summary(1, finished_at="2025-01-02T14:02:00+00:00"),
        summary(1, finished_at="2025-01-02T14:02:00+00:00"),
    ]
    labels = charts.history_frame(runs)["run"].unique().tolist()
    assert labels == [
        "#1 tutorial bs256 lr0.01",
        "#1 tutorial bs256 lr0.01 (14:02)",
        "#1 tutorial bs256 lr0.01 (2)",
    ]


def test_history_frame_of_no_runs_is_empty_with_the_columns():
    frame = charts.history_frame([])
    assert frame.empty and list(frame.columns) == ["epoch", "test_accuracy", "run"]


def test_figure_png_is_a_real_png():
    data = charts.figure_png(records())

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        assert image.size == (560, 340)  # the 5.6 x 3.4 inch figure at 100 dpi


def test_probability_bars_show_all_ten_digits_and_mark_the_answer():
    probabilities = [0.01] * 10
    probabilities[7] = 0.91
    html = charts.probability_bars_html(probabilities)
    assert html.count('class="prob-row') == 10
    assert html.count(" top") == 1 and '<span>7</span><span class="prob-bar">' in html
    assert 'class="prob-row top"><span>7</span>' in html and "width:91.0%" in html
    empty = charts.probability_bars_html(None)
    assert empty.count('class="prob-row"') == 10 and " top" not in empty


def probe(n: int, done: float, accuracy: float) -> dict:
    return dict(
        kind="probe",
        epoch=n,
        step=int(10 * done),
        epochs_done=done,
        test_accuracy=accuracy,
        test_loss=0.2,
        images=500,
        seconds=0.01,
    )


def test_the_accuracy_chart_names_the_sample_and_the_full_test_apart():
    start, *rest = records()
    tested = {**start, "test_accuracy": 9.8}  # what train(test_first=True) records
    run = [tested, probe(0, 0.0, 10.2), rest[0], probe(1, 0.5, 96.0), probe(1, 1.0, 98.4), rest[1]]
    frame = charts.accuracy_frame(run)
    by_series = {s: rows["accuracy"].tolist() for s, rows in frame.groupby("series", sort=False)}
    assert by_series == {
        "train": [91.0],
        "test: 500-image sample": [10.2, 96.0, 98.4],
        "test: all 10,000": [9.8, 98.5],
    }
    full = frame[frame["series"] == charts.TEST_ALL]
    assert full["epoch"].tolist() == [0.0, 1.0]


def test_the_live_charts_are_vega_lite_with_a_log_loss_axis_and_dots_for_the_full_test():
    start, *rest = records()
    run = [{**start, "test_accuracy": 9.8}, probe(0, 0.0, 10.2), rest[0], rest[1]]
    loss = charts.line_spec(charts.loss_frame(run), "loss", title="t", y_title="loss", log_y=True)
    assert loss["layer"][0]["encoding"]["y"]["scale"] == {"type": "log"}
    (loss_line,) = loss["layer"]
    assert [v["loss"] for v in loss_line["data"]["values"]] == [0.3], "real loss values, not log10"
    acc = charts.line_spec(charts.accuracy_frame(run), "accuracy", title="t", y_title="%")
    line, dots = acc["layer"]
    assert line["mark"]["type"] == "line" and dots["mark"]["type"] == "point"
    assert {v["series"] for v in dots["data"]["values"]} == {charts.TEST_ALL}, "dots: full tests"
    assert charts.TEST_ALL not in {v["series"] for v in line["data"]["values"]}
    dashes = line["encoding"]["strokeDash"]["scale"]  # the sample dashed, train solid
    assert dict(zip(dashes["domain"], dashes["range"], strict=True)) == {
        "train": [1, 0],
        "test: 500-image sample": [6, 3],
    }
    assert "transform" not in line and "condition" not in json.dumps(acc), "no expressions"
    colors = acc["encoding"]["color"]["scale"]  # shared by the layers
    train, sample, full = colors["range"]  # the test series: one colour, dashes vs dots
    assert train != sample == full
    json.dumps(acc)  # plain JSON for the browser


def test_an_empty_chart_says_what_will_appear():
    spec = charts.line_spec(
        charts.loss_frame([]),
        "loss",
        title="t",
        y_title="loss",
        log_y=True,
        empty="Press Start: the loss appears here.",
    )
    (layer,) = spec["layer"]
    assert layer["encoding"]["text"] == {"value": "Press Start: the loss appears here."}


def test_a_summary_keeps_the_in_epoch_curves_and_the_epochs_a_stopped_run_made():
    stopped = [
        *records()[:2],
        probe(1, 0.5, 96.0),
        probe(1, 1.0, 98.4),
        records()[2],
        {**epoch(2, 98.7, 6.0), "epochs_done": 1.37},
    ]
    result = summarise(2, stopped, "stopped", "cpu")
    assert result.test_curve == [[0.5, 96.0], [1.0, 98.4]]
    assert result.loss_curve == [[0.5, 0.3]]
    assert result.epochs_done == 1.37, "not the 3 epochs it was configured for"
    frame = charts.history_frame([result])
    assert frame["test_accuracy"].tolist() == [96.0, 98.4]


def test_a_history_written_before_the_curves_still_loads(tmp_path: Path):
    old = {k: v for k, v in summary().__dict__.items() if k not in ("test_curve", "loss_curve")}
    path = tmp_path / "history.json"
    path.write_text(json.dumps({"format": "mnist-demo-history/1", "runs": [old]}))
    (run,) = RunHistory(path).runs()
    assert run.test_curve == [] and charts.history_frame([run])["test_accuracy"].tolist() == [
        98.5,
        98.9,
    ]


def test_curves_are_thinned_for_long_runs():
    steps = [step(1 + i // 1000, i, float(i)) for i in range(5000)]
    result = summarise(1, [records()[0], *steps, epoch(5, 99.0, 5000.0)], "finished", "cpu")
    assert len(result.loss_curve) <= 121 and result.loss_curve[-1][0] == pytest.approx(
        steps[-1]["epoch"] - 1 + 0.5
    )
