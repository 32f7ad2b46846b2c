#!/bin/sh
# Paired A/B of two gateway checkouts under the small-request load of `npm run bench`
# (POST /llm, wrk -t1 -c64, backend + wrk on CPU0, the gateway alone on CPU1). Each round runs
# a fresh A and a fresh B back to back (order alternating), 3 s warm-up + SECONDS measured;
# CPU per request = Δ(utime+stime) of the gateway from /proc ÷ requests. Prints one line per run
# and the per-round B/A ratios, whose median is the number to quote (the machine's speed drifts
# between rounds; a pair shares the same minute).
#
#   bench/ab.sh ROOT_A ROOT_B [ROUNDS] [SECONDS] [CONFIG]   (defaults: 7 rounds, 5 s, bench/gateway.bench.yaml)
#
# ROOT_* are checkouts of this repository (e.g. `git worktree add /tmp/sg-base <commit>`, with
# node_modules linked); each runs `node ROOT/src/cli/main.ts start --config CONFIG`. A ROOT_* that
# is an executable file instead is run as `ROOT_* start --config CONFIG` (e.g. a wrapper that adds
# node flags).
set -eu
here=$(cd "$(dirname "$0")" && pwd -P)
root=$(dirname "$here")
a=$1
b=$2
rounds=${3:-7}
secs=${4:-5}
cfg=${5:-$root/bench/gateway.bench.yaml}
node="$root/node_modules/.bin/node"
[ -x "$node" ] || node=node
tck=$(getconf CLK_TCK)
tmp=$(mktemp -d)
pcfg="$tmp/gateway.yaml"
cp "$cfg" "$pcfg"
printf '\nshutdown: { drain_delay: 0s, grace_period: 1s }\n' >>"$pcfg"
taskset -c 0 "$node" "$root/bench/backend.ts" --port 18000 >"$tmp/backend.log" 2>&1 &
backend=$!
trap 'kill $backend 2>/dev/null || true; rm -rf "$tmp"' EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # $1 = label, $2 = root; prints µs/req
  rm -rf /tmp/sg-bench-state
  if [ -f "$2" ] && [ -x "$2" ]; then
    taskset -c 1 "$2" start --config "$pcfg" >"$tmp/gw.log" 2>&1 &
  else
    taskset -c 1 "$node" "$2/src/cli/main.ts" start --config "$pcfg" >"$tmp/gw.log" 2>&1 &
  fi
  gw=$!
  n=0
  until curl -sf -o /dev/null -X POST --data x http://127.0.0.1:18080/llm; do
    n=$((n + 1))
    [ "$n" -lt 100 ] || { echo "gateway $1 did not start" >&2; tail "$tmp/gw.log" >&2; exit 1; }
    sleep 0.2
  done
  taskset -c 0 wrk -t1 -c64 -d3s -s "$root/bench/post.lua" http://127.0.0.1:18080/llm >/dev/null
  t0=$(cpu_ticks $gw)
  reqs=$(taskset -c 0 wrk -t1 -c64 -d"${secs}s" -s "$root/bench/post.lua" http://127.0.0.1:18080/llm | sed -n 's/^WRKJSON {"requests":\([0-9]*\),.*/\1/p')
  t1=$(cpu_ticks $gw)
  kill -INT $gw
  wait $gw || true
  awk -v d=$((t1 - t0)) -v r="$reqs" -v tck="$tck" 'BEGIN { printf "%.1f", d * 1e6 / tck / r }'
}

ratios=""
i=1
while [ "$i" -le "$rounds" ]; do
  if [ $((i % 2)) -eq 1 ]; then
    ua=$(run A "$a"); ub=$(run B "$b")
  else
    ub=$(run B "$b"); ua=$(run A "$a")
  fi
  r=$(awk -v x="$ua" -v y="$ub" 'BEGIN { printf "%.3f", y / x }')
  echo "round $i: A $ua µs/req  B $ub µs/req  B/A $r"
  ratios="$ratios $r"
  i=$((i + 1))
done
echo "$ratios" | tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "B/A median %.3f (min %.3f, max %.3f, %d rounds)\n", m, v[1], v[NR], NR }'
