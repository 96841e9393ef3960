"""The package as a pip user gets it: a wheel built from the repo, used from an unrelated folder.

The wheel goes into a fresh virtual environment outside the checkout. Its third-party
dependencies (torch alone is ~2.5 GB with its CUDA libraries) are borrowed from the test
environment's site-packages through a .pth file, which Python reads after the venv's own
site-packages; the project's code and data come from the wheel alone, as the first test checks.
"""

from __future__ import annotations

import json
import os
import signal
import site
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import draw_digit_png, free_port

pytestmark = pytest.mark.package

REPO_ROOT = Path(__file__).resolve().parents[2]
BOUND = 300  # seconds: building the wheel or starting the app on a loaded 2-core machine


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv holding only the built wheel (plus borrowed dependencies); returns its bin/."""
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", dist, REPO_ROOT],
        check=True,
        timeout=BOUND,
        cwd=root,
    )
    (wheel,) = dist.glob("mnist_demo-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    (own_site,) = venv.glob("lib/python*/site-packages")
    (own_site / "borrowed-dependencies.pth").write_text("\n".join(site.getsitepackages()))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            venv / "bin" / "python",
            "install",
            "--no-deps",
            "--quiet",
            wheel,
        ],  # fmt: skip
        check=True,
        timeout=BOUND,
        cwd=root,
    )
    return venv / "bin"


def user_env(home: Path) -> dict[str, str]:
    """A pip user's environment: no checkout on the path, no configured runs folder."""
    unset = ("PYTHONPATH", "MNIST_DEMO_RUNS_DIR", "XDG_DATA_HOME")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(HOME=str(home), GRADIO_ANALYTICS_ENABLED="False")
    return env


def run(bin_dir: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [bin_dir / argv[0], *argv[1:]],
        capture_output=True,
        text=True,
        timeout=BOUND,
        cwd=cwd,
        env=user_env(cwd),
    )


def test_the_wheel_brings_its_own_code_data_and_checkpoints(installed, tmp_path):
    probe = "import mnist_demo.checkpoints as c, mnist_demo.data as d; "
    probe += "print(c.SHIPPED_DIR, d.BUNDLED_DIR, c.runs_dir())"
    done = run(installed, "python", "-c", probe, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    shipped, bundled, runs = (Path(p) for p in done.stdout.split())
    venv = installed.parent
    assert shipped.is_relative_to(venv) and bundled.is_relative_to(venv), done.stdout
    assert runs == tmp_path / ".local/share/mnist-demo/runs"  # not inside site-packages
    assert {p.name for p in shipped.iterdir()} >= {"improved.pt", "improved.test-probs.npz"}


def test_evaluate_and_predict_run_from_an_unrelated_folder(installed, tmp_path):
    done = run(installed, "mnist-demo", "evaluate", "--device", "cpu", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["accuracy"] >= 99.0 and result["weights"] == "shipped improved checkpoint"

    seven = draw_digit_png(tmp_path / "seven.png", "7")
    done = run(installed, "mnist-demo", "predict", str(seven), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{seven}: 7 ")


def test_the_installed_app_answers_predict_over_http(installed, tmp_path):
    from gradio_client import Client, handle_file

    port = free_port()
    app = subprocess.Popen(
        [installed / "mnist-demo", "app", "--port", str(port)],
        cwd=tmp_path,
        env=user_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + BOUND
        for line in app.stdout:  # blocks until the app prints; ends if it exits
            lines.append(line)
            if f":{port}" in line or time.monotonic() > deadline:
                break
        assert app.poll() is None, "".join(lines)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        seven = draw_digit_png(tmp_path / "seven.png", "7")
        answer = client.predict(handle_file(str(seven)), api_name="/predict")
        assert answer["label"] == "7" and answer["weights"] == "shipped improved checkpoint"
    finally:
        os.killpg(app.pid, signal.SIGTERM)
        app.wait(30)
