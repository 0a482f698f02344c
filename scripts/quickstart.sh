#!/usr/bin/env bash
# Set up on a fresh machine with Docker and run the example DAGs end to end on the embedded
# defaults (SQLite, local storage root), then show where the working directories are.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
VENV="${HYPERAI_VENV:-.venv}"
DAGS=("${@:-hyperai_quickstart}")

if ! docker info >/dev/null 2>&1; then
  scripts/setup_docker.sh
fi
scripts/build_images.sh --only base

if [ ! -x "$VENV/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$VENV"
fi
if [ ! -f "$VENV/.installed" ] || [ pyproject.toml -nt "$VENV/.installed" ]; then
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e ".[test]"
  touch "$VENV/.installed"
fi

export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export PATH="$ROOT/$VENV/bin:$PATH"
airflow db migrate >/dev/null

for dag in "${DAGS[@]}"; do
  echo "== airflow dags test $dag"
  airflow dags test "$dag" >"$AIRFLOW_HOME/last-$dag.log" 2>&1 || {
    tail -n 40 "$AIRFLOW_HOME/last-$dag.log"
    echo "DAG $dag failed; full log: $AIRFLOW_HOME/last-$dag.log" >&2
    exit 1
  }
  grep -E "\[hyperai\]|Execution .* (created|succeeded)" "$AIRFLOW_HOME/last-$dag.log" | sed -E 's/^[^ ]+ \[[a-z ]+\] //; s/ +\[airflow[^]]*\].*$//' || true
  hyperai executions "$dag"
done
echo
echo "Working directories (storage root: ${HYPERAI_STORAGE_ROOT:-$AIRFLOW_HOME/hyperai}):"
hyperai executions --json | python3 -c '
import json, sys
for record in json.load(sys.stdin):
    print(f"  {record[\"id\"]:<32} {record[\"state\"]:<10}")
'
for dag in "${DAGS[@]}"; do
  last=$(hyperai executions "$dag" --json | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r[-1]["id"] if r else "")')
  [ -n "$last" ] && hyperai show "$last" | grep -E "^(id|state|working dir)"
done
