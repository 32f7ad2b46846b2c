# Sourced by bench/ab.sh, bench/latency.sh, bench/profile.sh (and bench/lib/nginx.sh uses it).
# wait_up WHAT LOG PAUSE: waits until the proxy on 127.0.0.1:18080 answers POST /llm, trying every
# PAUSE seconds; after 100 tries says WHAT did not start, shows the end of LOG and exits 1.
wait_up() {
  n=0
  until curl -sf -o /dev/null -X POST --data x http://127.0.0.1:18080/llm; do
    n=$((n + 1))
    [ "$n" -lt 100 ] || { echo "$1 did not start" >&2; tail "$2" >&2; exit 1; }
    sleep "$3"
  done
}
