"""Shared fixtures: every test runs in its own temp folder, single-threaded, on small budgets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from mnist_demo import checkpoints, data, training
from mnist_demo.data import Split
from mnist_demo.training import TrainConfig, TrainResult

REPO_ROOT = Path(__file__).resolve().parent.parent

# One torch thread: the test machine's two cores are shared with other processes, and with
# two spinning OpenMP threads a contended step runs ~10x slower than with one (measured).
TEST_THREADS = 1

# A slice of real MNIST for tests of the loop's mechanics (records, control, the job):
# 10 steps of 256 per epoch and a quick evaluation instead of minutes on the full set.
TINY_TRAIN, TINY_TEST = 2560, 500


@pytest.fixture(scope="session", autouse=True)
def _decoded_mnist_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One decoded-MNIST cache for the session (its subprocesses too), never the user's own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MNIST_DEMO_CACHE_DIR", str(tmp_path_factory.mktemp("mnist-cache")))
        yield


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run in tmp_path (so `runs/` and other relative outputs land there); restore threads.

    The runs folder is tmp_path's too: no test reads or writes a developer's own runs.
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(checkpoints.RUNS_DIR_VARIABLE, str(tmp_path / "runs"))
    threads = torch.get_num_threads()
    torch.set_num_threads(TEST_THREADS)
    yield
    torch.set_num_threads(threads)  # train() sets the process-wide count from its config


@pytest.fixture
def make_config() -> Callable[..., TrainConfig]:
    """TrainConfig factory: the fast preset on the CPU with one thread in float32, plus overrides.

    Without the in-epoch test sample unless asked for (tests/unit/test_test_curve.py tests
    it): the loop's mechanics are checked on exact record sequences.
    """

    def make(**overrides: Any) -> TrainConfig:
        # float32: the loop's numbers must not depend on whether CI's CPU has bfloat16
        values: dict[str, Any] = dict(
            device="cpu", threads=TEST_THREADS, probe_images=0, precision="float32"
        )
        values.update(overrides)
        return training.config_from_preset("fast", **values).validate()

    return make


@pytest.fixture(scope="session")
def mnist() -> tuple[Split, Split]:
    """The real bundled train and test splits (parsed once per process)."""
    return data.load_mnist()


@pytest.fixture
def tiny_mnist(mnist: tuple[Split, Split], monkeypatch: pytest.MonkeyPatch) -> tuple[Split, Split]:
    """Make train() see the first 2,560 training and 500 test images of the real data."""
    train_split, test_split = mnist
    tiny = (
        Split(train_split.images[:TINY_TRAIN], train_split.labels[:TINY_TRAIN]),
        Split(test_split.images[:TINY_TEST], test_split.labels[:TINY_TEST]),
    )
    monkeypatch.setattr(data, "load_mnist", lambda data_dir=None: tiny)
    return tiny


@pytest.fixture(scope="session")
def trained_tutorial(mnist: tuple[Split, Split]) -> TrainResult:
    """The fast preset's tutorial CNN after 120 real steps of 256 images, once per session."""
    config = training.config_from_preset(
        "fast", device="cpu", threads=TEST_THREADS, max_steps=120, log_every=40
    )
    result = training.train(config)
    torch.set_num_threads(TEST_THREADS)
    return result


@pytest.fixture(scope="module")
def live_app(tmp_path_factory):
    """The real app on a free loopback port, for the api and browser tiers."""
    from support import launch

    app = launch(tmp_path_factory.mktemp("runs"))
    yield app
    app.close()
