"""Operator extra links: small classes, one per link, shown on a task instance in the Airflow UI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


class JupyterLabLink(BaseOperatorLink):
    """The "Open JupyterLab" link: the running workspace in the web UI's proxy
    (``/hyperai/workspaces/<gear>/<n>/lab``, behind Airflow's login, owner only, no token in it); empty
    once the workspace ended.

    The XCom under ``xcom_key`` is the link the UI shows; Airflow 3 overwrites it with ``get_link``'s
    answer whenever a task process ends, and only a proxy path survives that: a URL pushed by an older
    release (``http://host:port/lab?token=...``) is not offered again."""

    name = "Open JupyterLab"
    xcom_key = "hyperai_jupyterlab_url"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        from hyperai_provider.core.workspace import WORKSPACE_URL_PREFIX

        value = XCom.get_value(ti_key=ti_key, key=self.xcom_key)
        return value if isinstance(value, str) and value.startswith(f"{WORKSPACE_URL_PREFIX}/") else ""


class ExecutionLink(BaseOperatorLink):
    """The "HyperAI execution" link: the page (working directory, README, Continue) of the execution this
    task instance ran; its id is the XCom the task pushed when the execution was created (no store scan)."""

    name = "HyperAI execution"
    xcom_key = "hyperai_execution_id"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        from hyperai_provider.plugins.app import URL_PREFIX

        # Airflow 3 stores what get_link returns under ``xcom_key`` whenever a task process ends (a deferred
        # task: twice), over the id the task pushed there: a value that is already the URL stays as it is.
        value = XCom.get_value(ti_key=ti_key, key=self.xcom_key)
        if not value:
            return ""
        page = f"{URL_PREFIX}/executions/"
        return str(value) if str(value).startswith(page) else f"{page}{value}"
