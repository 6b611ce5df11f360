# jump's exec-mode watchdog: the command of an exec-mode jumphost on any image with sh.
# Ends the task at JUMP_TTL_SECONDS, and after JUMP_IDLE_SECONDS without an ECS Exec
# session (a session worker process of the exec agent in this task's network namespace,
# seen in /proc; when /proc cannot tell, only the TTL applies). POSIX sh, date, sleep, tr.
# The task runs this text as `sh -c TEXT`, so the text is its own command line: nothing
# in it may spell the worker's name in one piece, or the watchdog would count itself.
ttl=${JUMP_TTL_SECONDS:-3600}
idle=${JUMP_IDLE_SECONDS:-900}
interval=${JUMP_WATCH_INTERVAL:-2}
log() { printf 'jump: %s\n' "$*"; }
trap 'log "received SIGTERM"; exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP
log "session ${JUMP_SESSION_ID:-unknown} owner ${JUMP_OWNER:-unknown} ttl ${ttl}s idle ${idle}s (exec watchdog)"
worker=ssm-session-
worker=${worker}worker
sessions() {
    n=0
    for p in /proc/[0-9]*; do
        [ "$p/ns/net" -ef /proc/$$/ns/net ] || continue
        case $(tr '\000' ' ' < "$p/cmdline" 2>/dev/null) in
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
