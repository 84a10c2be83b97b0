#!/usr/bin/env bash
# Instructions per solve of the exact solver on bench_search's problems (callgrind): for each problem,
# (Ir of N solves - Ir of 1 solve) / (N - 1), compile included; then the node counts and optima (--check).
# Usage: scripts/search_instructions.sh [BUILD_DIR]   (default build/release; builds search_instructions there)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build/release}
cmake --build "$dir" --target search_instructions -j 2 >/dev/null
bin="$dir/benchmarks/search_instructions"
ir() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | awk '/Collected/ {print $NF}'; }
printf '%-13s %s\n' problem instructions_per_solve
for p in real quirk resnet18 mobilenet_v2 llm sweep; do
  n=11
  [ "$p" = llm ] && n=6
  [ "$p" = sweep ] && n=4
  one=$(ir "$bin" "$p" 1)
  many=$(ir "$bin" "$p" "$n")
  printf '%-13s %d\n' "$p" $(((many - one) / (n - 1)))
done
"$bin" --check
