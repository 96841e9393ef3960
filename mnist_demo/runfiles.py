"""The files one training run leaves in the runs folder, named and written in one place.

`runs/run-<id>-<model>.pt` (weights), `.png` (the tutorial's figure, redrawn each epoch),
`.csv` (every metric record) and the checkpoint's cached test probabilities next to it.
Every write is atomic (a crash leaves the old file or the new one). Exports only log on
failure (a full disk must not fail a run that trained); a checkpoint that cannot be saved
raises, and the job says so.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import charts, checkpoints
from .history import records_csv
from .records import Record, first, is_kind
from .training import TrainResult, save_result

log = logging.getLogger(__name__)


def figure_due(record: Record, records: Sequence[Record], stopped: bool) -> bool:
    """Is `record` an epoch whose figure is drawn now? Every epoch's but the run's last (its
    planned end, or a stop): the export draws that one. `records`: the run's so far."""
    if not is_kind(record, "epoch"):
        return False
    start = first(records, "start")
    planned_end = start is not None and record["step"] >= start["total_steps"]
    return not (planned_end or stopped)


@dataclass(frozen=True)
class RunFiles:
    """Paths and writers of one run's files."""

    stem: Path  # runs/run-3-tutorial: each file adds its suffix

    @classmethod
    def of(cls, runs_dir: Path, run_id: int, model: str) -> RunFiles:
        return cls(Path(runs_dir) / f"run-{run_id}-{model}")

    def existing(self) -> dict[str, Path]:
        """The run's downloads that are on disk: "checkpoint", "csv", "figure"."""
        files = {"checkpoint": self.checkpoint, "csv": self.csv, "figure": self.figure}
        return {name: path for name, path in files.items() if path.is_file()}

    @property
    def checkpoint(self) -> Path:
        return self.stem.with_suffix(".pt")

    @property
    def figure(self) -> Path:
        return self.stem.with_suffix(".png")

    @property
    def csv(self) -> Path:
        return self.stem.with_suffix(".csv")

    def save_checkpoint(self, result: TrainResult) -> Path:
        """The run's weights with what produced them; OSError (logged) if they cannot be
        written, so the job can say why the run was not adopted."""
        try:
            return save_result(self.checkpoint, result)
        except OSError as err:
            log.error("could not save %s: %s", self.checkpoint.name, err)
            raise

    def draw_figure(self, records: Sequence[Record]) -> Path | None:
        """The tutorial's figure of `records` (matplotlib: ~100-250 ms); None on failure."""
        try:
            return checkpoints.atomic_write_bytes(self.figure, charts.figure_png(records))
        except OSError as err:
            log.error("could not draw %s: %s", self.figure.name, err)
            return None

    def export(self, records: Sequence[Record]) -> dict[str, str]:
        """The run's metrics as CSV and its final figure as PNG: {"csv": path, "png": path}."""
        exports = {}
        try:
            exports["csv"] = str(
                checkpoints.atomic_write_bytes(self.csv, records_csv(records).encode())
            )
            png = checkpoints.atomic_write_bytes(self.figure, charts.figure_png(records))
            exports["png"] = str(png)
        except OSError as err:
            log.error("could not export %s: %s", self.stem.name, err)
        return exports

    @staticmethod
    def cache_probabilities(saved: Path, probabilities: np.ndarray) -> None:
        """The final test pass next to the checkpoint: the per-digit view after a restart."""
        try:
            checkpoints.save_test_probabilities(saved, probabilities)
        except OSError as err:
            log.warning("could not cache test probabilities for %s: %s", saved.name, err)
