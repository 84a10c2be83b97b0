#!/usr/bin/env bash
# mixq against PyTorch on the same training (docs/PERFORMANCE.md, "GEMM engine"): ROUNDS rounds alternating
# benchmarks/torch_compare.py and examples/train_fashion_mnist with oneDNN GEMMs and with Eigen GEMMs, one epoch
# of IMAGES images each; prints each run's epoch line (seconds = wall, cpu_seconds = CPU of the training loop).
#   bash scripts/train_vs_torch.sh [BUILD_DIR] [THREADS] [IMAGES] [ROUNDS]    # defaults: build/release 1 12800 3
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
  sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
build=${1:-build/release} threads=${2:-1} images=${3:-12800} rounds=${4:-3}
prog="$build/examples/train_fashion_mnist"
[ -x "$prog" ] || { echo "train_vs_torch: $prog is not built" >&2; exit 2; }
for r in $(seq 1 "$rounds"); do
  echo "== round $r, load $(cut -d' ' -f1 /proc/loadavg)"
  /usr/bin/python3 benchmarks/torch_compare.py --epochs 1 --threads "$threads" --train-limit "$images" 2>&1 |
    grep -E '^epoch' | sed 's/^/torch /'
  for engine in dnnl eigen; do
    MIXQ_NN_ENGINE=$engine "$prog" --model resnet --epochs 1 --threads "$threads" --seed 1 --train-limit "$images" \
      --test-limit 1000 2>&1 | grep -E '^epoch' | sed "s/^/mixq_$engine /"
  done
done
