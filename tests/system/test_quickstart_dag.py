"""The quickstart DAG end to end through the real `airflow dags test`, then the CLI on its records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from tests.system.dagtest import airflow_dags_test

pytestmark = [pytest.mark.docker, pytest.mark.airflow]


def test_quickstart_trains_and_saves_its_working_directory(
    airflow_home: Path, storage_root: Path, docker_engine, base_image: str
) -> None:
    result = airflow_dags_test("hyperai_quickstart", airflow_home, ROOT / "dags", storage_root)
    assert result.returncode == 0, result.output[-4000:]
    assert "test accuracy" in result.output  # the container's output streamed into the task log

    reference = result.xcom("hyperai_quickstart", "train")
    assert reference["kind"] == "workdir" and reference["state"] == "succeeded"
    execution_id = reference["execution_id"]
    assert execution_id.startswith("hyperai_quickstart/")

    shown = run_cli("show", execution_id, "--json", storage_root=storage_root)
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    workdir = Path(record["workdir"])
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.9 and metrics["epochs"] == 200
    assert (workdir / "model" / "model.npz").is_file()
    assert record["airflow"]["dag_id"] == "hyperai_quickstart" and record["airflow"]["task_id"] == "train"
    assert record["bytes_stored"] == reference["bytes_stored"] > 0

    history = run_cli("executions", "hyperai_quickstart", storage_root=storage_root)
    assert history.returncode == 0 and execution_id in history.stdout and "succeeded" in history.stdout


def test_a_failing_gear_task_fails_the_dag_run(
    airflow_home: Path, storage_root: Path, tmp_path: Path, docker_engine, base_image: str
) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "failing.py").write_text(
        "import pendulum\n"
        "from airflow.sdk import dag\n"
        "from hyperai_provider.operators import GearTaskOperator\n\n"
        "@dag(dag_id='hyperai_failing', schedule=None, start_date=pendulum.datetime(2026, 1, 1))\n"
        "def failing():\n"
        "    GearTaskOperator(task_id='boom', command='echo last words; exit 7', retries=0)\n\n"
        "failing()\n"
    )
    result = airflow_dags_test("hyperai_failing", airflow_home, dags, storage_root)
    assert result.returncode != 0
    assert result.task_states("hyperai_failing") == {"boom": "failed"}
    assert "exited with code 7" in result.output and "last words" in result.output
    shown = json.loads(run_cli("show", "hyperai_failing/1", "--json", storage_root=storage_root).stdout)
    assert shown["state"] == "failed" and shown["exit_code"] == 7
