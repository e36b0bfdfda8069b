#!/usr/bin/env bash
# Installs what the tests need on a fresh machine: PostgreSQL (server binaries), envyard
# with its test extras, and the demo channel's pinned wheels (the only download).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
python -m pip install -q -e '.[test]'
envyard demo-channel >/dev/null
