#!/usr/bin/env bash
# A full jump session on the local AWS sandbox, from a fresh clone, in one command:
#
#   sudo examples/try-it.sh
#
# Installs the sandbox's dependencies, builds jump, starts the sandbox, then
# runs a command on a jumphost, opens and lists a detached session, and
# stops everything. Needs root (the sandbox makes network namespaces) and cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/sandbox/setup > /dev/null
cargo build -q -j 2
jump="${CARGO_TARGET_DIR:-target}/debug/jump"

work=$(mktemp -d)
trap 'exec 9>&-; wait; rm -rf "$work"' EXIT
# The sandbox stops (and cleans up) when this script closes fd 9, however it ends.
exec 9> >(exec tests/sandbox/start --env-file "$work/sandbox.env" --stop-on-eof > "$work/sandbox.log" 2>&1)
for _ in $(seq 600); do [ -f "$work/sandbox.env" ] && break; sleep 0.1; done
[ -f "$work/sandbox.env" ] || { cat "$work/sandbox.log" >&2; exit 1; }
set -a
# Written by tests/sandbox/start at run time, so not for shellcheck to follow.
# shellcheck source=/dev/null
. "$work/sandbox.env"
set +a
export JUMP_STATE_DIR="$work/state"

bold='' plain=''
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' plain=$'\033[0m'; fi
step() { printf '\n%s$ %s%s\n' "$bold" "$*" "$plain"; }
step "jump up -- sh -c 'echo hello from \$(hostname), inside the VPC; exit 3'"
status=0
# shellcheck disable=SC2016 # $(hostname) is for the remote shell to expand
"$jump" up -- sh -c 'echo hello from $(hostname), inside the VPC; exit 3' || status=$?
echo "(jump exited with $status: the remote command's status)"
[ "$status" -eq 3 ]

step jump up --detach
"$jump" up --detach
step jump ls
"$jump" ls
step jump down --all-mine
"$jump" down --all-mine
step jump ls
"$jump" ls
