"""Command line: `python -m mnist_demo train | evaluate | predict` (also `mnist-demo ...`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from . import checkpoints, draw_model
from .data import DataError
from .models import MODELS
from .records import Record, is_kind, of_kind
from .training import (
    CPU_PARALLEL,
    OPTIMIZERS,
    PRECISIONS,
    PRESETS,
    SCHEDULES,
    ConfigError,
    Control,
    TrainConfig,
    config_from_preset,
)

EXIT_USAGE = 2


class _Usage(Exception):
    """A bad value from the user: one line on stderr, exit code 2."""


# --- train ------------------------------------------------------------------------------------

_HELP = {
    "model": f"model architecture: {', '.join(MODELS)}",
    "epochs": "passes over the 60,000 training images",
    "batch_size": "images per optimiser step",
    "lr": "Adam learning rate (peak of the one-cycle schedule)",
    "schedule": "learning-rate schedule",
    "beta1": "Adam beta1",
    "beta2": "Adam beta2",
    "optimizer": "adam, or muon (orthogonalised updates for the conv/hidden weights, Adam else)",
    "muon_lr": "Muon learning rate at the one-cycle peak (with --optimizer muon)",
    "muon_momentum": "Muon momentum (with --optimizer muon)",
    "warmup": "fraction of a one-cycle run spent warming up to the peak learning rate",
    "augment": "random shift of up to N pixels (0 = off)",
    "distort": "random affine/elastic/pen/scanner distortion strength (0 = off, 1 = default)",
    "distort_geometry": "share of the distortions' rotation and shear (0 = none, 1 = all)",
    "distort_warp": "share of the distortions' scale, aspect, shift and elastic warps",
    "flag_ones": "share of the training 1s drawn with a flag at the top (0 = none)",
    "deskew": "straighten digits by their moments in training and inference (true/false)",
    "holdout": "leave the last N training images out (the foreign-style set's scanner source)",
    "label_smoothing": "target weight moved off the label, spread over all classes (0 = off)",
    "seed": "random seed (weights, shuffling, augmentation)",
    "device": "auto, cpu, cuda or cuda:N",
    "threads": "CPU threads (0 = one per core)",
    "cpu_parallel": "auto, threads or replicas: how several CPU cores share a step",
    "precision": "auto, float32 or bfloat16: the forward's arithmetic (auto: bfloat16 on a "
    "CPU with AMX)",
    "log_every": "steps between progress records",
    "log_seconds": "also a progress record after this many seconds (0 = steps only)",
    "max_steps": "stop after this many steps (0 = no limit)",
    "probe_images": "test images (equal per digit) tested during each epoch (0 = off)",
    "data_dir": "MNIST IDX files (.gz or raw, or torchvision's MNIST/raw/) instead of the bundled",
}


_CHOICES = {
    "schedule": SCHEDULES,
    "cpu_parallel": CPU_PARALLEL,
    "optimizer": OPTIMIZERS,
    "precision": PRECISIONS,
}


def _boolean(text: str) -> bool:
    """A yes/no flag value: true/false, yes/no, on/off, 1/0."""
    value = {"true": True, "yes": True, "on": True, "1": True}.get(text.lower())
    if value is None and text.lower() not in ("false", "no", "off", "0"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return bool(value)


def _preset_defaults(name: str) -> str:
    config = config_from_preset(name)
    return ", ".join(
        f"{f}={getattr(config, f)}"
        for f in ("model", "epochs", "batch_size", "lr", "schedule", "augment", "label_smoothing")
    )


def _add_train(sub: argparse._SubParsersAction) -> None:
    epilog = "presets (flags override them):\n" + "\n".join(
        f"  {name:9s} {_preset_defaults(name)}" for name in PRESETS
    )
    p = sub.add_parser(
        "train",
        help="train a model and save a checkpoint",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=epilog,
    )
    p.add_argument(
        "--preset",
        default=None,
        choices=list(PRESETS),
        help="starting settings (default: fast; 'improved' when --model improved)",
    )
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        if f.name == "cuda_graph":
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = {int: int, float: float, bool: _boolean}.get(type(getattr(defaults, f.name)), str)
        extra: dict[str, Any] = {}
        if f.name in _CHOICES:
            extra["choices"] = list(_CHOICES[f.name])
        p.add_argument(
            flag,
            type=kind,
            default=None,
            metavar=f.name.upper(),
            help=f"{_HELP[f.name]} (fast preset: {getattr(defaults, f.name)})",
            **extra,
        )
    p.add_argument("--no-cuda-graph", action="store_true", help="train eagerly on CUDA")
    p.add_argument(
        "--out", type=Path, default=None, help="checkpoint path (default: runs/<model>-<time>.pt)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON summary as the last line")
    p.set_defaults(func=_cmd_train)


class ProgressBar:
    """Progress on stderr: a tqdm bar over the run's steps (on a terminal), a line per epoch."""

    def __init__(self, epochs: float, stream=None) -> None:
        # sys.stderr is looked up per bar, not once at import, so redirections reach it.
        self.stream = stream or sys.stderr
        self.epochs = math.ceil(epochs)  # a 1.5-epoch run counts two epochs, the last short
        self.bar: tqdm | None = None

    def __call__(self, record: Record, model: Any = None) -> None:
        if is_kind(record, "start"):
            print(
                f"training on {record['device']} ({record['mode']}), {record['total_steps']} steps "
                f"({record['config']['epochs']:g} epochs)",
                file=self.stream,
            )
            self.bar = tqdm(
                total=record["total_steps"],
                unit="step",
                file=self.stream,
                disable=not self.stream.isatty(),  # a log file gets the epoch lines only
                leave=False,
                dynamic_ncols=True,
            )
        elif is_kind(record, "step") and self.bar is not None:
            self.bar.set_description(f"epoch {record['epoch']}/{self.epochs}", refresh=False)
            self.bar.set_postfix(
                loss=f"{record['loss']:.4f}",
                acc=f"{record['train_accuracy']:.2f}%",
                speed=f"{record['samples_per_second']:,.0f} img/s",
                refresh=False,
            )
            self.bar.update(record["step"] - self.bar.n)
        elif is_kind(record, "epoch"):
            tqdm.write(
                f"epoch {record['epoch']}/{self.epochs}  loss {record['train_loss']:.4f}  "
                f"train {record['train_accuracy']:.2f}%  test {record['test_accuracy']:.2f}%  "
                f"({record['epoch_seconds']:.1f}s train + {record['eval_seconds']:.1f}s eval)",
                file=self.stream,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextlib.contextmanager
def _first_interrupt_stops(control: Control):
    """Ctrl-C once: finish the current step, evaluate, save. Twice: abort at once."""

    def handler(signum, frame):
        if control.stopped:
            raise KeyboardInterrupt
        print(
            "\nstopping: the last completed epoch will be saved (Ctrl-C again to abort)",
            file=sys.stderr,
        )
        control.stop()

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (e.g. called from a test's worker thread)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _cmd_train(args: argparse.Namespace) -> int:
    from .training import save_result, train

    overrides = {
        f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name != "cuda_graph"
    }
    if args.no_cuda_graph:
        overrides["cuda_graph"] = False
    preset = args.preset or ("improved" if args.model == "improved" else "fast")
    config = config_from_preset(preset, **overrides).validate()
    out = args.out or Path("runs") / f"{config.model}-{time.strftime('%Y%m%d-%H%M%S')}.pt"
    if out.exists() and out.is_dir():
        raise _Usage(f"--out {out} is a directory")
    control = Control()
    evaluations: list[Any] = []  # the last test pass: every image's probabilities
    with _first_interrupt_stops(control):
        progress = ProgressBar(config.epochs)
        try:
            result = train(
                config,
                control=control,
                on_record=progress,
                on_evaluation=lambda record, evaluation: evaluations.append(evaluation),
            )
        finally:
            progress.close()
    epochs = of_kind(result.history, "epoch")
    if not epochs:
        print("stopped before the first epoch ended; nothing saved", file=sys.stderr)
        return 130
    saved = save_result(out, result)
    if not config.data_dir:  # the per-digit view's cache, as the app keeps for its runs
        checkpoints.save_test_probabilities(saved, evaluations[-1].probabilities.numpy())
    summary = {
        "test_accuracy": result.test_accuracy,
        "train_seconds": round(result.train_seconds, 3),
        "epochs": result.epochs_completed,  # test passes: a 1.5-epoch run has two
        "epochs_trained": epochs[-1]["epochs_done"],
        "steps": result.steps,
        "device": result.device,
        "precision": result.precision,
        "model": config.model,
        "checkpoint": str(saved),
        "epoch_test_accuracy": [r["test_accuracy"] for r in epochs],
        "epoch_seconds": [round(r["epoch_seconds"], 3) for r in epochs],
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"test accuracy {result.test_accuracy:.2f}% after {result.epochs_completed} epochs, "
            f"{result.train_seconds:.1f}s of training; saved {saved}"
        )
    return 0


def _weights(path: Path | None) -> tuple[Path, checkpoints.Checkpoint, str]:
    """The checkpoint a command reads: the one given, else the Draw tab's (draw_model)."""
    if path is not None:
        return path, checkpoints.load(path), str(path)
    weights = draw_model.choose(checkpoints.runs_dir())
    return weights.source, weights.checkpoint, weights.label


# --- evaluate ---------------------------------------------------------------------------------


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="test accuracy of a checkpoint on the 10,000 test images")
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="checkpoint to evaluate (default: the Draw tab's weights)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--data-dir", default=None, help="MNIST files instead of the bundled copy")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .augment import deskew
    from .data import Split, load_split
    from .training import evaluate, resolve_device

    path, checkpoint, used = _weights(args.checkpoint)
    device = resolve_device(args.device)
    model = checkpoint.build().to(device)
    start = time.perf_counter()
    test = load_split("test", args.data_dir)
    if checkpoint.deskew:  # the weights read deskewed digits, as the Predictor gives them
        test = Split(deskew(test.images), test.labels)
    accuracy, loss = evaluate(model, test.to(device))
    result = {
        "accuracy": accuracy,
        "n": 10_000,
        "loss": round(loss, 5),
        "model": checkpoint.model_name,
        "checkpoint": str(path),
        "weights": used,
        "device": str(device),
        "seconds": round(time.perf_counter() - start, 3),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{used}: {accuracy:.2f}% of 10,000 test images ({checkpoint.model_name} model)")
    return 0


# --- predict ----------------------------------------------------------------------------------


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="read the digit in image files")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files")
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="checkpoint to use (default: the Draw tab's weights)",
    )
    p.add_argument("--batch-size", type=int, default=512, help="images per forward pass")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    from .predict import Predictor
    from .sketch import SketchError, to_mnist

    if args.batch_size < 1:
        raise _Usage("--batch-size must be at least 1")
    path, checkpoint, used = _weights(args.checkpoint)
    predictor = Predictor(checkpoint, used)
    if not args.json:
        print(f"reading with {used}", file=sys.stderr)
    failures = 0

    def emit(file: Path, label: int | None, probs: np.ndarray | None, error: str | None) -> None:
        if args.json:
            row: dict[str, Any] = {
                "path": str(file),
                "label": label,
                "probabilities": None if probs is None else [round(float(p), 6) for p in probs],
                "weights": used,
            }
            if error:
                row["error"] = error
            print(json.dumps(row))
        elif error:
            print(f"{file}: error: {error}", file=sys.stderr)
        elif label is None:
            print(f"{file}: no digit")
        else:
            print(f"{file}: {label} ({100 * probs[label]:.1f}%)")

    pending: list[tuple[Path, np.ndarray]] = []

    def flush() -> None:
        if pending:
            probs, _ = predictor.predict_arrays(np.stack([img for _, img in pending]))
            for (file, _), p in zip(pending, probs, strict=True):
                emit(file, int(p.argmax()), p, None)
            pending.clear()

    for file in args.paths:
        try:
            image = to_mnist(file)
        except SketchError as err:
            flush()
            failures += 1
            emit(file, None, None, str(err))
            continue
        if image is None:
            flush()
            emit(file, None, None, None)
            continue
        pending.append((file, image))
        if len(pending) >= args.batch_size:
            flush()
    flush()
    return 1 if failures else 0


# --- app ---------------------------------------------------------------------------------------


def _add_app(sub: argparse._SubParsersAction) -> None:
    from .launch import add_arguments

    p = sub.add_parser("app", help="start the web app (the same as python app.py)")
    add_arguments(p)
    p.set_defaults(func=_cmd_app, parser=p)


def _cmd_app(args: argparse.Namespace) -> int:
    from .launch import run

    run(args, args.parser)
    return 0


# --- entry point ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mnist-demo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_evaluate(sub)
    _add_predict(sub)
    _add_app(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (_Usage, ConfigError, DataError, checkpoints.CheckpointError) as err:
        print(f"mnist-demo {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
