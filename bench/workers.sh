#!/bin/sh
# `workers` scaling on this machine: throughput and CPU per request of the gateway with 1, 2, …
# data-plane threads under the small-request load of `npm run bench` (POST /llm, wrk -t1), and the
# admission check at each step: a second run where the backend holds each request DELAY ms and the
# app's capacity is LIMIT, counted at the upstream (bench/backend.ts /-/bench-stats): Serve must
# never see more than LIMIT at once, whatever the threads.
#
#   bench/workers.sh [COUNTS] [ROUNDS] [SECONDS]   (defaults: "1 2", 5 rounds, 5 s)
#   env: CONNECTIONS (128), LIMIT (32), DELAY (20), GW_CPUS (cpus per count, e.g. "1:1 2:0-1";
#        default: count N on CPUs 1..N, or all CPUs when there are fewer), LOAD_CPU (0),
#        LOG_RATE (access_log.sample_rate, default 1.0 as in npm run bench),
#        RATE (offer about RATE requests/s with bench/paced.lua instead of as many as possible:
#        CPU per request at the same load, for 1 and N threads),
#        BACKEND=nginx (the throughput runs go to nginx answering the same 100 bytes, a few µs a
#        request instead of bench/backend.ts's ~20: more of the load core left for the gateway)
#
# Counts run in a rotation inside each round (order alternating), each in a fresh process with a
# 3 s warm-up. wrk and the backend run on LOAD_CPU. On a 2-core machine `2` shares CPU 0 with wrk
# and the backend, so the 1 → 2 ratio there is a floor, not the scaling of an idle core.
set -eu
here=$(cd "$(dirname "$0")" && pwd -P)
root=$(dirname "$here")
. "$here/lib/wait-up.sh"
counts=${1:-"1 2"}
rounds=${2:-5}
secs=${3:-5}
conns=${CONNECTIONS:-128}
limit=${LIMIT:-32}
delay=${DELAY:-20}
load_cpu=${LOAD_CPU:-0}
ncpu=$(nproc)
node="$root/node_modules/.bin/node"
[ -x "$node" ] || node=node
tck=$(getconf CLK_TCK)
tmp=$(mktemp -d)
taskset -c "$load_cpu" "$node" "$root/bench/backend.ts" --port 18000 >"$tmp/backend.log" 2>&1 &
backend=$!
gw=""
ngb=""
trap 'kill $backend $gw $ngb 2>/dev/null || true; rm -rf "$tmp"' EXIT
tport=18000
if [ "${BACKEND:-node}" = nginx ]; then
  tport=18002
  reply='{"id":"bench-0000000000","object":"text_completion","text":"hello from the bench","n":1}'
  reply=$(printf '%-100s' "$reply")
  args=$("$node" -e "import('$root/bench/lib/nginx.ts').then((m) => console.log(m.nginxArgs(m.writeNginxBackendConf('$tmp/ngb', $tport, process.argv[1])).join(' ')))" "$reply")
  taskset -c "$load_cpu" nginx $args >"$tmp/ngb.log" 2>&1 &
  ngb=$!
fi

cpus_for() { # $1 = count
  for m in ${GW_CPUS:-}; do
    [ "${m%%:*}" = "$1" ] && { echo "${m#*:}"; return; }
  done
  if [ "$1" -lt "$ncpu" ]; then echo "1-$1"; else echo "0-$((ncpu - 1))"; fi
}

config() { # $1 = count, $2 = max_ongoing_requests, $3 = backend port; writes $tmp/gw.yaml
  sed "s/max_ongoing_requests: 2000/max_ongoing_requests: $2/; s/127.0.0.1:18000/127.0.0.1:$3/" "$root/bench/gateway.bench.yaml" >"$tmp/gw.yaml"
  sed -i "s/^access_log: { sample_rate: 1.0 }/access_log: { sample_rate: ${LOG_RATE:-1.0} }/" "$tmp/gw.yaml"
  printf '\nworkers: %s\nadmission: { queue_size: 100000, queue_timeout: 60s }\nshutdown: { drain_delay: 0s, grace_period: 1s }\n' "$1" >>"$tmp/gw.yaml"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

start_gw() { # $1 = count; sets $gw
  rm -rf /tmp/sg-bench-state
  taskset -c "$(cpus_for "$1")" "$root/bin/serve-gateway" start --config "$tmp/gw.yaml" >"$tmp/gw.log" 2>&1 &
  gw=$!
  wait_up "gateway (workers $1)" "$tmp/gw.log" 0.2
}

stop_gw() {
  kill -INT $gw
  wait $gw || true
  gw=""
}

script="$root/bench/post.lua"
if [ -n "${RATE:-}" ]; then
  script="$root/bench/paced.lua"
  DELAY_MS=$(awk -v c="$conns" -v r="$RATE" 'BEGIN { printf "%.3f", c * 1000 / r }')
  export DELAY_MS
fi

throughput() { # $1 = count; prints "rps µs/req"
  config "$1" 2000 "$tport"
  start_gw "$1"
  taskset -c "$load_cpu" wrk -t1 -c"$conns" -d3s -s "$script" http://127.0.0.1:18080/llm >/dev/null
  t0=$(cpu_ticks $gw)
  out=$(taskset -c "$load_cpu" wrk -t1 -c"$conns" -d"${secs}s" -s "$script" http://127.0.0.1:18080/llm)
  t1=$(cpu_ticks $gw)
  stop_gw
  # post.lua's line has "status":N among its errors; paced.lua's has "errors":N (all kinds).
  echo "$out" | sed -n 's/^WRKJSON {"requests":\([0-9]*\),"duration_us":\([0-9]*\),.*"\(status\|errors\)":\([0-9]*\).*/\1 \2 \4/p' |
    awk -v d=$((t1 - t0)) -v tck="$tck" '{ if ($3 > 0) { print "non-2xx answers: " $3 > "/dev/stderr"; exit 1 } printf "%.0f %.1f", $1 * 1e6 / $2, d * 1e6 / tck / $1 }'
}

admission() { # $1 = count; prints "max_in_flight served"
  config "$1" "$limit" 18000
  start_gw "$1"
  curl -sf -o /dev/null "http://127.0.0.1:18000/-/bench-stats?reset=1"
  taskset -c "$load_cpu" wrk -t1 -c"$conns" -d"${secs}s" -s "$root/bench/post.lua" "http://127.0.0.1:18080/llm?delay_ms=$delay" >/dev/null
  stats=$(curl -sf "http://127.0.0.1:18000/-/bench-stats")
  stop_gw
  echo "$stats" | sed -n 's/.*"max_in_flight":\([0-9]*\),"served":\([0-9]*\).*/\1 \2/p'
}

echo "workers scaling: counts [$counts], $rounds rounds x ${secs}s, wrk -t1 -c$conns and the ${BACKEND:-node} backend on CPU $load_cpu, $ncpu CPUs"
i=1
all=""
while [ "$i" -le "$rounds" ]; do
  order=$counts
  [ $((i % 2)) -eq 0 ] && order=$(echo "$counts" | tr ' ' '\n' | sort -rn | tr '\n' ' ')
  line="round $i:"
  for c in $order; do
    r=$(throughput "$c")
    line="$line  w$c $(echo "$r" | awk '{printf "%d rps %s µs/req", $1, $2}')"
    all="$all
$c $r"
  done
  echo "$line"
  i=$((i + 1))
done
base=""
for c in $counts; do
  m=$(echo "$all" | awk -v c="$c" '$1 == c { print $2 }' | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
  u=$(echo "$all" | awk -v c="$c" '$1 == c { print $3 }' | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
  [ -z "$base" ] && base=$m
  adm=$(admission "$c")
  echo "workers $c: median $m rps ($(awk -v m="$m" -v b="$base" -v c="$c" 'BEGIN { printf "%.2fx of 1 worker, scaling efficiency %.0f%%", m / b, 100 * m / b / c }')), $u µs CPU/req; admission: Serve saw at most $(echo "$adm" | cut -d' ' -f1) at once (limit $limit), $(echo "$adm" | cut -d' ' -f2) served"
  max=$(echo "$adm" | cut -d' ' -f1)
  [ "$max" -le "$limit" ] || { echo "ADMISSION EXCEEDED: $max > $limit with $c workers" >&2; exit 1; }
done
