"""Operator extra links: small classes, one per link, shown on a task instance in the Airflow UI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


class JupyterLabLink(BaseOperatorLink):
    """The "Open JupyterLab" link: the running workspace's URL with its token; empty once the workspace ended."""

    name = "Open JupyterLab"
    xcom_key = "hyperai_jupyterlab_url"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.get_value(ti_key=ti_key, key=self.xcom_key) or ""


class ExecutionLink(BaseOperatorLink):
    """The "HyperAI execution" link: the page (working directory, README, Continue) of the execution this
    task instance ran; its id is the XCom the task pushed when the execution was created (no store scan)."""

    name = "HyperAI execution"
    xcom_key = "hyperai_execution_id"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        from hyperai_provider.plugins.app import URL_PREFIX

        execution_id = XCom.get_value(ti_key=ti_key, key=self.xcom_key)
        return f"{URL_PREFIX}/executions/{execution_id}" if execution_id else ""
