"""The example pipeline end to end through the real `airflow dags test`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from tests.system.dagtest import airflow_dags_test

pytestmark = [pytest.mark.docker, pytest.mark.airflow]


def test_pipeline_binds_a_dataset_into_train_and_train_into_infer(
    airflow_home: Path, storage_root: Path, docker_engine, base_image: str
) -> None:
    result = airflow_dags_test("hyperai_pipeline", airflow_home, ROOT / "dags", storage_root)
    assert result.returncode == 0, result.output[-4000:]
    assert set(result.task_states("hyperai_pipeline").values()) == {"success"}

    dataset = result.xcom("hyperai_pipeline", "publish_dataset")
    assert dataset["kind"] == "dataset" and dataset["name"] == "hyperai-pipeline-blobs"
    train = result.xcom("hyperai_pipeline", "train")
    infer = result.xcom("hyperai_pipeline", "infer")

    infer_record = json.loads(
        run_cli("show", infer["execution_id"], "--json", storage_root=storage_root).stdout
    )
    bound = {b["slot"]: b["source"] for b in infer_record["inputs"]}
    assert (
        bound["input0"]["name"] == "hyperai-pipeline-blobs"
        and bound["input0"]["version"] == dataset["version"]
    )
    assert bound["input1"]["execution_id"] == train["execution_id"]
    workdir = Path(infer_record["workdir"])
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.9 and metrics["predictions"] == 600
    assert (workdir / "predictions.csv").read_text().startswith("label\n")

    shown = run_cli("dataset", "show", "hyperai-pipeline-blobs", "--json", storage_root=storage_root)
    versions = json.loads(shown.stdout)["versions"]
    assert versions[-1]["source"].startswith("execution:hyperai_pipeline/")
