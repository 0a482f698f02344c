"""Workspace mode: JupyterLab in an execution's container until the user closes it or it goes idle.

Lifecycle: :meth:`Workspaces.plan` (every check, nothing created) -> :meth:`Workspaces.start` (record,
working dir, container) -> :meth:`Workspaces.check` polled until it returns why the workspace ended ->
:meth:`Workspaces.finish` (the one close path). The checks are plain blocking calls so the Airflow trigger
can run them in a thread; nothing here imports Airflow.

The token lives in a 0600 file next to the execution's log, never in a record, XCom or log line: the owner
opens JupyterLab through the web UI's proxy (``/hyperai/workspaces/<gear>/<n>/lab``), which adds it.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from hyperai_provider.core.backend import Backend
from hyperai_provider.core.closer import TOKEN_FILE, Closer, Outcome
from hyperai_provider.core.executions import Executions, LineSink
from hyperai_provider.core.planner import ExecutionPlan, Planner
from hyperai_provider.core.quota import over_disk_quota
from hyperai_provider.core.records import advance, revise
from hyperai_provider.exceptions import ConfigurationError, EngineError, HyperAIError
from hyperai_provider.models import HOME, ExecutionMode, ExecutionRecord, ExecutionState, WorkspaceInfo
from hyperai_provider.models.spec import ExecutionSpec

JUPYTER_PORT = 8888
WORKSPACE_URL_PREFIX = "/hyperai/workspaces"
"""Where the web UI proxies a running workspace's JupyterLab: ``<prefix>/<gear>/<n>/``."""

EndState = Literal["succeeded", "terminated", "failed"]


def workspace_path(record: ExecutionRecord) -> str:
    """JupyterLab's base URL path, the same behind the web UI's proxy and inside the container."""
    return f"{WORKSPACE_URL_PREFIX}/{record.gear}/{record.number}/"


def jupyter_command(record: ExecutionRecord) -> list[str]:
    """JupyterLab rooted at the working directory. The token is passed as JUPYTER_TOKEN in the
    container's environment, so it is in no record or argv."""
    return [
        "jupyter",
        "lab",
        "--allow-root",
        "--no-browser",
        "--ip=0.0.0.0",
        f"--port={JUPYTER_PORT}",
        f"--ServerApp.root_dir={HOME}",
        f"--ServerApp.base_url={workspace_path(record)}",
        "--ServerApp.allow_remote_access=True",
    ]


@dataclass(frozen=True)
class WorkspaceOptions:
    """Where JupyterLab listens and when an unattended workspace ends."""

    host_address: str = "127.0.0.1"
    """Host address the port is published on; loopback by default (``0.0.0.0``: every interface)."""
    host_port: int = 0
    """Host port; 0 lets the engine pick a free one."""
    idle_timeout: float | None = 3600.0
    """Seconds without kernel, terminal or API activity after which the workspace is closed."""
    max_runtime: float | None = None
    """Seconds after which the workspace is closed whatever it is doing."""
    ready_timeout: float = 120.0
    """Seconds to wait for JupyterLab to answer after the container started."""

    def __post_init__(self) -> None:
        if not 0 <= self.host_port <= 65535:
            raise ConfigurationError(
                f"Port {self.host_port} is not a TCP port.", "Give 1-65535, or 0 to let Docker pick one."
            )
        for name in ("idle_timeout", "max_runtime"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigurationError(
                    f"{name}={value} must be a positive number of seconds.",
                    f"Give seconds, or None for no {name}.",
                )


@dataclass(frozen=True)
class WorkspaceEnd:
    """Why a workspace ended and the state its execution closes in."""

    state: EndState
    reason: str
    exit_code: int | None = None

    def to_event(self, execution_id: str) -> dict[str, Any]:
        return {
            "execution_id": execution_id,
            "state": self.state,
            "reason": self.reason,
            "exit_code": self.exit_code,
        }


@dataclass(frozen=True)
class Workspace:
    record: ExecutionRecord
    path: str
    """The proxied URL path of JupyterLab (``/hyperai/workspaces/<gear>/<n>/lab``), without any token."""
    token: str
    """For the owner's own clients only; never logged, pushed to XCom or recorded."""


class Workspaces:
    """Workspace-mode executions: JupyterLab in a Gear execution's container."""

    def __init__(self, backend: Backend, planner: Planner, executions: Executions, closer: Closer) -> None:
        self.backend = backend
        self.planner = planner
        self.executions = executions
        self.closer = closer
        self._has_jupyter: dict[str, bool] = {}

    # -- before anything exists ---------------------------------------------------------------------------

    def plan(self, spec: ExecutionSpec, options: WorkspaceOptions) -> ExecutionPlan:
        """Every check of a task's plan, plus: the image has JupyterLab and the port can be bound."""
        spec = spec.model_copy(update={"mode": ExecutionMode.WORKSPACE, "command": ["jupyter", "lab"]})
        plan = self.planner.plan(spec)
        self.check_jupyter(plan)
        self.check_port(options)
        return plan

    def check_jupyter(self, plan: ExecutionPlan) -> None:
        """Refuse an image without JupyterLab: by its catalog flag, else by looking in a throwaway container."""
        entry = plan.image_entry
        if entry is not None and entry.jupyter:
            return
        if plan.image not in self._has_jupyter:
            self._has_jupyter[plan.image] = self.backend.runner.run_probe(
                plan.image, ["/bin/sh", "-c", "command -v jupyter"]
            )
        if not self._has_jupyter[plan.image]:
            raise ConfigurationError(
                f"Image {plan.image!r} has no JupyterLab (no 'jupyter' command), so it cannot run a workspace.",
                "Use image='jupyter' (build it offline with scripts/build_images.sh --only jupyter), or an image "
                "with JupyterLab installed; mark such an image 'jupyter: true' in images.yaml to skip this check.",
            )

    def check_port(self, options: WorkspaceOptions) -> None:
        """Refuse a host address or port that cannot be bound (checked here; the engine binds it on start)."""
        if not self._engine_is_local():
            return
        family = socket.AF_INET6 if ":" in options.host_address else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((options.host_address, options.host_port))
            except OSError as error:
                what = f"port {options.host_port}" if options.host_port else "a port"
                raise ConfigurationError(
                    f"Cannot bind {what} on host address {options.host_address!r} for JupyterLab ({error.strerror}).",
                    "Pick a free port (host_port=0 lets Docker choose) and an address of this host "
                    "(127.0.0.1 by default; 0.0.0.0 for every interface).",
                ) from error

    def _engine_is_local(self) -> bool:
        base_url = self.backend.runner.base_url or os.environ.get("DOCKER_HOST") or ""
        return not base_url or base_url.startswith("unix://")

    # -- start ---------------------------------------------------------------------------------------------

    def start(
        self,
        plan: ExecutionPlan,
        options: WorkspaceOptions,
        on_line: LineSink = print,
        on_created: Callable[[ExecutionRecord], None] | None = None,
    ) -> Workspace:
        """Create the execution, start JupyterLab, wait until it answers; on any failure nothing is left running."""
        store, runner = self.backend.store, self.backend.runner
        record = self.executions.create(plan)
        info = WorkspaceInfo(
            host_address=options.host_address, idle_timeout=options.idle_timeout, max_runtime=options.max_runtime
        )
        record = store.update_execution(
            record.id, lambda current: revise(current, command=jupyter_command(current), workspace=info)
        )
        if on_created is not None:
            on_created(record)
        token = secrets.token_urlsafe(32)
        try:
            self.executions.prepare(record, plan, on_line)
            self._write_token(record, token)
            spec = self.executions.container_spec(record, plan.spec.secret_environment)
            spec = replace(
                spec,
                environment={**spec.environment, "JUPYTER_TOKEN": token},
                ports={f"{JUPYTER_PORT}/tcp": (options.host_address, options.host_port)},
            )
            runner.start(spec)
            port = _published_port(runner.inspect(record.container_name) or {})
            # From here the triggerer watches it: the starting worker may exit without orphaning it.
            record = store.update_execution(
                record.id,
                lambda current: revise(
                    advance_running(current), runner=None, workspace=info.model_copy(update={"host_port": port})
                ),
            )
            workspace = Workspace(record, workspace_path(record) + "lab", token)
            self.wait_ready(workspace, options.ready_timeout)
        except HyperAIError as error:
            self.closer.close(record.id, Outcome(ExecutionState.FAILED, error.headline))
            raise
        except BaseException as error:
            self.closer.close(record.id, Outcome(ExecutionState.FAILED, f"{type(error).__name__}: {error}"))
            raise
        on_line(f"[hyperai] workspace {record.id} is ready: open {workspace.path} in the Airflow web UI")
        return workspace

    def wait_ready(self, workspace: Workspace, timeout: float) -> float:
        """Poll JupyterLab until it answers with the token; return the seconds waited."""
        began = time.monotonic()
        record = workspace.record
        while True:
            if self._status(record, workspace.token) is not None:
                return time.monotonic() - began
            state = (self.backend.runner.inspect(record.container_name) or {}).get("State")
            if state is None or state.get("Status") not in ("running", "created"):
                raise EngineError(
                    f"JupyterLab in {record.container_name} exited before answering "
                    f"(exit code {(state or {}).get('ExitCode')}).",
                    f"See the log: {self.backend.storage.log_path(record.gear, record.number)}",
                )
            if time.monotonic() - began > timeout:
                raise EngineError(
                    f"JupyterLab in {record.container_name} did not answer within {timeout:g} s.",
                    "Check the image's JupyterLab installation, or raise ready_timeout.",
                )
            time.sleep(0.2)

    # -- while it runs --------------------------------------------------------------------------------------

    def check(self, id_: str, activity: bool = True) -> WorkspaceEnd | None:
        """One look at a running workspace: ``None`` while it should go on, else why it ended.

        ``activity=False`` skips asking Jupyter about idleness and the disk quota: a cheap check (record
        and container state only) that can run every second so a shutdown is noticed at once."""
        record = self.backend.store.get_execution(id_)
        if record.closed:
            closed_state: EndState = record.state.value  # type: ignore[assignment]
            return WorkspaceEnd(closed_state, record.ended_because or "already closed", record.exit_code)
        state = (self.backend.runner.inspect(record.container_name) or {}).get("State")
        stop_reason = record.stop_requested
        if state is None:
            return WorkspaceEnd("failed", f"the container {record.container_name} disappeared")
        if state.get("Status") not in ("running", "created", "restarting"):
            exit_code = int(state.get("ExitCode", -1))
            if stop_reason:
                return WorkspaceEnd("terminated", stop_reason, exit_code)
            if exit_code == 0:
                return WorkspaceEnd("succeeded", "shut down from JupyterLab", exit_code)
            reason = "out of memory" if state.get("OOMKilled") else f"JupyterLab exited with code {exit_code}"
            return WorkspaceEnd("failed", reason, exit_code)
        if stop_reason:
            return WorkspaceEnd("terminated", stop_reason)
        info = record.workspace or WorkspaceInfo(host_address="127.0.0.1")
        now = datetime.now(timezone.utc)
        started = record.started_at or record.created_at
        if info.max_runtime and (now - started).total_seconds() >= info.max_runtime:
            return WorkspaceEnd("terminated", f"max_runtime of {info.max_runtime:g} s reached")
        if not activity:
            return None
        quota = over_disk_quota(self.backend, record)
        if quota:
            return WorkspaceEnd("failed", quota)
        if info.idle_timeout:
            idle = self.idle_seconds(record, now)
            if idle is not None and idle >= info.idle_timeout:
                return WorkspaceEnd("succeeded", f"idle for {idle:.0f} s (idle_timeout {info.idle_timeout:g} s)")
        return None

    def idle_seconds(self, record: ExecutionRecord, now: datetime | None = None) -> float | None:
        """Seconds since Jupyter's last kernel, terminal or API activity; 0 while a kernel is busy;
        None when JupyterLab does not answer."""
        token = self.token(record)
        if token is None:
            return None
        status = self._status(record, token)
        if status is None:
            return None
        kernels = self._get(record, token, "api/kernels?no_track_activity=1")  # our poll is no activity
        if isinstance(kernels, list) and any(k.get("execution_state") == "busy" for k in kernels):
            return 0.0
        last = _parse_time(status.get("last_activity")) or record.started_at or record.created_at
        return max(0.0, ((now or datetime.now(timezone.utc)) - last).total_seconds())

    def upstream(self, record: ExecutionRecord) -> tuple[str, str] | None:
        """Where a running workspace's JupyterLab answers on the Docker host (``http://addr:port``) and its
        token, for the web UI's proxy; None once it ended."""
        if record.closed or record.workspace is None:
            return None
        token = self.token(record)
        info = self.backend.runner.inspect(record.container_name)
        if token is None or info is None:
            return None
        try:
            binding = info["NetworkSettings"]["Ports"][f"{JUPYTER_PORT}/tcp"][0]
        except (KeyError, IndexError, TypeError):
            return None
        address = binding.get("HostIp") or "127.0.0.1"
        if address in ("0.0.0.0", "::"):
            address = "127.0.0.1"
        return f"http://{address}:{binding['HostPort']}", token

    def _status(self, record: ExecutionRecord, token: str) -> dict[str, Any] | None:
        status = self._get(record, token, "api/status")
        return status if isinstance(status, dict) else None

    def _get(self, record: ExecutionRecord, token: str, path: str) -> Any:
        """GET a Jupyter API path from the Airflow host (through the published port); None on any failure."""
        upstream = self.upstream(record)
        if upstream is None:
            return None
        request = urllib.request.Request(
            upstream[0] + workspace_path(record) + path, headers={"Authorization": f"token {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())
        except (OSError, ValueError):
            return None

    # -- the end ---------------------------------------------------------------------------------------------

    def finish(self, id_: str, end: WorkspaceEnd) -> ExecutionRecord:
        """Close the workspace's execution through the one close path (stop, save, release, notify)."""
        state = {
            "succeeded": ExecutionState.SUCCEEDED,
            "terminated": ExecutionState.TERMINATED,
            "failed": ExecutionState.FAILED,
        }[end.state]
        return self.closer.close(id_, Outcome(state, end.reason, end.exit_code))

    # -- the token ---------------------------------------------------------------------------------------

    def _token_path(self, record: ExecutionRecord) -> Path:
        """The 0600 file holding a running workspace's token, next to its log (outside the working dir)."""
        return self.backend.storage.execution_dir(record.gear, record.number) / TOKEN_FILE

    def _write_token(self, record: ExecutionRecord, token: str) -> None:
        path = self._token_path(record)
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(token)

    def token(self, record: ExecutionRecord) -> str | None:
        """The running workspace's token (readable only by the account that started it)."""
        try:
            return self._token_path(record).read_text().strip() or None
        except OSError:
            return None


def advance_running(record: ExecutionRecord) -> ExecutionRecord:
    return advance(record, ExecutionState.RUNNING, "JupyterLab starting")


def _published_port(attrs: dict[str, Any]) -> int:
    try:
        return int(attrs["NetworkSettings"]["Ports"][f"{JUPYTER_PORT}/tcp"][0]["HostPort"])
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise EngineError(f"Docker did not publish JupyterLab's port {JUPYTER_PORT}/tcp.") from error


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
