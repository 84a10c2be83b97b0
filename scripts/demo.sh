#!/usr/bin/env bash
# Installs what is missing, builds mixq in Release, and runs the main example: LIMPQ end to end on
# Fashion-MNIST in quick mode (examples/limpq_fashion_mnist.cpp, about 3 minutes on 2 cores), after the
# kernels quickstart (examples/quickstart.cpp, a second). Arguments go to limpq_fashion_mnist.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j "${MIXQ_JOBS:-2}" --target quickstart limpq_fashion_mnist >/dev/null
./build/release/examples/quickstart
echo
./build/release/examples/limpq_fashion_mnist --quick --json build/release/limpq_quick.json "$@"
