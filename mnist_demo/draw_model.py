"""Which weights answer drawings at start-up: one choice shared by the app and the CLI.

`mnist-demo predict` and `evaluate` default to the same weights as the Draw tab, so a drawing
saved to a file gets the answer it got in the browser.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from . import checkpoints

log = logging.getLogger(__name__)

# The Draw tab's model before anyone trains: the improved CNN reads 99.2% of re-drawn MNIST
# test digits against the tutorial CNN's 98.9% (BENCHMARKS.md), at ~1 ms per prediction.
DRAW_MODEL = "improved"
GOOD_ACCURACY = 90.0  # percent: a diverged run (say lr 10, ~10%) is saved but never reloaded


@dataclass(frozen=True)
class DrawWeights:
    """A loaded checkpoint, the label viewers see for it, and the file it came from."""

    checkpoint: checkpoints.Checkpoint
    label: str
    source: Path


def choose(runs_dir: Path) -> DrawWeights:
    """The newest loadable run in `runs_dir` that tested >= 90%, else the shipped checkpoint.

    A file that fails to load (say, a crash mid-write left junk) is skipped with a warning:
    the app always starts, and never with broken weights.
    """
    for path in _newest_first(runs_dir.glob("run-*.pt") if runs_dir.is_dir() else []):
        try:
            checkpoint = checkpoints.load(path)
        except checkpoints.CheckpointError as err:
            log.warning("skipping unusable checkpoint %s: %s", path.name, err)
            continue
        accuracy = checkpoint.metadata.get("test_accuracy")
        if not isinstance(accuracy, (int, float)) or accuracy < GOOD_ACCURACY:
            log.warning(
                "skipping %s: test accuracy %s is below %s%%", path.name, accuracy, GOOD_ACCURACY
            )
            continue
        return DrawWeights(checkpoint, f"saved run {path.stem}", path)
    shipped = checkpoints.shipped(DRAW_MODEL)
    return DrawWeights(checkpoints.load(shipped), f"shipped {DRAW_MODEL} checkpoint", shipped)


def _newest_first(paths) -> list[Path]:
    """Paths by modification time, newest first; a dangling link or a vanished file is left out."""
    dated = []
    for path in paths:
        try:
            dated.append((path.stat().st_mtime, path))
        except OSError:
            log.warning("skipping unreadable checkpoint entry: %s", path)
    return [path for _, path in sorted(dated, reverse=True)]
