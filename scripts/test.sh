#!/usr/bin/env bash
# The whole test suite on a fresh machine. Every run installs the project into a brand-new virtualenv (under a
# temporary directory, removed at exit), so a dependency the tests import but pyproject.toml does not declare fails
# here as it would on a new machine; pip's cache keeps this quick. scripts/constraints.txt pins the versions the
# suite was last run with. Set QMON_TEST_VENV=DIR to keep and reuse a virtualenv while developing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -n "${QMON_TEST_VENV:-}" ]]; then
  venv="$QMON_TEST_VENV"
else
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/qmon-test.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  venv="$tmp/venv"
fi
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -c scripts/constraints.txt -e '.[dev]' 2>&1 \
  | { grep -v '^WARNING: Location' || true; }

# System parts the tests drive for real: promtool/prometheus, headless chromium, sox, PostgreSQL.
missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v soxi >/dev/null 2>&1 || missing+=(sox)  # tests/test_survey_budget.py measures the prompts with soxi
if ((${#missing[@]})); then
  (apt-get install -y -q "${missing[@]}" >/dev/null 2>&1) \
    || (apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null)
fi
if command -v pg_ctlcluster >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

export PATH="$venv/bin:$PATH"
ruff check monitor tests bench scripts
mypy monitor
lint-imports
python -m pytest -q -p no:cacheprovider "$@"
