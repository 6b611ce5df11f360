#!/usr/bin/env bash
# What `jump cp` costs: a SIZE MB file of random bytes up to a task and back, RUNS times
# each way, side by side in one run with the other ways to move the same bytes:
#   - over ECS Exec: `jump cp` (base64 through a terminal, cksum-checked) against piping
#     the file through `jump exec -- sh -c 'cat > F'` and `jump exec -- cat F` (raw bytes,
#     unchecked, needs stty and head -c in the container);
#   - over ssh: `jump cp` to an ssh session started here (scp under jump) against plain
#     scp with the session's `jump ssh-config`.
#
#   benches/cp.sh [RUNS] [SIZE_MB]     (defaults: 3 runs, 100 MB)
#   JUMP_BIN=target/release/jump benches/cp.sh
#
# Needs root and tests/sandbox/setup; builds nothing itself.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
size=${2:-100}
sandbox_step=0.2
. benches/sandbox.sh
trap stop_sandbox EXIT

session() { "$bin" up --mode "$1" --detach --json | "$py" -c 'import json,sys; print(json.load(sys.stdin)["session"])'; }
elapsed() { "$py" -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.3f}")' "$1" "$EPOCHREALTIME"; }
timed() { # NAME COMMAND...: runs it, appends its time to the NAME file
    local name=$1 start
    shift
    start=$EPOCHREALTIME
    "$@" > /dev/null 2> "$work/last.err" || { cat "$work/last.err" >&2; exit 1; }
    elapsed "$start" >> "$work/$name.times"
}
same() { cmp -s "$work/blob" "$1" || { echo "$1 arrived altered" >&2; exit 1; }; }

pipe_up() { "$bin" exec "$exec_id" -- sh -c 'cat > /tmp/piped' < "$work/blob"; }
pipe_down() { "$bin" exec "$exec_id" -- cat /tmp/piped > "$work/piped"; }

head -c "$((size * 1000000))" /dev/urandom > "$work/blob"
exec_id=$(session exec)
ssh_id=$(session ssh)
"$bin" ssh-config "$ssh_id" > "$work/ssh.config"
for i in $(seq "$runs"); do
    timed cp-up "$bin" cp "$work/blob" "$exec_id:/tmp/blob"
    timed pipe-up pipe_up
    timed cp-down "$bin" cp "$exec_id:/tmp/blob" "$work/down"
    same "$work/down"
    timed pipe-down pipe_down
    same "$work/piped"
    timed scp-jump-up "$bin" cp "$work/blob" "$ssh_id:blob"
    timed scp-up scp -q -F "$work/ssh.config" "$work/blob" "jump-$ssh_id:plain"
    timed scp-jump-down "$bin" cp "$ssh_id:blob" "$work/scp-down"
    same "$work/scp-down"
    timed scp-down scp -q -F "$work/ssh.config" "jump-$ssh_id:plain" "$work/scp-plain"
    same "$work/scp-plain"
    echo "run $i done" >&2
done
"$bin" down --all-mine > /dev/null

"$py" - "$work" "$size" "$runs" <<'PY'
import pathlib, statistics, sys
work, size, runs = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def median(name):
    return statistics.median(float(x) for x in (work / f"{name}.times").read_text().split())
print(f"{size} MB of random bytes, {runs} runs each, side by side; medians")
for way, ours, theirs, what in [
    ("up, ECS Exec", "cp-up", "pipe-up", "jump exec -- sh -c 'cat > F' < file"),
    ("down, ECS Exec", "cp-down", "pipe-down", "jump exec -- cat F > file"),
    ("up, ssh", "scp-jump-up", "scp-up", "scp -F (jump ssh-config)"),
    ("down, ssh", "scp-jump-down", "scp-down", "scp -F (jump ssh-config)"),
]:
    a, b = median(ours), median(theirs)
    print(f"{way:15} jump cp {a:6.2f} s ({size / a:6.1f} MB/s)  {what}: {b:6.2f} s  ratio {a / b:.2f}")
PY
