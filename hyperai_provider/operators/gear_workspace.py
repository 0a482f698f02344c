"""``GearWorkspaceOperator``: a Workspace-mode execution (JupyterLab) that defers until it ends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hyperai_provider.exceptions import ConfigurationError, ExecutionFailedError, ExecutionTerminatedError
from hyperai_provider.links import WORKSPACE_PATH_KEY, ExecutionLink, JupyterLabLink
from hyperai_provider.models import ExecutionMode, ExecutionState
from hyperai_provider.operators.gear_task import GearTaskOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from hyperai_provider.core.workspace import WorkspaceOptions, Workspaces


class GearWorkspaceOperator(GearTaskOperator):
    """JupyterLab in a Gear execution's container, rooted at ``/hyperai/home``, until the user closes it.

    Takes the same ``image`` (default ``jupyter``), ``compute_type``, ``gear``, ``code``, ``inputs``,
    ``environment`` and ``parameters`` as :class:`GearTaskOperator` (no ``command``). It starts
    JupyterLab with a random token that stays on the server, logs and pushes (the "Open JupyterLab" link)
    the web UI's proxy path ``/hyperai/workspaces/<gear>/<n>/lab``, where only the gear's owner, logged
    in to Airflow, gets through; then it defers: no worker slot is held while the user works. It ends
    when JupyterLab is shut down from its menu, on ``hyperai stop GEAR/N``, after
    ``idle_timeout`` seconds without kernel, terminal or API activity, or at ``max_runtime``. The working
    directory is saved and the task returns its reference, so a downstream task can promote it:
    ``GearTaskOperator(code=workspace.output, ...)``.

    :param host_address: host address JupyterLab's port is published on (default loopback).
    :param host_port: host port (0: a free one picked by Docker).
    :param idle_timeout: seconds of inactivity that end the workspace (None: never).
    :param max_runtime: seconds after which the workspace is terminated (None: no limit).
    :param poll_interval: seconds between the trigger's checks.
    """

    template_fields: Sequence[str] = tuple(f for f in GearTaskOperator.template_fields if f != "command")
    operator_extra_links = (JupyterLabLink(), ExecutionLink())
    mode = ExecutionMode.WORKSPACE
    ui_color = "#fde2c2"

    def __init__(
        self,
        *,
        image: str = "jupyter",
        host_address: str = "127.0.0.1",
        host_port: int = 0,
        idle_timeout: float | None = 3600.0,
        max_runtime: float | None = None,
        poll_interval: float = 5.0,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("command") is not None:
            raise ConfigurationError(
                "GearWorkspaceOperator runs JupyterLab and takes no command.",
                "Remove 'command', or use GearTaskOperator to run a command.",
            )
        super().__init__(image=image, **kwargs)
        from hyperai_provider.core.workspace import WorkspaceOptions

        self.options: WorkspaceOptions = WorkspaceOptions(  # checks the values now, at DAG parse time
            host_address=host_address,
            host_port=host_port,
            idle_timeout=idle_timeout,
            max_runtime=max_runtime,
        )
        self.poll_interval = poll_interval

    def workspaces(self) -> Workspaces:
        return self.service.workspaces

    def execute(self, context: Context) -> dict[str, Any]:  # defers; execute_complete returns
        from hyperai_provider.triggers.workspace import WorkspaceTrigger

        workspaces = self.workspaces()
        plan = workspaces.plan(self.build_spec(context), self.options)
        workspace = workspaces.start(plan, self.options, on_line=self.log.info, on_created=self._created(context))
        self.log.info("JupyterLab is ready: open %s in the Airflow web UI", workspace.path)
        context["ti"].xcom_push(key=WORKSPACE_PATH_KEY, value=workspace.path)
        self.defer(
            trigger=WorkspaceTrigger(
                execution_id=workspace.record.id,
                hyperai_conn_id=self.hyperai_conn_id,
                poll_interval=self.poll_interval,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger: save and close the execution; the container is removed in any case."""
        from hyperai_provider.core.workspace import WorkspaceEnd

        id_ = event["execution_id"]
        if event.get("status") != "ended":
            self.log.error("%s", event.get("message"))
        try:
            record = self.workspaces().finish(
                id_, WorkspaceEnd(event["state"], event["reason"], event.get("exit_code"))
            )
        finally:
            context["ti"].xcom_push(key=WORKSPACE_PATH_KEY, value="")  # the URL is dead now
        self.log.info(
            "Workspace %s %s (%s); working directory: %s",
            record.id,
            record.state.value,
            event["reason"],
            self.service.workdir(record),
        )
        if record.state is ExecutionState.TERMINATED:
            raise ExecutionTerminatedError(id_, f"terminated ({event['reason']})", record.exit_code)
        if record.state is not ExecutionState.SUCCEEDED:
            raise ExecutionFailedError(id_, record.failure_reason or event["reason"], record.exit_code)
        return self.service.reference(record).model_dump(mode="json")
