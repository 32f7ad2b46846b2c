#!/bin/sh
# Added latency at a fixed, moderate rate: wrk with a per-connection pause (bench/paced.lua) offers
# RATE requests/s of the small-request load to the backend directly and through the gateway, in
# alternating fresh runs (3 s warm-up + SECONDS measured each), same core layout as bench/run.ts.
# Prints p50/p99 per run and the median over rounds of the per-round gateway − direct p99.
# Issue 13 asks for RATE = half of nginx's saturation rate, i.e. 0.5 × 1e6 / (nginx µs/request)
# from `npm run bench -- --only small` in the same session.
#
#   bench/latency.sh RATE [ROUNDS] [SECONDS] [CONFIG] [GATEWAY_ROOT]   (defaults: 5 rounds, 10 s)
set -eu
here=$(cd "$(dirname "$0")" && pwd -P)
root=$(dirname "$here")
. "$here/lib/wait-up.sh"
rate=$1
rounds=${2:-5}
secs=${3:-10}
cfg=${4:-$root/bench/gateway.bench.yaml}
gwroot=${5:-$root}
conns=32
node="$root/node_modules/.bin/node"
[ -x "$node" ] || node=node
tmp=$(mktemp -d)
pcfg="$tmp/gateway.yaml"
cp "$cfg" "$pcfg"
printf '\nshutdown: { drain_delay: 0s, grace_period: 1s }\n' >>"$pcfg"
# Pause per connection so that conns connections offer about RATE requests/s.
delay=$(awk -v c=$conns -v r="$rate" 'BEGIN { printf "%.3f", c * 1000 / r }')
taskset -c 0 "$node" "$root/bench/backend.ts" --port 18000 >"$tmp/backend.log" 2>&1 &
backend=$!
trap 'kill $backend 2>/dev/null || true; rm -rf "$tmp"' EXIT
sleep 1

paced() { # $1 = url; prints "rps p50_ms p99_ms errors"
  taskset -c 0 env DELAY_MS="$delay" wrk -t1 -c$conns -d3s -s "$root/bench/paced.lua" "$1" >/dev/null
  taskset -c 0 env DELAY_MS="$delay" wrk -t1 -c$conns -d"${secs}s" -s "$root/bench/paced.lua" "$1" |
    sed -n 's/^WRKJSON //p' |
    awk -F'[:,}]' '{ for (i = 1; i < NF; i++) { gsub(/[{" ]/, "", $i); v[$i] = $(i + 1) } printf "%.0f %.2f %.2f %d\n", v["requests"] / (v["duration_us"] / 1e6), v["p50_us"] / 1000, v["p99_us"] / 1000, v["errors"] }'
}

gateway() {
  rm -rf /tmp/sg-bench-state
  taskset -c 1 "$node" "$gwroot/src/cli/main.ts" start --config "$pcfg" >"$tmp/gw.log" 2>&1 &
  gw=$!
  wait_up gateway "$tmp/gw.log" 0.2
  paced http://127.0.0.1:18080/llm
  kill -INT $gw
  wait $gw || true
}

echo "offered ≈ $rate req/s: $conns connections, ${delay} ms pause after each response; ${secs} s measured"
deltas=""
i=1
while [ "$i" -le "$rounds" ]; do
  if [ $((i % 2)) -eq 1 ]; then
    d=$(paced http://127.0.0.1:18000/llm); g=$(gateway)
  else
    g=$(gateway); d=$(paced http://127.0.0.1:18000/llm)
  fi
  set -- $d; drps=$1; dp50=$2; dp99=$3; derr=$4
  set -- $g; grps=$1; gp50=$2; gp99=$3; gerr=$4
  dl=$(awk -v a="$gp99" -v b="$dp99" 'BEGIN { printf "%.2f", a - b }')
  echo "round $i: direct $drps rps p50 $dp50 p99 $dp99 ms (errors $derr) | gateway $grps rps p50 $gp50 p99 $gp99 ms (errors $gerr) | p99 added $dl ms"
  deltas="$deltas $dl"
  i=$((i + 1))
done
echo "$deltas" | tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "gateway − direct p99: median %.2f ms (min %.2f, max %.2f, %d rounds)\n", m, v[1], v[NR], NR }'
