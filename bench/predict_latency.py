"""Latency of reading one drawing, and the CLI's accuracy on MNIST test digits as PNG files.

Part 1, one 800x800 sketch, warm, one torch thread (the app's `Predictor(threads=1)`):
preprocessing alone and preprocessing + prediction, for a Gradio sketchpad value (a dict
with an RGBA stroke layer) and for a PNG data URL as a browser canvas sends it (decoded to
bytes by `sketch.decode_data_url`). Part 2, `python -m mnist_demo predict --json` on K PNG
files (MNIST test digits, dark on light, 280x280) in one subprocess: wall time, and its
accuracy against the labels next to the checkpoint's own accuracy on the same 28x28 digits
(target: no more than 0.1 point below it; the full 10,000 give the shipped 99.29%).

    python bench/predict_latency.py --reps 500 --files 10000
    python bench/predict_latency.py --checkpoint checkpoints/improved.pt --reps 300 --files 0 \
        --rounds 9     # the Draw model's latency over a few minutes (issue 18's 5 ms)
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _env import print_header, stolen_seconds
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redrawn import draw_strokes, paint  # noqa: E402

from mnist_demo import checkpoints  # noqa: E402
from mnist_demo.data import load_split  # noqa: E402
from mnist_demo.predict import Predictor  # noqa: E402
from mnist_demo.sketch import analyse, decode_data_url  # noqa: E402

SIDE = 800  # the sketchpad's canvas, px
FILE_SIDE = 280  # PNG files: MNIST digits enlarged 10x, as someone would save a drawing
WARMUP = 20  # calls before the clock starts: first-call allocations and lazy imports


def sketch_value(label: int = 7) -> dict[str, np.ndarray]:
    """A Gradio sketchpad value: white background, one transparent layer of black strokes."""
    layer = paint(draw_strokes(label, (SIDE, SIDE), height=0.5, pen=0.04), "alpha")
    background = np.full((SIDE, SIDE, 4), 255, np.uint8)
    a = layer[..., 3:].astype(np.float32) / 255
    composite = background.copy()
    composite[..., :3] = np.rint(255 * (1 - a)).astype(np.uint8)
    return {"background": background, "layers": [layer], "composite": composite}


def data_url(image: np.ndarray) -> str:
    """A PNG data URL, as `canvas.toDataURL()` in the browser would send the layer."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def timed(fn: Callable[[], Any], reps: int) -> list[float]:
    """Per-call seconds over `reps` warm calls."""
    for _ in range(WARMUP):
        fn()
    out = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def p90(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=10)[-1]


def write_pngs(images: np.ndarray, folder: Path) -> list[str]:
    """MNIST digits as dark-on-light 280x280 PNG files, named by index; their paths."""
    paths = []
    for i, digit in enumerate(images):
        path = folder / f"{i:05d}.png"
        im = Image.fromarray(255 - digit).resize((FILE_SIDE, FILE_SIDE), Image.Resampling.BILINEAR)
        im.save(path)
        paths.append(str(path))
    return paths


def argv_fits(cmd: list[str]) -> tuple[int, int]:
    """Bytes the command line and environment take, and the kernel's ARG_MAX for both."""
    used = sum(len(os.fsencode(a)) + 1 + 8 for a in cmd)  # + NUL + the argv pointer
    used += sum(len(k) + len(v) + 2 + 8 for k, v in os.environ.items())
    return used, os.sysconf("SC_ARG_MAX")


def run_cli(paths: list[str]) -> tuple[float, list[dict[str, Any]]]:
    """Wall seconds of one `predict --json` process over all paths, and its JSON rows."""
    cmd = [sys.executable, "-m", "mnist_demo", "predict", "--json", *paths]
    used, limit = argv_fits(cmd)
    if used > limit:
        raise SystemExit(f"{len(paths)} paths need {used} bytes of arguments; ARG_MAX is {limit}")
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"CLI failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds, [json.loads(line) for line in done.stdout.splitlines()]


def file_sizes(predictor: Predictor, sides: list[int], reps: int) -> None:
    """Read + predict of one PNG file per side and colour mode, from the file's path."""
    folder = Path(tempfile.mkdtemp(prefix="bench-sides-"))
    try:
        for side in sides:
            alpha = paint(draw_strokes(7, (side, side), height=0.5, pen=0.04), "alpha")[..., 3]
            grey = Image.fromarray(255 - alpha)
            for mode, image in (("grey", grey), ("RGB", grey.convert("RGB"))):
                path = folder / f"{side}-{mode}.png"
                image.save(path)
                xs = timed(lambda path=path: predictor.predict(str(path)), reps)
                print(
                    f"PNG file {side}x{side} {mode:<4} {path.stat().st_size:>7,} bytes  "
                    f"median {1000 * statistics.median(xs):7.2f} ms  p90 {1000 * p90(xs):7.2f} ms"
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=500, help="timed calls per measurement")
    parser.add_argument(
        "--files", type=int, default=10000, help="PNG files for the CLI run (0: none)"
    )
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: shipped tutorial")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="time every case this many times in a row: the machine's speed moves "
        "by up to 2x between minutes, so one round says little",
    )
    parser.add_argument(
        "--sides",
        default="",
        help="also read PNG files of a drawn 7 this many px square, grey and RGB "
        "(e.g. 280,1000,2000): what the API reads on its event loop (limits.INLINE_PIXELS)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the app pins inference; the header shows it
    print_header()
    path = args.checkpoint or checkpoints.shipped("tutorial")
    predictor = Predictor.from_file(path, threads=1)

    value = sketch_value()
    url = data_url(value["layers"][0])
    digit = analyse(value).digit
    cases: list[tuple[str, str, Callable[[], Any]]] = [
        (
            "network only (predict_arrays)",
            "28x28 float",
            lambda: predictor.predict_arrays(digit[None]),
        ),
        ("preprocess (analyse)", "Gradio dict", lambda: analyse(value)),
        ("preprocess + predict", "Gradio dict", lambda: predictor.predict(value)),
        ("decode + preprocess", "PNG data URL", lambda: analyse(decode_data_url(url))),
        (
            "decode + preprocess + predict",
            "PNG data URL",
            lambda: predictor.predict(decode_data_url(url)),
        ),
    ]
    by_case: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in cases}
    for r in range(args.rounds):
        stolen, began = stolen_seconds(), time.perf_counter()
        for name, kind, fn in cases:
            xs = timed(fn, args.reps)
            by_case[name].append((1000 * statistics.median(xs), 1000 * p90(xs)))
            median, q90 = by_case[name][-1]
            print(f"{name:<32} {kind:<14} median {median:7.2f} ms  p90 {q90:7.2f} ms")
        stolen = (stolen_seconds() - stolen) / (time.perf_counter() - began)
        print(f"# round {r + 1} of {args.rounds}: {stolen:.2f} cores stolen", flush=True)
    rows = [  # the median round of each case
        (name, kind, *sorted(by_case[name])[(args.rounds - 1) // 2]) for name, kind, _ in cases
    ]
    if args.rounds > 1:
        for name, _, _ in cases:
            medians = ", ".join(f"{m:.2f}" for m, _ in by_case[name])
            print(f"{name}: round medians {medians} ms")

    if args.sides:
        file_sizes(predictor, [int(side) for side in args.sides.split(",")], args.reps)

    if args.files <= 0:  # the in-process timings only: quick enough to interleave A/B runs
        for name, kind, median, q90 in rows:
            print(f"| {name} | {kind} | {median:.2f} | {q90:.2f} |")
        return
    split = load_split("test")
    k = min(args.files, len(split))
    images, labels = split.images[:k].numpy(), split.labels[:k].numpy()
    probs, _ = predictor.predict_arrays(images.astype(np.float32) / 255)
    own = 100 * float(np.mean(probs.argmax(axis=1) == labels))
    folder = Path(tempfile.mkdtemp(prefix="mnist-cli-"))
    try:
        start = time.perf_counter()
        paths = write_pngs(images, folder)
        print(f"wrote {k} PNG files in {time.perf_counter() - start:.1f} s to {folder}")
        used, limit = argv_fits([sys.executable, "-m", "mnist_demo", "predict", "--json", *paths])
        print(f"command line + environment: {used} of ARG_MAX {limit} bytes")
        startup, _ = run_cli(paths[:1])  # interpreter, torch import, checkpoint load
        seconds, out = run_cli(paths)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    got = {Path(r["path"]).name: r["label"] for r in out}
    answers = [got.get(f"{i:05d}.png") for i in range(k)]
    accuracy = 100 * float(np.mean([a == y for a, y in zip(answers, labels, strict=True)]))
    no_digit = sum(a is None for a in answers)
    per_file = 1000 * (seconds - startup) / max(k - 1, 1)

    print(f"\n| measurement ({args.reps} warm calls, 1 thread) | input | median ms | p90 ms |")
    print("|---|---|---:|---:|")
    kb = len(url) / 1024
    for name, kind, median, q90 in rows:
        detail = f"{SIDE}x{SIDE} RGBA layer" if kind == "Gradio dict" else kind
        if kind == "PNG data URL":
            detail += f" ({kb:.0f} KB)"
        print(f"| {name} | {detail} | {median:.2f} | {q90:.2f} |")
    diff = accuracy - own
    verdict = (
        "yes" if diff >= -0.1 else "NO"
    )  # reading *more* digits than the network alone is fine
    print(
        "\n| CLI `predict --json` | files | wall s | start-up s (1 file) | ms / file after "
        "start-up | accuracy % | checkpoint on the 28x28 % | diff pt | >= -0.1 pt |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    print(
        f"| {FILE_SIDE}x{FILE_SIDE} PNG, dark on light | {k} | {seconds:.1f} | {startup:.1f} | "
        f"{per_file:.2f} | {accuracy:.2f} | {own:.2f} | {diff:+.2f} | {verdict} |"
    )
    print(
        f"\n(CLI child uses torch's default threads; no digit found in {no_digit} files; "
        "start-up is timed once, so ms / file is noise below ~1,000 files)"
    )


if __name__ == "__main__":
    main()
