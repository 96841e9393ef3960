"""What a run costs around its training, in the app's own process: from Start to the first
step record, to the 99% a tab can show, and to "Finished", against the training seconds.

bench/app_path.py times the same path as a tab sees it over HTTP (adding its poll's wait);
this one reads the job's snapshot every 5 ms, so the parts that are the server's are plain:
what runs before the first step, the tests and records around the steps, and what the job
does with an epoch before its record is visible.

    python bench/run_overhead.py --processes 3 --runs 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _env import print_header

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support import launch  # noqa: E402  (the launcher the browser tests use)

from mnist_demo.records import of_kind  # noqa: E402


def one_process(runs: int, target: float) -> list[dict[str, float]]:
    """`runs` default runs in one fresh app; the seconds of each, from the Start click."""
    app = launch(Path(tempfile.mkdtemp(prefix="bench-runs-")))
    dashboard, job = app.dashboard, app.dashboard.job
    dashboard.train.tick(None)  # an open tab's first look (it draws the idle figure)
    preset = dashboard.train.apply_preset("fast")._asdict()
    out = []
    try:
        for run in range(1, runs + 1):
            began = time.perf_counter()
            message = dashboard.train.start(**preset, device="cpu")
            assert message == f"Run {run} started.", message
            first = hit = None
            while not job.wait(0.005):
                snap = job.snapshot()
                now = time.perf_counter() - began
                if first is None and snap.run_id == run and snap.latest_step is not None:
                    first = now
                if hit is None and (snap.best_test_accuracy or 0) >= target:
                    hit = now
            finished = time.perf_counter() - began
            epoch = of_kind(job.snapshot().records, "epoch")[-1]
            to_target = hit if hit is not None else float("nan")
            out.append(
                {
                    "first step": round(first, 2),
                    f"to {target:g}%": round(to_target, 2),
                    "finished": round(finished, 2),
                    "training": round(epoch["train_seconds"], 2),
                    f"around training to {target:g}%": round(to_target - epoch["train_seconds"], 2),
                    "test %": epoch["test_accuracy"],
                }
            )
            print(json.dumps(out[-1]), flush=True)
    finally:
        app.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=3, help="fresh apps, one after another")
    parser.add_argument("--runs", type=int, default=2, help="default runs in each app")
    parser.add_argument("--target", type=float, default=99.0)
    args = parser.parse_args()
    print_header("cpu")
    rows = [row for _ in range(args.processes) for row in one_process(args.runs, args.target)]
    print("\nmedians over", len(rows), "runs:")
    for name in rows[0]:
        print(f"  {name:<28} {statistics.median(r[name] for r in rows):8.2f}")


if __name__ == "__main__":
    main()
