# jump's exec-mode watchdog: the command of an exec-mode jumphost on any image with sh.
# Ends the task at JUMP_TTL_SECONDS, and after JUMP_IDLE_SECONDS without an ECS Exec
# session (a session worker process of the exec agent in this task's network namespace,
# seen in /proc; when /proc cannot tell, only the TTL applies). Needs a POSIX shell with
# `test -ef` (dash, bash, busybox ash all have it), and date +%s, sleep and tr.
# The task runs this text as `sh -c TEXT`, so the text is its own command line: nothing
# in it may spell the worker's name in one piece, or the watchdog would count itself.
ttl=${JUMP_TTL_SECONDS:-3600}
idle=${JUMP_IDLE_SECONDS:-900}
interval=${JUMP_WATCH_INTERVAL:-2}
log() { printf 'jump: %s\n' "$*"; }
# A limit that is not a number must stop the task, never silently disable itself.
for value in "$ttl" "$idle" "$interval"; do
    case $value in
        '' | *[!0-9]*) log "error: JUMP_TTL_SECONDS, JUMP_IDLE_SECONDS and JUMP_WATCH_INTERVAL must be whole numbers"; exit 78 ;;
    esac
done
{ [ "$ttl" -gt 0 ] && [ "$interval" -gt 0 ]; } || { log "error: the TTL and the interval must be positive"; exit 78; }
trap 'log "received SIGTERM"; exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP
log "session ${JUMP_SESSION_ID:-unknown} owner ${JUMP_OWNER:-unknown} ttl ${ttl}s idle ${idle}s (exec watchdog)"
worker=ssm-session-
worker=${worker}worker
sessions() {
    n=0
    for p in /proc/[0-9]*; do
        # Another task's process (the sandbox shares one process table) is not a session;
        # a link this user may not read (the agent runs as root) is given the benefit.
        if [ -e "$p/ns/net" ]; then
            # shellcheck disable=SC3013 # -ef: every sh this runs on has it (see the top)
            [ "$p/ns/net" -ef /proc/$$/ns/net ] || continue
        fi
        case $(tr '\000' ' ' 2>/dev/null < "$p/cmdline") in
            *"$worker"*) n=$((n + 1)) ;;
        esac
    done
    echo "$n"
}
started=$(date +%s)
last_active=$started
while :; do
    now=$(date +%s)
    if [ $((now - started)) -ge "$ttl" ]; then
        log "time to live of ${ttl}s reached"
        exit 0
    fi
    if [ "$(sessions)" -gt 0 ]; then
        last_active=$now
    elif [ "$idle" -gt 0 ] && [ $((now - last_active)) -ge "$idle" ]; then
        log "no session for ${idle}s"
        exit 0
    fi
    sleep "$interval" &
    wait $!
done
