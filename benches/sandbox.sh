# shellcheck shell=bash
# Shared by the benchmark scripts (sourced, not run): the jump binary to measure and
# a sandbox that lives as long as the calling script.
#
# Sets: bin (the jump binary), py (the sandbox's Python), work (a scratch directory),
# and the sandbox's environment (AWS_ENDPOINT_URL, JUMP_CLUSTER, ...). The caller's
# EXIT trap must call `stop_sandbox`.
target=${CARGO_TARGET_DIR:-target}
bin=${JUMP_BIN:-$target/release/jump}
[ -x "$bin" ] || bin=$target/debug/jump
[ -x "$bin" ] || { echo "no jump binary: cargo build --release (or set JUMP_BIN)" >&2; exit 1; }
py=tests/sandbox/.venv/bin/python
[ -x "$py" ] || { echo "run tests/sandbox/setup first" >&2; exit 1; }

work=$(mktemp -d)
# jump's jumphost runs as a real container (its own filesystem and process table), as the
# tests run it; the build is cached after its first run.
dockerfiles/jumphost/build --offline --tag jumphost:sandbox > "$work/image.log" 2>&1 || {
    cat "$work/image.log" >&2
    exit 1
}
# The sandbox stops (and cleans up) when fd 9 closes, however the script ends.
exec 9> >(tests/sandbox/start --env-file "$work/env" --step "${sandbox_step:-1.0}" --stop-on-eof \
    --jumphost-image jumphost:sandbox > "$work/sandbox.log" 2>&1)
for _ in $(seq 600); do [ -f "$work/env" ] && break; sleep 0.1; done
[ -f "$work/env" ] || { cat "$work/sandbox.log" >&2; exit 1; }
set -a
# Written by tests/sandbox/start at run time, so not for shellcheck to follow.
# shellcheck source=/dev/null
. "$work/env"
set +a
export JUMP_STATE_DIR="$work/state"

stop_sandbox() { exec 9>&-; wait; rm -rf "$work"; }
