"""The one training job of a process: a background thread, a state machine, a metrics log.

The training thread only produces: it appends records under a lock and publishes weights to
the Predictor. Viewers (every browser tab, the API, tests) only read `snapshot(since=n)` or send
commands; a command that does not fit the current state answers with a message, never raises.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Any

from torch import nn

from . import checkpoints, draw_model
from . import limits as caps
from .history import RunHistory, summarise
from .predict import Predictor
from .records import (
    EpochRecord,
    Record,
    StartRecord,
    StepRecord,
    count,
    epoch_position,
    epochs_done,
    first,
    is_kind,
    latest,
    run_label,
)
from .runfiles import RunFiles, figure_due
from .train_process import EXIT_SECONDS, ServedCounter, TrainingProcess
from .training import (
    MAX_EPOCHS,
    ConfigError,
    Control,
    Evaluation,
    TrainConfig,
    train,
    warm_up,
)

log = logging.getLogger(__name__)


class State(str, Enum):
    IDLE = "idle"  # nothing has run since start-up or reset
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"  # stop asked; the thread is finishing its step
    FINISHED = "finished"  # ran all its epochs
    STOPPED = "stopped"  # stopped by a user or a limit
    FAILED = "failed"


ACTIVE = (State.RUNNING, State.PAUSED, State.STOPPING)
TRAINING_NICENESS = 10  # 0 = as important as serving requests; 19 = only idle time
# A training process holds no lock the server needs, so it can yield fully: under 20 API
# clients nice 19 measured p95 1.22-1.47x the bare app's, nice 10 1.61-1.72x, training at
# ~30% of its speed either way (BENCHMARKS.md, fifteenth session)
PROCESS_NICENESS = 19
# percent: a run that tests below this (a diverged lr 10 run reads ~10%) is saved but never
# becomes the Draw tab's model; the same floor draw_model applies after a restart
ADOPT_ACCURACY = draw_model.GOOD_ACCURACY


@dataclass(frozen=True)
class JobLimits:
    """Caps for a public deployment; generous defaults keep local use unrestricted."""

    max_epochs: int = MAX_EPOCHS  # a server may cap runs lower than the config allows
    max_seconds: float = math.inf  # wall-clock budget of one job, pauses excluded
    publish_interval: float = 0.5  # seconds between live-weight publications to the Predictor
    train_memory: int = 0  # bytes one training step may use (caps the batch size); 0 = no cap
    keep_newest: int = 0  # runs whose files the runs folder keeps (0 = all)...
    keep_best: int = 3  # ...plus the best this many by test accuracy
    # a CPU run pauses while visitors' requests are served, keeping at least this share of
    # its speed alone (limits.GiveWay); 1 = never pauses
    give_way_share: float = 0.25


@dataclass
class Snapshot:
    """What a viewer needs to draw the dashboard, as plain data."""

    state: str
    run_id: int
    message: str
    records: list[Record]  # records[since:] of the current run
    n_records: int
    config: dict[str, Any] | None
    device: str | None
    latest_step: StepRecord | None
    latest_epoch: EpochRecord | None
    best_test_accuracy: float | None
    eta_seconds: float | None
    checkpoint: str | None
    exports: dict[str, str] = field(default_factory=dict)  # "csv" / "png" of the ended run
    figure: str | None = None  # the tutorial's figure of the run so far (PNG), once per epoch
    figure_epochs: int = 0  # the epochs that figure shows: it follows each epoch's record
    n_history: int = 0  # runs in the history, so viewers redraw the comparison when it grows

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Run:
    """Everything that belongs to one run; a new run, or a reset, replaces it whole."""

    config: TrainConfig | None = None
    control: Control | None = None
    files: RunFiles | None = None
    records: list[Record] = field(default_factory=list)
    checkpoint: Path | None = None
    best: float | None = None  # best test accuracy so far, percent
    evaluation: tuple[str, Evaluation] | None = None  # the latest test pass and its label
    exports: dict[str, str] = field(default_factory=dict)
    figure: Path | None = None
    figure_epochs: int = 0  # epoch records drawn in `figure`
    started_at: float = 0.0  # time.monotonic()
    paused_at: float = 0.0
    paused_seconds: float = 0.0  # excluded from the time limit
    # None, not 0.0, means "never": time.monotonic() starts near 0 at boot, so a clock value
    # is no sentinel. The run's first step record always publishes.
    last_publish: float | None = None
    # the Draw tab's weights before this run: given back if the run is not adopted
    previous_weights: tuple[str, dict, Any] | None = None


class TrainingJob:
    """Start / pause / resume / stop / reset one shared training run."""

    def __init__(
        self,
        predictor: Predictor | None = None,
        runs_dir: Path | str = "runs",
        limits: JobLimits | None = None,
        process: bool = False,
    ) -> None:
        """`process`: train in a child process (train_process.py), as a server should, where
        the engine's loop does not share the requests' GIL; else in a thread of this one."""
        self.predictor = predictor
        self.runs_dir = Path(runs_dir)
        self.limits = limits or JobLimits()
        self._lock = threading.Lock()
        self._state = State.IDLE
        self._run = _Run()
        self.history = RunHistory(self.runs_dir / "history.json")
        # Run ids go on from the saved history and from the files present: a kill between a
        # checkpoint's save and the history's write must not let the next run overwrite it.
        self._run_id = max(self.history.next_run_id() - 1, caps.largest_run_id(self.runs_dir))
        self._n_history = len(self.history.runs())
        self._message = "Ready. Press Start to train."
        self._thread: threading.Thread | None = None
        # Visitors' requests being served (the UI counts them): a CPU run gives way to them,
        # a training process trains on one core while they come
        self.served = ServedCounter() if process else None
        self.in_flight = caps.InFlight(on_serve=self.served.tick if self.served else None)
        self._next_process: TrainingProcess | None = None  # started ahead of its run
        self._closed = False

    # --- commands (any thread) ----------------------------------------------------------------

    def warm_up(self) -> None:
        """A first run's one-time costs (training.warm_up, or starting the training process),
        paid before anyone clicks Start."""
        if self.served is None:
            warm_up()
        else:
            self._start_next_process()

    def _start_next_process(self) -> None:
        with self._lock:
            if self._next_process is None and not self._closed:
                self._next_process = TrainingProcess(
                    self.served,
                    PROCESS_NICENESS,
                    self.limits.publish_interval,
                    self.limits.give_way_share,
                )

    def _take_process(self) -> TrainingProcess:
        self._start_next_process()
        with self._lock:
            process, self._next_process = self._next_process, None
        if process is None:
            raise RuntimeError("the server is shutting down")
        return process

    def close(self) -> None:
        """Stop any run and the waiting training process (a server shutting down)."""
        with self._lock:
            self._closed = True  # no process is started for a next run
        self.stop(wait=EXIT_SECONDS)
        with self._lock:
            process, self._next_process = self._next_process, None
        if process is not None:
            process.close()

    def start(self, config: TrainConfig) -> tuple[bool, str]:
        """Start a run unless one is active; ConfigError if the config is invalid."""
        config.validate()
        if config.epochs > self.limits.max_epochs:
            raise ConfigError(f"epochs are capped at {self.limits.max_epochs} on this server")
        if self.limits.train_memory:
            cap = caps.max_batch_size(config.model, self.limits.train_memory)
            if config.batch_size > cap:
                raise ConfigError(
                    f"batch size {config.batch_size} does not fit this server's training memory "
                    f"({self.limits.train_memory / 2**30:.1f} GB): the {config.model} model "
                    f"trains with batches of up to {cap}"
                )
        with self._lock:
            if self._state in ACTIVE:
                return False, f"A training run is already {self._state.value}; stop it first."
            # never a number a file already has (one may have appeared since start-up)
            self._run_id = max(self._run_id, caps.largest_run_id(self.runs_dir)) + 1
            self._state = State.RUNNING
            control = Control()
            if self.served is None:  # a training process shares cores its own way
                control.give_way = caps.GiveWay(self.in_flight, self.limits.give_way_share)
            run = self._run = _Run(
                config=config,
                control=control,
                files=RunFiles.of(self.runs_dir, self._run_id, config.model),
                started_at=time.monotonic(),
                previous_weights=self.predictor.weights() if self.predictor else None,
            )
            self._message = f"Run {self._run_id} started."
            self._thread = threading.Thread(
                target=self._train,
                args=(run, self._run_id),
                name=f"training-run-{self._run_id}",
                daemon=True,
            )
            self._thread.start()
            return True, self._message

    def pause(self) -> tuple[bool, str]:
        with self._lock:
            if self._state is not State.RUNNING:
                return False, f"Nothing to pause (the job is {self._state.value})."
            self._run.control.pause()
            self._run.paused_at = time.monotonic()
            self._state = State.PAUSED
            self._message = "Paused."
            return True, self._message

    def resume(self) -> tuple[bool, str]:
        with self._lock:
            if self._state is not State.PAUSED:
                return False, f"Nothing to resume (the job is {self._state.value})."
            self._run.control.resume()
            self._run.paused_seconds += time.monotonic() - self._run.paused_at
            self._state = State.RUNNING
            self._message = "Resumed."
            return True, self._message

    def stop(self, wait: float = 0.0) -> tuple[bool, str]:
        """Ask the run to stop; optionally wait up to `wait` seconds for the thread to end."""
        with self._lock:
            if self._state not in ACTIVE:
                return False, f"Nothing to stop (the job is {self._state.value})."
            self._run.control.stop()
            self._state = State.STOPPING
            self._message = "Stopping…"
            thread = self._thread
        if wait and thread is not None:
            thread.join(wait)
        return True, "Stop requested."

    def reset(self, wait: float = 10.0) -> tuple[bool, str]:
        """Stop any run and clear the charts; the last good weights stay in the Predictor."""
        self.stop()
        thread = self._thread
        if thread is not None:
            thread.join(wait)
        with self._lock:
            if self._state in ACTIVE:
                return False, "The run did not stop in time; try Reset again."
            self._state = State.IDLE
            self._run = _Run()
            self._message = "Reset. Press Start to train."
            return True, self._message

    def wait(self, timeout: float | None = None) -> bool:
        """Join the training thread; True if no run is active afterwards."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.state not in ACTIVE

    # --- reading (any thread) -----------------------------------------------------------------

    def latest_step(self) -> StepRecord | None:
        """The current run's newest step record (cheap: no snapshot of the log)."""
        with self._lock:
            return latest(self._run.records, "step")

    def evaluation(self) -> tuple[str, Evaluation] | None:
        """The current run's latest test pass (every image's probabilities) and its label."""
        with self._lock:
            return self._run.evaluation

    @property
    def state(self) -> State:
        with self._lock:
            return self._state

    def snapshot(self, since: int = 0) -> Snapshot:
        """The state plus records[since:], copied under the lock (cheap when nothing moved)."""
        with self._lock:
            run = self._run
            records = run.records
            since = since if 0 <= since <= len(records) else 0
            step, epoch = latest(records, "step"), latest(records, "epoch")
            start = first(records, "start")
            return Snapshot(
                state=self._state.value,
                run_id=self._run_id,
                message=self._message,
                records=records[since:],
                n_records=len(records),
                config=asdict(run.config) if run.config else None,
                device=start["device"] if start else None,
                latest_step=step,
                latest_epoch=epoch,
                best_test_accuracy=run.best,
                eta_seconds=_eta(start, step, epoch, run.config) if self._state in ACTIVE else None,
                checkpoint=str(run.checkpoint) if run.checkpoint else None,
                exports=dict(run.exports),
                figure=str(run.figure) if run.figure else None,
                figure_epochs=run.figure_epochs,
                n_history=self._n_history,
            )

    # --- the training thread ------------------------------------------------------------------

    def _train(self, run: _Run, run_id: int) -> None:
        _yield_to_requests()
        config, files = run.config, run.files
        try:
            # train() builds the model after seeding, so a run repeats the CLI's numbers.
            trainer = train
            if self.served is not None:  # the child draws each epoch's figure, off our GIL
                trainer = partial(
                    self._take_process().train,
                    figures=files,
                    on_figure=lambda path, epochs: self._set_figure(run, path, epochs),
                )
            result = trainer(
                config,
                control=run.control,
                on_record=lambda r, m: self._on_record(r, m, run, run_id),
                on_evaluation=lambda r, e: self._on_evaluation(r, e, run, run_id),
                test_first=True,  # the accuracy chart's test line starts at the untrained net
            )
        except Exception as err:  # the server must outlive any training failure
            log.exception("training run %d failed", run_id)
            with self._lock:
                self._state = State.FAILED
                self._message = f"Training failed: {err}"
            return
        finally:
            if self.served is not None:  # the next run's, while nobody waits for it
                try:
                    self._start_next_process()
                except Exception as err:  # the next start tries again, and says why
                    log.warning("could not start the next training process: %s", err)
        saved, save_error = None, None
        if result.epochs_completed:
            try:
                saved = files.save_checkpoint(result)
            except OSError as err:
                save_error = err.strerror or str(err)
            with self._lock:
                evaluation = run.evaluation
            if saved is not None and evaluation is not None:
                files.cache_probabilities(saved, evaluation[1].probabilities.numpy())
        adopted = self._adopt(run, result, run_id, saved, save_error)
        state = "stopped" if result.stopped else "finished"
        summary = summarise(run_id, result.history, state, result.device)
        history_saved = True
        if summary is not None:
            history_saved = self.history.add(summary)  # False when the file cannot be written
        exports = files.export(result.history) if result.epochs_completed else {}
        self._prune()
        notes = [adopted]
        if not history_saved:
            notes.append("The run history could not be saved (disk full?); earlier runs are kept.")
        with self._lock:
            run.checkpoint = saved
            run.exports = exports
            if "png" in exports:
                run.figure, run.figure_epochs = Path(exports["png"]), result.epochs_completed
            self._n_history = len(self.history.runs())
            acc = f"{result.test_accuracy:.2f}%" if result.test_accuracy is not None else "n/a"
            if result.stopped:
                self._state = State.STOPPED
                limit = " (time limit)" if "time limit" in self._message else ""
                self._message = (
                    f"Stopped{limit} after {result.steps} steps "
                    f"({result.epochs_done:g} epochs); test accuracy {acc}."
                )
            else:
                self._state = State.FINISHED
                # "0.25 epochs" for a quarter-epoch run (58 of 234.4 steps), not "1 epoch"
                done = round(result.epochs_done, 2)
                epochs = f"{done:g} epoch" + "s" * (done != 1)
                self._message = (
                    f"Finished {epochs} in {result.train_seconds:.1f}s of training; "
                    f"test accuracy {acc}."
                )
            self._message = " ".join([self._message, *filter(None, notes)])

    def _adopt(
        self,
        run: _Run,
        result: Any,
        run_id: int,
        saved: Path | None,
        save_error: str | None,
    ) -> str:
        """Make the run the Draw tab's model (and its remembered choice, after a restart too)
        if it was saved and tested well; say what happened.

        Its live weights were shown while it trained; a run that is not adopted gives the
        Draw tab back the weights it had before the run started (the chosen model, or a
        shared fine-tune of it).
        """
        accuracy = result.test_accuracy
        if not result.epochs_completed:
            reason = "it did not complete an epoch"
        elif saved is None:
            reason = f"its checkpoint could not be saved ({save_error or 'unknown error'})"
        elif accuracy is None or accuracy < ADOPT_ACCURACY:
            reason = f"it tested below {ADOPT_ACCURACY:.0f}%"
        else:
            label = f"{run_label(run_id, result.epochs_done)} (final)"
            self._publish(run, result.model, label, saved)
            draw_model.remember(self.runs_dir, saved.name)
            return "The Draw tab now uses these weights."
        kept = self._restore_previous_weights(run)
        return f"The Draw tab keeps {kept}: this run was not adopted because {reason}."

    def _restore_previous_weights(self, run: _Run) -> str:
        previous = run.previous_weights
        if self.predictor is None or previous is None:
            return "its previous weights"
        model_name, state_dict, version = previous
        self.predictor.set_weights(model_name, state_dict, version.label, version.source)
        return version.label

    def _prune(self) -> None:
        """Keep the runs folder within its cap, never touching the Draw tab's checkpoint nor
        the remembered choice (they differ while a visitor's fine-tune is shared)."""
        if not self.limits.keep_newest:
            return
        source = self.predictor.version.source if self.predictor is not None else None
        chosen = draw_model.remembered(self.runs_dir)
        ids = (caps.run_id_of(Path(path)) for path in (source, chosen) if path is not None)
        protect = [i for i in ids if i is not None]
        accuracy = {run.run_id: run.best_test_accuracy for run in self.history.runs()}
        caps.prune_runs(
            self.runs_dir, accuracy, self.limits.keep_newest, self.limits.keep_best, protect
        )

    def _on_record(self, record: Record, model: nn.Module, run: _Run, run_id: int) -> None:
        record = {**record, "run_id": run_id, "wall": round(time.monotonic() - run.started_at, 3)}
        # Publish before the record is visible: a status that shows a step of this run also
        # shows this run's weights in the Draw tab.
        now = time.monotonic()
        draw_figure = False
        if is_kind(record, "epoch"):
            self._publish(run, model, run_label(run_id, epochs_done(record)))
            # (a training process draws its figures itself: _train's on_figure)
            in_thread = self.served is None
            draw_figure = in_thread and figure_due(record, run.records, run.control.stopped)
        elif is_kind(record, "step") and (
            run.last_publish is None or now - run.last_publish >= self.limits.publish_interval
        ):
            progress = epoch_position(record)
            self._publish(run, model, run_label(run_id, progress))
        with self._lock:
            run.records.append(record)
            if is_kind(record, "epoch"):
                acc = record["test_accuracy"]
                run.best = acc if run.best is None else max(run.best, acc)
            running = time.monotonic() - run.started_at - run.paused_seconds
            over_time = running > self.limits.max_seconds
            if over_time and not run.control.stopped:
                run.control.stop()
                self._state = State.STOPPING
                self._message = "Stopping: the time limit for one run was reached."
        if draw_figure:
            self._draw_figure(run)

    def _draw_figure(self, run: _Run) -> None:
        """The tutorial's figure up to the latest epoch, drawn here once for every viewer.

        Drawn in the training thread (niced), which matplotlib costs ~100-250 ms a figure
        that the server's request handling would otherwise pay once per tab, but after the
        epoch's record is visible: a run's test accuracy was shown 0.3-1.1 s late while its
        figure was drawn first (BENCHMARKS.md, twelfth session). Viewers follow
        `figure_epochs` to fetch it. The run's last epoch is drawn once, by its export.
        """
        with self._lock:
            records = list(run.records)
        self._set_figure(run, run.files.draw_figure(records), count(records, "epoch"))

    def _set_figure(self, run: _Run, path: Path | None, epochs: int) -> None:
        """Show the figure drawn of a run's first `epochs` epochs (None: it could not be)."""
        if path is not None:
            with self._lock:
                run.figure, run.figure_epochs = path, epochs

    def _on_evaluation(
        self, record: EpochRecord, evaluation: Evaluation, run: _Run, run_id: int
    ) -> None:
        label = run_label(run_id, epochs_done(record))
        with self._lock:
            run.evaluation = (label, evaluation)

    def _publish(self, run: _Run, model: nn.Module, label: str, source: Path | None = None) -> None:
        run.last_publish = time.monotonic()
        if self.predictor is not None:
            self.predictor.set_weights(
                run.config.model,
                checkpoints.cpu_state_dict(model),
                label,
                source,
                deskew=run.config.deskew,
            )


def _yield_to_requests() -> None:
    """Lower the training thread's priority: requests and browsers on the same cores go first.

    Threads it starts (OpenMP's pool, the CPU replicas) inherit the niceness. On the 2-core
    machine a drawing's round trip while a run trains went from 267 to 157 ms (median) and
    training lost nothing measurable (BENCHMARKS.md). Linux only; elsewhere a no-op.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), TRAINING_NICENESS)
    except (AttributeError, OSError) as err:  # not Linux, or not permitted
        log.info("training keeps its priority (%s)", err)


def _eta(
    start: StartRecord | None,
    step: StepRecord | None,
    epoch: EpochRecord | None,
    config: TrainConfig | None,
) -> float | None:
    """Seconds left: remaining steps at the measured pace, plus the evaluations to come."""
    if not start or not step or not config or step["step"] == 0:
        return None
    remaining_steps = start["total_steps"] - step["step"]
    per_step = step["train_seconds"] / step["step"]
    evals_left = math.ceil(config.epochs) - (epoch["epoch"] if epoch else 0)
    eval_seconds = epoch["eval_seconds"] if epoch else 0.0
    return max(0.0, remaining_steps * per_step + evals_left * eval_seconds)
