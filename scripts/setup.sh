#!/usr/bin/env bash
# Idempotent setup: installs the Debian packages kvstream needs (only when missing), then
# configures and builds into build/ (RelWithDebInfo, -j2). Extra arguments go to cmake configure,
# e.g. scripts/setup.sh -DKVSTREAM_SANITIZE=address,undefined. BUILD_DIR overrides build/;
# BUILD_TARGET builds one target instead of all. With -DKVSTREAM_FUZZ=ON it also installs clang and
# its libFuzzer runtime (clang + libclang-rt-14-dev on bookworm); the default build needs neither.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"

packages=(build-essential cmake libasio-dev nlohmann-json3-dev catch2 libcli11-dev libzstd-dev
          python3 python3-matplotlib python3-numpy iperf3 libssl-dev openssl redis-server redis-tools
          libhiredis-dev
          python3-dev pybind11-dev python3-pytest)  # the Python module (python/) and its tests
case " $* " in *" -DKVSTREAM_FUZZ=ON "*) packages+=(clang libclang-rt-14-dev) ;; esac
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi

if [ ! -f "$build/CMakeCache.txt" ] || [ $# -gt 0 ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
fi
cmake --build "$build" -j"${JOBS:-2}" ${BUILD_TARGET:+--target "$BUILD_TARGET"}
