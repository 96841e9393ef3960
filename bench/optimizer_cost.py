"""Training seconds per step of each optimiser, measured interleaved (A, B, A, B, ...).

The machine's speed drifts, so each round runs every optimiser for the same few steps back
to back and the ratio is taken per round; the median ratio is the headline.

    python bench/optimizer_cost.py --rounds 5 --steps 40 --threads 1
"""

from __future__ import annotations

import argparse
import json
import statistics

from _env import print_header

from mnist_demo.training import OPTIMIZERS, config_from_preset, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per run")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    print_header("cpu")
    per_step: dict[str, list[float]] = {name: [] for name in OPTIMIZERS}
    for _ in range(args.rounds):
        for name in OPTIMIZERS:
            config = config_from_preset(
                "fast",
                optimizer=name,
                device="cpu",
                threads=args.threads,
                cpu_parallel="threads",
                batch_size=args.batch_size,
                max_steps=args.steps,
                probe_images=0,
            )
            result = train(config)
            per_step[name].append(result.train_seconds / result.steps)
        print(json.dumps({k: round(v[-1] * 1000, 2) for k, v in per_step.items()}), flush=True)
    base = per_step[OPTIMIZERS[0]]
    for name in OPTIMIZERS[1:]:
        ratios = [t / b for t, b in zip(per_step[name], base, strict=True)]
        print(
            f"{name} / {OPTIMIZERS[0]} seconds per step: median {statistics.median(ratios):.3f} "
            f"(min {min(ratios):.3f}, max {max(ratios):.3f}, {len(ratios)} rounds)"
        )


if __name__ == "__main__":
    main()
