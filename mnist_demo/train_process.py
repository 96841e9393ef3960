"""train() in a process of its own, reporting back as if it ran in the calling thread.

A server that trains in one of its own threads shares one GIL with the requests it answers:
the training loop takes it back ~110 times a step (every torch call from Python), and while a
niced training thread holds it and waits for a core, every request waits too. Under 20 API
clients the requests' p95 was 1.47-1.55x a bare Gradio app's with training in a thread and
1.39-1.40x with it in a child process, which also answered ~20% more calls a second, at a
~20% lower median (BENCHMARKS.md, fifteenth session); training kept 27-32% either way.

The child runs the engine's own `train()`; this side gets its records, weights, test passes
and result through a pipe, pickled with plain `pickle` (torch's multiprocessing pickler would
share tensors through files the child owns). Pause and stop cross as multiprocessing events.
While the parent answers requests (a shared counter moves) the child trains on one core,
leaving the other to the server; otherwise on all of them. It also draws each epoch's figure
(matplotlib holds its process's GIL ~140 ms a figure), so the server does none of the run's
work but publishing the weights it is sent.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import pickle
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import charts
from .checkpoints import cpu_state_dict
from .limits import GiveWay
from .models import build_model
from .records import Record, count, is_kind
from .runfiles import RunFiles, figure_due
from .training import Control, Evaluation, TrainConfig, TrainResult, train, warm_up

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05  # how often the parent passes pause/stop on while no message comes
# Requests a second that make the child yield (one Draw tab re-reading its drawing is 2), and
# for how long after they stop coming it keeps yielding
BUSY_RATE = 5.0
QUIET_SECONDS = 1.0
EXIT_SECONDS = 10.0  # a child's time to exit once it has nothing left to do
# A stopped child's longest silence: its last step and a test pass (~1 s here; a slow CPU
# and a large batch can take several). After that it is taken as hung and killed.
STOP_SECONDS = 60.0


class TrainingProcessError(RuntimeError):
    """The child failed or vanished; the message says how, in one line."""


class ServedCounter:
    """A count of requests served, shared with a training process. No lock: the child only
    asks whether it moved, which an increment lost between racing threads cannot hide."""

    def __init__(self) -> None:
        self.value = mp.get_context("spawn").RawValue("Q", 0)

    def tick(self) -> None:
        self.value.value += 1


class _Busy:
    """The parent's served count, read in the child: busy for `quiet` seconds once requests
    come at `rate` a second or more (over half-second windows, from the request that reaches
    a window's count, even before the window ends). As `Control.cores`, one core while busy,
    else all; as limits.GiveWay's in-flight count, 1 while busy (and its wait simply sleeps).

    A rate, not any request: a Draw tab holding a drawing re-reads it each time a run
    publishes weights (twice a second), and every such read made the run train on one core
    at a third of its speed (the user check: 5,500 against ~17,000 images/s).
    """

    WINDOW = 0.5  # seconds

    def __init__(
        self,
        served: Any,
        cores: int,
        quiet: float = QUIET_SECONDS,
        rate: float = BUSY_RATE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.served, self.cores, self.quiet, self.rate, self.clock = (
            served,
            cores,
            quiet,
            rate,
            clock,
        )
        self.since, self.seen = clock(), served.value  # the window's start and count then
        self.until: float | None = None  # when the busy spell ends

    @property
    def count(self) -> int:
        now, served = self.clock(), self.served.value
        elapsed = now - self.since
        # Busy as soon as a window's count is reached, not at the window's end: otherwise a
        # burst of visitors meets a run on all cores for up to half a second
        if served - self.seen >= self.rate * max(elapsed, self.WINDOW):
            self.until = now + self.quiet
            self.since, self.seen = now, served
        elif elapsed >= self.WINDOW:
            self.since, self.seen = now, served
        return int(self.until is not None and now < self.until)

    def wait_idle(self, timeout: float) -> bool:
        time.sleep(timeout)
        return not self.count

    def __call__(self) -> int:
        return 1 if self.count else self.cores


def _child(
    commands: Any,
    conn: Any,
    events: tuple[Any, Any],
    served: Any,
    niceness: int,
    publish_interval: float,
    give_way_share: float,
) -> None:
    """The child's whole life: get ready, wait for one run, train it, report everything."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not permitted
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    warm_up()  # MNIST read before the run is asked for
    charts.prepare_figure()
    try:
        config, test_first, figures = pickle.loads(commands.recv_bytes())
    except EOFError:  # the parent closed (or died) without a run: nothing to do
        return

    def send(message: tuple) -> None:
        conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    last_weights: float | None = None
    records: list[Record] = []

    def on_record(record: Record, model: nn.Module) -> None:
        nonlocal last_weights
        now = time.monotonic()
        due = last_weights is None or now - last_weights >= publish_interval
        weights = None
        if is_kind(record, "epoch") or (is_kind(record, "step") and due):
            weights, last_weights = cpu_state_dict(model), now
        send(("record", record, weights))
        draw = figures is not None and figure_due(record, records, control.stopped)
        records.append(record)
        if draw:  # after the record is sent: the figure must not delay the accuracy shown
            send(("figure", figures.draw_figure(records), count(records, "epoch")))

    def on_evaluation(record: Record, evaluation: Evaluation) -> None:
        send(("evaluation", record, evaluation))

    busy = _Busy(served, config.threads or os.cpu_count() or 1)
    give_way = GiveWay(busy, give_way_share) if give_way_share < 1 else None  # type: ignore[arg-type]
    control = Control(give_way=give_way, cores=busy, events=events)
    try:
        result = train(
            config,
            control=control,
            on_record=on_record,
            on_evaluation=on_evaluation,
            test_first=test_first,
        )
        rest = {f.name: getattr(result, f.name) for f in fields(result) if f.name != "model"}
        send(("result", rest, cpu_state_dict(result.model)))
    except BaseException as err:  # whatever it was, the parent must hear it
        with contextlib.suppress(OSError):  # unless the parent has gone
            send(("error", type(err).__name__, str(err), traceback.format_exc()))
    finally:
        conn.close()


class TrainingProcess:
    """A child process started ahead of its run (torch imported, MNIST read: ~1.5 s of a
    click's wait otherwise) that trains exactly one run, then exits."""

    def __init__(
        self,
        served: ServedCounter,
        niceness: int = 0,
        publish_interval: float = 0.5,
        give_way_share: float = 1.0,
    ) -> None:
        context = mp.get_context("spawn")  # fork would copy the server's threads and locks
        commands, self._commands = context.Pipe(duplex=False)
        self._receiver, sender = context.Pipe(duplex=False)
        self._stop, self._running = context.Event(), context.Event()
        self._running.set()
        events = (self._stop, self._running)
        args = (commands, sender, events, served.value, niceness, publish_interval, give_way_share)
        self._child = context.Process(target=_child, args=args, name="training", daemon=True)
        self._child.start()
        self.reaper: threading.Thread | None = None  # joins the child once closed
        commands.close()  # the child's ends: the parent keeps only its own
        sender.close()

    def train(
        self,
        config: TrainConfig,
        *,
        control: Control,
        on_record: Callable[[Record, nn.Module], None],
        on_evaluation: Callable[[Record, Evaluation], None] | None = None,
        test_first: bool = False,
        figures: RunFiles | None = None,
        on_figure: Callable[[Path | None, int], None] | None = None,
    ) -> TrainResult:
        """`train(config, ...)` in the child, with the same callbacks and result.

        `on_record(record, model)` gets a model holding the child's latest weights (sent
        with each epoch's record and with step records `publish_interval` seconds apart).
        `control`'s pause and stop reach the child within POLL_SECONDS. With `figures`, the
        child draws the tutorial's figure there after each epoch but the last
        (runfiles.figure_due) and `on_figure(path or None, epochs drawn)` follows: matplotlib
        holds a GIL ~140 ms a figure, which the server's requests need. Raises
        TrainingProcessError if the child fails or dies. Call once.
        """
        with torch.random.fork_rng(devices=[]):  # the weights come from the child
            model = build_model(config.model)
        try:
            self._commands.send_bytes(pickle.dumps((config, test_first, figures)))
            heard = time.monotonic()
            while True:
                self._pass_on(control)
                if not self._receiver.poll(POLL_SECONDS):
                    if control.stopped and time.monotonic() - heard > STOP_SECONDS:
                        raise TrainingProcessError(
                            f"the training process did not stop within {STOP_SECONDS:.0f} s"
                        )  # close() kills it
                    continue
                heard = time.monotonic()
                try:
                    message = pickle.loads(self._receiver.recv_bytes())
                except EOFError:
                    self._child.join(EXIT_SECONDS)
                    raise TrainingProcessError(
                        "the training process ended unexpectedly "
                        f"(exit code {self._child.exitcode})"
                    ) from None
                kind = message[0]
                if kind == "record":
                    _, record, weights = message
                    if weights is not None:
                        model.load_state_dict(weights)
                    on_record(record, model)
                elif kind == "evaluation" and on_evaluation is not None:
                    on_evaluation(message[1], message[2])
                elif kind == "figure" and on_figure is not None:
                    on_figure(message[1], message[2])
                elif kind == "result":
                    _, rest, weights = message
                    model.load_state_dict(weights)
                    return TrainResult(model=model.eval(), **rest)
                elif kind == "error":  # the child's traceback goes to the log, not the user
                    log.error("the training process failed:\n%s", message[3])
                    raise TrainingProcessError(f"{message[1]}: {message[2]}")
        finally:
            self.close()

    def _pass_on(self, control: Control) -> None:
        if control.stopped:
            self._stop.set()
        if control.paused and not control.stopped:
            self._running.clear()
        else:
            self._running.set()

    def close(self) -> None:
        """Stop the child (if it runs) without waiting for it: a thread reaps it."""
        self._stop.set()
        self._running.set()
        self._commands.close()
        self._receiver.close()
        self.reaper = threading.Thread(target=self._reap, name="training-reaper", daemon=True)
        self.reaper.start()

    def _reap(self) -> None:
        self._child.join(EXIT_SECONDS)
        if self._child.exitcode is not None:
            return
        try:
            os.kill(self._child.pid, 0)
        except ProcessLookupError:  # reaped by another join (multiprocessing's, at exit)
            return
        log.warning("the training process did not stop; killing it")
        self._child.kill()
        self._child.join()
