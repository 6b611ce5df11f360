#!/bin/sh
# jumphost entrypoint: the process ECS runs as the jumphost task's only
# essential container.
#
# Why it exists: the task must be safe to forget. Whatever happens to the
# client (killed, laptop closed, CI runner gone), this script ends the task by
# itself once its time-to-live has passed or once nobody has used it for the
# idle timeout, so no jumphost outlives its purpose.
#
# Interface (jump relies on it):
#   JUMP_AUTHORIZED_KEYS  authorized_keys lines for the login user. When set, a
#                         fresh ed25519 host key is generated, its public half is
#                         printed as `jump-host-key: <type> <base64>` (the client
#                         pins it, read through CloudWatch Logs), and sshd runs
#                         with public-key authentication only. When unset, no
#                         sshd runs: the task stays up for ECS Exec only.
#   JUMP_SSHD             1: run sshd even with no keys (a warm pool's ssh-mode
#                         jumphost). Nobody can log in until a claim installs its
#                         session's key through ECS Exec with jump-authorize,
#                         which also prints the host key to the claimer.
#   JUMP_TTL_SECONDS      hard lifetime (default 3600).
#   JUMP_IDLE_SECONDS     end after this long without a session (default 900;
#                         0 disables the idle rule, never the TTL).
#   JUMP_LOGIN_USER       login user (default jump).
#   JUMP_RUNTIME_DIR      where keys and sshd state live (default /run/jump).
#   JUMP_WATCH_INTERVAL   seconds between watchdog checks (default 2).
#   JUMP_OWNER, JUMP_SESSION_ID
#                         echoed to the log for the audit trail.
# Arguments, if any, are the task's main command: it runs after set-up, and
# the task ends with its exit status (the TTL still applies).
#
# A session is an sshd connection (a child of the listening sshd) or an ECS
# Exec session (an ssm-session-worker process in this network namespace).
set -eu

log() { printf 'jump: %s\n' "$*"; }
fail() { printf 'jump: error: %s\n' "$*" >&2; exit 78; }

is_uint() { case "$1" in ''|*[!0-9]*) return 1 ;; *) return 0 ;; esac; }

ttl=${JUMP_TTL_SECONDS:-3600}
idle=${JUMP_IDLE_SECONDS:-900}
user=${JUMP_LOGIN_USER:-jump}
runtime=${JUMP_RUNTIME_DIR:-/run/jump}
interval=${JUMP_WATCH_INTERVAL:-2}

{ is_uint "$ttl" && [ "$ttl" -gt 0 ]; } || fail "JUMP_TTL_SECONDS must be a positive whole number, got '$ttl'"
is_uint "$idle" || fail "JUMP_IDLE_SECONDS must be a whole number, got '$idle'"
{ is_uint "$interval" && [ "$interval" -gt 0 ]; } || fail "JUMP_WATCH_INTERVAL must be a positive whole number, got '$interval'"
id "$user" >/dev/null 2>&1 || fail "login user '$user' does not exist in this image"
# jump-authorize sits next to this script: in the image both are in /usr/local/bin.
authorize=$(dirname "$0")/jump-authorize
[ -x "$authorize" ] || authorize=$(dirname "$0")/authorize.sh

sshd_pid=
main_pid=

stop_children() {
    for pid in $main_pid $sshd_pid; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $main_pid $sshd_pid; do
        wait "$pid" 2>/dev/null || true
    done
}

finish() {
    trap - TERM INT HUP
    stop_children
    log "stopped (exit $1)"
    exit "$1"
}

trap 'log "received SIGTERM"; finish 143' TERM
trap 'log "received SIGINT"; finish 130' INT
trap 'log "received SIGHUP"; finish 129' HUP

log "session ${JUMP_SESSION_ID:-unknown} owner ${JUMP_OWNER:-unknown} ttl ${ttl}s idle ${idle}s"

mkdir -p "$runtime"
chmod 0755 "$runtime"

sshd=${JUMP_SSHD:-0}
case "$sshd" in 0|1) ;; *) fail "JUMP_SSHD must be 0 or 1, got '$sshd'" ;; esac
[ -n "${JUMP_AUTHORIZED_KEYS:-}" ] && sshd=1

if [ "$sshd" = 1 ]; then
    umask 022
    rm -f "$runtime/host_ed25519_key" "$runtime/host_ed25519_key.pub"
    ssh-keygen -q -t ed25519 -N '' -C '' -f "$runtime/host_ed25519_key"
    cat > "$runtime/sshd_config" <<EOF
Port 22
ListenAddress 0.0.0.0
HostKey $runtime/host_ed25519_key
PidFile $runtime/sshd.pid
AuthorizedKeysFile $runtime/authorized_keys
AllowUsers $user
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
PermitEmptyPasswords no
UsePAM no
AuthenticationMethods publickey
AllowTcpForwarding local
AllowAgentForwarding no
AllowStreamLocalForwarding no
PermitTunnel no
GatewayPorts no
PermitUserEnvironment no
X11Forwarding no
Subsystem sftp internal-sftp
PrintMotd no
ClientAliveInterval 30
ClientAliveCountMax 4
LogLevel INFO
EOF
    mkdir -p /run/sshd
    # The one host-key line of the log (with no keys: an empty authorized_keys file).
    if [ -n "${JUMP_AUTHORIZED_KEYS:-}" ]; then printf '%s\n' "$JUMP_AUTHORIZED_KEYS"; fi \
        | JUMP_RUNTIME_DIR=$runtime "$authorize"
    /usr/sbin/sshd -D -e -f "$runtime/sshd_config" &
    sshd_pid=$!
    if [ -n "${JUMP_AUTHORIZED_KEYS:-}" ]; then
        log "sshd listening on port 22 for user $user"
    else
        log "sshd listening on port 22 for user $user; no key may log in until one is authorized"
    fi
else
    log "no authorized keys given: ECS Exec only"
fi

if [ "$#" -gt 0 ]; then
    "$@" &
    main_pid=$!
fi

sessions() {
    n=0
    if [ -n "$sshd_pid" ]; then
        n=$(pgrep -P "$sshd_pid" 2>/dev/null | wc -l)
    fi
    m=$(pgrep --ns $$ --nslist net -f ssm-session-worker 2>/dev/null | wc -l)
    echo $((n + m))
}

started=$(date +%s)
last_active=$started
while :; do
    now=$(date +%s)
    if [ $((now - started)) -ge "$ttl" ]; then
        log "time to live of ${ttl}s reached"
        finish 0
    fi
    if [ "$(sessions)" -gt 0 ]; then
        last_active=$now
    elif [ "$idle" -gt 0 ] && [ $((now - last_active)) -ge "$idle" ]; then
        log "no session for ${idle}s"
        finish 0
    fi
    if [ -n "$main_pid" ] && ! kill -0 "$main_pid" 2>/dev/null; then
        status=0
        wait "$main_pid" || status=$?
        main_pid=
        log "command exited with status $status"
        finish "$status"
    fi
    if [ -n "$sshd_pid" ] && ! kill -0 "$sshd_pid" 2>/dev/null; then
        sshd_pid=
        log "sshd exited unexpectedly"
        finish 70
    fi
    sleep "$interval" &
    wait $! || true
done
