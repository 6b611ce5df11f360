#!/usr/bin/env bash
# How long a session is cut off when the service recycles its WebSocket, and what is lost:
# `jump up --mode exec` runs a command that prints a numbered stream for SECONDS while the
# sandbox's gateway closes every connection (code 1000) once a second, as the service does
# about hourly. jump's own log (-vv) gives each resume's time, from the moment it saw the
# connection go to the moment the new one carries the session; the output is compared with
# what the command printed, line for line. Then, five times: a session terminated through
# the API (resume refused), and how long jump takes from that call to its exit 76.
#
#   benches/resume.sh [SECONDS]          (default 22: about 20 recycles)
#   JUMP_BIN=target/release/jump benches/resume.sh
#
# Needs root and tests/sandbox/setup; builds nothing itself.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-22}
sandbox_step=0.2
. benches/sandbox.sh
trap stop_sandbox EXIT

tests/sandbox/ctl gateway-fault --recycle-every 1 > /dev/null
# 5000 numbered lines a second: the stream is never idle across a recycle.
script="i=0; while [ \$i -lt $seconds ]; do seq \$((i*5000+1)) \$((i*5000+5000)); i=\$((i+1)); sleep 1; done"
"$bin" -vv up --mode exec -- sh -c "$script" < /dev/null > "$work/out" 2> "$work/log" || {
    tail -20 "$work/log" >&2
    exit 1
}
seq 1 $((seconds * 5000)) > "$work/expected"

tests/sandbox/ctl gateway-fault > /dev/null  # no faults: each session has one connection
refused=()
for i in 1 2 3 4 5; do
    "$bin" up --mode exec -- sh -c 'echo started; sleep 60' < /dev/null > "$work/refused.$i" 2> /dev/null &
    up=$!
    for _ in $(seq 600); do grep -q started "$work/refused.$i" && break; sleep 0.05; done
    id=$(tests/sandbox/.venv/bin/aws --endpoint-url "$AWS_ENDPOINT_URL" --output json ssm describe-sessions \
        --state Active | "$py" -c 'import json,sys; print(json.load(sys.stdin)["Sessions"][0]["SessionId"])')
    start=$EPOCHREALTIME
    tests/sandbox/.venv/bin/aws --endpoint-url "$AWS_ENDPOINT_URL" ssm terminate-session --session-id "$id" > /dev/null
    code=0
    wait "$up" || code=$?
    [ "$code" = 76 ] || { echo "jump exited $code, not 76, when its session was terminated" >&2; exit 1; }
    refused+=("$("$py" -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$start" "$EPOCHREALTIME")")
done

"$py" - "$work/log" "$work/out" "$work/expected" "${refused[*]}" <<'PY'
import re, statistics, sys
log, out, expected = (open(p, "rb").read() for p in sys.argv[1:4])
refused = [float(x) for x in sys.argv[4].split()]
units = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1000.0}
found = re.findall(r"data channel resumed after=([\d.]+)(ns|µs|us|ms|s)\b", log.decode("utf-8", "replace"))
times = [float(value) * units[unit] for value, unit in found]
if not times:
    sys.exit("no resume in jump's log: did the gateway recycle the connection?")
lost = len(expected) - len(out) if out == expected[: len(out)] else None
print(f"resumes: {len(times)}; time to resume: median {statistics.median(times):.1f} ms "
      f"(min {min(times):.1f}, max {max(times):.1f})")
print(f"output: {len(out)} of {len(expected)} bytes, "
      + ("identical" if out == expected else f"differs ({'lost ' + str(lost) if lost is not None else 'corrupted'})"))
print(f"session terminated to jump's exit 76: median {statistics.median(refused):.2f} s "
      f"(min {min(refused):.2f}, max {max(refused):.2f}) over {len(refused)}")
PY
