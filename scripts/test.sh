#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, then lint, types and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install -q -e '.[dev]'

if ! command -v promtool >/dev/null 2>&1; then
  (apt-get install -y -q prometheus >/dev/null 2>&1) || (apt-get update -q >/dev/null && apt-get install -y -q prometheus >/dev/null)
fi

if command -v pg_ctlcluster >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

ruff check monitor tests bench
mypy monitor
python3 -m pytest -q -p no:cacheprovider "$@"
