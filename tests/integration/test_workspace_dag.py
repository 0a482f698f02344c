"""The workspace-to-task example DAG through the real `airflow dags test` (the trigger runs in-process):
a "user" edits the code through Jupyter's API and shuts JupyterLab down; the task runs the edited code."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pytest

from hyperai_provider.core.gears import GearService
from hyperai_provider.core.settings import HyperAISettings
from hyperai_provider.core.workspace import workspace_path
from hyperai_provider.links import JupyterLabLink
from hyperai_provider.models import ExecutionState
from tests.conftest import ROOT, run_cli, wait_for_state
from tests.system.dagtest import DagRunResult, airflow_dags_test

pytestmark = [pytest.mark.docker, pytest.mark.airflow]

DAG_ID = "hyperai_workspace_to_task"


def jupyter(url: str, token: str, method: str = "GET", body: object = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def link_value(airflow_home: Path) -> object:
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        row = db.execute(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = 'develop' AND key = ? "
            "ORDER BY timestamp DESC LIMIT 1",
            (DAG_ID, JupyterLabLink.xcom_key),
        ).fetchone()
    return None if row is None else json.loads(row[0])


def task_times(result: DagRunResult, task_id: str) -> tuple[datetime, datetime]:
    with sqlite3.connect(result.airflow_home / "airflow.db") as db:
        start, end = db.execute(
            "SELECT start_date, end_date FROM task_instance WHERE dag_id = ? AND task_id = ? "
            "ORDER BY start_date DESC LIMIT 1",
            (DAG_ID, task_id),
        ).fetchone()
    return tuple(datetime.fromisoformat(value).replace(tzinfo=timezone.utc) for value in (start, end))  # type: ignore[return-value]


def test_workspace_then_task_with_the_workspaces_code(
    airflow_home: Path, storage_root: Path, jupyter_image: str, base_image: str
) -> None:
    results: list[DagRunResult] = []
    runner = threading.Thread(
        target=lambda: results.append(airflow_dags_test(DAG_ID, airflow_home, ROOT / "dags", storage_root))
    )
    runner.start()
    service = GearService(HyperAISettings(storage_root=storage_root))
    workspaces = service.workspaces
    try:
        deadline = time.monotonic() + 300  # a loaded CI machine: dags test start-up and JupyterLab take a while
        record = wait_for_state(
            service,
            f"{DAG_ID}/1",
            ExecutionState.RUNNING,
            120,
            ready=lambda running: running.workspace is not None and running.workspace.host_port is not None,
            alive=runner.is_alive,
            details=lambda: results and results[0].output[-4000:],
        )
        token = workspaces.token(record)
        assert token
        upstream = workspaces.upstream(record)
        assert upstream is not None
        base = upstream[0] + workspace_path(record).rstrip("/")
        while True:  # the record says running once the container started; JupyterLab answers a little later
            try:
                jupyter(base + "/api/status", token)
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        ready_at = datetime.now(timezone.utc)
        while link_value(airflow_home) is None:  # pushed right after JupyterLab answered
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert link_value(airflow_home) == workspace_path(record) + "lab"  # "Open JupyterLab", through the proxy
        edited = "print('promoted from the workspace')\n"
        assert jupyter(
            base + "/api/contents/train.py",
            token,
            "PUT",
            {"type": "file", "format": "text", "content": edited},
        ) in (200, 201)
        shutdown_at = datetime.now(timezone.utc)
        jupyter(base + "/api/shutdown", token, "POST")
        runner.join(timeout=240)
    finally:  # never leave the DAG run waiting for a user: a failed assertion stops the workspace
        if runner.is_alive():
            for leftover in service.executions(DAG_ID):
                if not leftover.closed:
                    service.stop(leftover.id, "test failed")
            runner.join(timeout=120)
    result = results[0]
    started, ended = task_times(result, "develop")
    print(
        f"\ndags test: JupyterLab answered {(ready_at - started).total_seconds():.1f} s after the develop task "
        f"started; the task ended {(ended - shutdown_at).total_seconds():.1f} s after the shutdown"
    )
    assert result.returncode == 0, result.output[-4000:]
    assert result.task_states(DAG_ID) == {"develop": "success", "train": "success"}
    assert token not in (storage_root / "gears" / DAG_ID / str(record.number) / "output.log").read_text()
    assert "JupyterLab is ready" in result.output
    assert link_value(airflow_home) == ""  # the link goes away with the workspace

    develop = result.xcom(DAG_ID, "develop")
    train = result.xcom(DAG_ID, "train")
    assert develop["execution_id"] == record.id and develop["state"] == "succeeded"
    shown = json.loads(run_cli("show", train["execution_id"], "--json", storage_root=storage_root).stdout)
    assert shown["code_source"] == record.id
    assert (Path(shown["workdir"]) / "train.py").read_text() == edited
    assert (
        "promoted from the workspace"
        in (storage_root / "gears" / DAG_ID / str(shown["number"]) / "output.log").read_text()
    )
    closed = json.loads(run_cli("show", record.id, "--json", storage_root=storage_root).stdout)
    assert closed["state"] == "succeeded" and closed["ended_because"] == "shut down from JupyterLab"
