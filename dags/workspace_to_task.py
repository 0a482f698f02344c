"""Workspace to task: develop in a cheap CPU workspace, then run the same code as a task.

``develop`` starts JupyterLab on the quickstart code (the URL with its token is in the task log and
behind the task's "Open JupyterLab" link); edit ``train.py``, then shut JupyterLab down from its File
menu (or ``hyperai stop GEAR/N``). ``train`` then runs the workspace's saved code on the compute type
given by the ``compute_type`` param (e.g. ``t4`` on a GPU host). With nobody at the keyboard the
workspace closes itself after two idle minutes, so ``airflow dags test hyperai_workspace_to_task`` ends.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from hyperai_provider.operators import GearTaskOperator, GearWorkspaceOperator


@dag(
    dag_id="hyperai_workspace_to_task",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"compute_type": Param("cpu", type="string", description="Compute type of the training task")},
    tags=["hyperai", "example", "workspace"],
)
def hyperai_workspace_to_task() -> None:
    workspace = GearWorkspaceOperator(
        task_id="develop", compute_type="cpu", code="code/quickstart", idle_timeout=120, max_runtime=8 * 3600
    )
    GearTaskOperator(
        task_id="train",
        image="python",
        compute_type="{{ params.compute_type }}",
        code=workspace.output,  # promotion: the workspace's saved working directory is the code
        command="python3 train.py",
        parameters={"epochs": 200},
    )


hyperai_workspace_to_task()
