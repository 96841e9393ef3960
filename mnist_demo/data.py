"""MNIST as uint8 tensors: IDX parsing, the bundled copy, and the network's input.

The whole data set is 47 MB as uint8, so it is loaded once and kept on the training device;
batches are gathered there by index, with no DataLoader and no PIL in the loop.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled" / "mnist"

# The tutorial's transforms.Normalize((0.5,), (0.5,)) applied to ToTensor()'s [0, 1] pixels.
MEAN, STD = 0.5, 0.5

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60_000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10_000),
}
IMAGE_SIDE = 28
NUM_CLASSES = 10

_IDX_DTYPES = {0x08: np.uint8}  # MNIST only uses unsigned bytes; others are refused clearly


class DataError(ValueError):
    """A data file is missing, corrupt or not what MNIST should be."""


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse an IDX file's bytes into a uint8 array, validating header, dimensions and size."""
    if len(raw) < 4:
        raise DataError(f"{name}: too short to be an IDX file ({len(raw)} bytes)")
    zero1, zero2, dtype_code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero1 != 0 or zero2 != 0 or dtype_code not in _IDX_DTYPES or not 1 <= ndim <= 3:
        raise DataError(f"{name}: bad IDX magic number 0x{raw[:4].hex()}")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(f"{name}: truncated IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims, dtype=np.int64))
    body = len(raw) - header_len
    if body != expected:
        raise DataError(
            f"{name}: IDX header promises {expected} bytes for shape {dims}, file has {body}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims)


def _find_file(directory: Path, stem: str) -> Path:
    """Locate `stem` or `stem.gz` in `directory` or torchvision's `MNIST/raw/` below it."""
    for folder in (directory, directory / "MNIST" / "raw", directory / "raw"):
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    raise DataError(f"{stem}(.gz) not found in {directory} (nor in its MNIST/raw/ folder)")


def cache_dir() -> Path:
    """Where decoded copies of gzipped MNIST files are kept: $MNIST_DEMO_CACHE_DIR, else the
    user's cache folder (XDG)."""
    if os.environ.get("MNIST_DEMO_CACHE_DIR"):
        return Path(os.environ["MNIST_DEMO_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mnist-demo"


def _read_bytes(path: Path, checksums: dict[str, str]) -> bytes:
    """The file's IDX bytes, verified against SHA256SUMS when it lists the file.

    A gzipped file is decoded once per machine: its bytes are kept in cache_dir(), named by
    the SHA-256 of the .gz and of the decoded bytes, and used only while both still match.
    Decoding the training images costs ~0.25 s of every run's start on 2 cores; reading
    the cached copy and hashing it, a tenth of that (bench/cli_overhead.py).
    """
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err})") from err
    expected = checksums.get(path.name)
    if expected is None and path.suffix != ".gz":
        return raw  # nothing to verify, nothing to decode: no hash needed
    digest = hashlib.sha256(raw).hexdigest()
    if expected is not None and digest != expected:
        raise DataError(f"{path}: SHA-256 mismatch (expected {expected[:12]}…, got {digest[:12]}…)")
    if path.suffix != ".gz":
        return raw
    cached = _cached_decoding(digest)
    if cached is not None:
        return cached
    try:
        decoded = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read ({err})") from err
    _keep_decoding(digest, decoded)
    return decoded


def _cached_decoding(gz_digest: str) -> bytes | None:
    """The decoded bytes kept for this .gz, if present and intact; None otherwise."""
    try:
        candidates = sorted(cache_dir().glob(f"{gz_digest}.*.idx"))
    except OSError:  # no such folder, or not a folder
        return None
    for candidate in candidates:
        try:
            decoded = candidate.read_bytes()
        except OSError:
            continue
        if hashlib.sha256(decoded).hexdigest() == candidate.name.split(".")[1]:
            return decoded
        log.warning("%s does not match its name: decoding again", candidate)
    return None


def _keep_decoding(gz_digest: str, decoded: bytes) -> None:
    """Keep a decoded copy for the next run; a cache that cannot be written costs only time."""
    folder = cache_dir()
    target = folder / f"{gz_digest}.{hashlib.sha256(decoded).hexdigest()}.idx"
    partial = target.with_suffix(f".{os.getpid()}.partial")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(decoded)
        os.replace(partial, target)  # a reader sees the whole file or none
    except OSError as err:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        log.debug("not caching decoded MNIST in %s: %s", folder, err)


def _read_checksums(directory: Path) -> dict[str, str]:
    sums = directory / "SHA256SUMS"
    if not sums.is_file():
        return {}
    pairs = [line.split() for line in sums.read_text().splitlines() if line.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise DataError(f"{sums}: not a list of '<sha256>  <file name>' lines")
    return {name.lstrip("*"): digest for digest, name in pairs}


@dataclass(frozen=True)
class Split:
    """One split of MNIST: images (N, 28, 28) uint8 and labels (N,) int64, on one device."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.labels.shape[0]

    def to(self, device: torch.device | str) -> Split:
        return Split(self.images.to(device), self.labels.to(device))

    def stratified(self, n: int) -> torch.Tensor:
        """Indices of the first n/10 images of each digit, in the split's order.

        Fixed (no random numbers drawn: a run trains the same with or without it) and
        balanced, so a sample's accuracy is not skewed by an uneven mix of easy and hard
        digits. Fewer for a digit that has fewer images.
        """
        per_digit = max(1, n // NUM_CLASSES)
        labels = self.labels.cpu()
        picked = [torch.nonzero(labels == d).flatten()[:per_digit] for d in range(NUM_CLASSES)]
        return torch.cat(picked).sort().values


def load_split(split: str, data_dir: Path | str | None = None) -> Split:
    """Load `train` or `test` from `data_dir` (default: the bundled, checksum-verified copy)."""
    if split not in FILES:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(FILES)}")
    directory = Path(data_dir) if data_dir is not None else BUNDLED_DIR
    if not directory.is_dir():
        raise DataError(f"data directory {directory} does not exist")
    image_stem, label_stem, count = FILES[split]
    image_path, label_path = _find_file(directory, image_stem), _find_file(directory, label_stem)
    checksums = _read_checksums(image_path.parent)
    images = parse_idx(_read_bytes(image_path, checksums), str(image_path))
    labels = parse_idx(_read_bytes(label_path, checksums), str(label_path))
    if images.shape != (count, IMAGE_SIDE, IMAGE_SIDE):
        raise DataError(f"{image_path}: shape {images.shape}, expected ({count}, 28, 28)")
    if labels.shape != (count,):
        raise DataError(f"{label_path}: shape {labels.shape}, expected ({count},)")
    if labels.max() >= NUM_CLASSES:
        raise DataError(f"{label_path}: label {int(labels.max())} is not a digit")
    log.debug("loaded %s split from %s", split, directory)
    return Split(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)))


@functools.lru_cache(maxsize=2)
def load_mnist(data_dir: str | None = None) -> tuple[Split, Split]:
    """Train and test splits on the CPU, parsed once per process and data directory."""
    return load_split("train", data_dir), load_split("test", data_dir)


# --- the one path from pixels to the network's input -------------------------------------------


def to_network_input(images: torch.Tensor) -> torch.Tensor:
    """(B, 28, 28) pixels -> (B, 1, 28, 28) floats in [-1, 1], the tutorial's Normalize(0.5, 0.5).

    uint8 images are MNIST's 0-255 pixels (training, test passes); float images are already
    divided by 255 (drawings, a visitor's examples). Both give what training fed the network.
    """
    if images.dtype == torch.uint8:
        x = images.unsqueeze(1).float()
        return x.mul_(1.0 / (255.0 * STD)).sub_(MEAN / STD)  # in place: one fewer batch copy
    return ((images - MEAN) / STD).unsqueeze(1)


def random_shift(
    images: torch.Tensor, max_shift: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Shift each (B, 28, 28) image by up to `max_shift` px in x and y, zero-filled.

    Any dtype, on the images' device. `generator` (default: torch's global one) lets a
    visitor's fine-tune draw its own numbers and leave a training run's random state alone.
    """
    b, m, device = images.shape[0], max_shift, images.device
    padded = F.pad(images, (m, m, m, m))
    dy = torch.randint(0, 2 * m + 1, (b, 1, 1), device=device, generator=generator)
    dx = torch.randint(0, 2 * m + 1, (b, 1, 1), device=device, generator=generator)
    ar = torch.arange(IMAGE_SIDE, device=device)
    rows, cols = ar.view(1, -1, 1) + dy, ar.view(1, 1, -1) + dx  # (B, 28, 1), (B, 1, 28)
    return padded[torch.arange(b, device=device).view(-1, 1, 1), rows, cols]
