"""Where `mnist-demo train --json` spends its time, from the command to the JSON line.

Two measurements, each in fresh processes (what a user gets):

1. the real command, timed from launch to its JSON line, minus the training seconds it reports:
   the overhead around the training;
2. the same phases one by one in a child process (the library calls the command makes), so
   each part's share of that overhead is visible: imports, MNIST decoding, train() (building
   the step and the final test pass included), a test pass alone, the saves. Until the tenth
   session the optimizer's first use also imported torch._dynamo (~1.9 s; optim.FusedAdam
   now runs Adam without torch.optim); the child reports whether anything still imports it.

    python bench/cli_overhead.py --runs 3
    python bench/cli_overhead.py --runs 3 --max-steps 20    # overhead only, quicker
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _env import print_header

# The child: each phase of _cmd_train, timed with perf_counter, printed as one JSON line.
PHASES = r"""
import json, sys, time
t0 = time.perf_counter(); marks = {}
def mark(name):
    global t0
    now = time.perf_counter(); marks[name] = round(now - t0, 3); t0 = now
import mnist_demo.__main__  # the CLI's own imports
from mnist_demo import checkpoints
from mnist_demo.training import (
    Control, config_from_preset, prepared_mnist, save_result, test_pass, train,
)
mark("import")
config = config_from_preset("fast", max_steps=int(sys.argv[2]))
prepared_mnist(None)
mark("decode MNIST")
evaluations = []
result = train(config, control=Control(), on_evaluation=lambda r, e: evaluations.append(e))
mark("train() (incl. final test)")
train_split, test_split = prepared_mnist(None)
result.model.eval()
test_pass(result.model, test_split)
mark("a test pass again")
saved = save_result(sys.argv[1], result)
mark("save checkpoint")
checkpoints.save_test_probabilities(saved, evaluations[-1].probabilities.numpy())
mark("save probabilities")
marks["training seconds"] = round(result.train_seconds, 3)
marks["torch._dynamo imported"] = int("torch._dynamo" in sys.modules)
print(json.dumps(marks))
"""


def run_command(out: Path, max_steps: int) -> dict[str, float]:
    """The README's command, timed from launch to its JSON line (and to its exit)."""
    cmd = [sys.executable, "-m", "mnist_demo", "train", "--json", "--out", str(out)]
    if max_steps:
        cmd += ["--max-steps", str(max_steps)]
    began = time.perf_counter()
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()  # the JSON line is its only output on stdout
    to_line = time.perf_counter() - began
    process.wait()
    to_exit = time.perf_counter() - began
    summary = json.loads(line)
    return {
        "to JSON line": round(to_line, 2),
        "to exit": round(to_exit, 2),
        "training": summary["train_seconds"],
        "overhead": round(to_line - summary["train_seconds"], 2),
        "test %": summary["test_accuracy"],
    }


def run_phases(out: Path, max_steps: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", PHASES, str(out), str(max_steps)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=0, help="0 = the whole default run")
    args = parser.parse_args()
    print_header()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    commands, phases = [], []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("MNIST_DEMO_RUNS_DIR", str(Path(tmp) / "runs"))
        for i in range(args.runs):  # interleaved: the machine's speed drifts
            commands.append(run_command(Path(tmp) / f"cmd-{i}.pt", args.max_steps))
            print("command", commands[-1], flush=True)
            phases.append(run_phases(Path(tmp) / f"phases-{i}.pt", args.max_steps))
            print("phases ", phases[-1], flush=True)
    print("\nmedian over runs:")
    for key in commands[0]:
        print(f"  command {key:28s} {statistics.median(c[key] for c in commands):8.2f}")
    for key in phases[0]:
        print(f"  phase   {key:28s} {statistics.median(p[key] for p in phases):8.3f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
