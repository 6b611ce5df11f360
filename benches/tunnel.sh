#!/usr/bin/env bash
# Throughput and latency of `jump forward`, on the local sandbox, on a quiet machine:
#   - 51.2 MB of PostgreSQL COPY output through the tunnel (psql), RUNS times;
#   - 100-byte request/response round trips to an echo server on another task.
#
#   benches/tunnel.sh [RUNS]          (default 3)
#   JUMP_BIN=target/release/jump benches/tunnel.sh
#
# Needs root and tests/sandbox/setup; builds nothing itself.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
sandbox_step=0.2
. benches/sandbox.sh
cleanup() { [ -n "${fwd:-}" ] && kill -INT "$fwd" 2>/dev/null; wait "${fwd:-}" 2>/dev/null || true; stop_sandbox; }
trap cleanup EXIT
aws() { tests/sandbox/.venv/bin/aws --endpoint-url "$AWS_ENDPOINT_URL" --output json "$@"; }

aws rds create-db-instance --db-instance-identifier bench --engine postgres --db-instance-class db.t3.micro \
    --master-username app --master-user-password bench-secret --db-name bench --allocated-storage 20 > /dev/null
# shellcheck disable=SC2016 # Perl source: its $ are Perl's
server='use IO::Socket::INET; use Socket; $s=IO::Socket::INET->new(LocalPort=>7000,Listen=>16,ReuseAddr=>1) or die; while($c=$s->accept){ if(!fork){ setsockopt($c,IPPROTO_TCP,TCP_NODELAY,1); while(sysread($c,$b,65536)){ syswrite($c,$b) } exit } }'
aws ecs register-task-definition --family echo --requires-compatibilities FARGATE --network-mode awsvpc --cpu 256 \
    --memory 512 --container-definitions "$("$py" -c 'import json,sys; print(json.dumps([{"name":"echo","image":"echo:1","command":["perl","-e",sys.argv[1]]}]))' "$server")" > /dev/null
echo_arn=$(aws ecs run-task --cluster "$JUMP_CLUSTER" --task-definition echo --launch-type FARGATE \
    --network-configuration "awsvpcConfiguration={subnets=[$JUMP_SUBNETS]}" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["tasks"][0]["taskArn"])')
for _ in $(seq 100); do
    echo_ip=$(aws ecs describe-tasks --cluster "$JUMP_CLUSTER" --tasks "$echo_arn" | "$py" -c 'import json,sys; t=json.load(sys.stdin)["tasks"][0]; print(t["containers"][0]["networkInterfaces"][0]["privateIpv4Address"] if t["lastStatus"]=="RUNNING" else "")')
    [ -n "$echo_ip" ] && break; sleep 0.2
done

"$bin" forward --json 0:rds:bench "0:$echo_ip:7000" > "$work/ready" 2> "$work/forward.err" &
fwd=$!
for _ in $(seq 300); do [ "$(wc -l < "$work/ready")" -ge 2 ] && break; sleep 0.1; done
db=$("$py" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readlines()[0])["local_address"])' "$work/ready")
echo_addr=$("$py" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readlines()[1])["local_address"])' "$work/ready")

sql="copy (select repeat(md5(g::text), 32) from generate_series(1, 50000) g) to stdout"
for i in $(seq "$runs"); do
    start=$EPOCHREALTIME
    bytes=$(PGPASSWORD=bench-secret psql -h "${db%:*}" -p "${db##*:}" -U app -d bench -At -c "$sql" | wc -c)
    "$py" -c 'import sys; b=int(sys.argv[1]); t=float(sys.argv[3])-float(sys.argv[2]); print(f"run {sys.argv[4]}: {b/1e6:.1f} MB in {t:.2f} s = {b/t/1e6:.1f} MB/s")' \
        "$bytes" "$start" "$EPOCHREALTIME" "$i"
done

"$py" - "$echo_addr" <<'PY'
import socket, statistics, sys, time
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
times = []
for _ in range(500):
    started = time.perf_counter()
    s.sendall(b"x" * 100)
    got = b""
    while len(got) < 100:
        got += s.recv(100 - len(got))
    times.append((time.perf_counter() - started) * 1000)
times.sort()
print(f"100-byte round trip over 500: median {statistics.median(times):.2f} ms, p90 {times[449]:.2f} ms, max {times[-1]:.2f} ms")
PY
