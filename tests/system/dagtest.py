"""Run a DAG with the real `airflow dags test` (SQLite, in a subprocess) and read back what it did."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class DagRunResult:
    returncode: int
    output: str
    airflow_home: Path

    def task_states(self, dag_id: str) -> dict[str, str]:
        with sqlite3.connect(self.airflow_home / "airflow.db") as db:
            rows = db.execute(
                "SELECT task_id, state FROM task_instance WHERE dag_id = ? ORDER BY start_date", (dag_id,)
            ).fetchall()
        return dict(rows)

    def xcom(self, dag_id: str, task_id: str) -> Any:
        with sqlite3.connect(self.airflow_home / "airflow.db") as db:
            row = db.execute(
                "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'return_value' "
                "ORDER BY timestamp DESC LIMIT 1",
                (dag_id, task_id),
            ).fetchone()
        return None if row is None else json.loads(row[0])


def airflow_dags_test(
    dag_id: str,
    airflow_home: Path,
    dags_folder: Path,
    storage_root: Path,
    conf: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> DagRunResult:
    command = [sys.executable, "-m", "airflow", "dags", "test", dag_id]
    if conf is not None:
        command += ["--conf", json.dumps(conf)]
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={
            **os.environ,
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "HYPERAI_STORAGE_ROOT": str(storage_root),
            **(env or {}),
        },
    )
    return DagRunResult(completed.returncode, completed.stdout + completed.stderr, airflow_home)
