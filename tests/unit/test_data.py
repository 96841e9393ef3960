"""IDX parsing, the bundled data set, user data folders and normalisation."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from mnist_demo import data
from mnist_demo.data import BUNDLED_DIR, DataError, load_split, parse_idx, to_network_input

TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(array: np.ndarray, dtype_code: int = 0x08) -> bytes:
    """Encode a uint8 array as an IDX file: magic 00 00 <type> <ndim>, big-endian dims, body."""
    header = bytes([0, 0, dtype_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_split(folder: Path, images: np.ndarray, labels: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TEST_FILES[0]).write_bytes(idx_bytes(images))
    (folder / TEST_FILES[1]).write_bytes(idx_bytes(labels))


@pytest.fixture(scope="module")
def bundled_test():
    return load_split("test")


# --- parse_idx ----------------------------------------------------------------------------------


def test_parse_idx_reads_images_and_labels():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 0, 9], dtype=np.uint8)

    parsed_images = parse_idx(idx_bytes(images), "images")
    parsed_labels = parse_idx(idx_bytes(labels), "labels")

    assert parsed_images.dtype == np.uint8 and parsed_images.shape == (2, 3, 4)
    np.testing.assert_array_equal(parsed_images, images)
    np.testing.assert_array_equal(parsed_labels, labels)


GOOD = idx_bytes(np.zeros((2, 28, 28), dtype=np.uint8))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x00\x00", "too short"),
        (b"\x08\x08\x08\x03" + GOOD[4:], "magic"),  # not 00 00
        (b"\x00\x00\x0d\x03" + GOOD[4:], "magic"),  # float32 data: not an MNIST type
        (b"\x00\x00\x08\x00" + GOOD[4:], "magic"),  # zero dimensions
        (b"\x00\x00\x08\x04" + GOOD[4:], "magic"),  # four dimensions
        (GOOD[:10], "truncated IDX header"),
        (GOOD[:-1], "file has 1567"),  # body one byte short
        (GOOD + b"\x00", "file has 1569"),  # trailing garbage is refused too
    ],
    ids=[
        "too-short",
        "bad-zeros",
        "bad-type",
        "zero-dims",
        "four-dims",
        "truncated-header",
        "truncated-body",
        "long-body",
    ],
)
def test_parse_idx_rejects_malformed_files_naming_the_file(raw, reason):
    with pytest.raises(DataError, match=reason) as excinfo:
        parse_idx(raw, "digits.idx")
    assert str(excinfo.value).startswith("digits.idx: ")


# --- the bundled copy ---------------------------------------------------------------------------


def test_bundled_splits_have_mnist_shapes_dtypes_and_labels(mnist):
    for split, count in zip(mnist, (60_000, 10_000), strict=True):
        assert len(split) == count
        assert split.images.shape == (count, 28, 28) and split.images.dtype == torch.uint8
        assert split.labels.shape == (count,) and split.labels.dtype == torch.int64
        assert torch.equal(split.labels.unique(), torch.arange(10))  # every digit, nothing else
        assert split.images.max() == 255 and split.images.min() == 0


def test_unknown_split_and_missing_folder_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown split"):
        load_split("validation")
    with pytest.raises(DataError, match="does not exist"):
        load_split("test", tmp_path / "nowhere")
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
        load_split("test", tmp_path)  # exists, but holds no MNIST files


@pytest.fixture
def bundled_copy(tmp_path: Path) -> Path:
    """The four bundled .gz files and their SHA256SUMS, copied to a temp folder."""
    folder = tmp_path / "copy"
    shutil.copytree(BUNDLED_DIR, folder)
    return folder


def flip_byte(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_checksum_mismatch_is_detected(bundled_copy, bundled_test):
    copied = load_split("test", bundled_copy)  # the intact copy loads and verifies
    assert torch.equal(copied.labels, bundled_test.labels)

    target = bundled_copy / "t10k-labels-idx1-ubyte.gz"
    flip_byte(target, target.stat().st_size // 2)

    with pytest.raises(DataError, match="SHA-256 mismatch") as excinfo:
        load_split("test", bundled_copy)
    assert str(target) in str(excinfo.value)


@pytest.mark.parametrize("where", ["deflate-stream", "crc-trailer"])
def test_corrupt_gzip_without_checksums_is_a_data_error(bundled_copy, where):
    (bundled_copy / "SHA256SUMS").unlink()  # a user's folder: nothing to verify against
    target = bundled_copy / "t10k-labels-idx1-ubyte.gz"
    # Early bytes break the deflate stream itself (zlib.error); late ones only the CRC.
    flip_byte(target, 30 if where == "deflate-stream" else target.stat().st_size - 5)

    with pytest.raises(DataError, match="cannot read") as excinfo:
        load_split("test", bundled_copy)
    assert str(target) in str(excinfo.value)


def test_a_gzipped_file_is_decoded_once_and_its_cached_copy_checked(
    bundled_copy, bundled_test, tmp_path, monkeypatch
):
    cache = tmp_path / "cache"
    monkeypatch.setenv("MNIST_DEMO_CACHE_DIR", str(cache))
    first = load_split("test", bundled_copy)
    kept = sorted(cache.glob("*.idx"))
    assert len(kept) == 2, "the test images and labels, decoded"
    monkeypatch.setattr(data.gzip, "decompress", _no_decoding)
    again = load_split("test", bundled_copy)  # from the cache alone
    assert torch.equal(again.images, first.images)
    assert torch.equal(again.labels, bundled_test.labels)

    images = next(p for p in kept if p.stat().st_size > 1_000_000)
    flip_byte(images, images.stat().st_size // 2)  # a damaged copy is never used
    with pytest.raises(AssertionError, match="decoded again"):
        load_split("test", bundled_copy)
    monkeypatch.undo()
    monkeypatch.setenv("MNIST_DEMO_CACHE_DIR", str(cache))
    assert torch.equal(load_split("test", bundled_copy).images, first.images)


def _no_decoding(raw: bytes) -> bytes:
    raise AssertionError("decoded again")


def test_an_unwritable_cache_costs_only_time(bundled_copy, bundled_test, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("MNIST_DEMO_CACHE_DIR", str(blocker / "cache"))
    assert torch.equal(load_split("test", bundled_copy).labels, bundled_test.labels)


def test_malformed_checksum_file_is_a_data_error(bundled_copy):
    (bundled_copy / "SHA256SUMS").write_text("this is not a checksum list\n")

    with pytest.raises(DataError, match="SHA256SUMS"):
        load_split("test", bundled_copy)


def test_torchvision_raw_layout_with_uncompressed_files(tmp_path, bundled_test):
    raw = tmp_path / "MNIST" / "raw"  # what torchvision.datasets.MNIST(root=tmp_path) leaves
    raw.mkdir(parents=True)
    for stem in TEST_FILES:
        (raw / stem).write_bytes(gzip.decompress((BUNDLED_DIR / f"{stem}.gz").read_bytes()))

    split = load_split("test", tmp_path)

    assert torch.equal(split.images, bundled_test.images)
    assert torch.equal(split.labels, bundled_test.labels)


def test_wrong_shape_in_a_data_folder_names_the_file(tmp_path):
    write_split(tmp_path, np.zeros((5, 28, 28), np.uint8), np.zeros(5, np.uint8))

    with pytest.raises(DataError, match=r"\(10000, 28, 28\)") as excinfo:
        load_split("test", tmp_path)
    assert TEST_FILES[0] in str(excinfo.value)


def test_label_out_of_range_names_the_file(tmp_path):
    labels = np.zeros(10_000, np.uint8)
    labels[123] = 10
    write_split(tmp_path, np.zeros((10_000, 28, 28), np.uint8), labels)

    with pytest.raises(DataError, match="label 10 is not a digit") as excinfo:
        load_split("test", tmp_path)
    assert TEST_FILES[1] in str(excinfo.value)


# --- normalize ----------------------------------------------------------------------------------


def test_normalize_maps_pixels_to_minus_one_one_with_a_channel_axis():
    images = torch.zeros(3, 28, 28, dtype=torch.uint8)
    images[:, 0, 0] = 255
    images[:, 1, 1] = 128
    before = images.clone()

    x = to_network_input(images)

    assert x.shape == (3, 1, 28, 28) and x.dtype == torch.float32
    assert torch.all(x[:, 0, 0, 0] == 1.0)
    assert torch.all(x[:, 0, 2:, 2:] == -1.0)
    torch.testing.assert_close(x[:, 0, 1, 1], torch.full((3,), 128 / 127.5 - 1))
    assert torch.equal(images, before)  # the uint8 source is not modified
