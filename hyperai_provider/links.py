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
    """The "HyperAI execution" link: the execution page (working directory, README, Continue) of the
    execution this task instance ran, found in the store by its Airflow context."""

    name = "HyperAI execution"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from hyperai_provider.core.gears import GearService
        from hyperai_provider.plugins.app import URL_PREFIX

        store = GearService().store
        try:
            records = store.list_executions()
        finally:
            store.dispose()
        mine = [
            record
            for record in records
            if record.airflow is not None
            and (record.airflow.dag_id, record.airflow.run_id, record.airflow.task_id, record.airflow.map_index)
            == (ti_key.dag_id, ti_key.run_id, ti_key.task_id, ti_key.map_index)
            and record.airflow.try_number <= ti_key.try_number
        ]
        if not mine:
            return ""
        latest = max(mine, key=lambda record: (record.airflow.try_number, record.number))  # type: ignore[union-attr]
        return f"{URL_PREFIX}/executions/{latest.id}"
