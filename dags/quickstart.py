"""Quickstart: one Gear task trains a small NumPy model; its working directory is saved.

Run it with ``airflow dags test hyperai_quickstart``; ``hyperai executions hyperai_quickstart``
shows the history and ``hyperai show hyperai_quickstart/1`` where the working directory is.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from hyperai_provider.operators import GearTaskOperator


@dag(
    dag_id="hyperai_quickstart",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["hyperai", "example"],
)
def hyperai_quickstart() -> None:
    GearTaskOperator(
        task_id="train",
        image="python",
        compute_type="cpu",
        code="code/quickstart",
        command="python3 train.py",
        parameters={"epochs": 200, "lr": 0.5},
    )


hyperai_quickstart()
