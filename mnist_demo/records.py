"""The metric records a training run emits, typed, and the few ways every layer reads them.

`training.train` builds them, the job stamps them (`run_id`, `wall`) and keeps them, charts,
history, the CLI and the UI read them. They stay plain dicts (TypedDicts): they go into JSON
checkpoints, the run history and CSV rows unchanged. A record's `kind` says which type it is;
read them through `of_kind` / `latest` / `first` rather than comparing `kind` by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal, TypedDict

Kind = Literal["start", "step", "probe", "epoch"]


class _Stamped(TypedDict, total=False):
    """Added by the job when it keeps a record (absent in `train()`'s own history)."""

    run_id: int
    wall: float  # seconds since the job started the run


class _StartBase(_Stamped):
    kind: Literal["start"]
    device: str  # e.g. "cpu (2 threads)"
    mode: str  # how steps run: "cuda-graph", "eager", "eager, 2 threads or replicas (auto)"
    precision: str  # the forward's arithmetic: "float32" or "bfloat16" (TrainConfig.precision)
    total_steps: int
    steps_per_epoch: int
    config: dict[str, Any]  # asdict(TrainConfig)


class StartRecord(_StartBase, total=False):
    """Before the first step; with the untrained weights' test pass when asked for."""

    test_accuracy: float  # percent
    test_loss: float


class _StepBase(_Stamped):
    kind: Literal["step"]
    epoch: int  # 1-based, the epoch this step belongs to
    step: int  # steps done so far in the run
    epoch_progress: float  # fraction of this epoch done, (0, 1]
    loss: float  # mean plain cross-entropy over the steps since the last record
    train_accuracy: float  # percent, over the same steps
    lr: float
    samples_per_second: float
    train_seconds: float  # time in optimiser steps so far, pauses and tests excluded


class StepRecord(_StepBase, total=False):
    """Every `log_every` steps (or `log_seconds`), and at each epoch's end."""

    parallel: str  # the CPU mode the adaptive step is using: "threads" or "replicas"


class EpochRecord(_Stamped):
    """After each epoch's test pass on all 10,000 test images: a fractional last epoch too,
    and the part of an epoch a stopped run trained (its weights are tested on the way out)."""

    kind: Literal["epoch"]
    epoch: int
    step: int
    epochs_done: float  # < epoch after a partial epoch
    train_loss: float
    train_accuracy: float
    test_accuracy: float
    test_loss: float
    per_class_accuracy: list[float | None]  # percent per digit; None for a digit never seen
    confusion: list[list[int]]  # 10x10, rows true digit, columns predicted
    epoch_seconds: float
    eval_seconds: float
    train_seconds: float


class ProbeRecord(_Stamped):
    """Test accuracy on a fixed sample of the test set (an equal number of each digit), taken
    at regular fractions of an epoch so that even a quarter-epoch run draws a real test curve.

    Not the full test: the sample's accuracy is a noisier estimate (+-0.4 points at 99% on
    500 images) and is labelled as such; EpochRecord holds the full 10,000. The points at the
    start and at each epoch's end come free from those full passes (the sample's images are
    part of them).
    """

    kind: Literal["probe"]
    epoch: int  # 1-based, the epoch it was taken in (0 for the untrained weights)
    step: int
    epochs_done: float  # where it sits on the epoch axis: 0.125 = an eighth into the first
    test_accuracy: float  # percent, on the sample
    test_loss: float
    images: int  # the sample's size
    seconds: float  # what this pass cost (0 when read from a full pass)


Record = StartRecord | StepRecord | ProbeRecord | EpochRecord


def is_kind(record: Any, kind: Kind) -> bool:
    """True for a record of `kind`; run-history curve points carry no kind and are never one."""
    return isinstance(record, dict) and record.get("kind") == kind


def of_kind(records: Iterable[Any], kind: Kind) -> list[Any]:
    """The records of one kind, in order."""
    return [r for r in records if is_kind(r, kind)]


def first(records: Iterable[Any], kind: Kind) -> Any | None:
    """The earliest record of `kind`, or None."""
    return next((r for r in records if is_kind(r, kind)), None)


def latest(records: Sequence[Any], kind: Kind) -> Any | None:
    """The newest record of `kind`, or None (searches from the end: cheap for the newest)."""
    return next((r for r in reversed(records) if is_kind(r, kind)), None)


def count(records: Iterable[Any], kind: Kind) -> int:
    return sum(is_kind(r, kind) for r in records)


def epochs_done(record: Any) -> float:
    """Where a test result sits on the epoch axis: 1.5 after half of a second epoch, 0 for the
    untrained weights (a start record's). Run-history points carry no kind."""
    if is_kind(record, "start"):
        return 0.0
    return float(record.get("epochs_done", record["epoch"]))


def run_label(run_id: int, epochs: float) -> str:
    """Which weights answered: 'training run 3, epoch 0.25'. Epochs done, not the epoch
    counter: a quarter-epoch run's only epoch is number 1, but its weights saw a quarter."""
    return f"training run {run_id}, epoch {round(epochs, 2):g}"


def epoch_position(step: StepRecord) -> float:
    """Where a step record sits on an epoch axis: 1.37 = 37% into the second epoch."""
    return step["epoch"] - 1 + step["epoch_progress"]
