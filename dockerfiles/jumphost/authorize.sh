#!/bin/sh
# jump-authorize: installs the keys that may log in to this jumphost and prints its
# host key, as `jump-host-key: <type> <base64>`.
#
# Why it exists: the entrypoint runs it once at start for JUMP_AUTHORIZED_KEYS, and a
# warm pool's claim runs it through ECS Exec (as root, inside the task) to install the
# claiming session's key in a jumphost that has been waiting with no key at all. Both
# go through one script, so a key gets the same restrictions whichever way it came, and
# the claimer reads the host key over the same authenticated channel it used to claim.
#
# Usage: jump-authorize [KEY-LINE...]   (no arguments: key lines on standard input)
# Each bare key may open a shell (with a pty) and local port forwards, nothing else: no
# agent, X11 or remote forwarding, no ~/.ssh/rc, no environment from the client. The
# file is replaced, never appended to: whoever authorizes last is the only one let in.
set -eu

runtime=${JUMP_RUNTIME_DIR:-/run/jump}
[ -s "$runtime/host_ed25519_key.pub" ] || { echo "jump-authorize: no host key in $runtime (is sshd set up?)" >&2; exit 78; }

umask 022
if [ "$#" -gt 0 ]; then
    printf '%s\n' "$@"
else
    cat
fi | sed -E 's/^(ssh-|ecdsa-|sk-)/restrict,pty,port-forwarding \1/' > "$runtime/authorized_keys.new"
mv "$runtime/authorized_keys.new" "$runtime/authorized_keys"
printf 'jump-host-key: %s\n' "$(cut -d' ' -f1,2 "$runtime/host_ed25519_key.pub")"
