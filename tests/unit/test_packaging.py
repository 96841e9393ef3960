"""pyproject.toml lists its packages by hand (to map checkpoints/ into the wheel): keep it whole."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_in_the_tree_is_listed_for_the_wheel():
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    in_tree = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "mnist_demo").rglob("__init__.py")
    }
    assert in_tree <= listed, f"add {sorted(in_tree - listed)} to pyproject.toml's packages"
    assert "mnist_demo.shipped" in listed  # the shipped checkpoints, mapped from checkpoints/
