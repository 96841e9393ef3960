"""Run history for "compare runs": one summary per finished run, kept in a small JSON file.

Summaries are plain data built from a run's metric records (see records.py). The file is
written atomically after every change and a damaged one is set aside, never fatal: losing the
comparison chart must not stop anyone from training.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from .checkpoints import atomic_write_bytes
from .records import Record, epoch_position, epochs_done, first, of_kind

log = logging.getLogger(__name__)

FORMAT = "mnist-demo-history/1"
STATES = ("finished", "stopped")
CURVE_FIELDS = (
    "epoch",
    "epochs_done",
    "train_loss",
    "train_accuracy",
    "test_accuracy",
    "train_seconds",
)
CURVE_POINTS = 120  # per curve kept for the comparison chart: a smooth line, a small file
CSV_COLUMNS = (
    "kind",
    "epoch",
    "epochs_done",
    "step",
    "train_seconds",
    "loss",
    "train_accuracy",
    "test_accuracy",
    "test_loss",
    "samples_per_second",
    "lr",
)


@dataclass(frozen=True)
class RunSummary:
    """What one training run reached, and its per-epoch curve for the comparison chart."""

    run_id: int
    model: str
    config: dict[str, Any]  # asdict(TrainConfig) from the run's start record
    best_test_accuracy: float  # percent
    final_test_accuracy: float  # percent, after the last completed epoch
    epochs: int  # completed
    train_seconds: float  # time in optimiser steps, pauses and evaluation excluded
    device: str
    finished_at: str  # ISO 8601 with the local UTC offset
    state: str  # "finished" or "stopped"
    epochs_curve: list[dict[str, Any]] = field(default_factory=list)  # CURVE_FIELDS per epoch
    # [epochs, percent]: test accuracy on the in-epoch sample (its points at the start and at
    # each epoch's end included); empty for runs saved before there was one
    test_curve: list[list[float]] = field(default_factory=list)
    loss_curve: list[list[float]] = field(default_factory=list)  # [epochs, train loss]

    @property
    def epochs_done(self) -> float:
        """Passes over the training images it made: 2.37 for a 20-epoch run stopped early."""
        return epochs_done(self.epochs_curve[-1]) if self.epochs_curve else float(self.epochs)

    @property
    def label(self) -> str:
        """Short name for a legend, e.g. '#3 tutorial bs256 lr0.01'."""
        parts = [f"#{self.run_id}", self.model]
        if "batch_size" in self.config:
            parts.append(f"bs{self.config['batch_size']}")
        if "lr" in self.config:
            parts.append(f"lr{self.config['lr']:g}")
        return " ".join(parts)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSummary:
        """Rebuild from `asdict` output; ValueError if anything is missing or mistyped."""
        names = {f.name for f in fields(cls)}
        optional = {"test_curve", "loss_curve"}  # absent in histories written before them
        if not isinstance(data, dict) or not names - optional <= set(data) <= names:
            raise ValueError("not a run summary")
        summary = cls(**data)
        checks = (
            isinstance(summary.run_id, int),
            isinstance(summary.model, str),
            isinstance(summary.config, dict),
            isinstance(summary.best_test_accuracy, (int, float)),
            isinstance(summary.final_test_accuracy, (int, float)),
            isinstance(summary.epochs, int),
            isinstance(summary.train_seconds, (int, float)),
            isinstance(summary.device, str),
            isinstance(summary.finished_at, str),
            summary.state in STATES,
            isinstance(summary.epochs_curve, list)
            and all(isinstance(point, dict) for point in summary.epochs_curve),
            all(_is_curve(c) for c in (summary.test_curve, summary.loss_curve)),
        )
        if not all(checks):
            raise ValueError("a run summary field has the wrong type")
        return summary


def summarise(
    run_id: int, records: Sequence[Record], state: str, device: str | None = None
) -> RunSummary | None:
    """A run's records -> its summary; None when no epoch completed (nothing to compare)."""
    if state not in STATES:
        raise ValueError(f"state must be one of {', '.join(STATES)}, got {state!r}")
    epochs = of_kind(records, "epoch")
    if not epochs:
        return None
    start = first(records, "start") or {}
    config = dict(start.get("config") or {})
    timed = [r["train_seconds"] for r in records if "train_seconds" in r]
    accuracies = [float(r["test_accuracy"]) for r in epochs]
    return RunSummary(
        run_id=int(run_id),
        model=str(config.get("model", "unknown")),
        config=config,
        best_test_accuracy=max(accuracies),
        final_test_accuracy=accuracies[-1],
        epochs=int(epochs[-1]["epoch"]),
        # the last record, not the last epoch: a stopped run trained past its last test pass
        train_seconds=round(float(timed[-1]), 3) if timed else 0.0,
        device=device or str(start.get("device", "unknown")),
        finished_at=datetime.now().astimezone().isoformat(timespec="seconds"),
        state=state,
        epochs_curve=[{k: r[k] for k in CURVE_FIELDS if k in r} for r in epochs],
        test_curve=_curve(
            [[epochs_done(r), r["test_accuracy"]] for r in of_kind(records, "probe")]
        ),
        loss_curve=_curve([[epoch_position(r), r["loss"]] for r in of_kind(records, "step")]),
    )


def _curve(points: list[list[float]]) -> list[list[float]]:
    """At most CURVE_POINTS evenly picked points (the last kept), rounded for a small file."""
    stride = max(1, -(-len(points) // CURVE_POINTS))
    picked = points[::stride] + ([points[-1]] if (len(points) - 1) % stride else [])
    return [[round(x, 4), round(y, 5)] for x, y in picked]


def _is_curve(curve: Any) -> bool:
    return isinstance(curve, list) and all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(v, (int, float)) for v in p)
        for p in curve
    )


class RunHistory:
    """The last `limit` run summaries, persisted to `path`; safe to share between threads."""

    def __init__(self, path: Path | str, limit: int = 50) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        self.path = Path(path)
        self.limit = limit
        self._lock = threading.Lock()
        self._runs: list[RunSummary] = self._load()[-limit:]

    def _load(self) -> list[RunSummary]:
        if not self.path.exists():
            return []
        try:
            payload = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(payload, dict) or payload.get("format") != FORMAT:
                raise ValueError(f"no {FORMAT!r} format marker")
            if not isinstance(payload.get("runs"), list):
                raise ValueError("no list of runs")
            return [RunSummary.from_dict(item) for item in payload["runs"]]
        except (OSError, UnicodeDecodeError, ValueError, TypeError) as err:
            aside = self.path.with_suffix(".corrupt")
            log.warning("run history %s is unreadable (%s); starting empty", self.path, err)
            try:
                os.replace(self.path, aside)
                log.warning("kept the unreadable history as %s", aside)
            except OSError as move_err:
                log.warning("could not move %s aside: %s", self.path, move_err)
            return []

    def _save(self) -> bool:
        """Write atomically, like a checkpoint: a crash or a full disk leaves the old file."""
        payload = {"format": FORMAT, "runs": [asdict(run) for run in self._runs]}
        try:
            atomic_write_bytes(self.path, json.dumps(payload, indent=1).encode("utf-8"))
        except OSError as err:
            # Kept in memory for this session; failing the run over a chart would be worse.
            log.error("could not save run history to %s: %s", self.path, err)
            return False
        return True

    def add(self, summary: RunSummary) -> bool:
        """Append a run (dropping the oldest beyond `limit`) and save; False if not saved."""
        with self._lock:
            self._runs = [*self._runs, summary][-self.limit :]
            return self._save()

    def runs(self) -> list[RunSummary]:
        """All kept runs, oldest first."""
        with self._lock:
            return list(self._runs)

    def next_run_id(self) -> int:
        """One more than the largest stored run id, so numbering can continue across restarts."""
        with self._lock:
            return max((run.run_id for run in self._runs), default=0) + 1

    def clear(self) -> None:
        with self._lock:
            self._runs = []
            self._save()


def records_csv(records: Sequence[Record]) -> str:
    """A run's metric records as CSV, one row per record, blank where a field does not apply."""
    out = io.StringIO()
    writer = csv.DictWriter(
        out, fieldnames=CSV_COLUMNS, restval="", extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()
