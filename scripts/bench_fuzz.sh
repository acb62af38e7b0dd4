#!/usr/bin/env bash
# Fuzzing run (issue 13): builds the libFuzzer targets of fuzz/ with clang (ASan + UBSan, into
# build-fuzz/), writes each target's seed corpus (generated from data/ by fuzz_seeds), and fuzzes
# the targets one after another, one fuzzer process at a time, each for RUNS executions (default
# 10 million) with -rss_limit_mb=512 -malloc_limit_mb=256 -timeout=10, in libFuzzer's fork mode
# with one job (-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1) so that a finding is
# counted and the run goes on. Per target it records executions, exec/s, and the crashes, leaks,
# timeouts and ooms found: distinct inputs saved under OUT/artifacts/TARGET/ (crash-*, leak-*,
# timeout-*, oom-*), plus libFuzzer's count of fork jobs that ended in each (a leak ends a job as
# a crash). Writes OUT/TARGET.json per target and OUT/fuzz.json (all targets);
# scripts/bench_reliability.sh includes the latter. A target whose OUT/TARGET.json exists for the
# same RUNS is not run again (resume after an interruption) unless FRESH=1.
# Every crasher found becomes a regression case: copy it to fuzz/regressions/TARGET/ (ctest
# replays that directory in every build: "fuzz: replay TARGET").
# Usage: scripts/bench_fuzz.sh [TARGET...]   (default: every target)
#   env: RUNS (10000000), OUT (out/fuzz), BUILD_DIR (build-fuzz), FRESH (0)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build-fuzz}"
out="${OUT:-$root/out/fuzz}"
runs="${RUNS:-10000000}"
limits=(-rss_limit_mb=512 -malloc_limit_mb=256 -timeout=10)

BUILD_DIR="$build" BUILD_TARGET=fuzz_all "$root/scripts/setup.sh" -DKVSTREAM_FUZZ=ON \
  -DCMAKE_CXX_COMPILER=clang++ -DKVSTREAM_SANITIZE=address,undefined -DKVSTREAM_CUDA=OFF \
  -DKVSTREAM_BUILD_TESTS=OFF
script_args="$*"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$root"/fuzz/targets/*.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi
mkdir -p "$out"
rm -rf "$out/seeds"
"$build/bin/fuzz_seeds" "$out/seeds" "${targets[@]}"

# OUT/fuzz.json from every OUT/TARGET.json so far (rewritten after each target, so that an
# interrupted run still leaves a valid summary).
summarize() {
  /usr/bin/python3 - "$out" "$runs" "$script_args" <<'PY' >"$out/fuzz.json"
import glob, json, os, sys
out, runs, args = sys.argv[1:]
rs = [json.load(open(f)) for f in sorted(glob.glob(os.path.join(out, "*.json"))) if not f.endswith("/fuzz.json")]
print(json.dumps({"command": "scripts/bench_fuzz.sh" + (" " + args if args else ""), "runs_per_target": int(runs),
                  "targets": rs, "all_clean": bool(rs) and all(r["clean"] for r in rs),
                  "total_executions": sum(r["executions"] for r in rs)}, indent=1))
PY
}

for t in "${targets[@]}"; do
  json="$out/$t.json"
  if [ "${FRESH:-0}" != 1 ] && [ -f "$json" ] && grep -q "\"runs_asked\": $runs," "$json"; then
    echo "bench_fuzz: $t already done ($json)"; continue
  fi
  corpus="$out/corpus/$t" art="$out/artifacts/$t" log="$out/$t.log"
  rm -rf "$art"
  mkdir -p "$corpus" "$art"
  echo "bench_fuzz: $t: $runs runs (log $log)"
  start=$(date +%s)
  set +e
  "$build/bin/fuzz_$t" -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 -runs="$runs" \
    "${limits[@]}" -artifact_prefix="$art/" "$corpus" "$out/seeds/$t" >"$log" 2>&1
  rc=$?
  set -e
  wall=$(( $(date +%s) - start ))
  /usr/bin/python3 - "$t" "$log" "$art" "$runs" "$rc" "$wall" "${limits[*]}" >"$json" <<'PY'
import json, os, re, sys
t, log, art, runs, rc, wall, limits = sys.argv[1:]
last = None
for line in open(log, errors="replace"):
    m = re.match(r"#(\d+): cov: (\d+) ft: (\d+) corp: (\d+) exec/s:? (\d+) oom/timeout/crash: (\d+)/(\d+)/(\d+) time: (\d+)s", line)
    if m: last = [int(x) for x in m.groups()]
files = sorted(os.listdir(art))
kind = lambda k: sum(1 for f in files if f.startswith(k + "-"))
r = {"target": t, "runs_asked": int(runs), "exit_code": int(rc), "wall_s": int(wall), "limits": limits,
     "executions": 0, "exec_per_s": 0, "coverage": 0, "features": 0, "corpus": 0,
     "crashes": kind("crash"), "leaks": kind("leak"), "timeouts": kind("timeout"), "ooms": kind("oom"),
     "artifacts": files, "failed_jobs": {}}
if last:
    n, cov, ft, corp, _, oom, tmo, crash, secs = last
    r.update(executions=n, exec_per_s=round(n / max(secs, 1)), coverage=cov, features=ft, corpus=corp, fuzz_s=secs,
             failed_jobs={"crash": crash, "timeout": tmo, "oom": oom})
r["clean"] = bool(last) and r["executions"] >= r["runs_asked"] and not files and not any(r["failed_jobs"].values())
print(json.dumps(r, indent=1))
PY
  grep -E '"(executions|exec_per_s|crashes|leaks|timeouts|ooms|clean)"' "$json" | tr -d '\n'; echo
  summarize
done

summarize
echo "bench_fuzz: wrote $out/fuzz.json"
