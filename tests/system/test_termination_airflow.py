"""Airflow's execution_timeout ends a Gear task: the container is stopped, the record terminated and its
files kept. Real `airflow dags test` on SQLite, real containers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.system.dagtest import airflow_dags_test

pytestmark = [pytest.mark.docker, pytest.mark.airflow]

DAG = """
from datetime import timedelta

import pendulum
from airflow.sdk import dag

from hyperai_provider.operators import GearTaskOperator

@dag(dag_id="termtimeout", schedule=None, start_date=pendulum.datetime(2026, 1, 1))
def build():
    GearTaskOperator(
        task_id="nap",
        command="echo kept > before.txt; sleep 300",
        execution_timeout=timedelta(seconds=8),
        retries=0,
    )

build()
"""


def test_execution_timeout_terminates_the_execution_and_keeps_its_files(
    airflow_home: Path, storage_root: Path, tmp_path: Path, docker_engine, base_image: str
) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "termtimeout.py").write_text(DAG)
    started = time.monotonic()
    result = airflow_dags_test("termtimeout", airflow_home, dags, storage_root, timeout=240)
    assert time.monotonic() - started < 120, "the timeout did not end the task"
    assert result.task_states("termtimeout") == {"nap": "failed"}, result.output[-4000:]
    shown = run_cli("show", "termtimeout/1", "--json", storage_root=storage_root)
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["state"] == "terminated", record
    assert "AirflowTaskTimeout" in record["failure_reason"] and record["saved_completely"] is True
    assert (Path(record["workdir"]) / "before.txt").read_text() == "kept\n"
    labels = ["io.hyperai.managed=true", f"io.hyperai.storage-root={storage_root}"]
    assert docker_engine.api.containers(all=True, filters={"label": labels}) == []
