"""The command line: validation with exit code 2, train -> checkpoint -> evaluate agreement."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from support import draw_digit_png

from mnist_demo import checkpoints, draw_model
from mnist_demo.__main__ import main
from mnist_demo.training import save_result

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
CPU = ["--device", "cpu", "--threads", "1"]  # one thread: see TEST_THREADS in conftest.py


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lr", "0"], "learning rate"),
        (["--lr", "nan"], "learning rate"),
        (["--batch-size", "0"], "batch size"),
        (["--batch-size", "70000"], "batch size"),
        (["--epochs", "0"], "epochs"),
        (["--model", "resnet"], "unknown model 'resnet'"),
        (["--device", "tpu"], "device 'tpu'"),
        pytest.param(["--device", "cuda"], "no CUDA GPU", marks=NO_CUDA),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_train_refuses_bad_values_with_one_line_and_exit_2(capsys, tmp_path, flags, message):
    code, out, err = run(capsys, "train", *flags)

    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("mnist-demo train: error: ")
    assert message in err
    assert list(tmp_path.iterdir()) == []  # nothing trained, nothing written


def test_the_module_entry_point_exits_2_on_a_bad_value():
    done = subprocess.run(
        [sys.executable, "-m", "mnist_demo", "train", "--batch-size", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "mnist-demo train: error: batch size must be an integer from 1 to 60000, got 0"
    ]


# What `train` must never import: the UI's libraries, and torch._dynamo (~1.9 s on 2 cores,
# imported by any torch.optim optimizer; Adam runs as optim.FusedAdam instead).
HEAVY = ("torch._dynamo", "gradio", "matplotlib")
TRAIN_AND_LIST_MODULES = f"""import json, sys
from mnist_demo.__main__ import main
code = main(sys.argv[1:])
print(json.dumps({{"code": code, "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))"""


def test_train_imports_neither_the_ui_nor_torch_dynamo(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", TRAIN_AND_LIST_MODULES, "train", "--max-steps", "3",
         "--batch-size", "64", *CPU, "--json", "--out", str(tmp_path / "x.pt")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"code": 0, "loaded": []}


def test_train_json_summary_checkpoint_and_evaluate_agree(capsys, tmp_path):
    out_path = tmp_path / "x.pt"
    code, out, err = run(capsys, "train", "--max-steps", "30", "--batch-size", "64", *CPU,
                         "--json", "--out", str(out_path))  # fmt: skip

    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["checkpoint"] == str(out_path)
    assert summary["epochs"] == 1 and summary["steps"] == 30
    assert summary["device"].startswith("cpu")
    assert summary["train_seconds"] > 0
    assert 60.0 <= summary["test_accuracy"] <= 100.0  # 30 steps of 64 already learn a lot
    assert "training on cpu" in err  # progress goes to stderr, keeping stdout parseable

    saved = checkpoints.load(out_path)
    assert saved.model_name == "tutorial"
    assert saved.metadata["test_accuracy"] == summary["test_accuracy"]
    assert saved.metadata["config"]["max_steps"] == 30
    cached = checkpoints.load_test_probabilities(out_path)  # the per-digit view's cache
    assert cached is not None and cached.shape == (10_000, 10)

    code, out, err = run(capsys, "evaluate", "--checkpoint", str(out_path), "--device", "cpu",
                         "--json")  # fmt: skip

    assert code == 0, err
    result = json.loads(out)
    assert result["n"] == 10_000 and result["model"] == "tutorial"
    # same weights, same 10,000 images: at most a rounding-level difference in a logit
    assert result["accuracy"] == pytest.approx(summary["test_accuracy"], abs=0.05)


def test_default_output_goes_to_runs_in_the_working_directory(capsys, tmp_path, tiny_mnist):
    code, out, err = run(capsys, "train", "--max-steps", "1", "--batch-size", "8", *CPU)

    assert code == 0, err
    saved = list((tmp_path / "runs").glob("tutorial-*.pt"))
    assert len(saved) == 1
    assert out.startswith("test accuracy ") and str(saved[0].relative_to(tmp_path)) in out


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all"])
def test_evaluate_with_a_corrupt_checkpoint_exits_2(capsys, tmp_path, content):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)

    code, out, err = run(capsys, "evaluate", "--checkpoint", str(bad), "--device", "cpu")

    assert code == 2 and out == ""
    assert err.startswith(f"mnist-demo evaluate: error: {bad}: ")
    assert err.count("\n") == 1


def test_evaluate_with_a_missing_checkpoint_exits_2(capsys, tmp_path):
    code, _, err = run(capsys, "evaluate", "--checkpoint", str(tmp_path / "absent.pt"))
    assert code == 2 and "no such checkpoint file" in err


@NO_CUDA
def test_evaluate_refuses_cuda_when_absent(capsys):
    code, _, err = run(capsys, "evaluate", "--device", "cuda")
    assert code == 2 and "no CUDA GPU" in err


def test_evaluate_and_predict_default_to_the_draw_tabs_weights(capsys, tmp_path):
    shipped = draw_model.choose(tmp_path / "runs")  # no runs yet: the shipped Draw model
    assert shipped.label == f"shipped {draw_model.DRAW_MODEL} checkpoint"
    code, out, err = run(capsys, "evaluate", "--device", "cpu", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["checkpoint"] == str(shipped.source) and result["n"] == 10_000
    assert result["weights"] == shipped.label
    assert result["accuracy"] == pytest.approx(shipped.checkpoint.metadata["test_accuracy"],
                                               abs=0.05)  # fmt: skip

    seven = draw_digit_png(tmp_path / "seven.png", "7")
    code, out, err = run(capsys, "predict", str(seven))
    assert code == 0 and out == f"{seven}: 7 ({out.split('(')[1]}"
    assert f"reading with {shipped.label}" in err


def test_predict_follows_the_draw_tab_to_a_saved_run(capsys, tmp_path, trained_tutorial):
    runs = tmp_path / "runs"
    save_result(runs / "run-1-tutorial.pt", trained_tutorial)
    draw_model.remember(runs, "run-1-tutorial.pt")  # the app adopted it, or a user chose it
    code, out, err = run(capsys, "predict", "--json", str(draw_digit_png(tmp_path / "7.png", "7")))
    assert code == 0, err
    assert json.loads(out)["weights"] == "saved run run-1-tutorial"


def test_predict_exits_1_when_any_file_fails_and_names_each(capsys, tmp_path):
    seven = draw_digit_png(tmp_path / "seven.png", "7")
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    code, out, err = run(capsys, "predict", str(seven), str(bad))
    assert code == 1
    assert out.startswith(f"{seven}: 7 ")
    assert f"{bad}: error: not an image file" in err


def test_evaluate_on_an_image_says_it_is_not_a_checkpoint(capsys, tmp_path):
    png = draw_digit_png(tmp_path / "seven.png", "7")
    code, out, err = run(capsys, "evaluate", "--checkpoint", str(png))
    assert code == 2 and out == ""
    assert (
        err
        == f"mnist-demo evaluate: error: {png}: not a checkpoint file (torch saves a zip archive)\n"
    )


def test_the_app_command_has_the_apps_options(capsys):
    with pytest.raises(SystemExit) as done:
        main(["app", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert all(flag in out for flag in ("--host", "--port", "--device", "--share"))
