#!/usr/bin/env bash
# Run the project's checks: ruff, mypy, then pytest (extra arguments go to pytest).
# The compose test is deselected (CI does not build the stack's images yet); `-m compose` selects it.
# Creates .venv and installs the project with its test extras on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
echo "== ruff"
"$VENV/bin/ruff" check hyperai_provider tests dags benchmarks scripts
echo "== mypy"
"$VENV/bin/mypy"
echo "== pytest"
exec "$VENV/bin/python" -m pytest -m "not compose" "$@"
