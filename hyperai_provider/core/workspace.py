"""Workspace mode: JupyterLab in an execution's container until the user closes it or it goes idle.

Lifecycle: :meth:`Workspaces.plan` (every check, nothing created) -> :meth:`Workspaces.start` (record,
working dir, container, URL) -> :meth:`Workspaces.check` polled until it returns why the workspace ended ->
:meth:`Workspaces.finish` (stop, save, close). The checks are plain blocking calls so the Airflow trigger
can run them in a thread; nothing here imports Airflow.

The token lives in a 0600 file next to the execution's log, never in the record: the record keeps the URL
without it, and only the task log and ``hyperai show`` (for the owner) print the URL with it.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from hyperai_provider.core.gears import STOP_REQUESTED, ExecutionPlan, GearService, LineSink
from hyperai_provider.exceptions import ConfigurationError, EngineError, HyperAIError
from hyperai_provider.models import HOME, ExecutionMode, ExecutionRecord, ExecutionState
from hyperai_provider.models.spec import ExecutionSpec

JUPYTER_PORT = 8888
JUPYTER_COMMAND = [
    "jupyter",
    "lab",
    "--allow-root",
    "--no-browser",
    "--ip=0.0.0.0",
    f"--port={JUPYTER_PORT}",
    f"--ServerApp.root_dir={HOME}",
    "--ServerApp.allow_remote_access=True",
]
"""The token is passed as JUPYTER_TOKEN in the container's environment, so it is in no record or argv."""

TOKEN_FILE = "jupyter_token"
EXTRA_URL = "workspace_url"
EXTRA_ENDED = "ended_because"
EXTRA_IDLE_TIMEOUT = "idle_timeout"
EXTRA_MAX_RUNTIME = "max_runtime"

EndState = Literal["succeeded", "terminated", "failed"]


@dataclass(frozen=True)
class WorkspaceOptions:
    """Where JupyterLab listens and when an unattended workspace ends."""

    host_address: str = "127.0.0.1"
    """Host address the port is published on; loopback by default (``0.0.0.0``: every interface)."""
    host_port: int = 0
    """Host port; 0 lets the engine pick a free one."""
    public_host: str | None = None
    """Host name put in the URL (default: the host address, or ``localhost`` for ``0.0.0.0``)."""
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
    url: str
    """``http://host:port/lab`` without the token."""
    token: str

    @property
    def url_with_token(self) -> str:
        return f"{self.url}?token={self.token}"


class Workspaces:
    """Workspace-mode executions over a :class:`GearService`."""

    def __init__(self, service: GearService) -> None:
        self.service = service
        self._has_jupyter: dict[str, bool] = {}

    # -- before anything exists ---------------------------------------------------------------------------

    def plan(self, spec: ExecutionSpec, options: WorkspaceOptions) -> ExecutionPlan:
        """Every check of a task's plan, plus: the image has JupyterLab and the port can be bound."""
        if spec.mode is not ExecutionMode.WORKSPACE:
            spec = spec.model_copy(update={"mode": ExecutionMode.WORKSPACE})
        spec = spec.model_copy(update={"command": list(JUPYTER_COMMAND)})
        plan = self.service.plan(spec)
        self.check_jupyter(plan)
        self.check_port(options)
        return plan

    def check_jupyter(self, plan: ExecutionPlan) -> None:
        """Refuse an image without JupyterLab: by its catalog flag, else by looking in a throwaway container."""
        entry = plan.image_entry
        has_it = entry.jupyter if entry is not None and entry.jupyter else self._image_has_jupyter(plan.image)
        if not has_it:
            raise ConfigurationError(
                f"Image {plan.image!r} has no JupyterLab (no 'jupyter' command), so it cannot run a workspace.",
                "Use image='jupyter' (build it offline with scripts/build_images.sh --only jupyter), or an image "
                "with JupyterLab installed; mark such an image 'jupyter: true' in images.yaml to skip this check.",
            )

    def _image_has_jupyter(self, image: str) -> bool:
        if image not in self._has_jupyter:
            import docker

            try:
                self.service.runner.client.containers.run(
                    image,
                    ["/bin/sh", "-c", "command -v jupyter"],
                    entrypoint=[],
                    remove=True,
                    network_mode="none",
                )
                self._has_jupyter[image] = True
            except docker.errors.ContainerError:
                self._has_jupyter[image] = False
            except docker.errors.APIError as error:
                raise EngineError(
                    f"Could not inspect image {image!r} for JupyterLab: {error.explanation}"
                ) from error
        return self._has_jupyter[image]

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
        base_url = self.service.runner.base_url or os.environ.get("DOCKER_HOST") or ""
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
        service = self.service
        record = service.create(plan)
        if on_created is not None:
            on_created(record)
        token = secrets.token_urlsafe(32)
        try:
            service.prepare(record, plan, on_line)
            self._write_token(record, token)
            spec = service.container_spec(record, plan)
            spec = replace(
                spec,
                environment={**spec.environment, "JUPYTER_TOKEN": token},
                ports={f"{JUPYTER_PORT}/tcp": (options.host_address, options.host_port)},
            )
            container = service.runner.start(spec)
            service.store.transition(record.id, ExecutionState.RUNNING, "JupyterLab starting")
            container.reload()
            url = f"http://{self._public_host(options)}:{_published_port(container.attrs)}/lab"
            record = service.store.update_execution(
                record.id,
                lambda current: current.model_copy(
                    update={
                        "extra": {
                            **current.extra,
                            EXTRA_URL: url,
                            EXTRA_IDLE_TIMEOUT: options.idle_timeout,
                            EXTRA_MAX_RUNTIME: options.max_runtime,
                        }
                    }
                ),
            )
            workspace = Workspace(record, url, token)
            self.wait_ready(workspace, options.ready_timeout)
        except HyperAIError as error:
            self._abort(record, error.headline)
            raise
        except BaseException as error:
            self._abort(record, f"{type(error).__name__}: {error}")
            raise
        on_line(f"[hyperai] workspace {record.id} is ready: {workspace.url_with_token}")
        return workspace

    def _abort(self, record: ExecutionRecord, reason: str) -> None:
        try:
            self._save_log(record)
        finally:
            self.service.release(record)  # the container and its volumes (overlay home of a continuation)
            token_path(self.service, record).unlink(missing_ok=True)
            self.service._close_failed(record.id, reason)

    def wait_ready(self, workspace: Workspace, timeout: float) -> float:
        """Poll JupyterLab until it answers with the token; return the seconds waited."""
        began = time.monotonic()
        while True:
            if self._status(workspace.record, workspace.token) is not None:
                return time.monotonic() - began
            state = self._container_state(workspace.record)
            if state is None or state.get("Status") not in ("running", "created"):
                raise EngineError(
                    f"JupyterLab in {workspace.record.container_name} exited before answering "
                    f"(exit code {(state or {}).get('ExitCode')}).",
                    f"See the log: {self.service.storage.log_path(workspace.record.gear, workspace.record.number)}",
                )
            if time.monotonic() - began > timeout:
                raise EngineError(
                    f"JupyterLab in {workspace.record.container_name} did not answer within {timeout:g} s.",
                    "Check the image's JupyterLab installation, or raise ready_timeout.",
                )
            time.sleep(0.2)

    def _public_host(self, options: WorkspaceOptions) -> str:
        if options.public_host:
            return options.public_host
        if options.host_address in ("0.0.0.0", "::", ""):
            return "localhost"
        return f"[{options.host_address}]" if ":" in options.host_address else options.host_address

    # -- while it runs --------------------------------------------------------------------------------------

    def check(self, id_: str, activity: bool = True) -> WorkspaceEnd | None:
        """One look at a running workspace: ``None`` while it should go on, else why it ended.

        ``activity=False`` skips asking Jupyter about idleness: a cheap check (record and container
        state only) that can run every second so a shutdown is noticed at once."""
        record = self.service.get(id_)
        if record.closed:
            closed_state: EndState = record.state.value  # type: ignore[assignment]
            return WorkspaceEnd(
                closed_state, record.extra.get(EXTRA_ENDED) or "already closed", record.exit_code
            )
        state = self._container_state(record)
        stop_reason = record.extra.get(STOP_REQUESTED)
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
        now = datetime.now(timezone.utc)
        started = record.started_at or record.created_at
        max_runtime = record.extra.get(EXTRA_MAX_RUNTIME)
        if max_runtime and (now - started).total_seconds() >= max_runtime:
            return WorkspaceEnd("terminated", f"max_runtime of {max_runtime:g} s reached")
        idle_timeout = record.extra.get(EXTRA_IDLE_TIMEOUT)
        if idle_timeout and activity:
            idle = self.idle_seconds(record, now)
            if idle is not None and idle >= idle_timeout:
                return WorkspaceEnd("succeeded", f"idle for {idle:.0f} s (idle_timeout {idle_timeout:g} s)")
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
        kernels = self._get(record, token, "/api/kernels?no_track_activity=1")  # our poll is no activity
        if isinstance(kernels, list) and any(k.get("execution_state") == "busy" for k in kernels):
            return 0.0
        last = _parse_time(status.get("last_activity")) or record.started_at or record.created_at
        return max(0.0, ((now or datetime.now(timezone.utc)) - last).total_seconds())

    def _status(self, record: ExecutionRecord, token: str) -> dict[str, Any] | None:
        status = self._get(record, token, "/api/status")
        return status if isinstance(status, dict) else None

    def _get(self, record: ExecutionRecord, token: str, path: str) -> Any:
        """GET a Jupyter API path from the Airflow host (through the published port); None on any failure."""
        base = self._local_base(record)
        if base is None:
            return None
        request = urllib.request.Request(base + path, headers={"Authorization": f"token {token}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())
        except (OSError, ValueError):
            return None

    def _local_base(self, record: ExecutionRecord) -> str | None:
        url = record.extra.get(EXTRA_URL)
        state = self._container_state(record, attrs=True)
        if not url or state is None:
            return None
        try:
            binding = state["NetworkSettings"]["Ports"][f"{JUPYTER_PORT}/tcp"][0]
        except (KeyError, IndexError, TypeError):
            return None
        address = binding.get("HostIp") or "127.0.0.1"
        if address in ("0.0.0.0", "::"):
            address = "127.0.0.1"
        return f"http://{address}:{binding['HostPort']}"

    def _container_state(self, record: ExecutionRecord, attrs: bool = False) -> dict[str, Any] | None:
        import docker

        try:
            info = self.service.runner.client.api.inspect_container(record.container_name)
        except docker.errors.NotFound:
            return None
        return info if attrs else info.get("State", {})

    # -- the end ---------------------------------------------------------------------------------------------

    def finish(self, id_: str, end: WorkspaceEnd) -> ExecutionRecord:
        """Stop JupyterLab (gracefully), save the working directory and close the record with why it ended.
        The container is removed; the token file too (the URL is dead)."""
        service = self.service
        record = service.get(id_)
        if record.closed:
            return record
        try:
            service.runner.stop(record.container_name)
            self._save_log(record)
            exit_code = end.exit_code
            state = self._container_state(record)
            if exit_code is None and state is not None:
                exit_code = int(state.get("ExitCode", -1))
            if record.state is ExecutionState.RUNNING:
                service.store.transition(id_, ExecutionState.SAVING)
            stored = service.save(record)
        except BaseException as error:
            service._close_failed(id_, f"saving the workspace failed: {type(error).__name__}: {error}")
            raise
        finally:
            service.release(record)
            token_path(service, record).unlink(missing_ok=True)
        final = {
            "succeeded": ExecutionState.SUCCEEDED,
            "terminated": ExecutionState.TERMINATED,
            "failed": ExecutionState.FAILED,
        }[end.state]
        record = service.get(id_)
        return service.store.transition(
            id_,
            final,
            end.reason,
            exit_code=exit_code,
            bytes_stored=stored,
            saved_completely=True,
            failure_reason=None if final is ExecutionState.SUCCEEDED else end.reason,
            extra={**record.extra, EXTRA_ENDED: end.reason},
        )

    def _save_log(self, record: ExecutionRecord) -> None:
        """Copy the container's output (JupyterLab's log) into the execution's log, token redacted."""
        import docker

        try:
            output = self.service.runner.client.api.logs(record.container_name, stdout=True, stderr=True)
        except docker.errors.NotFound:
            return
        text = output.decode("utf-8", errors="replace")
        token = self.token(record)
        if token:
            text = text.replace(token, "<token>")
        with self.service.storage.log_path(record.gear, record.number).open("a", encoding="utf-8") as log:
            log.write(text)

    # -- the token ---------------------------------------------------------------------------------------

    def _write_token(self, record: ExecutionRecord, token: str) -> None:
        path = token_path(self.service, record)
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(token)

    def token(self, record: ExecutionRecord) -> str | None:
        """The running workspace's token (readable only by the account that started it)."""
        try:
            return token_path(self.service, record).read_text().strip() or None
        except OSError:
            return None

    def url_with_token(self, record: ExecutionRecord) -> str | None:
        """The URL to open a running workspace, for its owner; None once it ended."""
        url = record.extra.get(EXTRA_URL)
        token = self.token(record)
        if record.closed or not url or not token:
            return None
        return f"{url}?token={token}"


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


def token_path(service: GearService, record: ExecutionRecord) -> Path:
    """The 0600 file holding a running workspace's token, next to its log (outside the working dir)."""
    return service.storage.execution_dir(record.gear, record.number) / TOKEN_FILE
