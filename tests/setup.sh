#!/usr/bin/env bash
# Installs what the tests need on a fresh machine: PostgreSQL (server binaries), an OCI
# registry, skopeo and podman, Debian's chromium (the web UI's tests drive it with
# Playwright), npm's configurable-http-proxy (for the embedded JupyterHub) and axe-core
# (accessibility checks run in the page), envyard with its test extras, and the demo
# channel's pinned wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "setup: $*" >&2; }
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  say "installing PostgreSQL (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
# image tests: a registry, skopeo and podman (runc: crun fails on these machines);
# wrk, the load generator of bench/load.py
missing=""
for tool in docker-registry skopeo podman runc wrk; do command -v "$tool" >/dev/null || missing=1; done
if [ -n "$missing" ]; then
  say "installing an OCI registry, skopeo, podman, runc and wrk (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    docker-registry skopeo podman runc wrk >/dev/null
fi
# the web UI's tests: Playwright (pip, below) drives Debian's chromium; no browser download
if [ ! -x /usr/bin/chromium ]; then
  say "installing chromium (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! command -v npm >/dev/null; then
  say "installing nodejs and npm (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
node_prefix="${ENVYARD_HOME:-$HOME/.envyard}/node"
if [ ! -x "$node_prefix/node_modules/.bin/configurable-http-proxy" ]; then
  say "installing configurable-http-proxy (npm) into $node_prefix"
  npm install --silent --no-audit --no-fund --prefix "$node_prefix" configurable-http-proxy@5
fi
if [ ! -f "$node_prefix/node_modules/axe-core/axe.min.js" ]; then
  say "installing axe-core (npm) into $node_prefix"
  npm install --silent --no-audit --no-fund --prefix "$node_prefix" axe-core@4
fi
say "installing envyard and its test extras (pip)"
python -m pip install -q -e '.[test]'
# the Dockerfile build test installs offline from this wheelhouse
wheelhouse="${ENVYARD_HOME:-$HOME/.envyard}/wheelhouse"
say "building the offline wheelhouse for the Dockerfile test in $wheelhouse (pip)"
python -m pip wheel -q -w "$wheelhouse" '.[service,postgresql,kubernetes,gcs,s3]' 'setuptools>=68' wheel
say "preparing the demo channel (the first time downloads ~55 MB of wheels)"
envyard demo-channel >/dev/null
say "done"
