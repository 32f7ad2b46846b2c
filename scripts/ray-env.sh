#!/usr/bin/env bash
# Creates (or reuses) the Python virtual environment with ray[serve] that the
# real-Ray test suite (test/ray/) runs against, then runs that suite.
#   RAY_VERSION   ray version to install (default 2.53.0, KubeRay's RayService example)
#   RAY_VENV      venv folder (default .venv/ray-<version>, git-ignored)
#   PYTHON        interpreter used to create the venv (default python3)
# With --env-only it only prepares the venv and prints its path.
set -euo pipefail
cd "$(dirname "$0")/.."
RAY_VERSION="${RAY_VERSION:-2.53.0}"
PYTHON="${PYTHON:-python3}"
RAY_VENV="${RAY_VENV:-.venv/ray-${RAY_VERSION}}"

installed_version() {
  [ -x "$RAY_VENV/bin/python" ] || return 0
  "$RAY_VENV/bin/python" - <<'PY' 2>/dev/null || true
import importlib.metadata as m
try:
    import ray.serve  # noqa: F401  (the serve extra is importable)
    print(m.version("ray"))
except Exception:
    pass
PY
}

# The venv is reused when it holds this ray version installed with these constraints.
want="ray[serve]==$RAY_VERSION $(cksum < test/ray/constraints.txt | cut -d' ' -f1)"
stamp="$RAY_VENV/.serve-gateway-stamp"
have="$(installed_version)"
if [ "$have" = "$RAY_VERSION" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "ray-env: reusing $RAY_VENV (ray $have)" >&2
else
  echo "ray-env: installing ray[serve]==$RAY_VERSION into $RAY_VENV (found: ${have:-none})" >&2
  command -v redis-server >/dev/null || echo "ray-env: redis-server not found: the drill test will fail (apt-get install redis-server)" >&2
  start=$(date +%s)
  [ -x "$RAY_VENV/bin/python" ] || "$PYTHON" -m venv "$RAY_VENV"
  "$RAY_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$RAY_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -c test/ray/constraints.txt "ray[serve]==$RAY_VERSION"
  have="$(installed_version)"
  if [ "$have" != "$RAY_VERSION" ]; then
    echo "ray-env: ray[serve]==$RAY_VERSION did not install (found: ${have:-none})" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
  echo "ray-env: installed in $(( $(date +%s) - start ))s" >&2
fi

if [ "${1:-}" = "--env-only" ]; then
  echo "$RAY_VENV"
  exit 0
fi

export RAY_VENV RAY_VERSION
exec node_modules/.bin/node --test --test-concurrency=1 "${@:-test/ray/**/*.test.ts}"
