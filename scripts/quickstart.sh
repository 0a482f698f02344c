#!/usr/bin/env bash
# Set up on a fresh machine with Docker and run the example DAGs end to end on the embedded
# defaults (SQLite, local storage root), then show where the working directories are.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
if [ "$#" -gt 0 ]; then DAGS=("$@"); else DAGS=(hyperai_quickstart hyperai_pipeline); fi

if ! docker info >/dev/null 2>&1; then
  scripts/setup_docker.sh
fi
scripts/build_images.sh --only base

. scripts/venv.sh

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
echo "Storage root: ${HYPERAI_STORAGE_ROOT:-$AIRFLOW_HOME/hyperai}"
for dag in "${DAGS[@]}"; do
  for id in $(hyperai executions "$dag" --json | python3 -c 'import json, sys; print(" ".join(r["id"] for r in json.load(sys.stdin)))'); do
    hyperai show "$id" --json | python3 -c 'import json, sys; r = json.load(sys.stdin); print(r["id"].ljust(28), r["state"].ljust(10), "working directory:", r["workdir"])'
  done
done
