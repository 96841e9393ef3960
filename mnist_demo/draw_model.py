"""Which weights answer drawings: the user's choice among shipped checkpoints and saved runs,
kept across restarts, shared by the app and the CLI.

`mnist-demo predict` and `evaluate` default to the same weights as the Draw tab, so a drawing
saved to a file gets the answer it got in the browser. The choice is a small JSON file in the
runs folder; without one (or when it no longer loads) the best tested checkpoint answers,
never an untested or diverged one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from . import checkpoints
from .models import MODELS

log = logging.getLogger(__name__)

# The Draw tab's model before anyone trains: the improved CNN reads 99.2% of re-drawn MNIST
# test digits against the tutorial CNN's 98.9% (BENCHMARKS.md), at ~1 ms per prediction.
DRAW_MODEL = "improved"
GOOD_ACCURACY = 90.0  # percent: a diverged run (say lr 10, ~10%) is saved but never chosen
CHOICE_FILE = "draw-model.json"
SHIPPED_PREFIX = "shipped:"


class ChoiceError(ValueError):
    """A Draw model that cannot be used; the message says why."""


@dataclass(frozen=True)
class Candidate:
    """A checkpoint a user may choose for the Draw tab, and whether it may be chosen."""

    key: str  # "shipped:improved" or a run's file name, "run-3-tutorial.pt"
    path: Path
    model: str
    test_accuracy: float | None  # percent on MNIST's 10,000 test images, None if untested
    epochs: float | None  # passes over the training images
    unusable: str | None = None  # why it may not answer drawings; None if it may

    @property
    def label(self) -> str:
        """What the selector shows: what it is and how well it tested."""
        if self.key.startswith(SHIPPED_PREFIX):
            name = f"shipped {self.model} CNN"
        else:
            name = f"{self.path.stem} ({self.model}"
            name += f", {round(self.epochs, 2):g} epochs)" if self.epochs is not None else ")"
        if self.unusable:
            return f"{name}: {self.unusable}"
        return f"{name}: {self.test_accuracy:.2f}% test"


@dataclass(frozen=True)
class DrawWeights:
    """A loaded checkpoint, the label viewers see for it, and the file it came from."""

    checkpoint: checkpoints.Checkpoint
    label: str
    source: Path
    key: str = ""


def _candidate(key: str, path: Path) -> Candidate:
    try:
        metadata = checkpoints.load(path)
    except checkpoints.CheckpointError as err:  # a torn write, a wrong network, a hostile file
        log.warning("skipping checkpoint %s: %s", path.name, err)
        return Candidate(key, path, "?", None, None, f"unreadable ({err})")
    meta = metadata.metadata
    accuracy = meta.get("test_accuracy")
    done = meta.get("epochs_done", meta.get("epoch"))
    epochs = float(done) if isinstance(done, (int, float)) else None
    if not isinstance(accuracy, (int, float)):
        return Candidate(key, path, metadata.model_name, None, epochs, "never tested")
    unusable = None
    if accuracy < GOOD_ACCURACY:
        unusable = f"diverged ({accuracy:.1f}% test, under {GOOD_ACCURACY:g}%)"
    return Candidate(key, path, metadata.model_name, float(accuracy), epochs, unusable)


def candidates(runs_dir: Path) -> list[Candidate]:
    """The shipped checkpoints, then saved runs newest first, each with its test accuracy."""
    found = [_candidate(f"{SHIPPED_PREFIX}{name}", checkpoints.shipped(name)) for name in MODELS]
    runs = _newest_first(runs_dir.glob("run-*.pt") if runs_dir.is_dir() else [])
    return found + [_candidate(path.name, path) for path in runs]


def best(options: list[Candidate]) -> Candidate:
    """The best tested usable one (a shipped one on a tie: it is known to generalise)."""
    usable = [c for c in options if c.unusable is None]
    if not usable:
        raise ChoiceError("no usable checkpoint")
    return max(usable, key=lambda c: (c.test_accuracy, c.key.startswith(SHIPPED_PREFIX)))


def load(runs_dir: Path, key: str) -> DrawWeights:
    """The weights of `key`; ChoiceError if it is unknown, untested, diverged or unreadable."""
    path = _path_of(runs_dir, key)
    candidate = _candidate(key, path)
    if candidate.unusable:
        raise ChoiceError(f"{key} cannot answer drawings: {candidate.unusable}")
    checkpoint = checkpoints.load(path)
    if key.startswith(SHIPPED_PREFIX):
        label = f"shipped {candidate.model} checkpoint"
    else:
        label = f"saved run {path.stem}"
    return DrawWeights(checkpoint, label, path, key)


def remember(runs_dir: Path, key: str) -> None:
    """Keep `key` as the Draw tab's model across restarts (logs, never raises, on failure)."""
    try:
        payload = json.dumps({"draw_model": key}).encode()
        checkpoints.atomic_write_bytes(Path(runs_dir) / CHOICE_FILE, payload)
    except OSError as err:
        log.error("could not remember the Draw model %s: %s", key, err)


def remembered(runs_dir: Path) -> str | None:
    """The key last chosen, or None (no choice yet, or an unreadable file)."""
    path = Path(runs_dir) / CHOICE_FILE
    try:
        key = json.loads(path.read_text(encoding="utf-8")).get("draw_model")
    except (OSError, ValueError, AttributeError):
        return None
    return key if isinstance(key, str) else None


def key_of(path: Path | None) -> str | None:
    """The choice key of a checkpoint file (a shipped one or a run's), None if neither."""
    if path is None:
        return None
    for name in MODELS:
        if Path(path) == checkpoints.shipped(name):
            return f"{SHIPPED_PREFIX}{name}"
    return Path(path).name if Path(path).name.startswith("run-") else None


def choose(runs_dir: Path) -> DrawWeights:
    """At start-up: the remembered choice if it still loads and tested well, else the best
    tested checkpoint. The app always starts, and never with broken or untested weights."""
    key = remembered(runs_dir)
    if key is not None:
        try:
            return load(runs_dir, key)
        except (ChoiceError, checkpoints.CheckpointError) as err:
            log.warning("the remembered Draw model is not usable (%s); using the best tested", err)
    try:
        return load(runs_dir, best(candidates(runs_dir)).key)
    except (ChoiceError, checkpoints.CheckpointError) as err:  # e.g. a file vanished meanwhile
        log.warning("%s; using the shipped %s checkpoint", err, DRAW_MODEL)
        return load(runs_dir, f"{SHIPPED_PREFIX}{DRAW_MODEL}")


def _path_of(runs_dir: Path, key: str) -> Path:
    if key.startswith(SHIPPED_PREFIX):
        name = key.removeprefix(SHIPPED_PREFIX)
        if name not in MODELS:
            raise ChoiceError(f"no shipped checkpoint {name!r}")
        return checkpoints.shipped(name)
    if Path(key).name != key or not key.startswith("run-") or not key.endswith(".pt"):
        raise ChoiceError(f"not a saved run: {key!r}")  # no paths from outside the folder
    return Path(runs_dir) / key


def _newest_first(paths) -> list[Path]:
    """Paths by modification time, newest first; a dangling link or a vanished file is left out."""
    dated = []
    for path in paths:
        try:
            dated.append((path.stat().st_mtime, path))
        except OSError:
            log.warning("skipping unreadable checkpoint entry: %s", path)
    return [path for _, path in sorted(dated, reverse=True)]
