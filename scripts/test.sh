#!/usr/bin/env bash
# Installs what is missing, then runs every test in three stages, each in its own folder under build/:
#   1. release   Release build (examples and benchmarks compiled, not run), every ctest test (unit tests, the
#                ODR check, every public header compiled alone, the find_package and add_subdirectory consumer
#                builds, and the pytest tests of the Python module and the torch operators, label `python`)
#   1b. march    (x86 only) the programs built with -march=native (examples, bench_nn) and test_kernels compiled
#                for -march=x86-64-v4 (AVX-512) and -march=x86-64-v3 (AVX2), whatever this CPU has; test_kernels
#                runs where the CPU can run that level, the rest is compile only
#   2. sanitize  ASan + UBSan build (-fno-sanitize-recover=all) at -O1 -g1, the unit tests
#   3. aarch64   cross build for 64-bit ARM, the unit tests under qemu-aarch64
#   4. fuzz      (when tests/fuzz exists) the libFuzzer targets, 60 s each over their seed corpus
# Stops at the first stage that fails. Prints one line per stage and a last line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=${MIXQ_JOBS:-2}

bash scripts/install-deps.sh || exit 1

total_pass=0
total_fail=0
summary=()

finish() {
  echo
  echo "== summary"
  for line in "${summary[@]}"; do echo "$line"; done
  echo "$total_pass passed, $total_fail failed"
}

# run_stage NAME BUILD_DIR CTEST_ARGS -- CMAKE_ARGS...
run_stage() {
  local name=$1 dir=$2 ctest_args=$3
  shift 4
  local log="$root/$dir/stage.log"
  local t0=$SECONDS
  mkdir -p "$dir"
  echo "== stage $name: configure and build in $dir"
  if ! cmake -S . -B "$dir" "$@" >"$log" 2>&1 || ! cmake --build "$dir" -j "$jobs" >>"$log" 2>&1; then
    tail -n 60 "$log"
    summary+=("$name: BUILD FAILED ($((SECONDS - t0)) s, log $dir/stage.log)")
    total_fail=$((total_fail + 1))
    finish
    exit 1
  fi
  echo "== stage $name: ctest $ctest_args"
  local out
  # shellcheck disable=SC2086
  out=$(cd "$dir" && ctest --output-on-failure -j "$jobs" --timeout 1200 $ctest_args 2>&1)
  local rc=$?
  echo "$out" | tail -n 200
  local line passed failed totaln
  line=$(echo "$out" | grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' | tail -n 1)
  if [ -z "$line" ]; then
    summary+=("$name: NO TESTS RAN ($((SECONDS - t0)) s)")
    total_fail=$((total_fail + 1))
    finish
    exit 1
  fi
  failed=$(echo "$line" | sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/')
  totaln=$(echo "$line" | sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/')
  passed=$((totaln - failed))
  total_pass=$((total_pass + passed))
  total_fail=$((total_fail + failed))
  summary+=("$name: $passed passed, $failed failed ($((SECONDS - t0)) s)")
  if [ $rc -ne 0 ] || [ "$failed" -ne 0 ]; then
    finish
    exit 1
  fi
}

run_stage release build/release "" -- \
  -DCMAKE_BUILD_TYPE=Release

# march_stage LEVEL: compile two of the -march=native programs and test_kernels for another x86-64 level, so a
# build that breaks only on a CPU with other vector extensions (Eigen's AVX-512 code under -Werror, say) fails here
# on any x86 machine. The two: bench_nn (where the break of issue 16 showed: Eigen's GEMMs and the nn stack) and
# library_tour (the whole library through mixq/mixq.hpp); every other -march=native program compiles the same
# headers (the target mixq_native_programs builds them all, for a local check). Runs test_kernels when this CPU
# supports LEVEL (glibc's loader lists the levels it supports).
march_stage() {
  local level=$1 dir=build/march-$1
  local log="$root/$dir/stage.log" t0=$SECONDS
  mkdir -p "$dir"
  echo "== stage march $level: compile bench_nn, library_tour and test_kernels in $dir"
  if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DMIXQ_NATIVE=OFF -DCMAKE_CXX_FLAGS="-march=$level" \
         -DMIXQ_BUILD_PYTHON=OFF -DMIXQ_BUILD_TORCH=OFF >"$log" 2>&1 ||
     ! cmake --build "$dir" -j "$jobs" --target bench_nn library_tour test_kernels >>"$log" 2>&1; then
    tail -n 60 "$log"
    summary+=("march $level: BUILD FAILED ($((SECONDS - t0)) s, log $dir/stage.log)")
    total_fail=$((total_fail + 1))
    finish
    exit 1
  fi
  if ! /lib64/ld-linux-x86-64.so.2 --help 2>/dev/null | grep -q "$level (supported"; then
    summary+=("march $level: compiled; this CPU cannot run $level, test_kernels not run ($((SECONDS - t0)) s)")
    return
  fi
  local out rc
  out=$(cd "$dir" && ctest --output-on-failure --timeout 1200 -R '^test_kernels$' 2>&1)
  rc=$?
  echo "$out" | tail -n 40
  if [ $rc -ne 0 ] || ! echo "$out" | grep -q '100% tests passed'; then
    summary+=("march $level: test_kernels FAILED ($((SECONDS - t0)) s)")
    total_fail=$((total_fail + 1))
    finish
    exit 1
  fi
  total_pass=$((total_pass + 1))
  summary+=("march $level: compiled, test_kernels passed ($((SECONDS - t0)) s)")
}

if [ "$(uname -m)" = x86_64 ]; then
  march_stage x86-64-v4
  march_stage x86-64-v3
fi

# -O1 -g1 (line tables for the reports' stack traces) instead of RelWithDebInfo's -O2 -g: half the compile time,
# the unit tests run about as fast.
san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
run_stage sanitize build/sanitize "-L unit" -- \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DCMAKE_CXX_FLAGS="$san" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DMIXQ_BUILD_BENCHMARKS=OFF -DMIXQ_BUILD_EXAMPLES=OFF -DMIXQ_BUILD_PYTHON=OFF -DMIXQ_BUILD_TORCH=OFF -DMIXQ_BUILD_HEADER_CHECK=OFF

run_stage aarch64 build/aarch64 "-L unit" -- \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_TOOLCHAIN_FILE="$root/cmake/toolchains/aarch64-linux-gnu.cmake" \
  -DMIXQ_BUILD_BENCHMARKS=OFF -DMIXQ_BUILD_EXAMPLES=OFF -DMIXQ_BUILD_PYTHON=OFF -DMIXQ_BUILD_TORCH=OFF -DMIXQ_BUILD_HEADER_CHECK=OFF

if [ -d tests/fuzz ]; then
  run_stage fuzz build/fuzz "-L fuzz" -- \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DMIXQ_BUILD_FUZZERS=ON \
    -DMIXQ_BUILD_TESTS=OFF -DMIXQ_BUILD_BENCHMARKS=OFF -DMIXQ_BUILD_EXAMPLES=OFF -DMIXQ_BUILD_PYTHON=OFF \
    -DMIXQ_BUILD_TORCH=OFF
fi

finish
[ "$total_fail" -eq 0 ]
