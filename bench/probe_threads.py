"""A test sample's pass (the in-epoch test curve's point) on one CPU thread or on all: wall
and CPU milliseconds per pass, interleaved, with the load average it ran under.

    python bench/probe_threads.py [--images 180] [--passes 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from _env import print_header

from mnist_demo import data
from mnist_demo.data import Split
from mnist_demo.models import build_model
from mnist_demo.training import _one_cpu_thread, test_pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=180, help="the quarter-epoch run's sample")
    parser.add_argument("--passes", type=int, default=40)
    args = parser.parse_args()
    print_header()
    cpu = torch.device("cpu")
    _, test = data.load_mnist()
    model = build_model("tutorial").to(memory_format=torch.channels_last).train()
    idx = test.stratified(args.images)
    sample = Split(test.images[idx], test.labels[idx])
    test_pass(model, sample)  # warm-up: oneDNN builds its kernels for this shape
    wall: dict[str, list[float]] = {"one thread": [], "all threads": []}
    busy = dict.fromkeys(wall, 0.0)
    for _ in range(args.passes):
        for name in wall:
            began, cpu_began = time.perf_counter(), time.process_time()
            if name == "one thread":
                with _one_cpu_thread(cpu):
                    test_pass(model, sample)
            else:
                test_pass(model, sample)
            wall[name].append(time.perf_counter() - began)
            busy[name] += time.process_time() - cpu_began
    print(f"# load average (1 min) at the end: {os.getloadavg()[0]:.2f}")
    for name, times in wall.items():
        print(
            f"{name}: median {1000 * statistics.median(times):.1f} ms, "
            f"min {1000 * min(times):.1f} ms, CPU {1000 * busy[name] / args.passes:.1f} ms/pass"
        )


if __name__ == "__main__":
    main()
