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
from pathlib import Path
from typing import Any

from torch import nn

from . import charts, checkpoints
from .history import RunHistory, records_csv, summarise
from .predict import Predictor
from .training import (
    ConfigError,
    Control,
    Evaluation,
    Record,
    TrainConfig,
    save_result,
    train,
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


@dataclass(frozen=True)
class JobLimits:
    """Caps for a public deployment; generous defaults keep local use unrestricted."""

    max_epochs: int = 200
    max_seconds: float = math.inf  # wall-clock budget of one job, pauses excluded
    publish_interval: float = 0.5  # seconds between live-weight publications to the Predictor


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
    latest_step: Record | None
    latest_epoch: Record | None
    best_test_accuracy: float | None
    eta_seconds: float | None
    checkpoint: str | None
    exports: dict[str, str] = field(default_factory=dict)  # "csv" / "png" of the ended run
    figure: str | None = None  # the tutorial's figure of the run so far (PNG), once per epoch
    n_history: int = 0  # runs in the history, so viewers redraw the comparison when it grows
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class TrainingJob:
    """Start / pause / resume / stop / reset one shared training run."""

    def __init__(
        self,
        predictor: Predictor | None = None,
        runs_dir: Path | str = "runs",
        limits: JobLimits | None = None,
    ) -> None:
        self.predictor = predictor
        self.runs_dir = Path(runs_dir)
        self.limits = limits or JobLimits()
        self._lock = threading.Lock()
        self._state = State.IDLE
        self._records: list[Record] = []
        self.history = RunHistory(self.runs_dir / "history.json")
        # Run ids go on from the saved history, so a restart never reuses a checkpoint name.
        self._run_id = self.history.next_run_id() - 1
        self._evaluation: tuple[str, Evaluation] | None = None
        self._exports: dict[str, str] = {}
        self._figure: Path | None = None
        self._n_history = len(self.history.runs())
        self._message = "Ready. Press Start to train."
        self._config: TrainConfig | None = None
        self._control: Control | None = None
        self._thread: threading.Thread | None = None
        self._checkpoint: Path | None = None
        self._best: float | None = None
        # None, not 0.0, means "never": time.monotonic() starts near 0 at boot, so a clock
        # value is no sentinel (a 0.0 kept a run's first step from publishing for an hour).
        self._last_publish: float | None = None
        self._started_at = 0.0
        self._paused_at = 0.0
        self._paused_seconds = 0.0  # excluded from the time limit

    # --- commands (any thread) ----------------------------------------------------------------

    def start(self, config: TrainConfig) -> tuple[bool, str]:
        """Start a run unless one is active; ConfigError if the config is invalid."""
        config.validate()
        if config.epochs > self.limits.max_epochs:
            raise ConfigError(f"epochs are capped at {self.limits.max_epochs} on this server")
        with self._lock:
            if self._state in ACTIVE:
                return False, f"A training run is already {self._state.value}; stop it first."
            self._run_id += 1
            self._state = State.RUNNING
            self._records = []
            self._config = config
            self._control = Control()
            self._checkpoint = None
            self._best = None
            self._evaluation = None
            self._exports = {}
            self._figure = None
            self._started_at = time.monotonic()
            self._paused_seconds = 0.0
            self._last_publish = None  # the run's first step record always publishes
            self._message = f"Run {self._run_id} started."
            self._thread = threading.Thread(
                target=self._run,
                args=(config, self._control, self._run_id),
                name=f"training-run-{self._run_id}",
                daemon=True,
            )
            self._thread.start()
            return True, self._message

    def pause(self) -> tuple[bool, str]:
        with self._lock:
            if self._state is not State.RUNNING:
                return False, f"Nothing to pause (the job is {self._state.value})."
            self._control.pause()
            self._paused_at = time.monotonic()
            self._state = State.PAUSED
            self._message = "Paused."
            return True, self._message

    def resume(self) -> tuple[bool, str]:
        with self._lock:
            if self._state is not State.PAUSED:
                return False, f"Nothing to resume (the job is {self._state.value})."
            self._control.resume()
            self._paused_seconds += time.monotonic() - self._paused_at
            self._state = State.RUNNING
            self._message = "Resumed."
            return True, self._message

    def stop(self, wait: float = 0.0) -> tuple[bool, str]:
        """Ask the run to stop; optionally wait up to `wait` seconds for the thread to end."""
        with self._lock:
            if self._state not in ACTIVE:
                return False, f"Nothing to stop (the job is {self._state.value})."
            self._control.stop()
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
            self._records = []
            self._config = None
            self._checkpoint = None
            self._best = None
            self._evaluation = None
            self._exports = {}
            self._figure = None
            self._message = "Reset. Press Start to train."
            return True, self._message

    def wait(self, timeout: float | None = None) -> bool:
        """Join the training thread; True if no run is active afterwards."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.state not in ACTIVE

    # --- reading (any thread) -----------------------------------------------------------------

    def latest_step(self) -> Record | None:
        """The current run's newest step record (cheap: no snapshot of the log)."""
        with self._lock:
            return next((r for r in reversed(self._records) if r["kind"] == "step"), None)

    def evaluation(self) -> tuple[str, Evaluation] | None:
        """The current run's latest test pass (every image's probabilities) and its label."""
        with self._lock:
            return self._evaluation

    @property
    def state(self) -> State:
        with self._lock:
            return self._state

    def snapshot(self, since: int = 0) -> Snapshot:
        """The state plus records[since:], copied under the lock (cheap when nothing moved)."""
        with self._lock:
            records = self._records
            since = since if 0 <= since <= len(records) else 0
            steps = [r for r in reversed(records) if r["kind"] == "step"][:1]
            epochs = [r for r in reversed(records) if r["kind"] == "epoch"][:1]
            start = next((r for r in records if r["kind"] == "start"), None)
            return Snapshot(
                state=self._state.value,
                run_id=self._run_id,
                message=self._message,
                records=records[since:],
                n_records=len(records),
                config=asdict(self._config) if self._config else None,
                device=start["device"] if start else None,
                latest_step=steps[0] if steps else None,
                latest_epoch=epochs[0] if epochs else None,
                best_test_accuracy=self._best,
                eta_seconds=_eta(
                    start, steps[0] if steps else None, epochs[0] if epochs else None, self._config
                )
                if self._state in ACTIVE
                else None,
                checkpoint=str(self._checkpoint) if self._checkpoint else None,
                exports=dict(self._exports),
                figure=str(self._figure) if self._figure else None,
                n_history=self._n_history,
            )

    # --- the training thread ------------------------------------------------------------------

    def _run(self, config: TrainConfig, control: Control, run_id: int) -> None:
        _yield_to_requests()
        try:
            # train() builds the model after seeding, so a run repeats the CLI's numbers.
            result = train(
                config,
                control=control,
                on_record=lambda r, m: self._on_record(r, m, config, control, run_id),
                on_evaluation=lambda r, e: self._on_evaluation(r, e, run_id),
                test_first=True,  # the accuracy chart's test line starts at the untrained net
            )
        except Exception as err:  # the server must outlive any training failure
            log.exception("training run %d failed", run_id)
            with self._lock:
                self._state = State.FAILED
                self._message = f"Training failed: {err}"
            return
        saved = None
        if result.epochs_completed:
            try:
                saved = save_result(self._stem(run_id, config).with_suffix(".pt"), result)
            except OSError as err:
                log.error("could not save run %d: %s", run_id, err)
            self._publish(
                config,
                result.model,
                f"training run {run_id}, epoch {result.epochs_completed} (final)",
                saved,
            )
            self._cache_probabilities(saved)
        state = "stopped" if result.stopped else "finished"
        summary = summarise(run_id, result.history, state, result.device)
        if summary is not None:
            self.history.add(summary)  # logs, never raises, when the file cannot be written
        exports = self._export(run_id, config, result.history) if result.epochs_completed else {}
        with self._lock:
            self._checkpoint = saved
            self._exports = exports
            self._figure = Path(exports["png"]) if "png" in exports else self._figure
            self._n_history = len(self.history.runs())
            acc = f"{result.test_accuracy:.2f}%" if result.test_accuracy is not None else "n/a"
            if result.stopped:
                self._state = State.STOPPED
                limit = " (time limit)" if "time limit" in self._message else ""
                self._message = f"Stopped{limit} after {result.steps} steps; test accuracy {acc}."
            else:
                self._state = State.FINISHED
                epochs = f"{result.epochs_completed} epoch" + "s" * (result.epochs_completed != 1)
                self._message = (
                    f"Finished {epochs} in {result.train_seconds:.1f}s of training; "
                    f"test accuracy {acc}. The Draw tab now uses these weights."
                )

    def _on_record(
        self, record: Record, model: nn.Module, config: TrainConfig, control: Control, run_id: int
    ) -> None:
        record = {**record, "run_id": run_id, "wall": round(time.monotonic() - self._started_at, 3)}
        # Publish before the record is visible: a status that shows a step of this run also
        # shows this run's weights in the Draw tab.
        now = time.monotonic()
        if record["kind"] == "epoch":
            self._publish(config, model, f"training run {run_id}, epoch {record['epoch']}")
            self._draw_figure(record, config, run_id)
        elif record["kind"] == "step" and (
            self._last_publish is None or now - self._last_publish >= self.limits.publish_interval
        ):
            progress = record["epoch"] - 1 + record["epoch_progress"]
            self._publish(config, model, f"training run {run_id}, epoch {progress:.2f}")
        with self._lock:
            self._records.append(record)
            if record["kind"] == "epoch":
                acc = record["test_accuracy"]
                self._best = acc if self._best is None else max(self._best, acc)
            running = time.monotonic() - self._started_at - self._paused_seconds
            over_time = running > self.limits.max_seconds
            if over_time and not control.stopped:
                control.stop()
                self._state = State.STOPPING
                self._message = "Stopping: the time limit for one run was reached."

    def _draw_figure(self, epoch: Record, config: TrainConfig, run_id: int) -> None:
        """The tutorial's figure up to this epoch, drawn here once for every viewer.

        Drawn in the training thread (niced) before the epoch's record is visible, so a tab
        that sees the epoch also gets its figure; matplotlib costs ~100-250 ms a figure,
        which the server's request handling would otherwise pay once per tab.
        """
        with self._lock:
            records = [*self._records, epoch]
        path = self._stem(run_id, config).with_suffix(".png")  # the final export replaces it
        try:
            checkpoints.atomic_write_bytes(path, charts.figure_png(records))
        except OSError as err:
            log.error("could not draw run %d's figure: %s", run_id, err)
            return
        with self._lock:
            self._figure = path

    def _stem(self, run_id: int, config: TrainConfig) -> Path:
        return self.runs_dir / f"run-{run_id}-{config.model}"

    def _export(self, run_id: int, config: TrainConfig, records: list[Record]) -> dict[str, str]:
        """The run's metrics as CSV and the tutorial's figure as PNG, next to its checkpoint."""
        stem = self._stem(run_id, config)
        exports = {}
        try:
            csv_path = stem.with_suffix(".csv")
            checkpoints.atomic_write_bytes(csv_path, records_csv(records).encode())
            exports["csv"] = str(csv_path)
            png = checkpoints.atomic_write_bytes(
                stem.with_suffix(".png"), charts.figure_png(records)
            )
            exports["png"] = str(png)
        except OSError as err:
            log.error("could not export run %d: %s", run_id, err)
        return exports

    def _on_evaluation(self, record: Record, evaluation: Evaluation, run_id: int) -> None:
        if record["kind"] == "epoch":
            label = f"training run {run_id}, epoch {record['epoch']}"
        else:
            label = f"training run {run_id}, final weights"
        with self._lock:
            self._evaluation = (label, evaluation)

    def _publish(
        self, config: TrainConfig, model: nn.Module, label: str, source: Path | None = None
    ) -> None:
        self._last_publish = time.monotonic()
        if self.predictor is not None:
            self.predictor.set_weights(
                config.model, checkpoints.cpu_state_dict(model), label, source
            )

    def _cache_probabilities(self, saved: Path | None) -> None:
        """Keep the final test pass next to the checkpoint: the per-digit view after a restart."""
        evaluation = self.evaluation()
        if saved is None or evaluation is None:
            return
        try:
            checkpoints.save_test_probabilities(saved, evaluation[1].probabilities.numpy())
        except OSError as err:
            log.warning("could not cache test probabilities for %s: %s", saved.name, err)


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
    start: Record | None, step: Record | None, epoch: Record | None, config: TrainConfig | None
) -> float | None:
    """Seconds left: remaining steps at the measured pace, plus the evaluations to come."""
    if not start or not step or not config or step["step"] == 0:
        return None
    remaining_steps = start["total_steps"] - step["step"]
    per_step = step["train_seconds"] / step["step"]
    evals_left = math.ceil(config.epochs) - (epoch["epoch"] if epoch else 0)
    eval_seconds = epoch["eval_seconds"] if epoch else 0.0
    return max(0.0, remaining_steps * per_step + evals_left * eval_seconds)
