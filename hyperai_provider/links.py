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
