"""Milliseconds per training step in float32 and in bfloat16 (autocast), interleaved.

The engine's own step (`training._Step`: gather, forward, backward, fused Adam) of the
default preset, once per precision, timed in rounds that alternate the two (this machine
drifts); the median step of each round is printed, then the profiler's top operators of the
bfloat16 step. Says whether this CPU has AMX, which `precision="auto"` asks for.

    python bench/step_precision.py --rounds 5 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _env import print_header
from _step import engine_step
from torch.profiler import ProfilerActivity, profile

from mnist_demo import training
from mnist_demo.data import load_mnist
from mnist_demo.training import config_from_preset

PRECISIONS = ("float32", "bfloat16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print_header("cpu")
    print(f"AMX: {training._cpu_computes_bfloat16()}")
    train_split, _ = load_mnist()
    steps = {}
    for name in PRECISIONS:
        steps[name] = engine_step(
            config_from_preset("fast", precision=name, device="cpu"), train_split
        )
    generator = torch.Generator().manual_seed(0)

    def batch() -> torch.Tensor:
        return torch.randint(0, len(train_split), (args.batch_size,), generator=generator)

    medians: dict[str, list[float]] = {name: [] for name in PRECISIONS}
    for round_ in range(args.rounds):
        for name, step in steps.items():
            for _ in range(3):  # warm: oneDNN picks its kernels on the first calls
                step(batch())
            times = []
            for _ in range(args.steps):
                idx = batch()
                began = time.perf_counter()
                step(idx)
                times.append(1000 * (time.perf_counter() - began))
            medians[name].append(statistics.median(times))
        print(
            f"round {round_ + 1}: "
            + ", ".join(f"{name} {medians[name][-1]:.1f} ms" for name in PRECISIONS),
            flush=True,
        )
    for name in PRECISIONS:
        print(f"{name}: median of round medians {statistics.median(medians[name]):.1f} ms/step")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(10):
            steps["bfloat16"](batch())
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
