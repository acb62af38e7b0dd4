#!/usr/bin/env bash
# The kvstream library as an embedding program sees it (run by ctest: "package: ..."):
#   scripts/test_package.sh install BUILD_DIR   cmake --install BUILD_DIR into a temporary prefix,
#                                               then build examples/embed with find_package(kvstream)
#   scripts/test_package.sh subdir BUILD_DIR    build examples/embed with add_subdirectory(<this repo>)
# then, on real data: prefill two TinyStories passages with stories260K (BUILD_DIR/bin/kvstream),
# build a model-free profile from one's KV (`profile --kv`), encode the other into a .kvs, serve
# it with `kvstream send`, fetch it with embed into a paged fp16 layout with a mixed plan, and
# require embed's K/V to equal, byte for byte, `kvstream decode --dtype f16` of every chunk at the
# level the plan gave it. Env: KVSTREAM_DATA (default data/), JOBS (default 2).
set -euo pipefail
mode="$1"
build="$(cd "$2" && pwd)"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="${KVSTREAM_DATA:-$root/data}"
kv="$build/bin/kvstream"
py="${PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/kvstream-package-$mode.XXXXXX")"
send_pid=""
cleanup() {
  [ -n "$send_pid" ] && kill "$send_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

echo "== $mode: build examples/embed"
if [ "$mode" = install ]; then
  cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
  # Only the public headers are installed.
  if find "$work/prefix/include" -type f | grep -v '/include/kvstream/' | grep -q .; then
    echo "test_package: headers outside include/kvstream/ were installed" >&2; exit 1
  fi
  cmake -S "$root/examples/embed" -B "$work/embed" -DCMAKE_PREFIX_PATH="$work/prefix" \
    -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" > "$work/configure.log"
elif [ "$mode" = subdir ]; then
  # This mode compiles kvstream's libraries again, which dominated the suite's time, so it builds
  # only what embed links (kvstream is EXCLUDE_FROM_ALL there), with no CUDA, tests, CLI or Python,
  # and unoptimised (no build type, NDEBUG as in a release: several times faster to compile than
  # Release; the float results are the same at any -O, no fast-math, no FMA contraction, and are
  # checked against the CLI's decode below). Its build folder stays under BUILD_DIR, so a rerun is
  # incremental (and its compiler commands are stable for ccache).
  embed_build="$build/test_package/subdir"
  cmake -S "$root/examples/embed" -B "$embed_build" -DKVSTREAM_SOURCE_DIR="$root" -DKVSTREAM_CUDA=OFF \
    -DKVSTREAM_PYTHON=OFF -DKVSTREAM_BUILD_TESTS=OFF -DKVSTREAM_BUILD_CLI=OFF -DKVSTREAM_INSTALL=OFF \
    -DCMAKE_BUILD_TYPE= -DCMAKE_CXX_FLAGS=-DNDEBUG "${launcher[@]}" > "$work/configure.log"
else
  echo "usage: $0 install|subdir BUILD_DIR" >&2; exit 2
fi
embed_build="${embed_build:-$work/embed}"
cmake --build "$embed_build" -j"${JOBS:-2}" --target embed > "$work/build.log" || { tail -40 "$work/build.log"; exit 1; }

echo "== $mode: a real context, served"
model="$data/models/stories260K/stories260K.bin"
tok="$data/models/stories260K/tok512.bin"
text="$data/text/tinystories_val.txt"
"$kv" prefill --model "$model" --tokenizer "$tok" --prompt "$(head -c 4000 "$text")" --max-tokens 320 \
  -o "$work/calib.safetensors" > /dev/null
"$kv" prefill --model "$model" --tokenizer "$tok" --prompt "$(tail -c 6000 "$text")" --max-tokens 300 \
  -o "$work/ctx.safetensors" > /dev/null
mkdir -p "$work/serve"
"$kv" profile --kv "$work/calib.safetensors" -o "$work/serve/p.kvprofile" > "$work/profile.log"
"$kv" encode "$work/ctx.safetensors" --profile "$work/serve/p.kvprofile" --baselines -o "$work/serve/story.kvs" > /dev/null
"$kv" send --insecure --listen 127.0.0.1:0 --dir "$work/serve" --quiet --duration-s 120 > "$work/send.log" 2>&1 &
send_pid=$!
port=""
for _ in $(seq 300); do
  port=$(sed -n 's/.* on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/send.log" | head -1)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "test_package: the sender did not start:" >&2; cat "$work/send.log" >&2; exit 1; }

# A plan cycling through the ladder (KV levels only; 300 tokens = 5 chunks of 64).
levels=($("$py" - "$work/profile.log" <<'PY'
import re, sys
print(" ".join(re.findall(r"^  (\S+): ", open(sys.argv[1]).read(), re.M)))
PY
))
plan=()
for c in 0 1 2 3 4; do
  all=("${levels[@]}" fp16 q8 q4)
  plan+=("${all[$(( (c * 2) % ${#all[@]} ))]}")
done
plan_text=$(IFS=,; echo "${plan[*]}")

echo "== $mode: embed fetches plan $plan_text into paged fp16"
"$embed_build/embed" "127.0.0.1:$port" story "$work/serve/p.kvprofile" "plan:$plan_text" 300 "$work/fetched.bin"
for c in 0 1 2 3 4; do
  "$kv" decode "$work/serve/story.kvs" --profile "$work/serve/p.kvprofile" --level "${plan[$c]}" \
    --chunks "$c:$((c + 1))" --dtype f16 -o "$work/chunk$c.safetensors" > /dev/null
done
"$py" - "$work" <<'PY'
import json, struct, sys
work = sys.argv[1]
def tensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    head = json.loads(b[8:8 + n])
    meta = head.get("__metadata__", {})
    data = b[8 + n:]
    return meta, {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in head.items() if k != "__metadata__"}
chunks = [tensors(f"{work}/chunk{c}.safetensors") for c in range(5)]
layers = int(chunks[0][0]["n_layers"])
expected = b"".join(b"".join(t[f"{kind}.{l}"] for _, t in chunks) for l in range(layers) for kind in "kv")
got = open(f"{work}/fetched.bin", "rb").read()
if got != expected:
    first = next(i for i in range(min(len(got), len(expected))) if got[i] != expected[i]) if len(got) == len(expected) else -1
    sys.exit(f"test_package: embed's K/V differ from kvstream decode ({len(got)} vs {len(expected)} bytes, first diff at {first})")
print(f"test_package: embed's paged fp16 K/V equal kvstream decode of the same plan ({len(got)} bytes)")
PY
