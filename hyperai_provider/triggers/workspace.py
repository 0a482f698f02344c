"""``WorkspaceTrigger``: waits in the triggerer until a workspace ends, so no worker slot is held."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from hyperai_provider.core.workspace import Workspaces


EXIT_POLL_SECONDS = 1.0
"""How often the container's state is looked at (cheap); Jupyter's activity is asked every poll_interval."""


class WorkspaceTrigger(BaseTrigger):
    """Poll a workspace (its container and Jupyter's status API) until it ends.

    Never raises: yields exactly one event ``{"status": "ended"|"error", "message", "execution_id",
    "state", "reason", "exit_code"}``; the operator's resume method saves and closes the execution.
    The blocking checks run in a thread so the triggerer's event loop is never blocked.
    """

    def __init__(self, execution_id: str, hyperai_conn_id: str = "hyperai_default", poll_interval: float = 5.0) -> None:
        super().__init__()
        self.execution_id = execution_id
        self.hyperai_conn_id = hyperai_conn_id
        self.poll_interval = poll_interval
        self._workspaces: Workspaces | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "execution_id": self.execution_id,
                "hyperai_conn_id": self.hyperai_conn_id,
                "poll_interval": self.poll_interval,
            },
        )

    def workspaces(self) -> Workspaces:
        """The workspace service, configured exactly as the task's hook (connection extras and SMTP too)."""
        if self._workspaces is None:
            from hyperai_provider.hooks.hyperai import HyperAIHook

            self._workspaces = HyperAIHook(self.hyperai_conn_id).service.workspaces
        return self._workspaces

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            last_full = 0.0
            while True:
                now = time.monotonic()
                full = now - last_full >= self.poll_interval
                last_full = now if full else last_full
                end = await asyncio.to_thread(self.workspaces().check, self.execution_id, full)
                if end is not None:
                    message = f"workspace {self.execution_id} ended: {end.reason}"
                    yield TriggerEvent(
                        {"status": "ended", "message": message, **end.to_event(self.execution_id)}
                    )
                    return
                await asyncio.sleep(min(EXIT_POLL_SECONDS, self.poll_interval))
        except Exception as error:  # a trigger never raises: the operator decides and cleans up
            yield TriggerEvent(
                {
                    "status": "error",
                    "message": f"watching workspace {self.execution_id} failed: {type(error).__name__}: {error}",
                    "execution_id": self.execution_id,
                    "state": "failed",
                    "reason": f"monitoring failed: {error}",
                    "exit_code": None,
                }
            )

    async def on_kill(self) -> None:
        """The user marked or cleared the deferred task: stop JupyterLab and save what it wrote."""
        from hyperai_provider.core.workspace import WorkspaceEnd

        await asyncio.to_thread(
            self.workspaces().finish,
            self.execution_id,
            WorkspaceEnd("terminated", "task killed in Airflow while the workspace ran"),
        )
