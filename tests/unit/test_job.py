"""TrainingJob: one shared run, its state machine, snapshots for many viewers, live weights.

Runs train on a slice of real MNIST (the `tiny_mnist` fixture: 40 steps of 64 per epoch). To
hold a run at a known step, `gates` wraps the job's train() so that the training thread, right
after the job has handled the record of step N, signals `reached` and waits for `release`.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from support import WatchedControl

from mnist_demo import charts, checkpoints, draw_model, runfiles
from mnist_demo import job as job_module
from mnist_demo.checkpoints import Checkpoint
from mnist_demo.job import JobLimits, State, TrainingJob
from mnist_demo.models import build_model
from mnist_demo.predict import Predictor
from mnist_demo.records import count, is_kind, of_kind
from mnist_demo.training import ConfigError, TrainConfig, train

BOUND = 60.0  # seconds: the most any wait may take on a loaded 2-core machine


class Gate:
    def __init__(self, step: int) -> None:
        self.step = step
        self.reached = threading.Event()
        self.release = threading.Event()

    def wait_reached(self) -> None:
        assert self.reached.wait(BOUND), f"training never reached step {self.step}"


class Gates:
    """Holds the training thread at chosen steps (installed by the `gates` fixture)."""

    def __init__(self) -> None:
        self.all: list[Gate] = []

    def at(self, step: int) -> Gate:
        gate = Gate(step)
        self.all.append(gate)
        return gate

    def release_all(self) -> None:
        for gate in self.all:
            gate.release.set()


@pytest.fixture
def gates(monkeypatch: pytest.MonkeyPatch) -> Gates:
    gates = Gates()
    real_train = job_module.train

    def gated_train(config, *, on_record, **kwargs):
        def record(r, model):
            on_record(r, model)
            for gate in gates.all:
                if is_kind(r, "step") and r["step"] == gate.step:
                    gate.reached.set()
                    gate.release.wait(BOUND)

        return real_train(config, on_record=record, **kwargs)

    monkeypatch.setattr(job_module, "train", gated_train)
    return gates


@pytest.fixture
def predictor() -> Predictor:
    torch.manual_seed(0)
    return Predictor(Checkpoint("tutorial", build_model("tutorial").state_dict()), "initial")


@pytest.fixture
def new_job(tmp_path, predictor, gates, tiny_mnist):
    """Factory for jobs writing to tmp_path/runs; every job is stopped and joined afterwards."""
    jobs: list[TrainingJob] = []

    def make(**limits) -> TrainingJob:
        job = TrainingJob(predictor, runs_dir=tmp_path / "runs", limits=JobLimits(**limits))
        jobs.append(job)
        return job

    yield make
    gates.release_all()
    for job in jobs:
        job.stop()
        assert job.wait(BOUND), "a training thread outlived its test"


@pytest.fixture
def job(new_job) -> TrainingJob:
    return new_job()


@pytest.fixture
def config(make_config) -> TrainConfig:
    """One epoch of the tiny data: 40 steps of 64 images, a record every step."""
    return make_config(epochs=1, batch_size=64, log_every=1)


def training_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("training-run-")]


def steps(records) -> list[int]:
    return [r["step"] for r in of_kind(records, "step")]


def finish(job: TrainingJob) -> None:
    assert job.wait(BOUND), "the run did not end in time"


# --- starting -----------------------------------------------------------------------------------


def test_start_runs_one_job_and_a_second_start_is_refused(job, config, gates):
    gate = gates.at(1)

    assert job.start(config) == (True, "Run 1 started.")
    gate.wait_reached()
    ok, message = job.start(config)

    assert not ok and "already running" in message
    assert len(training_threads()) == 1
    assert job.snapshot().run_id == 1
    gate.release.set()
    finish(job)
    assert job.state is State.FINISHED


def test_twenty_concurrent_starts_start_exactly_one_run(job, config, gates):
    gate = gates.at(1)
    barrier = threading.Barrier(20)
    answers: list[tuple[bool, str]] = []

    def click():
        barrier.wait(BOUND)
        answers.append(job.start(config))

    clickers = [threading.Thread(target=click) for _ in range(20)]
    for thread in clickers:
        thread.start()
    for thread in clickers:
        thread.join(BOUND)

    assert len(answers) == 20
    assert [ok for ok, _ in answers].count(True) == 1
    assert len(training_threads()) == 1 and job.snapshot().run_id == 1
    gate.release.set()
    finish(job)


def test_invalid_config_raises_and_leaves_the_job_as_it_was(job, config):
    before = job.snapshot()

    with pytest.raises(ConfigError, match="learning rate"):
        job.start(TrainConfig(lr=0.0, device="cpu"))
    with pytest.raises(ConfigError, match="capped at 3"):
        TrainingJob(limits=JobLimits(max_epochs=3)).start(TrainConfig(epochs=4, device="cpu"))

    assert job.snapshot() == before
    assert job.state is State.IDLE and training_threads() == []


# --- pause, resume, stop, reset -----------------------------------------------------------------


def test_pause_and_resume_move_the_state_and_hold_the_loop(job, config, gates, monkeypatch):
    controls: list[WatchedControl] = []

    def watched_control() -> WatchedControl:
        controls.append(WatchedControl())
        return controls[-1]

    monkeypatch.setattr(job_module, "Control", watched_control)
    gate = gates.at(2)
    assert job.resume() == (False, "Nothing to resume (the job is idle).")
    job.start(config)
    gate.wait_reached()

    assert job.pause() == (True, "Paused.")
    assert job.state is State.PAUSED
    assert job.pause()[0] is False
    gate.release.set()
    assert controls[0].blocked.wait(BOUND)  # the loop is parked in the pause
    held = job.snapshot().n_records
    assert not job.wait(0.3)  # bounded: a loop ignoring the pause would log a step meanwhile
    assert job.snapshot().n_records == held and job.state is State.PAUSED

    assert job.resume() == (True, "Resumed.")
    assert job.state is State.RUNNING
    assert job.resume()[0] is False
    finish(job)
    assert job.state is State.FINISHED
    assert steps(job.snapshot().records) == list(range(1, 41))  # no step lost or repeated


def test_stop_mid_epoch_tests_the_weights_kept_and_does_not_draw_with_a_poor_run(
    job, config, gates, tmp_path, predictor
):
    gate = gates.at(3)
    job.start(config)
    gate.wait_reached()

    assert job.stop() == (True, "Stop requested.")
    assert job.state is State.STOPPING
    gate.release.set()
    finish(job)

    snap = job.snapshot()
    assert snap.state == "stopped"
    tested = snap.latest_epoch  # tested on the way out: 3 of 40 steps
    assert (tested["step"], tested["epochs_done"]) == (3, 0.075)
    assert snap.message == (
        f"Stopped after 3 steps (0.075 epochs); test accuracy {tested['test_accuracy']:.2f}%. "
        "The Draw tab keeps initial: this run was not adopted because it tested below 90%."
    )
    assert steps(snap.records) == [1, 2, 3]
    assert snap.checkpoint == str(tmp_path / "runs" / "run-1-tutorial.pt")
    assert predictor.version.label == "initial", "the weights before the run, not the 3-step ones"
    assert not (tmp_path / "runs" / "draw-model.json").exists()
    assert job.stop() == (False, "Nothing to stop (the job is stopped).")


def test_stop_while_paused_ends_the_run(job, config, gates):
    gate = gates.at(2)
    job.start(config)
    gate.wait_reached()
    job.pause()
    gate.release.set()

    ok, _ = job.stop(wait=BOUND)  # wakes the paused loop and joins it

    assert ok and job.state is State.STOPPED
    assert training_threads() == []


def test_reset_stops_the_run_and_clears_the_log(job, config, gates):
    gate = gates.at(2)
    job.start(config)
    gate.wait_reached()
    gate.release.set()

    assert job.reset(wait=BOUND) == (True, "Reset. Press Start to train.")

    snap = job.snapshot()
    assert (snap.state, snap.records, snap.n_records) == ("idle", [], 0)
    assert snap.config is None and snap.checkpoint is None and snap.best_test_accuracy is None
    assert training_threads() == []
    assert job.start(config)[0]  # and a new run can start
    assert job.snapshot().run_id == 2
    finish(job)


# --- what viewers read --------------------------------------------------------------------------


def test_snapshot_since_returns_only_new_records(job, config):
    job.start(config)
    finish(job)
    everything = job.snapshot().records
    n = len(everything)
    assert n == 42  # start, 40 steps, epoch

    for since in (0, 1, 17, n):
        snap = job.snapshot(since=since)
        assert snap.records == everything[since:]
        assert snap.n_records == n
    # a cursor from an older, longer run starts the viewer over
    assert job.snapshot(since=n + 5).records == everything


def test_two_viewers_polling_concurrently_see_the_same_records(job, config):
    seen: list[list[dict]] = [[], []]
    errors: list[BaseException] = []

    def viewer(out: list) -> None:
        try:
            deadline = time.monotonic() + BOUND
            while time.monotonic() < deadline:
                snap = job.snapshot(since=len(out))
                out.extend(snap.records)
                if snap.state not in ("running", "paused", "stopping"):
                    return
                time.sleep(0.005)  # a browser tab's timer tick
        except BaseException as err:
            errors.append(err)

    job.start(config)
    viewers = [threading.Thread(target=viewer, args=(out,)) for out in seen]
    for thread in viewers:
        thread.start()
    for thread in viewers:
        thread.join(BOUND)

    assert errors == [] and not any(t.is_alive() for t in viewers)
    final = job.snapshot().records
    assert seen[0] == seen[1] == final
    assert steps(final) == list(range(1, 41))


def test_the_predictor_serves_live_weights_while_the_job_runs(new_job, config, gates, predictor):
    job = new_job(publish_interval=0.0)  # publish at every step record
    image = np.random.default_rng(0).random((1, 28, 28), dtype=np.float32)
    initial, _ = predictor.predict_arrays(image)
    gate = gates.at(3)

    job.start(config)
    gate.wait_reached()
    live, version = predictor.predict_arrays(image)

    assert version.number == 4  # the initial weights, then one publication per step record
    assert version.label == "training run 1, epoch 0.07"
    assert not np.allclose(live, initial)
    assert job.snapshot().eta_seconds > 0
    gate.release.set()
    finish(job)

    final = predictor.version
    assert final.label == "training run 1, epoch 1 (final)"
    saved = Predictor.from_file(job.snapshot().checkpoint)
    np.testing.assert_array_equal(
        predictor.predict_arrays(image)[0], saved.predict_arrays(image)[0]
    )


def test_a_status_showing_a_step_already_shows_that_runs_weights(
    new_job, config, gates, predictor, monkeypatch
):
    job = new_job(publish_interval=3600.0)  # past each run's first step, only epochs publish
    steps_visible_at_publish: list[int] = []
    set_weights = predictor.set_weights

    def watched(*args, **kwargs):
        steps_visible_at_publish.append(len(steps(job.snapshot().records)))
        return set_weights(*args, **kwargs)

    monkeypatch.setattr(predictor, "set_weights", watched)
    for run_id in (1, 2):  # run 2 starts right after run 1 published its final weights
        gate = gates.at(1)
        job.start(config)
        gate.wait_reached()
        assert job.snapshot().latest_step["step"] == 1
        assert predictor.version.label.startswith(f"training run {run_id}, epoch 0.")
        gate.release.set()
        finish(job)
        gates.all.remove(gate)

    assert steps_visible_at_publish[0] == 0  # published before the first step was visible


def test_the_first_step_publishes_on_a_machine_booted_seconds_ago(
    new_job, config, gates, predictor, monkeypatch
):
    # time.monotonic() counts from boot: on a machine up for a few seconds it is far below
    # any publish interval, and a clock value of 0.0 must not read as "published long ago".
    just_booted = iter(range(5, 10**6))
    monkeypatch.setattr(job_module, "time", SimpleNamespace(monotonic=lambda: next(just_booted)))
    job = new_job(publish_interval=3600.0)
    gate = gates.at(1)
    job.start(config)
    gate.wait_reached()
    assert predictor.version.label.startswith("training run 1, epoch 0.")
    gate.release.set()
    finish(job)


def test_a_finished_run_saves_a_checkpoint_with_its_numbers(job, config, tmp_path):
    job.start(config)
    finish(job)

    snap = job.snapshot()
    assert snap.state == "finished" and snap.message.startswith("Finished 1 epoch in")
    assert snap.eta_seconds is None
    assert snap.checkpoint == str(tmp_path / "runs" / "run-1-tutorial.pt")
    saved = checkpoints.load(snap.checkpoint)
    assert saved.metadata["epoch"] == 1
    assert saved.metadata["config"] == asdict(config) == snap.config
    assert saved.metadata["test_accuracy"] == snap.latest_epoch["test_accuracy"]
    assert snap.best_test_accuracy == snap.latest_epoch["test_accuracy"]


def test_each_epoch_is_visible_before_its_figure_is_drawn_once(job, make_config, monkeypatch):
    """Every tab shows the job's PNG. An epoch's test accuracy is not held back while
    matplotlib draws (0.4-0.9 s), and the last epoch is drawn once, by the export;
    `figure_epochs` tells viewers which epochs the figure shows."""
    drawn: list[tuple[int, int, int]] = []  # (epochs drawn, visible, figure_epochs) per call
    figure_png = charts.figure_png  # the run's files are drawn through it (runfiles.py)

    def watched(records):
        snap = job.snapshot()
        drawn.append((count(records, "epoch"), count(snap.records, "epoch"), snap.figure_epochs))
        return figure_png(records)

    monkeypatch.setattr(charts, "figure_png", watched)
    job.start(make_config(epochs=3, batch_size=256))
    finish(job)

    snap = job.snapshot()
    assert drawn == [(1, 1, 0), (2, 2, 1), (3, 3, 2)]  # after each record; the last: export
    assert snap.figure_epochs == 3
    assert snap.figure == snap.exports["png"]
    assert Path(snap.figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    job.reset()
    assert job.snapshot().figure is None


def test_max_steps_mid_epoch_still_evaluates_and_saves(job, make_config):
    # train() evaluates the partial epoch a max_steps run ends in; the job saves it.
    job.start(make_config(epochs=2, batch_size=64, log_every=1, max_steps=5))
    finish(job)

    snap = job.snapshot()
    assert snap.state == "finished"
    assert steps(snap.records) == [1, 2, 3, 4, 5]
    assert snap.latest_epoch["step"] == 5
    assert checkpoints.load(snap.checkpoint).metadata["epoch"] == 1


def test_a_job_repeats_the_numbers_of_train_for_the_same_seed(job, make_config):
    config = make_config(epochs=1, batch_size=64, log_every=1, max_steps=5, seed=7)
    direct = [r["loss"] for r in of_kind(train(config).history, "step")]

    runs = []
    for _ in range(2):
        job.start(config)
        finish(job)
        runs.append([r["loss"] for r in of_kind(job.snapshot().records, "step")])

    assert runs[0] == runs[1] == direct
    assert "test_accuracy" in job.snapshot().records[0], "the app's chart starts at chance"


# --- limits and failures ------------------------------------------------------------------------


def test_time_limit_stops_a_run(new_job, config):
    job = new_job(max_seconds=0.0)
    job.start(config)
    finish(job)

    snap = job.snapshot()
    assert snap.state == "stopped"
    assert snap.message.startswith("Stopped (time limit) after")
    assert snap.latest_epoch is None


class FakeClock:
    """Stands in for the job module's `time`: monotonic() moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def __getattr__(self, name: str):
        return getattr(time, name)


@pytest.mark.parametrize("paused", [True, False])
def test_time_limit_counts_running_time_not_pauses(new_job, config, gates, monkeypatch, paused):
    clock = FakeClock()
    monkeypatch.setattr(job_module, "time", clock)
    job = new_job(max_seconds=60.0)
    gate = gates.at(2)
    job.start(config)
    gate.wait_reached()

    if paused:
        job.pause()
        clock.now += 3600.0  # an hour away from the keyboard
        job.resume()
    else:
        clock.now += 3600.0  # an hour of training
    gate.release.set()
    finish(job)

    if paused:
        assert job.state is State.FINISHED
    else:
        assert job.state is State.STOPPED and "time limit" in job.snapshot().message


def test_a_failed_run_reports_and_the_next_start_works(job, config, monkeypatch):
    real_train = job_module.train

    def broken_train(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(job_module, "train", broken_train)
    assert job.start(config)[0]
    finish(job)
    assert job.state is State.FAILED
    assert job.snapshot().message == "Training failed: CUDA out of memory"

    monkeypatch.setattr(job_module, "train", real_train)
    assert job.start(config)[0]
    finish(job)
    assert job.state is State.FINISHED


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="thread priorities are Linux-only")
def test_the_training_thread_yields_the_cpu_to_requests():
    seen = []

    def training_thread() -> None:
        job_module._yield_to_requests()
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    worker = threading.Thread(target=training_thread)
    worker.start()
    worker.join()
    assert seen[0] >= job_module.TRAINING_NICENESS
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < seen[0], (
        "only the training thread is lowered, not the server's"
    )


def test_a_cpu_run_waits_for_a_visitors_request_in_flight_and_never_without_one(
    job, make_config, monkeypatch
):
    """The job wires limits.GiveWay to its in-flight count: with a request being served, each
    step waits for it within its credit; with none, no step waits."""
    waits: list[float] = []
    real_wait = job.in_flight.wait_idle
    monkeypatch.setattr(
        job.in_flight, "wait_idle", lambda timeout=None: waits.append(timeout) or real_wait(timeout)
    )
    config = make_config(epochs=1, batch_size=64, log_every=1, max_steps=4)
    job.start(config)
    finish(job)
    assert waits == [], "nobody was waiting"

    with job.in_flight.serving():
        job.start(config)
        finish(job)
    assert len(waits) >= 3 and all(0 < t <= 0.5 for t in waits), waits
    assert job.snapshot().state == "finished", "the run still ends while requests keep coming"


# --- what a public server must survive (issue 15) -----------------------------------------------


def test_a_run_below_the_floor_is_saved_but_not_adopted(job, config, predictor, monkeypatch):
    monkeypatch.setattr(job_module, "ADOPT_ACCURACY", 101.0)  # no run can reach it
    job.start(config)
    finish(job)

    snap = job.snapshot()
    assert snap.checkpoint is not None and Path(snap.checkpoint).exists()
    assert "not adopted because it tested below 101%" in snap.message
    assert "now uses these weights" not in snap.message
    assert predictor.version.label == "initial"  # the live weights were taken back


def test_a_run_at_the_floor_becomes_the_draw_model(job, config, predictor, monkeypatch):
    monkeypatch.setattr(job_module, "ADOPT_ACCURACY", 0.0)
    job.start(config)
    finish(job)

    assert job.snapshot().message.endswith("The Draw tab now uses these weights.")
    assert predictor.version.label == "training run 1, epoch 1 (final)"
    assert predictor.version.source == Path(job.snapshot().checkpoint)


def test_a_quarter_epoch_run_is_labelled_with_its_real_fraction(
    new_job, make_config, predictor, monkeypatch
):
    monkeypatch.setattr(job_module, "ADOPT_ACCURACY", 0.0)
    labels: list[str] = []
    set_weights = predictor.set_weights

    def watched(*args, **kwargs):
        version = set_weights(*args, **kwargs)
        labels.append(version.label)
        return version

    monkeypatch.setattr(predictor, "set_weights", watched)
    job = new_job(publish_interval=3600.0)  # the first step, the epoch's end, the final
    job.start(make_config(epochs=0.25, batch_size=64, log_every=1))  # 10 of 40 steps
    finish(job)

    assert labels[-1] == "training run 1, epoch 0.25 (final)"
    assert not [label for label in labels if "epoch 1" in label], labels


def test_a_run_whose_checkpoint_cannot_be_written_is_not_adopted(
    job, config, predictor, monkeypatch
):
    monkeypatch.setattr(job_module, "ADOPT_ACCURACY", 0.0)

    def disk_full(path, result):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runfiles, "save_result", disk_full)
    job.start(config)
    finish(job)

    message = job.snapshot().message
    assert "could not be saved (No space left on device)" in message
    assert "now uses these weights" not in message
    assert predictor.version.label == "initial" and job.snapshot().checkpoint is None


def test_a_history_that_cannot_be_written_is_reported_and_the_old_file_kept(
    job, config, tmp_path, monkeypatch
):
    job.start(config)
    finish(job)
    saved = (tmp_path / "runs" / "history.json").read_bytes()

    def disk_full(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("mnist_demo.history.atomic_write_bytes", disk_full)
    job.start(config)
    finish(job)

    assert "run history could not be saved" in job.snapshot().message
    assert (tmp_path / "runs" / "history.json").read_bytes() == saved  # run 1 survives a restart


def test_run_ids_skip_numbers_that_files_on_disk_already_have(new_job, config, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    # killed after the checkpoint's save, before the history's write: no history, one file
    (runs / "run-1-tutorial.pt").write_bytes(b"the Draw tab's weights")
    job = new_job()
    job.start(config)
    finish(job)
    (runs / "run-5-improved.csv").write_bytes(b"")  # appeared while the server ran
    job.start(config)
    finish(job)

    assert job.snapshot().run_id == 6
    assert (runs / "run-1-tutorial.pt").read_bytes() == b"the Draw tab's weights"
    assert (runs / "run-2-tutorial.pt").exists()


def test_a_batch_beyond_the_servers_training_memory_is_refused(new_job, make_config):
    job = new_job(train_memory=256 << 20)

    with pytest.raises(ConfigError, match=r"batch size 16384 does not fit .* up to \d+"):
        job.start(make_config(batch_size=16384))
    assert job.state is State.IDLE and training_threads() == []


def test_the_runs_folder_keeps_the_newest_and_best_and_the_draw_models(
    new_job, config, tmp_path, predictor, monkeypatch
):
    monkeypatch.setattr(job_module, "ADOPT_ACCURACY", 0.0)
    job = new_job(keep_newest=2, keep_best=0)
    for _ in range(2):
        job.start(config)
        finish(job)
    monkeypatch.setattr(job_module, "ADOPT_ACCURACY", 101.0)  # runs 3 and 4 are not adopted
    for _ in range(2):
        job.start(config)
        finish(job)

    kept = sorted(p.name for p in (tmp_path / "runs").glob("run-*.pt"))
    # the newest two, and run 2: the Draw tab still answers with it
    assert kept == ["run-2-tutorial.pt", "run-3-tutorial.pt", "run-4-tutorial.pt"]
    assert predictor.version.source == tmp_path / "runs" / "run-2-tutorial.pt"


def test_the_runs_folder_never_prunes_the_remembered_draw_model(
    new_job, config, tmp_path, predictor, monkeypatch
):
    """A shared fine-tune answers drawings (no file of its own) while the remembered choice,
    what a restart loads, is run 1: the cap keeps run 1."""
    monkeypatch.setattr(job_module, "ADOPT_ACCURACY", 0.0)
    job = new_job(keep_newest=1, keep_best=0)
    job.start(config)
    finish(job)
    assert draw_model.remembered(tmp_path / "runs") == "run-1-tutorial.pt"
    model_name, state_dict, _ = predictor.weights()
    predictor.set_weights(model_name, state_dict, "the shared model, fine-tuned by a visitor")
    monkeypatch.setattr(job_module, "ADOPT_ACCURACY", 101.0)  # runs 2 and 3 are not adopted
    for _ in range(2):
        job.start(config)
        finish(job)

    kept = sorted(p.name for p in (tmp_path / "runs").glob("run-*.pt"))
    assert kept == ["run-1-tutorial.pt", "run-3-tutorial.pt"]
    assert predictor.version.label == "the shared model, fine-tuned by a visitor"
    assert draw_model.remembered(tmp_path / "runs") == "run-1-tutorial.pt"
