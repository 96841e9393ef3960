#!/usr/bin/env bash
# Every CPU benchmark the issues name, one after another on an otherwise idle machine
# (two processes sharing 2 cores cost 5-10x, so nothing else may run). Output: artifacts/bench/
set -uo pipefail
cd "$(dirname "$0")/.."
py="${VENV:-.venv}/bin/python"
out=artifacts/bench; mkdir -p "$out"
run() { local name=$1; shift; echo "== $name: $*"; "$py" "$@" 2>&1 | tee "$out/$name.txt"; }
run tutorial_vs_ours bench/tutorial_vs_ours.py --epochs 1 --device cpu
run time_to_99 bench/time_to_accuracy.py --runs 10 --device cpu
run time_to_99_float32 bench/time_to_accuracy.py --runs 10 --device cpu --precision float32
run cli_overhead bench/cli_overhead.py --runs 3
run app_path bench/app_path.py --runs 3
run dashboard_overhead bench/dashboard_overhead.py --tabs 1
run dashboard_server_cost bench/dashboard_server_cost.py --tabs 2
run live_insight bench/live_insight.py --draws 15 --epochs 3
run predict_latency bench/predict_latency.py --reps 300 --files 10000
run predict_latency_improved bench/predict_latency.py --checkpoint checkpoints/improved.pt --reps 300 --files 200
run draw_round_trip bench/draw_round_trip.py --n 20
run test_curve_cost bench/test_curve_cost.py --epochs 0.25 1 3
run robustness bench/robustness_set.py --n 2000 --seed 0
run load_test bench/load_test.py
run load_test_no_give_way bench/load_test.py --no-give-way
run load_test_http bench/load_test.py --http
run api_cost bench/api_cost.py
run load_test_http_1thread bench/load_test.py --http --train-threads 1
run robustness_improved bench/robustness_set.py --n 2000 --seed 0 --model improved
