#!/bin/sh
# Added latency at a fixed, moderate rate: wrk with a pause after each response (bench/paced.lua)
# offers RATE requests/s of the small-request load to the backend directly and through the
# gateway (and nginx with NGINX=1), in rotating fresh runs (3 s warm-up + SECONDS measured each),
# same core layout as bench/run.ts: wrk and the backend on CPU0, the proxy alone on CPU1.
# Prints rps/p50/p99 per run and the medians over rounds of the per-round proxy − direct p99.
# Issue 13 asks for RATE = half of nginx's saturation rate, i.e. 0.5 × 1e6 / (nginx µs/request)
# from `npm run bench -- --only small` in the same session.
#
#   bench/latency.sh RATE [ROUNDS] [SECONDS] [CONFIG] [GATEWAY]   (defaults: 5 rounds, 10 s)
#
# GATEWAY: a checkout of this repository, run as ROOT/bin/serve-gateway (the launcher, with its
# node flags), or an executable run as `GATEWAY start --config CONFIG` (default: this checkout).
#
# Environment: CONNS connections (default 64, as the bench); THINK=exp|fixed (default exp, see
# bench/paced.lua: exp makes the connections independent clients, fixed keeps connections that
# start together in step, so requests arrive in bursts); NGINX=1 adds nginx to every round.
# The mean pause is CONNS × 1000 / RATE minus the path's own mean latency, measured warm before
# each run (after the warm-up, 2 s), then corrected once by the rate it gave (2 s more), so that
# every path is offered about RATE; each run prints the rate it got.
set -eu
here=$(cd "$(dirname "$0")" && pwd -P)
root=$(dirname "$here")
. "$here/lib/wait-up.sh"
. "$here/lib/nginx.sh"
rate=$1
rounds=${2:-5}
secs=${3:-10}
cfg=${4:-$root/bench/gateway.bench.yaml}
gwroot=${5:-$root}
conns=${CONNS:-64}
export THINK="${THINK:-exp}"
node="$root/node_modules/.bin/node"
[ -x "$node" ] || node=node
tmp=$(mktemp -d)
pcfg="$tmp/gateway.yaml"
cp "$cfg" "$pcfg"
printf '\nshutdown: { drain_delay: 0s, grace_period: 1s }\n' >>"$pcfg"
taskset -c 0 "$node" "$root/bench/backend.ts" --port 18000 >"$tmp/backend.log" 2>&1 &
backend=$!
trap 'kill $backend 2>/dev/null || true; rm -rf "$tmp"' EXIT
sleep 1

wrkjson() { # $1 = pause ms, $2 = seconds, $3 = url; prints the WRKJSON object
  taskset -c 0 env DELAY_MS="$1" wrk -t1 -c"$conns" -d"$2s" -s "$root/bench/paced.lua" "$3" | sed -n 's/^WRKJSON //p'
}
field() { # $1 = json, $2 = key
  echo "$1" | tr -d '{}" ' | tr ',' '\n' | sed -n "s/^$2://p"
}

# Calibrate the pause: the direct path's mean latency at the nominal pause.
nominal=$(awk -v c="$conns" -v r="$rate" 'BEGIN { printf "%.3f", c * 1000 / r }')
cal=$(wrkjson "$nominal" 3 http://127.0.0.1:18000/llm)
delay=$(awk -v n="$nominal" -v m="$(field "$cal" mean_us)" 'BEGIN { d = n - m / 1000; if (d < 0) d = 0; printf "%.3f", d }')

paced() { # $1 = url; prints "rps p50_ms p99_ms errors"
  wrkjson "$delay" 3 "$1" >/dev/null
  # Each path gets its own pause: the nominal one less this path's mean latency, measured warm
  # (one pause for all would offer a faster path more than RATE, and a slower one less).
  # Then one correction from the rate that pause gave (wrk's timers run late, more so for a fast
  # path): the pause moves by the difference between the cycle RATE needs and the cycle measured.
  c=$(wrkjson "$delay" 2 "$1")
  pd=$(awk -v n="$nominal" -v m="$(field "$c" mean_us)" 'BEGIN { d = n - m / 1000; if (d < 0) d = 0; printf "%.3f", d }')
  c=$(wrkjson "$pd" 2 "$1")
  pd=$(awk -v p="$pd" -v c="$conns" -v r="$rate" -v n="$(field "$c" requests)" -v d="$(field "$c" duration_us)" \
    'BEGIN { got = n / (d / 1e6); p += c * 1000 / r - c * 1000 / got; if (p < 0) p = 0; printf "%.3f", p }')
  j=$(wrkjson "$pd" "$secs" "$1")
  awk -v n="$(field "$j" requests)" -v d="$(field "$j" duration_us)" -v p50="$(field "$j" p50_us)" \
    -v p99="$(field "$j" p99_us)" -v e="$(field "$j" errors)" \
    'BEGIN { printf "%.0f %.2f %.2f %d\n", n / (d / 1e6), p50 / 1000, p99 / 1000, e }'
}

gateway() {
  rm -rf /tmp/sg-bench-state
  if [ -f "$gwroot" ] && [ -x "$gwroot" ]; then
    taskset -c 1 "$gwroot" start --config "$pcfg" >"$tmp/gw.log" 2>&1 &
  else
    taskset -c 1 "$gwroot/bin/serve-gateway" start --config "$pcfg" >"$tmp/gw.log" 2>&1 &
  fi
  gw=$!
  wait_up gateway "$tmp/gw.log" 0.2
  paced http://127.0.0.1:18080/llm
  kill -INT $gw
  wait $gw || true
}

nginx_run() {
  nginx_up
  paced http://127.0.0.1:18080/llm
  nginx_down
}

sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }
median() { # $1 = label, $2 = space-separated values
  echo "$2" | tr ' ' '\n' | grep . | sort -n | awk -v l="$1" '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%s p99: median %.2f ms (min %.2f, max %.2f, %d rounds)\n", l, m, v[1], v[NR], NR }'
}

echo "offered ≈ $rate req/s: $conns connections, $THINK pauses of mean ${nominal} ms less each path's own mean latency (${delay} ms for direct at the start); ${secs} s measured"
gdeltas=""
ndeltas=""
i=1
while [ "$i" -le "$rounds" ]; do
  n=""
  case "$((i % 3))${NGINX:-0}" in
    11) d=$(paced http://127.0.0.1:18000/llm); g=$(gateway); n=$(nginx_run) ;;
    21) g=$(gateway); n=$(nginx_run); d=$(paced http://127.0.0.1:18000/llm) ;;
    01) n=$(nginx_run); d=$(paced http://127.0.0.1:18000/llm); g=$(gateway) ;;
    *)
      if [ $((i % 2)) -eq 1 ]; then
        d=$(paced http://127.0.0.1:18000/llm); g=$(gateway)
      else
        g=$(gateway); d=$(paced http://127.0.0.1:18000/llm)
      fi
      ;;
  esac
  set -- $d; drps=$1; dp50=$2; dp99=$3; derr=$4
  set -- $g; grps=$1; gp50=$2; gp99=$3; gerr=$4
  gl=$(sub "$gp99" "$dp99")
  line="round $i: direct $drps rps p50 $dp50 p99 $dp99 ms (errors $derr) | gateway $grps rps p50 $gp50 p99 $gp99 ms (errors $gerr) +$gl"
  gdeltas="$gdeltas $gl"
  if [ -n "$n" ]; then
    set -- $n
    nl=$(sub "$3" "$dp99")
    line="$line | nginx $1 rps p50 $2 p99 $3 ms (errors $4) +$nl"
    ndeltas="$ndeltas $nl"
  fi
  echo "$line"
  i=$((i + 1))
done
median "gateway − direct" "$gdeltas"
[ -z "$ndeltas" ] || median "nginx − direct" "$ndeltas"
