"""Operator extra links: small classes, one per link, shown on a task instance in the Airflow UI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


WORKSPACE_PATH_KEY = "hyperai_workspace_path"
"""XCom a workspace task pushes: its JupyterLab path in the web UI's proxy while it runs, then ""."""
EXECUTION_ID_KEY = "hyperai_execution_id"
"""XCom a Gear task pushes as soon as its execution exists: the execution id."""


class JupyterLabLink(BaseOperatorLink):
    """The "Open JupyterLab" link: the running workspace in the web UI's proxy
    (``/hyperai/workspaces/<gear>/<n>/lab``, behind Airflow's login, owner only, no token in it); empty
    once the workspace ended. Airflow stores what ``get_link`` returns under ``xcom_key`` whenever a task
    process ends; the data it is made from is the task's own XCom (:data:`WORKSPACE_PATH_KEY`)."""

    name = "Open JupyterLab"
    xcom_key = "hyperai_jupyterlab_link"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        from hyperai_provider.core.workspace import WORKSPACE_URL_PREFIX

        value = XCom.get_value(ti_key=ti_key, key=WORKSPACE_PATH_KEY)
        return value if isinstance(value, str) and value.startswith(f"{WORKSPACE_URL_PREFIX}/") else ""


class ExecutionLink(BaseOperatorLink):
    """The "HyperAI execution" link: the page (working directory, README, Continue) of the execution this
    task instance ran, from the id the task pushed when the execution was created (no store scan)."""

    name = "HyperAI execution"
    xcom_key = "hyperai_execution_link"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        from hyperai_provider.plugins.app import URL_PREFIX

        execution_id = XCom.get_value(ti_key=ti_key, key=EXECUTION_ID_KEY)
        return f"{URL_PREFIX}/executions/{execution_id}" if execution_id else ""
