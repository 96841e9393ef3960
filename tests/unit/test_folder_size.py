"""The upload cache's size is walked in a child process (folder_size.py), never in ours."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from mnist_demo import folder_size


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Files in nested folders, an empty folder and a link (not followed, not counted)."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    (tmp_path / "top.png").write_bytes(bytes(100))
    (tmp_path / "a" / "one.png").write_bytes(bytes(20))
    (tmp_path / "a" / "b" / "two.png").write_bytes(bytes(3))
    os.symlink(tmp_path / "top.png", tmp_path / "a" / "link.png")
    return tmp_path


def test_the_walk_counts_regular_files_only(tree: Path):
    assert folder_size.folder_bytes(tree) == 123
    assert folder_size.folder_bytes(tree / "missing") == 0


def test_the_walk_runs_in_a_child_process_not_this_one(tree: Path, monkeypatch):
    def not_here(folder):
        raise AssertionError("walked in the server's process")

    monkeypatch.setattr(folder_size, "folder_bytes", not_here)
    assert folder_size.measure(tree, timeout=60) == 123


def test_a_walk_that_fails_or_overruns_raises(tree: Path, tmp_path: Path, monkeypatch):
    broken = tmp_path / "broken.py"
    broken.write_text("raise SystemExit('no walk today')")
    with monkeypatch.context() as patched:
        patched.setattr(folder_size, "__file__", str(broken))  # the child's script
        with pytest.raises(OSError, match="no walk today"):
            folder_size.measure(tree, timeout=60)

    def overrun(command, **kwargs):
        raise subprocess.TimeoutExpired(command, kwargs["timeout"])

    monkeypatch.setattr(subprocess, "run", overrun)
    with pytest.raises(subprocess.TimeoutExpired):
        folder_size.measure(tree, timeout=0.01)
