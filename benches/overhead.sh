#!/usr/bin/env bash
# How much time `jump up -- true` adds on top of the sandbox's own task
# start-up, measured against benches/baseline.py (the least a client can do)
# in the same sandbox, in the same run, alternating, RUNS times each.
#
#   benches/overhead.sh [RUNS] [STEP]     (defaults: 5 runs, 1.0 s per lifecycle step)
#   JUMP_BIN=target/release/jump benches/overhead.sh
#
# Needs root and tests/sandbox/setup; builds nothing itself.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
step=${2:-1.0}
sandbox_step=$step
. benches/sandbox.sh
trap stop_sandbox EXIT
export JUMP_LOG_GROUP=/jump/bench

jump_times=() base_times=()
for i in $(seq "$runs"); do
    base_times+=("$("$py" benches/baseline.py)")
    start=$EPOCHREALTIME
    "$bin" up -- true > /dev/null 2> "$work/jump.err" || { cat "$work/jump.err" >&2; exit 1; }
    jump_times+=("$("$py" -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.3f}")' "$start" "$EPOCHREALTIME")")
    echo "run $i: baseline ${base_times[-1]} s, jump ${jump_times[-1]} s" >&2
done

"$py" - "$step" "${base_times[*]}" "${jump_times[*]}" <<'PY'
import statistics, sys
step = float(sys.argv[1])
base = [float(x) for x in sys.argv[2].split()]
jump = [float(x) for x in sys.argv[3].split()]
mb, mj = statistics.median(base), statistics.median(jump)
print(f"sandbox step {step:.2f} s; runs {len(base)}")
print(f"median baseline client : {mb:.3f} s  (min {min(base):.3f}, max {max(base):.3f})")
print(f"median jump up -- true : {mj:.3f} s  (min {min(jump):.3f}, max {max(jump):.3f})")
print(f"jump overhead          : {mj - mb:+.3f} s per session; ratio jump/baseline {mj / mb:.2f}")
PY
