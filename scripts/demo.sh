#!/usr/bin/env bash
# Installs what is missing, builds mixq in Release, and runs the main example.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j "${MIXQ_JOBS:-2}" --target quickstart >/dev/null
./build/release/examples/quickstart "$@"
