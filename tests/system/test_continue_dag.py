"""Continue Execution through Airflow: a retried task continues from its previous try; a DAG run's conf
names the execution to continue from. Real `airflow dags test` on SQLite, real containers."""

from __future__ import annotations

import json
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

STEP = (
    "if [ -f first_try.txt ]; then echo continued from $(cat first_try.txt); "
    "else echo try one > first_try.txt; echo failing on purpose; exit 1; fi"
)

@dag(dag_id="contdag_{name}", schedule=None, start_date=pendulum.datetime(2026, 1, 1))
def build():
    GearTaskOperator(
        task_id="step", command=STEP, retries=1, retry_delay=timedelta(seconds=0), on_retry="{on_retry}"
    )

build()
"""


def write_dag(folder: Path, name: str, on_retry: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(DAG.format(name=name, on_retry=on_retry))


def test_a_retried_task_continues_from_its_previous_try_unless_told_to_restart(
    airflow_home: Path, storage_root: Path, tmp_path: Path, docker_engine, base_image: str
) -> None:
    dags = tmp_path / "dags"
    write_dag(dags, "retry", "continue")
    result = airflow_dags_test("contdag_retry", airflow_home, dags, storage_root)
    assert result.returncode == 0, result.output[-4000:]
    assert "continued from try one" in result.output
    second = json.loads(run_cli("show", "contdag_retry/2", "--json", storage_root=storage_root).stdout)
    assert second["parent"] == "contdag_retry/1" and second["airflow"]["try_number"] == 2
    assert second["state"] == "succeeded" and second["lower_layers"] == ["gears/contdag_retry/1/home"]

    # A new run whose conf names an execution continues from it (here: the first run's last one).
    result = airflow_dags_test(
        "contdag_retry", airflow_home, dags, storage_root, conf={"continue_from": "latest"}
    )
    assert result.returncode == 0, result.output[-4000:]
    third = json.loads(run_cli("show", "contdag_retry/3", "--json", storage_root=storage_root).stdout)
    assert third["parent"] == "contdag_retry/2" and third["airflow"]["try_number"] == 1

    write_dag(dags, "restart", "restart")
    result = airflow_dags_test("contdag_restart", airflow_home, dags, storage_root)
    assert result.returncode != 0
    assert "continued from" not in result.output
    second = json.loads(run_cli("show", "contdag_restart/2", "--json", storage_root=storage_root).stdout)
    assert second["parent"] is None and second["state"] == "failed"
