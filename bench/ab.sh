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
# With NGINX=1 every round also runs nginx (bench/lib/nginx.ts's config, port 18080, one process on
# CPU1) in the same rotation, and the per-round A/nginx and B/nginx ratios are printed as well: the
# old and the new gateway against nginx in the same minutes.
#
# ROOT_* are checkouts of this repository (e.g. `git worktree add /tmp/sg-base <commit>`, with
# node_modules linked); each runs `ROOT/bin/serve-gateway start --config CONFIG` (the launcher, with
# its node flags, as `npm run bench` runs it). A ROOT_* that is an executable file instead is run as
# `ROOT_* start --config CONFIG` (e.g. a wrapper that sets NODE_OPTIONS).
set -eu
here=$(cd "$(dirname "$0")" && pwd -P)
root=$(dirname "$here")
. "$here/lib/wait-up.sh"
. "$here/lib/nginx.sh"
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

measure() { # $1 = pid of the proxy on 18080; prints µs/req after warm-up + measured run
  taskset -c 0 wrk -t1 -c64 -d3s -s "$root/bench/post.lua" http://127.0.0.1:18080/llm >/dev/null
  t0=$(cpu_ticks $1)
  reqs=$(taskset -c 0 wrk -t1 -c64 -d"${secs}s" -s "$root/bench/post.lua" http://127.0.0.1:18080/llm | sed -n 's/^WRKJSON {"requests":\([0-9]*\),.*/\1/p')
  t1=$(cpu_ticks $1)
  awk -v d=$((t1 - t0)) -v r="$reqs" -v tck="$tck" 'BEGIN { printf "%.1f", d * 1e6 / tck / r }'
}

run_nginx() {
  nginx_up
  measure $ng
  nginx_down
}

run() { # $1 = label, $2 = root; prints µs/req
  rm -rf /tmp/sg-bench-state
  if [ -f "$2" ] && [ -x "$2" ]; then
    taskset -c 1 "$2" start --config "$pcfg" >"$tmp/gw.log" 2>&1 &
  else
    taskset -c 1 "$2/bin/serve-gateway" start --config "$pcfg" >"$tmp/gw.log" 2>&1 &
  fi
  gw=$!
  wait_up "gateway $1" "$tmp/gw.log" 0.2
  measure $gw
  kill -INT $gw
  wait $gw || true
}

median() { # $1 = label, $2 = space-separated values
  echo "$2" | tr ' ' '\n' | grep . | sort -n | awk -v l="$1" '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%s median %.3f (min %.3f, max %.3f, %d rounds)\n", l, m, v[1], v[NR], NR }'
}

ratios=""
ran=""
rbn=""
i=1
while [ "$i" -le "$rounds" ]; do
  un=""
  case "$((i % 3))${NGINX:-0}" in
    11) ua=$(run A "$a"); ub=$(run B "$b"); un=$(run_nginx) ;;
    21) ub=$(run B "$b"); un=$(run_nginx); ua=$(run A "$a") ;;
    01) un=$(run_nginx); ua=$(run A "$a"); ub=$(run B "$b") ;;
    *)
      if [ $((i % 2)) -eq 1 ]; then
        ua=$(run A "$a"); ub=$(run B "$b")
      else
        ub=$(run B "$b"); ua=$(run A "$a")
      fi
      ;;
  esac
  r=$(awk -v x="$ua" -v y="$ub" 'BEGIN { printf "%.3f", y / x }')
  if [ -n "$un" ]; then
    an=$(awk -v x="$ua" -v y="$un" 'BEGIN { printf "%.3f", x / y }')
    bn=$(awk -v x="$ub" -v y="$un" 'BEGIN { printf "%.3f", x / y }')
    echo "round $i: A $ua µs/req  B $ub µs/req  nginx $un µs/req  B/A $r  A/nginx $an  B/nginx $bn"
    ran="$ran $an"
    rbn="$rbn $bn"
  else
    echo "round $i: A $ua µs/req  B $ub µs/req  B/A $r"
  fi
  ratios="$ratios $r"
  i=$((i + 1))
done
median B/A "$ratios"
if [ -n "$ran" ]; then
  median A/nginx "$ran"
  median B/nginx "$rbn"
fi
