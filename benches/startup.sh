#!/usr/bin/env bash
# The release binary's size and how long `jump --help` takes (the cost of starting jump at
# all: loading, relocating, parsing the command line), median of RUNS runs after 3 warm-up
# runs, measured by hyperfine (Debian's package) with no shell in between.
#
#   benches/startup.sh [RUNS]       (default 20)
#   JUMP_BIN=/path/to/jump benches/startup.sh
#
# Builds nothing itself: `cargo build --release` first.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
bin=${JUMP_BIN:-target/release/jump}
[ -x "$bin" ] || { echo "benches/startup.sh: no $bin (cargo build --release)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "benches/startup.sh: needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

size=$(stat -c %s "$bin")
hyperfine --shell=none --warmup 3 --runs "$runs" --export-json "$work/help.json" --style none \
    "$bin --help" > /dev/null
python3 - "$work/help.json" "$bin" "$size" "$runs" <<'PY'
import json, statistics, sys
path, binary, size, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
times = json.load(open(path))["results"][0]["times"]
print(f"{binary}: {size} bytes ({size / 2**20:.1f} MiB)")
print(f"jump --help: median {statistics.median(times) * 1000:.2f} ms over {runs} runs "
      f"(min {min(times) * 1000:.2f}, max {max(times) * 1000:.2f})")
PY
