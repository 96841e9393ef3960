"""Final test accuracy and images seen to reach a target, per seed, for one recipe.

Counts images, not seconds: on a shared machine wall time says little, the number of
training images a recipe needs does not change with load. One thread per run (repeatable,
and fair to whatever else runs). Any TrainConfig field can be overridden with --set.

    python bench/images_to_99.py --seeds 10                                 # default preset
    python bench/images_to_99.py --seeds 10 --set epochs=0.65 optimizer=muon
    python bench/images_to_99.py --seeds 5 --holdout 10000 --set epochs=0.65   # tune on a holdout

With --holdout N the last N training images are left out of training and each run is also
scored on them: choose settings by the holdout column, then confirm on the full training
split (no --holdout) against the test set. "images to target" is the first in-epoch probe
(a stratified sample of the test set) at or above the target, else the end if the full
test passes; the full 10,000-image test at the end is the decisive number.
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics

from _env import print_header

from mnist_demo.data import Split
from mnist_demo.records import of_kind
from mnist_demo.training import (
    PRESETS,
    config_from_preset,
    prepared_mnist,
    test_pass,
    train,
)


def _value(text: str) -> object:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a plain string such as muon


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fast", choices=list(PRESETS))
    parser.add_argument("--target", type=float, default=99.0, help="test accuracy, percent")
    parser.add_argument("--seeds", type=int, default=10, help="seeds first..first+seeds-1")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--holdout", type=int, default=0, help="also score on the last N")
    parser.add_argument("--probes", action="store_true", help="in-epoch test samples (+10%%)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    overrides = {key: _value(value) for key, value in overrides.items()}
    print_header("cpu")
    print(json.dumps({"preset": args.preset, "holdout": args.holdout, **overrides}))
    held = None
    if args.holdout:
        train_split, _ = prepared_mnist(overrides.get("data_dir"))
        held = train_split.images[-args.holdout :], train_split.labels[-args.holdout :]
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        config = config_from_preset(
            args.preset,
            **{
                "device": "cpu",
                "threads": args.threads,
                "cpu_parallel": "threads",  # bit-for-bit repeatable
                "probe_images": 1000 if args.probes else 0,
                "holdout": args.holdout,
                **overrides,
                "seed": seed,
            },
        )
        result = train(config)
        start = result.history[0]
        per_step = config.batch_size
        images = result.steps * per_step
        reached = [
            r["step"] * per_step
            for r in of_kind(result.history, "probe")
            if r["images"] < 10_000 and r["test_accuracy"] >= args.target and r["step"]
        ]
        row = dict(
            seed=seed,
            mode=start["mode"],
            images=images,
            test=round(result.test_accuracy, 2),
            images_to_target=min(reached)
            if reached
            else (images if result.test_accuracy >= args.target else None),
            train_s=round(result.train_seconds, 2),
        )
        if held is not None:
            row["holdout"] = round(test_pass(result.model, Split(*held)).accuracy, 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    tests = [r["test"] for r in rows]
    summary = (
        f"{sum(t >= args.target for t in tests)}/{len(tests)} >= {args.target}% "
        f"after {rows[-1]['images']:,} images; test % min {min(tests):.2f} "
        f"median {statistics.median(tests):.2f} max {max(tests):.2f}"
    )
    if held is not None:
        hold = [r["holdout"] for r in rows]
        summary += f"; holdout % min {min(hold):.2f} mean {statistics.mean(hold):.3f}"
    print(summary)


if __name__ == "__main__":
    main()
