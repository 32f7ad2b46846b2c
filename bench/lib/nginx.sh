# Sourced by bench/ab.sh and bench/latency.sh (after wait-up.sh; they set $node, $root and $tmp).
# nginx_up: nginx (bench/lib/nginx.ts's config) on 127.0.0.1:18080 in front of the backend on
# :18000, one process on CPU1; sets $ng and returns once it answers. nginx_down: stops it.
nginx_up() {
  rm -rf "$tmp/nginx"
  args=$("$node" -e "import('$root/bench/lib/nginx.ts').then((m) => console.log(m.nginxArgs(m.writeNginxConf('$tmp/nginx', 18080, 18000)).join(' ')))")
  taskset -c 1 nginx $args >"$tmp/nginx.log" 2>&1 &
  ng=$!
  wait_up nginx "$tmp/nginx.log" 0.1
}

nginx_down() {
  kill -QUIT $ng
  wait $ng || true
}
