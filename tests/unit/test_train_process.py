"""Training in a child process (train_process.py) reports as the engine does in a thread.

Runs are short real ones (the fast preset, 12-20 steps of 256 images on real MNIST): a child
process cannot see the monkeypatched tiny data the job tests use.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from mnist_demo import charts, training
from mnist_demo.job import State, TrainingJob
from mnist_demo.predict import shipped_predictor
from mnist_demo.records import count, is_kind
from mnist_demo.train_process import (
    ServedCounter,
    TrainingProcess,
    TrainingProcessError,
    _Busy,
)
from mnist_demo.training import Control, _limit_cores


@pytest.fixture
def short(make_config):
    return make_config(max_steps=16, log_every=4)


def _states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_run_in_a_process_reports_what_the_same_run_in_a_thread_does(short):
    records, weights = [], []

    def on_record(record, model):
        records.append(record)
        if is_kind(record, "epoch"):
            weights.append({k: v.clone() for k, v in model.state_dict().items()})

    evaluations = []
    process = TrainingProcess(ServedCounter())
    result = process.train(
        short,
        control=Control(),
        on_record=on_record,
        on_evaluation=lambda r, e: evaluations.append((r, e)),
        test_first=True,
    )
    alone = training.train(short, test_first=True)
    torch.set_num_threads(short.threads)

    assert result.steps == alone.steps == 16 and not result.stopped
    assert result.test_accuracy == alone.test_accuracy
    assert _states_equal(result.model, alone.model)
    kinds = [r["kind"] for r in records]
    assert kinds == [r["kind"] for r in alone.history]
    assert [r.get("step") for r in records] == [r.get("step") for r in alone.history]
    # the model handed to on_record with the epoch's record holds that epoch's weights
    assert weights and all(
        torch.equal(weights[-1][k], v) for k, v in result.model.state_dict().items()
    )
    ((record, evaluation),) = evaluations
    assert record["test_accuracy"] == evaluation.accuracy == result.test_accuracy
    assert evaluation.probabilities.shape == (10_000, 10)


def test_stop_reaches_the_child_and_the_run_ends_stopped(make_config):
    config = make_config(epochs=1, log_every=1)
    control = Control()

    def on_record(record, model):
        if is_kind(record, "step") and record["step"] >= 2:
            control.stop()

    result = TrainingProcess(ServedCounter()).train(config, control=control, on_record=on_record)
    assert result.stopped
    assert 2 <= result.steps < 50  # the child saw the stop within a few steps of 234


def test_a_failure_in_the_child_is_raised_here_with_its_message(short, tmp_path: Path, caplog):
    broken = training.TrainConfig(**{**short.__dict__, "data_dir": str(tmp_path / "none")})
    with pytest.raises(TrainingProcessError, match="Error"):
        TrainingProcess(ServedCounter()).train(
            broken, control=Control(), on_record=lambda r, m: None
        )
    # where it failed, for whoever reads the server's log
    assert "Traceback (most recent call last)" in caplog.text and "_child" in caplog.text


def test_a_killed_child_is_an_error_not_a_hang(make_config):
    config = make_config(epochs=1, log_every=1)
    process = TrainingProcess(ServedCounter())

    def on_record(record, model):
        if is_kind(record, "step"):
            os.kill(process._child.pid, signal.SIGKILL)

    with pytest.raises(TrainingProcessError, match="ended unexpectedly"):
        process.train(config, control=Control(), on_record=on_record)


def test_the_child_trains_on_one_core_while_requests_come_fast():
    served, now = ServedCounter(), [100.0]
    busy = _Busy(served.value, cores=4, quiet=1.0, rate=5.0, clock=lambda: now[0])
    assert busy() == 4 and busy.count == 0
    served.tick()  # one Draw tab re-reading its drawing: 2 a second
    now[0] += 0.5
    assert busy() == 4
    for _ in range(3):  # 6 a second: visitors waiting
        served.tick()
    now[0] += 0.5
    assert busy() == 1 and busy.count == 1
    now[0] += 0.6  # quiet since: still yielding within the quiet second...
    assert busy() == 1
    now[0] += 0.5  # ...then all cores again
    assert busy() == 4


def test_a_burst_of_requests_makes_the_child_yield_before_its_window_ends():
    served, now = ServedCounter(), [100.0]
    busy = _Busy(served.value, cores=2, quiet=1.0, rate=5.0, clock=lambda: now[0])
    assert busy() == 2
    now[0] += 0.1
    served.tick()
    served.tick()
    assert busy() == 2  # two in a window: a Draw tab may do that
    served.tick()  # a half-second window's 2.5 passed 0.1 s into it
    now[0] += 0.01
    assert busy() == 1


def test_the_loop_asks_before_every_cpu_step_how_many_cores_it_may_use(make_config, monkeypatch):
    seen = []
    real = training._Step.__call__

    def spy(self, idx):
        seen.append(torch.get_num_threads())
        return real(self, idx)

    monkeypatch.setattr(training._Step, "__call__", spy)
    asked = []

    def cores():
        asked.append(1)
        return 1

    config = make_config(max_steps=5, threads=2, cpu_parallel="threads")
    training.train(config, control=Control(cores=cores))
    torch.set_num_threads(1)
    assert len(asked) == 5 and seen == [1] * 5


def test_fewer_cores_than_replicas_pin_an_adaptive_step_to_threads(make_config, mnist):
    config = make_config(threads=2, cpu_parallel="auto", batch_size=256)
    model = training.build_model(config.model)
    step, mode = training._build_step(
        model, mnist[0], config, torch.device("cpu"), 256, torch.float32
    )
    assert "auto" in mode
    try:
        _limit_cores(step, 1)
        assert step.pinned == "threads" and torch.get_num_threads() == 1
        assert step._plan() == ("threads", False)
        _limit_cores(step, 2)
        assert step.pinned is None and torch.get_num_threads() == 2
    finally:
        step.close()
        torch.set_num_threads(1)


def test_a_job_that_trains_in_a_process_saves_adopts_and_readies_the_next(
    tmp_path: Path, make_config
):
    predictor = shipped_predictor()
    job = TrainingJob(predictor, runs_dir=tmp_path, process=True)
    job.warm_up()  # the child starts now, before the click
    waiting = job._next_process
    assert waiting is not None and waiting._child.is_alive()
    with job.in_flight.serving():  # a request counts for the child
        pass
    assert job.served.value.value == 1
    started, _ = job.start(make_config(max_steps=40, log_every=10))
    assert started and job.wait(120)
    snap = job.snapshot()
    assert snap.state == State.FINISHED.value, snap.message
    assert snap.checkpoint and Path(snap.checkpoint).exists()
    assert "Draw tab now uses these weights" in snap.message
    assert predictor.version.label.endswith("(final)")
    assert job._next_process is not None and job._next_process is not waiting
    following = job._next_process
    job.close()
    following.reaper.join(30)
    assert job._next_process is None and following._child.exitcode == 0


def test_each_epochs_figure_is_drawn_in_the_child_not_the_server(
    tmp_path: Path, make_config, monkeypatch
):
    """matplotlib holds its process's GIL ~140 ms a figure: drawn in the server's process,
    every request in flight waited. The child draws each epoch's figure but the last, which
    the run's export draws here, once."""
    drawn_here: list[int] = []  # the epochs of each figure this process draws
    figure_png = charts.figure_png

    def watched(records):
        drawn_here.append(count(records, "epoch"))
        return figure_png(records)

    monkeypatch.setattr(charts, "figure_png", watched)  # the child imports its own
    job = TrainingJob(shipped_predictor(), runs_dir=tmp_path, process=True)
    shown: list[tuple[Path | None, int]] = []
    set_figure = job._set_figure

    def watched_set(run, path, epochs):
        shown.append((path, epochs))
        set_figure(run, path, epochs)

    monkeypatch.setattr(job, "_set_figure", watched_set)
    # 10,000 images in batches of 2,048: two epochs of 5 steps
    started, _ = job.start(make_config(epochs=2, batch_size=2048, holdout=50_000, log_every=1))
    assert started and job.wait(120)
    snap = job.snapshot()
    job.close()
    assert snap.state == State.FINISHED.value, snap.message
    assert shown == [(tmp_path / "run-1-tutorial.png", 1)]  # epoch 1's, from the child
    assert drawn_here == [2]  # the export's, of both epochs
    assert snap.figure_epochs == 2 and snap.figure == snap.exports["png"]
    assert Path(snap.figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_child_that_stays_silent_after_a_stop_is_given_up_on(make_config, monkeypatch):
    from mnist_demo import train_process

    monkeypatch.setattr(train_process, "STOP_SECONDS", 0.0)
    monkeypatch.setattr(train_process, "EXIT_SECONDS", 0.1)
    config = make_config(epochs=1, log_every=1)
    process = TrainingProcess(ServedCounter())
    control = Control()

    def on_record(record, model):
        if is_kind(record, "step"):
            os.kill(process._child.pid, signal.SIGSTOP)  # hung: alive, silent
            control.stop()

    with pytest.raises(TrainingProcessError, match="did not stop"):
        process.train(config, control=control, on_record=on_record)
    process.reaper.join(30)  # close() killed it
    assert process._child.exitcode == -signal.SIGKILL


def test_a_training_process_that_cannot_start_fails_the_run_not_the_job(
    tmp_path: Path, make_config, monkeypatch
):
    from mnist_demo import job as job_module

    def cannot_start(*args, **kwargs):
        raise OSError("Resource temporarily unavailable")

    monkeypatch.setattr(job_module, "TrainingProcess", cannot_start)
    job = TrainingJob(shipped_predictor(), runs_dir=tmp_path, process=True)
    started, _ = job.start(make_config(max_steps=4))
    assert started and job.wait(30)
    snap = job.snapshot()
    assert snap.state == State.FAILED.value and "Resource temporarily" in snap.message
    started, _ = job.start(make_config(max_steps=4))  # the job takes the next start
    assert started and job.wait(30)


def test_a_closed_job_starts_no_training_process(tmp_path: Path):
    job = TrainingJob(shipped_predictor(), runs_dir=tmp_path, process=True)
    job.close()
    job.warm_up()
    assert job._next_process is None
