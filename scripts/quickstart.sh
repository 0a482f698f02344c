#!/usr/bin/env bash
# Set up on a fresh machine with Docker and run the example DAGs end to end on the embedded
# defaults (SQLite, local storage root), then show where the working directories are and print the one
# command that opens the web UI on the same AIRFLOW_HOME.
#
# Identity: the gears belong to HYPERAI_USER (default: admin), which is also the Airflow user
# (SimpleAuthManager, role admin) the web UI is opened as. Both are kept in $AIRFLOW_HOME/airflow.cfg
# ([hyperai] user, [core] simple_auth_manager_users), so every later Airflow process on this home (api-server,
# scheduler, standalone) agrees; the user's password is generated into the SimpleAuthManager's passwords
# file there.
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
export HYPERAI_USER="${HYPERAI_USER:-admin}"
export PATH="$ROOT/$VENV/bin:$PATH"
airflow db migrate >/dev/null
PASSWORDS_FILE=$(python3 - <<'PY' | sed -n 's/^passwords-file=//p'
"""Keep the quickstart's settings in airflow.cfg (edited line by line; Airflow's own comments and generated
secrets stay) and let SimpleAuthManager generate the user's password; name the passwords file."""
import contextlib, io, os, re
from pathlib import Path

cfg = Path(os.environ["AIRFLOW_HOME"]) / "airflow.cfg"
lines = cfg.read_text().splitlines() if cfg.exists() else []
user = os.environ["HYPERAI_USER"]


def section(name):
    if f"[{name}]" not in lines:
        lines.extend(["", f"[{name}]"])
    start = lines.index(f"[{name}]")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    return start, end


def get(name, key):
    start, end = section(name)
    for line in lines[start + 1 : end]:
        if match := re.match(rf"{key}\s*=\s*(.*)$", line):
            return match.group(1).strip()
    return None


def put(name, key, value):
    start, end = section(name)
    for i in range(start + 1, end):
        if re.match(rf"{key}\s*=", lines[i]):
            lines[i] = f"{key} = {value}"
            return
    lines.insert(start + 1, f"{key} = {value}")


put("core", "dags_folder", os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
put("core", "load_examples", "False")
users = [u for u in (get("core", "simple_auth_manager_users") or "").split(",") if u.strip()]
if user not in {u.split(":")[0].strip() for u in users}:
    put("core", "simple_auth_manager_users", ",".join([*users, f"{user}:admin"]))
put("hyperai", "user", user)
if os.environ.get("HYPERAI_STORAGE_ROOT"):
    put("hyperai", "storage_root", os.environ["HYPERAI_STORAGE_ROOT"])
cfg.write_text("\n".join(lines) + "\n")

from airflow.api_fastapi.app import create_auth_manager
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

manager = create_auth_manager()
if isinstance(manager, SimpleAuthManager):
    with contextlib.redirect_stdout(io.StringIO()):
        manager.init()  # generates the passwords of users who have none yet (as the api-server would)
    print(f"passwords-file={SimpleAuthManager.get_generated_password_file()}")
PY
)

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
STORAGE_ROOT="${HYPERAI_STORAGE_ROOT:-$AIRFLOW_HOME/hyperai}"
echo "Storage root: $STORAGE_ROOT"
for dag in "${DAGS[@]}"; do
  for id in $(hyperai executions "$dag" --json | python3 -c 'import json, sys; print(" ".join(r["id"] for r in json.load(sys.stdin)))'); do
    hyperai show "$id" --json | python3 -c 'import json, sys; r = json.load(sys.stdin); print(r["id"].ljust(28), r["state"].ljust(10), "working directory:", r["workdir"])'
  done
done
echo
echo "== Open the web UI (Browse -> HyperAI Gears, or /hyperai/):"
echo "  AIRFLOW_HOME=$AIRFLOW_HOME $ROOT/$VENV/bin/airflow api-server --port 8080"
echo "then http://localhost:8080/hyperai/ and log in as $HYPERAI_USER, who owns the gears above;"
if [ -n "$PASSWORDS_FILE" ]; then
  echo "the password is in $PASSWORDS_FILE (\"$HYPERAI_USER\": ...)."
else
  echo "the password is whatever your configured Airflow auth manager has for $HYPERAI_USER."
fi
echo "The CLI has no Airflow login; it acts as HYPERAI_USER:"
echo "  HYPERAI_USER=$HYPERAI_USER $ROOT/$VENV/bin/hyperai --storage-root $STORAGE_ROOT gears"
