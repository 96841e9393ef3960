"""App settings from the environment: what a local run allows and what a public Space caps.

Locally everything is allowed. On a public deployment set, for example,
`MNIST_DEMO_TRAINING=token MNIST_DEMO_TOKEN=... MNIST_DEMO_MAX_EPOCHS=5 MNIST_DEMO_MAX_SECONDS=300`.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from . import checkpoints
from .job import JobLimits

TRAINING_MODES = ("on", "off", "token")
TEACHING_MODES = ("on", "off", "shared")


class SettingsError(ValueError):
    """An environment setting has a value we cannot use."""


@dataclass(frozen=True)
class AppSettings:
    training: str = "on"  # "on": anyone may train; "off": nobody; "token": with the token
    token: str | None = None  # the secret that unlocks training when training == "token"
    limits: JobLimits = JobLimits()
    runs_dir: Path = Path("runs")  # where finished runs are saved (relative to the repo root)
    max_file_size: str = "5mb"  # uploads larger than this are refused by Gradio itself
    queue_size: int = 64  # requests waiting beyond this are refused with "queue full"
    default_device: str = "auto"  # preselected in the Train tab's device menu
    train_threads: int = 0  # CPU cores for training (0 = all); fewer keeps a core for visitors
    # "on": each visitor may fine-tune a private copy on their drawings; "off": nobody;
    # "shared": a visitor's fine-tune replaces everyone's Draw model (for a classroom, say)
    teaching: str = "on"

    def may_train(self, token: str | None) -> bool:
        """Server-side check for every state-changing request (start, pause, stop, reset)."""
        if self.training == "on":
            return True
        if self.training == "token" and self.token:
            import hmac

            return hmac.compare_digest((token or "").encode(), self.token.encode())
        return False


def _number(env: dict[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not value >= minimum:  # also rejects NaN
        raise SettingsError(f"{name} must be at least {minimum}, got {raw}")
    return value


def _integer(env: dict[str, str], name: str, default: int, minimum: int) -> int:
    value = _number(env, name, default, minimum)
    if not math.isfinite(value) or value != int(value):  # int(inf) would raise OverflowError
        raise SettingsError(f"{name} must be a whole number, got {env.get(name)}")
    return int(value)


def from_env(env: dict[str, str] | None = None) -> AppSettings:
    """Read MNIST_DEMO_* variables; a bad value raises SettingsError at start-up, not later."""
    env = dict(os.environ if env is None else env)
    training = env.get("MNIST_DEMO_TRAINING", "on").strip().lower()
    if training not in TRAINING_MODES:
        raise SettingsError(f"MNIST_DEMO_TRAINING must be one of {', '.join(TRAINING_MODES)}")
    teaching = env.get("MNIST_DEMO_TEACHING", "on").strip().lower()
    if teaching not in TEACHING_MODES:
        raise SettingsError(f"MNIST_DEMO_TEACHING must be one of {', '.join(TEACHING_MODES)}")
    token = env.get("MNIST_DEMO_TOKEN") or None
    if training == "token" and not token:
        raise SettingsError("MNIST_DEMO_TRAINING=token needs MNIST_DEMO_TOKEN to be set")
    limits = JobLimits(
        max_epochs=_integer(env, "MNIST_DEMO_MAX_EPOCHS", JobLimits.max_epochs, 1),
        max_seconds=_number(env, "MNIST_DEMO_MAX_SECONDS", math.inf, 1),
    )
    max_file_size = (env.get("MNIST_DEMO_MAX_FILE_SIZE") or "5mb").strip()
    if not re.fullmatch(r"\d+\s*[kmgt]?b", max_file_size, re.IGNORECASE):  # Gradio's format
        raise SettingsError(f"MNIST_DEMO_MAX_FILE_SIZE={max_file_size!r} is not a size like 5mb")
    runs_dir = checkpoints.runs_dir(env)
    return AppSettings(
        training=training,
        token=token,
        limits=limits,
        runs_dir=runs_dir,
        max_file_size=max_file_size,
        queue_size=_integer(env, "MNIST_DEMO_QUEUE_SIZE", 64, 1),
        train_threads=_integer(env, "MNIST_DEMO_TRAIN_THREADS", 0, 0),
        teaching=teaching,
    )
