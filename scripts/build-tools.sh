#!/usr/bin/env bash
# Builds the Go test tools in tools/ (one Go module per folder, e.g.
# tools/kube-apiserver/) and caches each binary in the git-ignored .tools/bin/
# as <name>-<hash>, where the hash covers the module's go.mod, go.sum and .go
# files, this script and the Go version. A hit costs nothing; a miss builds
# (a cold build of kube-apiserver takes minutes: docs/kubernetes-testing.md).
# .tools/bin/<name> is a symlink to the binary of the current hash.
# A module with its own .go files builds its main package (.); one without
# builds the package its go.mod names in a `tool` directive, unchanged
# (tools/kuberay-operator: KubeRay's own operator main).
#
#   scripts/build-tools.sh [NAME...]     build NAME (default: every tools/*/go.mod)
#   scripts/build-tools.sh --path NAME   print the cached binary's path; exit 1 on a miss
#
# Go's build and module caches are the usual ones (GOCACHE, GOMODCACHE: by
# default ~/.cache/go-build and ~/go/pkg/mod), so they persist between runs on
# the same machine. Go is looked up on PATH, then in /usr/local/go/bin.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
script="$root/scripts/build-tools.sh"
bin_dir="$root/.tools/bin"

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null 2>&1; then
  echo "build-tools: Go not found (install Go >= 1.26 or put it on PATH)" >&2
  exit 1
fi

tool_hash() {
  local dir="tools/$1"
  {
    go env GOVERSION
    sha256sum "$script" | cut -d' ' -f1
    # go.mod, go.sum and the Go sources, in a stable order, names included.
    (cd "$dir" && find . -type f \( -name go.mod -o -name go.sum -o -name '*.go' \) | LC_ALL=C sort |
      while read -r f; do printf '%s %s\n' "$f" "$(sha256sum "$f" | cut -d' ' -f1)"; done)
  } | sha256sum | cut -c1-16
}

# Stamp the Kubernetes version into binaries built from k8s.io/kubernetes, as
# its own build does (hack/lib/version.sh); otherwise /version says v0.0.0-master.
k8s_ldflags() {
  local v major minor pkg out=""
  v=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v[0-9]/ { print $2; exit }' "tools/$1/go.mod")
  [ -n "$v" ] || return 0
  major=${v#v}; major=${major%%.*}
  minor=${v#v"$major".}; minor=${minor%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    out+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  printf '%s' "$out"
}

# The package to build: the module's own main, or the one `tool` names.
main_package() {
  if compgen -G "tools/$1/*.go" >/dev/null; then
    echo .
  else
    awk '$1 == "tool" && NF == 2 { print $2; exit }' "tools/$1/go.mod"
  fi
}

# Stamp helm's version and the Kubernetes version it assumes without a cluster
# (`helm template`, `helm lint`), as helm's own Makefile does: the module's helm
# version, and the major/minor of the k8s.io/client-go it was built with.
helm_ldflags() {
  local v cg minor
  v=$(awk '$1 == "helm.sh/helm/v3" && $2 ~ /^v[0-9]/ { print $2; exit }' "tools/$1/go.mod")
  [ -n "$v" ] || return 0
  cg=$(awk '$1 == "k8s.io/client-go" && $2 ~ /^v0\.[0-9]/ { print $2; exit }' "tools/$1/go.mod")
  minor=${cg#v0.}; minor=${minor%%.*}
  printf ' -X helm.sh/helm/v3/internal/version.version=%s -X helm.sh/helm/v3/internal/version.gitTreeState=clean' "$v"
  if [ -n "$minor" ]; then
    printf ' -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=%s' "$minor"
    printf ' -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=%s' "$minor"
  fi
}

build_one() {
  local name=$1 hash out tmp t0 secs ldflags pkg
  [ -f "tools/$name/go.mod" ] || { echo "build-tools: no Go module in tools/$name" >&2; return 1; }
  hash=$(tool_hash "$name")
  out="$bin_dir/$name-$hash"
  mkdir -p "$bin_dir"
  # One build at a time per tool, also across checkouts sharing this folder.
  exec 9>"$bin_dir/.$name.lock"
  flock 9
  if [ -x "$out" ]; then
    echo "build-tools: $name: cached .tools/bin/$name-$hash"
  else
    echo "build-tools: $name: building .tools/bin/$name-$hash (a cold build takes several minutes)"
    tmp="$out.tmp.$$"
    t0=$(date +%s)
    ldflags="-s -w$(k8s_ldflags "$name")$(helm_ldflags "$name")"
    pkg=$(main_package "$name")
    (cd "tools/$name" && CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$tmp" "$pkg") ||
      { rm -f "$tmp"; return 1; }
    mv -f "$tmp" "$out"
    secs=$(( $(date +%s) - t0 ))
    echo "build-tools: $name: built in ${secs} s ($(du -m "$out" | cut -f1) MB)"
    # Keep the three newest binaries of this tool (each is about 125 MB).
    ls -1t "$bin_dir/$name"-* 2>/dev/null | grep -Ev '\.tmp\.' | tail -n +4 | xargs -r rm -f
  fi
  ln -sfn "$name-$hash" "$bin_dir/$name"
  exec 9>&-
}

if [ "${1:-}" = "--path" ]; then
  [ $# -eq 2 ] || { echo "usage: $0 --path NAME" >&2; exit 2; }
  p="$bin_dir/$2-$(tool_hash "$2")"
  [ -x "$p" ] || exit 1
  echo "$p"
  exit 0
fi

if [ $# -eq 0 ]; then
  for mod in tools/*/go.mod; do
    [ -e "$mod" ] || continue
    set -- "$@" "$(basename "$(dirname "$mod")")"
  done
fi
for name in "$@"; do
  build_one "$name"
done
