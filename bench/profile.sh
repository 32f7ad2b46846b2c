#!/bin/sh
# CPU profile of the gateway under the small-request load of `npm run bench -- --only small`
# (POST /llm, 100-byte body, wrk -t1 -c64, bench/gateway.bench.yaml: routing, admission, metrics,
# request ids, access log at 100 %). Backend and wrk on CPU0, the gateway alone on CPU1, as in
# bench/run.ts. Writes DIR/*.cpuprofile (one per run) and prints bench/profile-summary.ts's tables.
#
#   bench/profile.sh [DIR] [SECONDS] [RUNS] [CONFIG]     (defaults: /tmp/sg-prof 10 3 bench/gateway.bench.yaml)
#
# Each run is a fresh gateway: 3 s warm-up + SECONDS of load, then SIGINT (the profile is written
# at exit). Startup and shutdown are in the profile too; at 10 s of load they are under 3 % of it.
set -eu
here=$(cd "$(dirname "$0")" && pwd -P)
root=$(dirname "$here")
. "$here/lib/wait-up.sh"
dir=${1:-/tmp/sg-prof}
secs=${2:-10}
runs=${3:-3}
cfg=${4:-$root/bench/gateway.bench.yaml}
node="$root/node_modules/.bin/node"
[ -x "$node" ] || node=node
mkdir -p "$dir"
rm -f "$dir"/*.cpuprofile
# The bench config with a zero drain delay, so SIGINT exits at once.
pcfg="$dir/gateway.yaml"
cp "$cfg" "$pcfg"
printf '\nshutdown: { drain_delay: 0s, grace_period: 1s }\n' >>"$pcfg"

taskset -c 0 "$node" "$root/bench/backend.ts" --port 18000 >"$dir/backend.log" 2>&1 &
backend=$!
trap 'kill $backend 2>/dev/null || true' EXIT
i=1
while [ "$i" -le "$runs" ]; do
  rm -rf /tmp/sg-bench-state
  taskset -c 1 "$node" --cpu-prof --cpu-prof-dir "$dir" "$root/src/cli/main.ts" start --config "$pcfg" >"$dir/gateway-$i.log" 2>&1 &
  gw=$!
  wait_up gateway "$dir/gateway-$i.log" 0.2
  taskset -c 0 wrk -t1 -c64 -d3s -s "$root/bench/post.lua" http://127.0.0.1:18080/llm >/dev/null
  taskset -c 0 wrk -t1 -c64 -d"${secs}s" -s "$root/bench/post.lua" http://127.0.0.1:18080/llm | grep -E 'Requests/sec' || true
  kill -INT "$gw"
  wait "$gw" || true
  i=$((i + 1))
done
"$node" "$root/bench/profile-summary.ts" --top 40 --skip-s 4 "$dir"/*.cpuprofile
