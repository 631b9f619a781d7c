#!/usr/bin/env bash
# The CPU benchmark set in one command (495 s on 2 cores, measured 2026-12-02): each script measures against its
# reference in the same run and writes benchmarks/results/<topic>.json; RESULTS.md records the figures.
#   bash benchmarks/run_cpu.sh            (after `pip install -e ".[dev]"`)
set -euo pipefail
cd "$(dirname "$0")/.."
run() { echo; echo "+ python benchmarks/$*"; /usr/bin/env time -f "  (%e s)" python "benchmarks/$@"; }
run bench_run_cost.py
run bench_memory.py
run bench_samplers.py
run bench_generate.py --batch 2 --steps 20 --fast-steps 10 --repeats 3
run bench_ldm_vs_pixel.py --pixel-steps 3 --repeats 3
run bench_train.py --threads 1 --steps 4 --image-size 128 --batch-size 16 --pairs cpu:cpu --presets ci,cpu
run bench_fastpath.py --steps 3 --rounds 2 --sample-steps 5 --sample-repeats 2
run bench_prep.py --n 120
run bench_simulate.py
