#!/bin/sh
# Where the gateway's CPU per request goes beyond the floor of its design (bench/floor.ts: the same
# HTTP/1.1 engines with no pipeline features): each runs alone on CPU1 under the small-request load
# of `npm run bench` (wrk -t1 -c64 and the backend on CPU0), with `perf record -e cpu-clock -C 1`
# for SECONDS in the middle of the load; bench/perf-diff.ts prints µs per request per group and per
# symbol for both, and the difference. Needs perf (linux-perf) and root or perf_event_paranoid ≤ 0.
# Numbers under perf are ≈ 10 % above the unprofiled ones; the difference is what to read.
#
#   bench/perf-compare.sh [DIR] [SECONDS] [CONFIG]   (defaults: /tmp/sg-perf 8 bench/gateway.bench.yaml)
set -eu
here=$(cd "$(dirname "$0")" && pwd -P)
root=$(dirname "$here")
. "$here/lib/wait-up.sh"
dir=${1:-/tmp/sg-perf}
secs=${2:-8}
cfg=${3:-$root/bench/gateway.bench.yaml}
node="$root/node_modules/.bin/node"
[ -x "$node" ] || node=node
mkdir -p "$dir"
pcfg="$dir/gateway.yaml"
cp "$cfg" "$pcfg"
printf '\nshutdown: { drain_delay: 0s, grace_period: 1s }\n' >>"$pcfg"
taskset -c 0 "$node" "$root/bench/backend.ts" --port 18000 >"$dir/backend.log" 2>&1 &
backend=$!
trap 'kill $backend 2>/dev/null || true' EXIT

# run NAME ARGS...: the proxy under load with perf; prints the requests served in the perf window.
run() {
  name=$1
  shift
  rm -rf /tmp/sg-bench-state
  taskset -c 1 "$node" --max-semi-space-size=4 --perf-basic-prof "$@" >"$dir/$name.log" 2>&1 &
  pid=$!
  wait_up "$name" "$dir/$name.log" 0.2 >&2
  taskset -c 0 wrk -t1 -c64 -d3s -s "$root/bench/post.lua" http://127.0.0.1:18080/llm >/dev/null
  taskset -c 0 wrk -t1 -c64 -d"$((secs + 2))s" -s "$root/bench/post.lua" http://127.0.0.1:18080/llm >"$dir/$name.wrk" &
  load=$!
  sleep 1
  perf record -F 2000 -g -e cpu-clock -C 1 -o "$dir/$name.perf.data" -- sleep "$secs" 2>"$dir/$name.perf.log" >&2
  wait $load
  kill -INT $pid
  wait $pid || true
  rps=$(awk '/Requests\/sec/ {print $2}' "$dir/$name.wrk")
  awk -v r="$rps" -v s="$secs" 'BEGIN { printf "%d\n", r * s }'
}

ga=$(run gateway "$root/src/cli/main.ts" start --config "$pcfg")
fb=$(run floor "$root/bench/floor.ts")
echo "requests in the perf window: gateway $ga, floor $fb"
"$node" "$root/bench/perf-diff.ts" "$dir/gateway.perf.data" "$ga" "$dir/floor.perf.data" "$fb" 2000 40
