#!/usr/bin/env bash
# Everything that needs a GPU, in one call that fits a short lease (see BENCHMARKS.md):
# correctness of the graphed step, then the timings the issues ask for. Output: $OUT or ./gpu-out
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-out}"; mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python -m pytest -q -p no:cacheprovider tests/unit/test_cuda.py 2>&1 | tee "$out/cuda_tests.txt"
python bench/tutorial_vs_ours.py --epochs 1 --device cuda 2>&1 | tee "$out/tutorial_vs_ours.txt"
python bench/time_to_accuracy.py --runs 3 --device cuda 2>&1 | tee "$out/time_to_99.txt"
python bench/time_to_accuracy.py --runs 3 --device cuda --no-cuda-graph 2>&1 \
  | tee "$out/time_to_99_eager.txt"
# bfloat16 autocast on CUDA (eager: precision "auto" keeps CUDA in float32, graphed, until this
# says bfloat16 is faster there too)
python bench/time_to_accuracy.py --runs 3 --device cuda --precision bfloat16 2>&1 \
  | tee "$out/time_to_99_bf16.txt"
python bench/time_to_accuracy.py --preset improved --target 99.5 --runs 1 --device cuda 2>&1 \
  | tee "$out/improved.txt"
# The app path at GPU speed: click to the first chart point and to 99% with a tab polling over
# HTTP (the app in its own process), then the server's share of a run watched by two tabs; a
# sub-second run must still end with every chart complete (tests/unit/test_hardening.py pins
# that a finished run is drawn at once, whatever the throttle).
python bench/app_path.py --runs 2 --device cuda 2>&1 | tee "$out/app_path.txt"
python bench/dashboard_server_cost.py --tabs 2 --http 2>&1 | tee "$out/dashboard_server_cost.txt"
