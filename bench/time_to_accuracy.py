"""Seconds of training until the test accuracy first reaches a target, over several seeds.

Training seconds exclude the per-epoch test pass (reported separately) and start-up.

    python bench/time_to_accuracy.py --runs 3                       # default (fast) settings
    python bench/time_to_accuracy.py --preset improved --target 99.5
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics

from _env import print_header

from mnist_demo.records import of_kind
from mnist_demo.training import PRECISIONS, PRESETS, config_from_preset, resolve_device, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fast", choices=list(PRESETS))
    parser.add_argument("--target", type=float, default=99.0, help="test accuracy, percent")
    parser.add_argument("--runs", type=int, default=3, help="seeds first..first+runs-1")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--epochs", type=float, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-cuda-graph", action="store_true")
    parser.add_argument("--precision", default=None, choices=PRECISIONS, help="default: preset's")
    args = parser.parse_args()
    device = str(resolve_device(args.device))
    print_header(device)
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.runs):
        config = config_from_preset(
            args.preset,
            seed=seed,
            epochs=args.epochs,
            device=device,
            cuda_graph=not args.no_cuda_graph,
            precision=args.precision,
        )
        result = train(config)
        epochs = of_kind(result.history, "epoch")
        hit = next((r for r in epochs if r["test_accuracy"] >= args.target), None)
        rows.append(
            dict(
                seed=seed,
                mode=result.history[0]["mode"],
                precision=result.precision,
                reached=hit is not None,
                seconds_to_target=hit["train_seconds"] if hit else None,
                epochs_to_target=hit.get("epochs_done", hit["epoch"]) if hit else None,
                accuracy=[r["test_accuracy"] for r in epochs],
                epoch_seconds=[round(r["epoch_seconds"], 3) for r in epochs],
                eval_seconds=[round(r["eval_seconds"], 3) for r in epochs],
            )
        )
        print(json.dumps(rows[-1]), flush=True)
    times = [r["seconds_to_target"] for r in rows if r["reached"]]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\npreset {args.preset}: {len(times)}/{len(rows)} runs reached {args.target}%"
        + (
            f"; seconds of training to get there: median {statistics.median(times):.2f}, "
            f"min {min(times):.2f}, max {max(times):.2f}"
            if times
            else ""
        )
        + f"; peak RSS {peak_mb:.0f} MB"
    )


if __name__ == "__main__":
    main()
