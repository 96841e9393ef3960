"""App settings from the environment: what a local run allows and what a public Space caps.

Locally everything is allowed. On a Hugging Face Space (`SPACE_ID` is set) what is not
configured defaults to safe: training off (or `token` when `MNIST_DEMO_TOKEN` is set), private
teaching only, capped batch size and runs folder. Set, for example,
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
    max_body: str = "1mb"  # any request but an upload: a drawing's data URL is ~10-30 KB
    cache_size: str = "2gb"  # uploads and outputs kept on disk; uploads beyond are refused
    session_idle_seconds: float = 1800.0  # a visitor's state is freed after this long unseen
    max_sessions: int = 2000  # sessions kept at most (Gradio's own default is 10,000)
    live_streams: int = 64  # Train tabs streamed at once (ui/live.py); beyond, they poll
    # train in a child process (train_process.py): the server's requests do not wait on the
    # training loop's GIL; False trains in a thread of the server (tests, embedding)
    training_process: bool = False

    def may_share(self, token: str | None) -> bool:
        """May this visitor's fine-tune replace everyone's Draw model? Only with training rights."""
        return self.teaching == "shared" and self.may_train(token)

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


def _size(env: dict[str, str], name: str, default: str) -> str:
    value = (env.get(name) or default).strip()
    if not re.fullmatch(r"\d+\s*[kmgt]?b", value, re.IGNORECASE):  # Gradio's format
        raise SettingsError(f"{name}={value!r} is not a size like 5mb")
    return value


def _switch(env: dict[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip()
    if raw not in ("", "0", "1"):
        raise SettingsError(f"{name} must be 0 or 1, got {raw!r}")
    return default if raw == "" else raw == "1"


def on_space(env: dict[str, str]) -> bool:
    """Running as a Hugging Face Space: public unless its owner says otherwise."""
    return bool(env.get("SPACE_ID"))


def from_env(env: dict[str, str] | None = None) -> AppSettings:
    """Read MNIST_DEMO_* variables; a bad value raises SettingsError at start-up, not later."""
    env = dict(os.environ if env is None else env)
    public = on_space(env)
    token = env.get("MNIST_DEMO_TOKEN") or None
    # On a Space nobody trains without the owner's say: with a token only, or not at all.
    default_training = ("token" if token else "off") if public else "on"
    training = (env.get("MNIST_DEMO_TRAINING") or default_training).strip().lower()
    if training not in TRAINING_MODES:
        raise SettingsError(f"MNIST_DEMO_TRAINING must be one of {', '.join(TRAINING_MODES)}")
    teaching = (env.get("MNIST_DEMO_TEACHING") or "on").strip().lower()
    if teaching not in TEACHING_MODES:
        raise SettingsError(f"MNIST_DEMO_TEACHING must be one of {', '.join(TEACHING_MODES)}")
    if training == "token" and not token:
        raise SettingsError("MNIST_DEMO_TRAINING=token needs MNIST_DEMO_TOKEN to be set")
    limits = JobLimits(
        max_epochs=_integer(env, "MNIST_DEMO_MAX_EPOCHS", JobLimits.max_epochs, 1),
        max_seconds=_number(env, "MNIST_DEMO_MAX_SECONDS", math.inf, 1),
        # a Space caps a training step's memory (the batch size) and the runs folder
        train_memory=_integer(env, "MNIST_DEMO_TRAIN_MEMORY_MB", 1024 if public else 0, 0) << 20,
        keep_newest=_integer(env, "MNIST_DEMO_KEEP_RUNS", 10 if public else 50, 0),
    )
    max_file_size = _size(env, "MNIST_DEMO_MAX_FILE_SIZE", "5mb")
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
        max_body=_size(env, "MNIST_DEMO_MAX_BODY", "1mb"),
        cache_size=_size(env, "MNIST_DEMO_CACHE_SIZE", "500mb" if public else "2gb"),
        session_idle_seconds=_number(env, "MNIST_DEMO_SESSION_IDLE_SECONDS", 1800, 10),
        max_sessions=_integer(env, "MNIST_DEMO_MAX_SESSIONS", 2000, 10),
        live_streams=_integer(env, "MNIST_DEMO_LIVE_STREAMS", 64, 0),
        training_process=_switch(env, "MNIST_DEMO_TRAINING_PROCESS", True),
    )
