#!/usr/bin/env bash
# Installs, with apt-get, exactly the Debian 12 packages mixq's build, tests, benchmarks and examples need
# and that are missing. Quiet and idempotent when nothing is missing. Not root and something missing: prints
# the command to run and exits 1.
set -euo pipefail

packages=(
  cmake g++ clang libclang-rt-14-dev pkg-config
  libeigen3-dev libgtest-dev googletest libbenchmark-dev zlib1g-dev nlohmann-json3-dev coinor-libcbc-dev
  dataset-fashion-mnist
  python3-matplotlib
  qemu-user g++-aarch64-linux-gnu
  # The Python module, the torch extension and their tests/benchmarks (issue 21).
  pybind11-dev python3-dev python3-numpy python3-pytest libtorch-dev python3-torch python3-pulp
  # The nn layers' GEMM engine (oneDNN) and the engines bench_gemm compares it with (issue 23).
  libdnnl-dev libopenblas-serial-dev libblis-serial-dev
)
# The aarch64 cross build links zlib for arm64 from Debian's multiarch archive.
arm64_packages=(zlib1g-dev:arm64)

native_arch=$(dpkg --print-architecture)
# With arm64 added as a foreign architecture, an unqualified name can match two packages: ask for the native
# one first, then for an architecture-independent one.
is_installed() {
  local name=$1 status
  case "$name" in
    *:*) status=$(dpkg-query -W -f='${Status}' "$name" 2>/dev/null) ;;
    *) status=$(dpkg-query -W -f='${Status}' "$name:$native_arch" 2>/dev/null ||
                dpkg-query -W -f='${Status}' "$name" 2>/dev/null) ;;
  esac
  [ "$status" = "install ok installed" ]
}

missing=()
for p in "${packages[@]}" "${arm64_packages[@]}"; do
  is_installed "$p" || missing+=("$p")
done
need_arch=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  need_arch=1
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  echo "mixq needs these Debian packages: ${missing[*]}" >&2
  echo "Run as root:" >&2
  [ $need_arch -eq 1 ] && echo "  dpkg --add-architecture arm64" >&2
  echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
if [ $need_arch -eq 1 ]; then
  dpkg --add-architecture arm64
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for p in "${packages[@]}" "${arm64_packages[@]}"; do
  is_installed "$p" || { echo "install-deps: $p is still missing after apt-get" >&2; exit 1; }
done
