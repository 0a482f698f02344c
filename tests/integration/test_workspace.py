"""Workspace mode on the real Docker engine with a real JupyterLab (hyperai/jupyter:bookworm-1)."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from hyperai_provider.core.gears import GearService
from hyperai_provider.core.workspace import (
    Workspace,
    WorkspaceEnd,
    WorkspaceOptions,
    Workspaces,
    workspace_path,
)
from hyperai_provider.exceptions import ConfigurationError
from hyperai_provider.models import ExecutionState
from hyperai_provider.models.spec import ExecutionSpec
from tests.conftest import run_cli

pytestmark = pytest.mark.docker


@pytest.fixture
def workspaces(service: GearService, jupyter_image: str) -> Workspaces:
    return service.workspaces


def spec(gear: str, **fields) -> ExecutionSpec:  # type: ignore[no-untyped-def]
    return ExecutionSpec.model_validate({"gear": gear, "image": "jupyter", "mode": "workspace", **fields})


def call(url: str, method: str = "GET", token: str | None = None, body: object = None) -> tuple[int, object]:
    headers = {"Authorization": f"token {token}"} if token else {}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, None


def base(workspaces: Workspaces, workspace: Workspace) -> str:
    """JupyterLab's URL on the Docker host (what the web UI's proxy forwards to)."""
    upstream = workspaces.upstream(workspace.record)
    assert upstream is not None, "the workspace is not running"
    return upstream[0] + workspace_path(workspace.record).rstrip("/")


def wait_end(workspaces: Workspaces, id_: str, timeout: float = 60) -> WorkspaceEnd:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        end = workspaces.check(id_)
        if end is not None:
            return end
        time.sleep(0.2)
    raise AssertionError(f"workspace {id_} did not end within {timeout} s")


def start(workspaces: Workspaces, gear: str, options: WorkspaceOptions, **fields) -> Workspace:  # type: ignore[no-untyped-def]
    return workspaces.start(workspaces.plan(spec(gear, **fields), options), options, on_line=lambda _: None)


def test_token_contents_and_shutdown_save_the_working_directory(
    workspaces: Workspaces, service: GearService, tmp_path: Path
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("print('hi')\n")
    began = time.monotonic()
    workspace = start(workspaces, "ws-api", WorkspaceOptions(idle_timeout=None), code=code)
    ready = time.monotonic() - began
    try:
        assert base(workspaces, workspace).startswith("http://127.0.0.1:")
        client = service.runner.client
        ports = client.api.inspect_container(workspace.record.container_name)["NetworkSettings"]["Ports"]
        assert [binding["HostIp"] for binding in ports["8888/tcp"]] == ["127.0.0.1"]  # loopback only
        assert call(base(workspaces, workspace) + "/api/status", token=workspace.token)[0] == 200
        assert call(base(workspaces, workspace) + "/api/status")[0] == 403
        assert call(base(workspaces, workspace) + "/api/status", token="wrong")[0] == 403
        status, listing = call(base(workspaces, workspace) + "/api/contents", token=workspace.token)
        assert status == 200 and {item["name"] for item in listing["content"]} == {"train.py"}  # type: ignore[index]
        created = call(
            base(workspaces, workspace) + "/api/contents/notes.txt",
            "PUT",
            workspace.token,
            {"type": "file", "format": "text", "content": "written through Jupyter"},
        )
        assert created[0] == 201
        record = service.get(workspace.record.id)
        assert record.state is ExecutionState.RUNNING and record.mode.value == "workspace"
        assert workspace.token not in json.dumps(record.model_dump(mode="json"))
        root = service.settings.storage_root
        shown = run_cli("show", record.id, storage_root=root, env={"HYPERAI_USER": "alice"})
        assert workspace_path(record) + "lab" in shown.stdout and workspace.token not in shown.stdout
        shown = run_cli("show", record.id, storage_root=root, env={"HYPERAI_USER": "bob"})
        # another user does not even learn that a private gear's running workspace exists
        assert shown.returncode == 3 and workspace.token not in shown.stdout + shown.stderr
        shutdown_at = time.monotonic()
        assert call(base(workspaces, workspace) + "/api/shutdown", "POST", workspace.token)[0] in (200, 204)
        end = wait_end(workspaces, workspace.record.id)
        record = workspaces.finish(workspace.record.id, end)
        ended = time.monotonic() - shutdown_at
    finally:
        service.runner.remove(workspace.record.container_name)
    print(f"\nJupyterLab answered {ready:.2f} s after start; task closed {ended:.2f} s after shutdown")
    assert end == WorkspaceEnd("succeeded", "shut down from JupyterLab", 0)
    assert record.state is ExecutionState.SUCCEEDED and record.ended_because == end.reason
    home = service.workdir(record)
    assert (home / "notes.txt").read_text() == "written through Jupyter"
    assert service.storage.is_saved(record.gear, record.number)
    log = service.storage.log_path(record.gear, record.number).read_text()
    assert "Jupyter" in log and workspace.token not in log
    assert workspaces.upstream(record) is None


def test_idle_timeout_ends_an_idle_workspace(workspaces: Workspaces, service: GearService) -> None:
    workspace = start(workspaces, "ws-idle", WorkspaceOptions(idle_timeout=2))
    try:
        end = wait_end(workspaces, workspace.record.id, timeout=30)
        record = workspaces.finish(workspace.record.id, end)
    finally:
        service.runner.remove(workspace.record.container_name)
    assert end.state == "succeeded" and end.reason.startswith("idle for")
    assert record.state is ExecutionState.SUCCEEDED and record.ended_because.startswith("idle for")


def test_a_busy_kernel_keeps_the_workspace_open_past_the_idle_timeout(
    workspaces: Workspaces, service: GearService
) -> None:
    import uuid

    from websockets.sync.client import connect

    workspace = start(workspaces, "ws-busy", WorkspaceOptions(idle_timeout=2))
    try:
        status, kernel = call(
            base(workspaces, workspace) + "/api/kernels", "POST", workspace.token, {"name": "python3"}
        )
        assert status == 201
        channels = base(workspaces, workspace).replace("http", "ws") + f"/api/kernels/{kernel['id']}/channels"  # type: ignore[index]
        with connect(channels, additional_headers={"Authorization": f"token {workspace.token}"}) as socket_:
            header = {"msg_id": uuid.uuid4().hex, "session": uuid.uuid4().hex, "username": "test"}
            content = {"code": "import time; time.sleep(7)", "silent": False, "store_history": False}
            message = {
                "header": {**header, "msg_type": "execute_request", "version": "5.3"},
                "parent_header": {},
                "metadata": {},
                "content": {**content, "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
                "channel": "shell",
            }
            socket_.send(json.dumps(message))
            busy_until = time.monotonic() + 6
            while time.monotonic() < busy_until:  # 3x the idle timeout with no API use: the kernel is busy
                assert workspaces.check(workspace.record.id) is None
                time.sleep(0.5)
        end = wait_end(workspaces, workspace.record.id, timeout=30)  # idle once the cell finished
        workspaces.finish(workspace.record.id, end)
    finally:
        service.runner.remove(workspace.record.container_name)
    assert end.state == "succeeded" and end.reason.startswith("idle for")


def test_max_runtime_terminates_a_busy_workspace(workspaces: Workspaces, service: GearService) -> None:
    workspace = start(workspaces, "ws-max", WorkspaceOptions(idle_timeout=None, max_runtime=2))
    try:
        end = wait_end(workspaces, workspace.record.id, timeout=30)
        record = workspaces.finish(workspace.record.id, end)
    finally:
        service.runner.remove(workspace.record.container_name)
    assert end.state == "terminated" and end.reason == "max_runtime of 2 s reached"
    assert record.state is ExecutionState.TERMINATED and record.saved_completely
    assert record.failure_reason == f"terminated: {end.reason}" and record.ended_because == end.reason


def test_stop_terminates_the_workspace(workspaces: Workspaces, service: GearService) -> None:
    workspace = start(workspaces, "ws-stop", WorkspaceOptions(idle_timeout=None))
    try:
        service.stop(workspace.record.id, "stopped by user")
        end = wait_end(workspaces, workspace.record.id)
        record = workspaces.finish(workspace.record.id, end)
    finally:
        service.runner.remove(workspace.record.container_name)
    assert end.state == "terminated" and end.reason == "stopped by user"
    assert record.state is ExecutionState.TERMINATED and record.saved_completely


def test_an_image_without_jupyterlab_fails_before_anything_starts(
    workspaces: Workspaces, service: GearService, base_image: str
) -> None:
    began = time.monotonic()
    with pytest.raises(ConfigurationError, match="has no JupyterLab") as caught:
        workspaces.plan(spec("ws-noimg", image=base_image), WorkspaceOptions())
    print(f"\nimage check by a throwaway container: {time.monotonic() - began:.2f} s")
    assert "scripts/build_images.sh --only jupyter" in str(caught.value)
    with pytest.raises(ConfigurationError, match="has no JupyterLab"):
        workspaces.plan(spec("ws-noimg", image="python"), WorkspaceOptions())
    assert service.executions() == []


def test_a_port_that_cannot_be_bound_fails_before_anything_starts(
    workspaces: Workspaces, service: GearService
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigurationError, match=f"Cannot bind port {port}"):
            workspaces.plan(spec("ws-port"), WorkspaceOptions(host_port=port))
    with pytest.raises(ConfigurationError, match="Cannot bind"):
        workspaces.plan(spec("ws-port"), WorkspaceOptions(host_address="192.0.2.1"))
    assert service.executions() == []


def test_the_trigger_yields_one_event_when_jupyterlab_is_shut_down(
    workspaces: Workspaces, service: GearService, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from hyperai_provider.triggers.workspace import WorkspaceTrigger

    workspace = start(workspaces, "ws-trigger", WorkspaceOptions(idle_timeout=None))
    monkeypatch.setenv("HYPERAI_STORAGE_ROOT", str(service.settings.storage_root))  # the hook's resolver
    trigger = WorkspaceTrigger(workspace.record.id, poll_interval=0.2)
    classpath, kwargs = trigger.serialize()
    assert classpath == "hyperai_provider.triggers.workspace.WorkspaceTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs  # plain values only
    assert workspace.token not in json.dumps(kwargs)

    async def run() -> list[object]:
        events = []
        runner = asyncio.ensure_future(_collect(WorkspaceTrigger(**kwargs), events))
        await asyncio.sleep(1)
        assert not runner.done()  # still waiting: the workspace is open
        await asyncio.to_thread(call, base(workspaces, workspace) + "/api/shutdown", "POST", workspace.token)
        await asyncio.wait_for(runner, 30)
        return events

    try:
        events = asyncio.run(run())
        record = workspaces.finish(
            workspace.record.id,
            WorkspaceEnd(**{k: events[0].payload[k] for k in ("state", "reason", "exit_code")}),
        )  # type: ignore[attr-defined]
    finally:
        service.runner.remove(workspace.record.container_name)
    assert len(events) == 1
    payload = events[0].payload  # type: ignore[attr-defined]
    assert payload["status"] == "ended" and payload["state"] == "succeeded" and payload["exit_code"] == 0
    assert "shut down from JupyterLab" in payload["message"]
    assert record.state is ExecutionState.SUCCEEDED


async def _collect(trigger, events: list[object]) -> None:  # type: ignore[no-untyped-def]
    async for event in trigger.run():
        events.append(event)


def test_the_trigger_reports_a_failure_as_an_event_instead_of_raising(tmp_path: Path) -> None:
    import asyncio

    from hyperai_provider.triggers.workspace import WorkspaceTrigger

    trigger = WorkspaceTrigger("nope/1", str(tmp_path / "storage"), poll_interval=0.1)
    events: list[object] = []
    asyncio.run(_collect(trigger, events))
    assert len(events) == 1
    payload = events[0].payload  # type: ignore[attr-defined]
    assert payload["status"] == "error" and payload["state"] == "failed" and "nope/1" in payload["message"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param({"command": "python3 x.py"}, "takes no command", id="command"),
        pytest.param({"idle_timeout": 0}, "idle_timeout=0 must be a positive", id="zero-idle-timeout"),
        pytest.param({"host_port": 70000}, "not a TCP port", id="bad-port"),
    ],
)
def test_workspace_operator_arguments_are_checked_when_the_dag_is_parsed(
    arguments: dict, message: str
) -> None:
    from hyperai_provider.operators import GearWorkspaceOperator

    with pytest.raises(ConfigurationError, match=message):
        GearWorkspaceOperator(task_id="ws", **arguments)


def test_workspace_operator_shares_the_task_operators_options() -> None:
    from hyperai_provider.operators import GearWorkspaceOperator

    operator = GearWorkspaceOperator(task_id="ws", code="gear/3:notebooks", compute_type="cpu")
    assert operator.image == "jupyter" and "command" not in operator.template_fields
    assert "code" in operator.template_fields
    assert {link.name for link in operator.operator_extra_links} == {"Open JupyterLab", "HyperAI execution"}
    assert operator._code_fields() == {"code_from": "gear/3:notebooks"}
    operator.code = {"kind": "workdir", "execution_id": "dev/2", "gear": "dev", "state": "succeeded"}
    assert operator._code_fields() == {"code_from": "dev/2"}
    operator.code = "dataset:mnist@1"
    with pytest.raises(ConfigurationError, match="names a dataset"):
        operator._code_fields()
