#!/usr/bin/env bash
# Issue 15's load ratio, A/B interleaved: bench/load_test.py without (A) and with (B) training
# giving way to requests, A B A B, each run bare Gradio app first. Extra arguments go to every
# run (e.g. --quick). Output: artifacts/bench/load_ab/; the table rows are printed as they come.
set -uo pipefail
cd "$(dirname "$0")/.."
py="${VENV:-.venv}/bin/python"
out=artifacts/bench/load_ab; mkdir -p "$out"
for round in 1 2; do
  for mode in A B; do
    flag=(); [ "$mode" = A ] && flag=(--no-give-way)
    file="$out/$round-$mode.txt"
    echo "== $round $mode $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$file"
    "$py" bench/load_test.py "${flag[@]}" "$@" >>"$file" 2>&1
    grep -E '^[|] [^r]|^targets|^ratio|^- ' "$file"
  done
done
