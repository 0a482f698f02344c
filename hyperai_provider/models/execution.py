"""Execution records and their state machine."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import Field, model_validator

from hyperai_provider.models.base import FrozenModel, SafeName, utcnow
from hyperai_provider.models.binding import InputBinding
from hyperai_provider.models.compute import ComputeType


class ExecutionState(str, Enum):
    """Where an execution is in its life. Closed states never change again."""

    CREATED = "created"
    PREPARING = "preparing"
    SYNCHRONIZING = "synchronizing"
    RUNNING = "running"
    SAVING = "saving"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TERMINATED = "terminated"

    @property
    def closed(self) -> bool:
        return self in CLOSED_STATES


CLOSED_STATES = frozenset({ExecutionState.SUCCEEDED, ExecutionState.FAILED, ExecutionState.TERMINATED})
OPEN_STATES = frozenset(set(ExecutionState) - CLOSED_STATES)

_S = ExecutionState
ALLOWED_TRANSITIONS: dict[ExecutionState, frozenset[ExecutionState]] = {
    _S.CREATED: frozenset({_S.PREPARING, _S.FAILED, _S.TERMINATED}),
    _S.PREPARING: frozenset({_S.SYNCHRONIZING, _S.RUNNING, _S.FAILED, _S.TERMINATED}),
    _S.SYNCHRONIZING: frozenset({_S.RUNNING, _S.FAILED, _S.TERMINATED}),
    _S.RUNNING: frozenset({_S.SAVING, _S.FAILED, _S.TERMINATED}),
    _S.SAVING: frozenset({_S.SUCCEEDED, _S.FAILED, _S.TERMINATED}),
    _S.SUCCEEDED: frozenset(),
    _S.FAILED: frozenset(),
    _S.TERMINATED: frozenset(),
}


class ExecutionMode(str, Enum):
    """HyperAI's two access modes."""

    TASK = "task"
    WORKSPACE = "workspace"


class StateChange(FrozenModel):
    """One step of an execution's timeline."""

    state: ExecutionState
    at: datetime
    message: str = ""


class AirflowContext(FrozenModel):
    """The Airflow task instance that ran an execution (absent for CLI runs)."""

    dag_id: str
    task_id: str
    run_id: str
    try_number: int = 1
    map_index: int = -1


EXECUTION_SCHEMA_VERSION = 2
"""Version 2 replaced the free-form ``extra`` dict of version 1 with the typed fields below."""


class RunnerIdentity(FrozenModel):
    """The process that drives an execution, recorded at creation so a janitor can tell a live runner
    from a dead one in every state."""

    host: str
    pid: int = Field(ge=1)


class WorkspaceInfo(FrozenModel):
    """A Workspace-mode execution's JupyterLab: where it listens (never its token) and when it ends."""

    host_address: str = Field(description="Docker-host address JupyterLab's port is published on.")
    host_port: int | None = Field(default=None, ge=1, le=65535, description="Published port, once started.")
    idle_timeout: float | None = Field(default=None, gt=0)
    max_runtime: float | None = Field(default=None, gt=0)


_V1_EXTRA_FIELDS = {
    "stop_requested": "stop_requested",
    "synchronized": "synchronized",
    "ended_because": "ended_because",
}


def _upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Map a version-1 document's ``extra`` keys onto the typed fields of version 2."""
    data = dict(data)
    extra = dict(data.pop("extra", None) or {})
    for old, new in _V1_EXTRA_FIELDS.items():
        if extra.get(old):
            data.setdefault(new, str(extra[old]))
    host, pid = extra.get("runner_host"), extra.get("runner_pid")
    if isinstance(host, str) and isinstance(pid, int) and pid > 0:
        data.setdefault("runner", {"host": host, "pid": pid})
    if data.get("mode") == "workspace" and extra.get("workspace_url"):
        data.setdefault(
            "workspace",
            {
                "host_address": "127.0.0.1",
                "idle_timeout": extra.get("idle_timeout"),
                "max_runtime": extra.get("max_runtime"),
            },
        )
    data["schema_version"] = EXECUTION_SCHEMA_VERSION
    return data


class ExecutionRecord(FrozenModel):
    """Everything known about one execution; persisted as JSON in the Gear store."""

    schema_version: int = EXECUTION_SCHEMA_VERSION
    id: str = Field(description="'<gear>/<n>', unique and never reused.")
    gear: SafeName
    number: int = Field(ge=1)
    mode: ExecutionMode = ExecutionMode.TASK
    state: ExecutionState = ExecutionState.CREATED
    owner: str = Field(default="", description="User that started it.")
    compute: ComputeType
    image: str = Field(description="Resolved image reference.")
    image_name: str | None = Field(default=None, description="Catalog name the image came from, if any.")
    command: list[str] = Field(default_factory=list, description="argv run in the container.")
    parameters: dict[str, str | int | float | bool] = Field(default_factory=dict)
    environment: dict[str, str] = Field(default_factory=dict, description="User environment variables.")
    secret_names: list[str] = Field(
        default_factory=list, description="Secret environment variables given to the container (names only)."
    )
    code_source: str | None = Field(default=None, description="Where the code was copied from.")
    inputs: list[InputBinding] = Field(default_factory=list)
    parent: str | None = Field(default=None, description="Execution this one continues from.")
    lower_layers: list[str] = Field(
        default_factory=list,
        description="Closed layers below this execution's own (overlay continuation), top first, "
        "relative to the storage root; empty when its own layer is its whole working directory.",
    )
    airflow: AirflowContext | None = None
    container_name: str = ""
    history: list[StateChange] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    exit_code: int | None = None
    failure_reason: str | None = None
    bytes_stored: int | None = Field(default=None, description="Bytes of this execution's own layer.")
    saved_completely: bool | None = Field(
        default=None, description="False when a termination may have left data unsaved."
    )
    runner: RunnerIdentity | None = Field(default=None, description="The process driving it, if any.")
    stop_requested: str | None = Field(default=None, description="Why a stop was asked for, if it was.")
    synchronized: str | None = Field(default=None, description="Copy fallback of a continuation: what was copied.")
    workspace: WorkspaceInfo | None = None
    ended_because: str | None = Field(default=None, description="Why it closed, in words.")

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        if isinstance(data, dict) and int(data.get("schema_version", 1) or 1) < EXECUTION_SCHEMA_VERSION:
            return _upgrade_v1(data)
        return data

    @property
    def closed(self) -> bool:
        return self.state in CLOSED_STATES

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.ended_at or utcnow()
        return (end - self.started_at).total_seconds()


def execution_id(gear: str, number: int) -> str:
    return f"{gear}/{number}"


def split_execution_id(value: str) -> tuple[str, int]:
    """Parse '<gear>/<n>'; raise ValueError with the expected form otherwise."""
    gear, sep, number = value.rpartition("/")
    if not sep or not gear or not number.isdigit() or int(number) < 1:
        raise ValueError(f"{value!r} is not an execution id: expected '<gear>/<n>', e.g. 'mnist/3'")
    return gear, int(number)
