"""Checkpoints: atomic save, safe load (weights only), and the metadata that travels with them."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import platform
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .models import MODELS, build_model

log = logging.getLogger(__name__)

FORMAT = "mnist-demo/1"
PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent


def _shipped_dir() -> Path:
    """The committed checkpoints: in the package once installed, else the repo's checkpoints/.

    The repository keeps one copy, in its top-level checkpoints/ folder; pyproject.toml maps that
    folder into the wheel as the package data `mnist_demo/shipped/`.
    """
    installed = PACKAGE_DIR / "shipped"
    return installed if installed.is_dir() else REPO_ROOT / "checkpoints"


SHIPPED_DIR = _shipped_dir()
RUNS_DIR_VARIABLE = "MNIST_DEMO_RUNS_DIR"


def runs_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where finished runs are saved: $MNIST_DEMO_RUNS_DIR, else runs/ in a checkout, else the
    user's data folder (an installed package must not write into site-packages)."""
    configured = (os.environ if env is None else env).get(RUNS_DIR_VARIABLE)
    if configured:
        return Path(configured)
    if SHIPPED_DIR == REPO_ROOT / "checkpoints":  # running from the repository
        return REPO_ROOT / "runs"
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "mnist-demo" / "runs"


SHIPPED = {name: SHIPPED_DIR / f"{name}.pt" for name in MODELS}
ZIP_MAGIC, PICKLE_PROTO = b"PK\x03\x04", b"\x80"  # how torch.save's files begin
MAX_CHECKPOINT_BYTES = 64 * 1024 * 1024  # our models are < 2 MB; anything huge is not ours


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, unsafe, or not for a model we know."""


@dataclass
class Checkpoint:
    """A model's weights plus what produced them."""

    model_name: str
    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def deskew(self) -> bool:
        """Inputs are moment-deskewed before this model reads them (its training config says so).

        Checkpoints from before the setting existed have no such key: they read images as is.
        """
        config = self.metadata.get("config")
        return isinstance(config, dict) and config.get("deskew") is True

    def build(self) -> nn.Module:
        """A fresh model of the right architecture with these weights, in eval mode, on CPU."""
        model = build_model(self.model_name)
        try:
            model.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as err:
            # The first line only says "Error(s) in loading state_dict"; the next names the keys.
            lines = str(err).strip().splitlines()
            detail = lines[1 if len(lines) > 1 else 0].strip()[:200]
            raise CheckpointError(
                f"weights do not fit the {self.model_name!r} architecture ({detail})"
            ) from None
        return model.eval()


def versions() -> dict[str, str]:
    import numpy

    # str(): torch.__version__ is a TorchVersion object, which weights_only loading refuses.
    return {
        "torch": str(torch.__version__),
        "numpy": str(numpy.__version__),
        "python": platform.python_version(),
    }


PROBABILITIES_SUFFIX = ".test-probs.npz"


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached, contiguous CPU copy of a model's weights (safe to keep while it trains)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def save(
    path: Path | str, model_name: str, state_dict: dict[str, torch.Tensor], **metadata: Any
) -> Path:
    """Write atomically: a temp file in the same folder, fsync, then rename over `path`.

    A crash at any moment leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "model": model_name,
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()},
        "metadata": {
            "versions": versions(),
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **metadata,
        },
    }
    _atomic_write(path, lambda f: torch.save(payload, f))
    log.info("saved checkpoint %s", path)
    return path


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    """Write a small file (an export) the same crash-safe way as a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda f: f.write(data))
    return path


def _atomic_write(path: Path, write: Callable[[Any], Any]) -> None:
    """Temp file in the same folder, fsync, rename: a crash leaves the old file or the new."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; saved files are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path: Path | str) -> Checkpoint:
    """Load a checkpoint with `weights_only=True`; any problem is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    size = path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{path}: {size / 1e6:.0f} MB is too large for an MNIST checkpoint")
    with open(path, "rb") as f:
        head = f.read(4)
    # torch.save writes a zip archive (or, before torch 1.6, a pickle): anything else, say an
    # image passed by mistake, is named plainly rather than with torch's unpickler advice.
    if not (head == ZIP_MAGIC or head[:1] == PICKLE_PROTO):
        raise CheckpointError(f"{path}: not a checkpoint file (torch saves a zip archive)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # weights_only refuses any object that is not tensors and plain containers,
        # which is exactly what a pickle carrying code would need.
        lines = str(err).splitlines()
        reason = next((ln.strip() for ln in lines if "Unpickler error" in ln), lines[0])[:200]
        raise CheckpointError(f"{path}: refused, not plain weights ({reason})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise CheckpointError(f"{path}: corrupt or not a checkpoint ({reason})") from None
    return _from_payload(payload, path)


def _from_payload(payload: Any, path: Path) -> Checkpoint:
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: not an mnist-demo checkpoint")
    if payload.get("format") == FORMAT:
        name, state = payload.get("model"), payload.get("state_dict")
        metadata = payload.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise CheckpointError(f"{path}: metadata is not a mapping")
    elif payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        # A bare state_dict (e.g. torch.save(model.state_dict())): guess the architecture.
        name, state, metadata = _guess_model(payload), payload, {}
    else:
        raise CheckpointError(f"{path}: not an mnist-demo checkpoint (no format marker)")
    if name not in MODELS:
        raise CheckpointError(f"{path}: unknown model {name!r}; known: {', '.join(MODELS)}")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: state_dict is missing or not tensors")
    checkpoint = Checkpoint(name, state, dict(metadata))
    checkpoint.build()  # fail now, with a clear message, if the weights do not fit
    return checkpoint


def _guess_model(state: dict[str, torch.Tensor]) -> str | None:
    for name in MODELS:
        expected = build_model(name).state_dict()
        if expected.keys() == state.keys() and all(
            expected[k].shape == state[k].shape for k in expected
        ):
            return name
    return None


def probabilities_path(path: Path | str) -> Path:
    """Where the test-set probabilities of a checkpoint are cached: next to it."""
    path = Path(path)
    return path.with_name(path.stem + PROBABILITIES_SUFFIX)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_test_probabilities(path: Path | str, probabilities: np.ndarray) -> Path:
    """Cache a checkpoint's (10000, 10) test probabilities, tied to the checkpoint's bytes.

    The per-digit view needs every test image's answer; the improved model takes 8-13 s of
    CPU to produce them, so they are computed once per checkpoint and kept (float16).
    """
    path = Path(path)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        probabilities=np.asarray(probabilities, dtype=np.float16),
        checkpoint_sha256=np.array(_sha256(path)),
    )
    return atomic_write_bytes(probabilities_path(path), buffer.getvalue())


def load_test_probabilities(path: Path | str, n: int = 10_000) -> np.ndarray | None:
    """The cached probabilities of this exact checkpoint file, or None (absent, stale, bad)."""
    path = Path(path)
    side = probabilities_path(path)
    if not side.is_file() or not path.is_file():
        return None
    try:
        with np.load(side, allow_pickle=False) as data:
            if str(data["checkpoint_sha256"]) != _sha256(path):
                log.info("%s is stale: its checkpoint changed", side.name)
                return None
            probabilities = data["probabilities"].astype(np.float32)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        log.warning("ignoring unreadable %s: %s", side.name, err)
        return None
    if probabilities.shape != (n, 10) or not np.isfinite(probabilities).all():
        log.warning("ignoring %s: shape %s", side.name, probabilities.shape)
        return None
    return probabilities


def shipped(model_name: str = "tutorial") -> Path:
    """Path of the checkpoint committed with the repository for `model_name`."""
    return SHIPPED[model_name]
