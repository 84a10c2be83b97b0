#!/bin/sh
# The quick runs of docs/RESULTS.md (one-shot weight coupling): per seed, the main run (bits 2..6, scheduler, IDM,
# searches, frontier, retrained baselines), then the ablation arms from the same float model (uniform policies only).
#   scripts/oneshot_quick_runs.sh build/rel [SEEDS...]        (default seeds 1 2 3; logs and JSON in docs/results/)
set -e
bin="${1:-build/rel}/examples/oneshot_fashion_mnist"
shift || true
seeds="${*:-1 2 3}"
out=docs/results
mkdir -p "$out"
for s in $seeds; do
  nice -n 5 "$bin" --seed "$s" --save-float "/tmp/oneshot_float_s$s.safetensors" --json "$out/oneshot_quick_s$s.json" \
    > "$out/oneshot_quick_s$s.log" 2>&1
done
for s in $seeds; do
  f="/tmp/oneshot_float_s$s.safetensors"
  for arm in no_scheduler no_idm no_scheduler_no_idm random_freeze bits3; do
    case $arm in
      no_scheduler) flags="--no-scheduler" ;;
      no_idm) flags="--no-idm" ;;
      no_scheduler_no_idm) flags="--no-scheduler --no-idm" ;;
      random_freeze) flags="--random-freeze" ;;
      bits3) flags="--min-bits 3" ;;
    esac
    # shellcheck disable=SC2086
    nice -n 5 "$bin" --seed "$s" --float "$f" $flags --no-search --no-retrain \
      --json "$out/oneshot_quick_${arm}_s$s.json" > "$out/oneshot_quick_${arm}_s$s.log" 2>&1
  done
done
