"""What the in-epoch test curve costs: the sample's test passes against the training time of
the same run, for the run lengths users make (a quarter epoch, one, three), and the curve's
points. The passes are timed inside the loop (ProbeRecord.seconds) and kept out of the
training time, so one run measures both.

    python bench/test_curve_cost.py --epochs 0.25 1 3
"""

from __future__ import annotations

import argparse
import json

from _env import print_header

from mnist_demo.records import of_kind
from mnist_demo.training import config_from_preset, train


def measure(epochs: float, threads: int) -> dict:
    config = config_from_preset("fast", epochs=epochs, device="cpu", threads=threads)
    result = train(config, test_first=True)
    probes = of_kind(result.history, "probe")
    probe_seconds = sum(p["seconds"] for p in probes)
    return {
        "epochs": epochs,
        "test points (sample)": len(probes),
        "full tests": len(of_kind(result.history, "epoch")) + 1,
        "train s": round(result.train_seconds, 2),
        "sample passes s": round(probe_seconds, 3),
        "cost %": round(100 * probe_seconds / result.train_seconds, 2),
        "test %": round(result.test_accuracy, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=float, nargs="+", default=[0.25, 1.0, 3.0])
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all)")
    args = parser.parse_args()
    print_header()
    for epochs in args.epochs:
        print(json.dumps(measure(epochs, args.threads)), flush=True)


if __name__ == "__main__":
    main()
