#!/usr/bin/env bash
# Runs the Rust forward bench and the PyTorch reference alternately (the machine is shared and
# noisy), three rounds each, and prints every figure; BENCHMARKS.md quotes the medians.
# Usage: tools/bench/compare_forward.sh PYTHON   (a python with torch + transformers)
set -euo pipefail
py=${1:?python with torch and transformers}
cd "$(dirname "$0")/../.."
cargo bench --bench forward --no-run 2>/dev/null
minilm=$(cargo run -q --release -- fetch minilm | awk '{print $3}')
for round in 1 2 3; do
  echo "round $round"
  cargo bench -q --bench forward 2>/dev/null | sed 's/^/  fairnc  /'
  "$py" tools/bench/forward_torch.py "$minilm" 2>/dev/null | grep tok/s | sed 's/^/  torch   /'
done
