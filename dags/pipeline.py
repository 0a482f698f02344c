"""Example pipeline: data -> dataset version -> train -> infer, working directories passed by XCom.

``make_data`` writes a dataset into its working directory; ``publish_dataset`` turns that working
directory into a version of the ``hyperai-pipeline-blobs`` dataset (hard links, no copy); ``train`` binds
that version read-only at /hyperai/input/input0; ``infer`` binds the same version and ``train``'s working
directory (input1) and writes predictions. Run it with ``airflow dags test hyperai_pipeline``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from hyperai_provider.operators import GearDatasetVersionOperator, GearTaskOperator

CODE = "code/pipeline"


@dag(
    dag_id="hyperai_pipeline",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["hyperai", "example"],
)
def hyperai_pipeline() -> None:
    make_data = GearTaskOperator(
        task_id="make_data", code=CODE, command="python3 make_data.py", parameters={"samples": 3000}
    )
    dataset = GearDatasetVersionOperator(
        task_id="publish_dataset", dataset="hyperai-pipeline-blobs", from_execution=make_data.output
    )
    train = GearTaskOperator(
        task_id="train",
        code=CODE,
        command="python3 train.py",
        parameters={"epochs": 300, "lr": 0.5},
        inputs={"input0": dataset.output},
    )
    GearTaskOperator(
        task_id="infer",
        code=CODE,
        command="python3 infer.py",
        inputs={"input0": dataset.output, "input1": train.output},
    )


hyperai_pipeline()
