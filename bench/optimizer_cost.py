"""Seconds per training step of each optimiser, measured interleaved (A, B, A, B, ...).

Each repeat times one whole step (gather, forward, backward, update) of each optimiser back
to back, and the optimiser's update alone; the minimum over repeats is the headline, as the
least disturbed by whatever else runs on the machine (the median is printed beside it).

    python bench/optimizer_cost.py --repeats 40 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _env import print_header
from _step import engine_step

from mnist_demo.data import load_mnist
from mnist_demo.training import OPTIMIZERS, config_from_preset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print_header("cpu")
    train_split, _ = load_mnist()
    steps = {}
    for name in OPTIMIZERS:
        steps[name] = engine_step(
            config_from_preset("fast", optimizer=name, device="cpu"), train_split
        )
    whole: dict[str, list[float]] = {name: [] for name in OPTIMIZERS}
    update: dict[str, list[float]] = {name: [] for name in OPTIMIZERS}
    generator = torch.Generator().manual_seed(0)
    for _ in range(args.repeats + 2):  # the first two warm up
        idx = torch.randint(0, len(train_split), (args.batch_size,), generator=generator)
        for name, step in steps.items():
            began = time.perf_counter()
            step(idx)
            whole[name].append(time.perf_counter() - began)
            began = time.perf_counter()
            step.optimizer.step()  # again, on the same gradients: the update alone
            update[name].append(time.perf_counter() - began)
    for name in OPTIMIZERS:
        w, u = whole[name][2:], update[name][2:]
        print(
            f"{name}: step min {min(w) * 1e3:.2f} ms (median {statistics.median(w) * 1e3:.2f}), "
            f"update alone min {min(u) * 1e3:.2f} ms (median {statistics.median(u) * 1e3:.2f})"
        )
    base = OPTIMIZERS[0]
    for name in OPTIMIZERS[1:]:
        print(
            f"{name} / {base} seconds per step: {min(whole[name]) / min(whole[base]):.3f} "
            f"(minimum over {args.repeats} interleaved repeats, batch {args.batch_size}, "
            f"{args.threads} thread(s))"
        )


if __name__ == "__main__":
    main()
