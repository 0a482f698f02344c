"""The one close path: what Task mode always did now holds for workspaces and every outcome too."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from hyperai_provider.core.gears import GearService
from hyperai_provider.core.workspace import (
    Workspace,
    WorkspaceEnd,
    WorkspaceOptions,
    Workspaces,
    workspace_path,
)
from hyperai_provider.exceptions import ExecutionFailedError
from hyperai_provider.models import ExecutionState, NotificationSettings, NotifyEvent
from hyperai_provider.models.spec import ExecutionSpec
from tests.conftest import Inbox

pytestmark = pytest.mark.docker


def task(**fields: Any) -> ExecutionSpec:
    return ExecutionSpec.model_validate({"image": "python", "compute_type": "cpu", **fields})


def jupyter(workspaces: Workspaces, workspace: Workspace, path: str, method: str = "GET", body: Any = None) -> int:
    upstream = workspaces.upstream(workspace.record)
    assert upstream is not None
    request = urllib.request.Request(
        upstream[0] + workspace_path(workspace.record) + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"token {workspace.token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


def wait_end(workspaces: Workspaces, id_: str, timeout: float = 60) -> WorkspaceEnd:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        end = workspaces.check(id_)
        if end is not None:
            return end
        time.sleep(0.3)
    pytest.fail(f"workspace {id_} did not end within {timeout} s")


def test_a_workspace_shut_down_normally_sends_its_email(
    service: GearService, jupyter_image: str, inbox: Inbox
) -> None:
    service.store.ensure_gear("ws-mail", service.settings.user)
    service.access().set_notifications(
        "ws-mail", NotificationSettings(recipients=["me@example.test"], events=[NotifyEvent.SUCCEEDED])
    )
    options = WorkspaceOptions(idle_timeout=None)
    workspaces = service.workspaces
    workspace = workspaces.start(
        workspaces.plan(task(gear="ws-mail", image="jupyter", mode="workspace"), options), options, on_line=lambda _: None
    )
    try:
        jupyter(workspaces, workspace, "api/shutdown", "POST")
        record = workspaces.finish(workspace.record.id, wait_end(workspaces, workspace.record.id))
    finally:
        service.runner.remove(workspace.record.container_name)
    assert record.state is ExecutionState.SUCCEEDED and record.ended_because == "shut down from JupyterLab"
    assert [m["Subject"] for _, m in inbox.messages] == ["[HyperAI] ws-mail/1 succeeded"]
    assert workspace.token not in inbox.messages[0][1].as_string()


def test_a_workspace_is_held_to_its_compute_types_disk_quota(service: GearService, jupyter_image: str) -> None:
    (service.settings.storage_root / "compute_types.yaml").write_text(
        "small-disk:\n  cpus: 1\n  memory: 1GiB\n  disk_quota: 1MiB\n"
    )
    options = WorkspaceOptions(idle_timeout=None)
    workspaces = service.workspaces
    spec = task(gear="ws-quota", image="jupyter", mode="workspace", compute_type="small-disk")
    workspace = workspaces.start(workspaces.plan(spec, options), options, on_line=lambda _: None)
    try:
        assert workspaces.check(workspace.record.id) is None  # JupyterLab alone fits
        big = {"type": "file", "format": "text", "content": "x" * (2 * 1024 * 1024)}
        assert jupyter(workspaces, workspace, "api/contents/big.txt", "PUT", big) in (200, 201)
        end = wait_end(workspaces, workspace.record.id, timeout=30)
        record = workspaces.finish(workspace.record.id, end)
    finally:
        service.runner.remove(workspace.record.container_name)
    assert end.state == "failed" and end.reason.startswith("disk quota exceeded")
    assert record.state is ExecutionState.FAILED and record.saved_completely  # its files are kept
    assert (service.workdir(record) / "big.txt").stat().st_size == 2 * 1024 * 1024


def leftovers(service: GearService) -> list[str]:
    """Folders left in the storage root's tmp/ and executions' views/ (plain cache files do not count)."""
    root = service.settings.storage_root
    found = [str(p.relative_to(root)) for p in (root / "tmp").iterdir() if p.is_dir()]
    return found + [str(p.relative_to(root)) for p in root.glob("gears/*/*/views")]


def test_views_for_code_and_sub_path_inputs_live_with_the_execution_and_go_when_it_closes(
    docker_service: GearService, tmp_path: Path
) -> None:
    service = docker_service
    service.run(task(gear="views", command="mkdir -p sub && echo one > sub/a.txt"), on_line=lambda _: None)
    continued = service.run(
        task(gear="views", command="echo 'cat /hyperai/input/input0/a.txt' > sub/run.sh", continue_from="views/1"),
        on_line=lambda _: None,
    )
    assert continued.lower_layers, "the test needs a continued (multi-layer) working directory"
    plan = service.plan(task(gear="reader", command="true", code_from="views/2:sub", inputs=[]))
    assert leftovers(service) == []  # planning creates nothing
    inputs = service.bindings_from({"input0": "views/2:sub"})
    seen: list[str] = []
    ok = service.run(
        task(gear="reader", command="sh run.sh", code_from="views/2:sub", inputs=inputs), on_line=seen.append
    )
    assert ok.state is ExecutionState.SUCCEEDED and "one" in seen
    assert (service.workdir(ok) / "run.sh").is_file() and ok.code_source == "views/2:sub"
    assert leftovers(service) == []
    with pytest.raises(ExecutionFailedError):
        service.run(
            task(gear="reader", command="exit 3", code_from="views/2:sub", inputs=inputs), on_line=lambda _: None
        )
    assert leftovers(service) == []
    del plan
