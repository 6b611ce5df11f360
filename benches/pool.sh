#!/usr/bin/env bash
# What a warm pool saves: `jump up --mode exec -- true` started cold against the same
# command claiming a warm jumphost from a pool of 3, alternating in one run, RUNS times
# each, and how long the pool takes to be back to 3 warm after each claimed session ends.
#
#   benches/pool.sh [RUNS] [STEP]     (defaults: 5 runs, 1.0 s per lifecycle step)
#   JUMP_BIN=target/release/jump benches/pool.sh
#
# Needs root and tests/sandbox/setup; builds nothing itself.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
step=${2:-1.0}
sandbox_step=$step
. benches/sandbox.sh
trap stop_sandbox EXIT

warm() { "$bin" pool status --name bench --json | "$py" -c 'import json,sys; print(json.load(sys.stdin)["warm"])'; }
wait_warm() {
    for _ in $(seq 1200); do [ "$(warm)" = 3 ] && return 0; sleep 0.1; done
    echo "the pool never got back to 3 warm" >&2
    exit 1
}
elapsed() { "$py" -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.3f}")' "$1" "$EPOCHREALTIME"; }

"$bin" pool create --name bench --size 3 > /dev/null
wait_warm
cold=() pooled=() refill=()
for i in $(seq "$runs"); do
    start=$EPOCHREALTIME
    "$bin" up --mode exec -- true > /dev/null 2> "$work/cold.err" || { cat "$work/cold.err" >&2; exit 1; }
    cold+=("$(elapsed "$start")")
    start=$EPOCHREALTIME
    "$bin" up --pool bench -- true > /dev/null 2> "$work/pool.err" || { cat "$work/pool.err" >&2; exit 1; }
    pooled+=("$(elapsed "$start")")
    grep -q "starting one (cold)" "$work/pool.err" && { echo "run $i did not claim a warm task" >&2; exit 1; }
    start=$EPOCHREALTIME
    wait_warm
    refill+=("$(elapsed "$start")")
    echo "run $i: cold ${cold[-1]} s, pool ${pooled[-1]} s, back to 3 warm after ${refill[-1]} s" >&2
done
"$bin" pool delete --name bench > /dev/null

"$py" - "$step" "${cold[*]}" "${pooled[*]}" "${refill[*]}" <<'PY'
import statistics, sys
step = float(sys.argv[1])
cold, pooled, refill = ([float(x) for x in arg.split()] for arg in sys.argv[2:5])
c, p, r = statistics.median(cold), statistics.median(pooled), statistics.median(refill)
print(f"sandbox step {step} s, {len(cold)} runs each, alternating")
print(f"cold jump up --mode exec -- true: median {c:.2f} s (min {min(cold):.2f}, max {max(cold):.2f})")
print(f"from the pool:                    median {p:.2f} s (min {min(pooled):.2f}, max {max(pooled):.2f})")
print(f"ratio pool/cold: {p / c:.2f}")
print(f"pool back to 3 warm after a session: median {r:.1f} s")
PY
