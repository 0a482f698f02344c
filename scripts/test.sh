#!/usr/bin/env bash
# Run the project's checks: ruff, mypy, then pytest (extra arguments go to pytest).
# Creates .venv and installs the project with its test extras on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${HYPERAI_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$VENV/.installed" ] || [ pyproject.toml -nt "$VENV/.installed" ]; then
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e ".[test]"
  touch "$VENV/.installed"
fi
echo "== ruff"
"$VENV/bin/ruff" check hyperai_provider tests dags benchmarks scripts
echo "== mypy"
"$VENV/bin/mypy"
echo "== pytest"
exec "$VENV/bin/python" -m pytest "$@"
