#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test through CTest (no GPU needed: tests that
# need a CUDA device skip themselves). Extra arguments go to ctest (e.g. -R codec).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
cd "${BUILD_DIR:-$root/build}"
ctest --output-on-failure -j"${JOBS:-2}" --timeout 900 "$@"
