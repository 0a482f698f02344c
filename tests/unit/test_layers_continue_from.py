"""Bad continue_from requests fail in plan(), before any container, with what to do."""

from __future__ import annotations

import pytest

from hyperai_provider.core.gears import GearService
from hyperai_provider.exceptions import ConfigurationError, ConflictError, NotFoundError
from hyperai_provider.models import ComputeType, ExecutionRecord, ExecutionState, Visibility
from hyperai_provider.models.spec import ExecutionSpec


class NoEngine:
    """Any use of Docker fails the test: these requests must be refused before."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the Docker engine was used ({name}) for a request that should be refused")


@pytest.fixture
def svc(service: GearService) -> GearService:
    service.backend.runner = NoEngine()  # type: ignore[assignment]
    return service


def add(
    service: GearService, gear: str, owner: str, state: ExecutionState, saved: bool = True
) -> ExecutionRecord:
    def build(id_: str, number: int) -> ExecutionRecord:
        return ExecutionRecord(
            id=id_,
            gear=gear,
            number=number,
            owner=owner,
            state=state,
            compute=ComputeType(name="cpu", cpus=1, memory=1024**3, disk_quota=1024**3),  # type: ignore[arg-type]
            image="img",
        )

    record = service.store.create_execution(gear, owner, build)
    if saved:
        service.storage.layer_dir(gear, record.number).mkdir(parents=True)
        service.storage.saved_marker(gear, record.number).write_text("{}")
    return record


def spec(continue_from: str, gear: str = "mine") -> ExecutionSpec:
    return ExecutionSpec(gear=gear, image="python", command="true", continue_from=continue_from)


@pytest.mark.parametrize(
    ("setup", "continue_from", "error", "words"),
    [
        pytest.param(None, "mine/7", NotFoundError, "does not exist", id="unknown-execution"),
        pytest.param(None, "not-an-id", ConfigurationError, "not an execution id", id="malformed"),
        pytest.param(None, "latest", NotFoundError, "no closed execution", id="latest-with-none"),
        pytest.param("running", "mine/1", ConflictError, "still running", id="still-running"),
        pytest.param("running", "latest", NotFoundError, "no closed execution", id="latest-only-running"),
        pytest.param("unsaved", "mine/1", ConflictError, "without its working directory", id="not-saved"),
        pytest.param("private", "theirs/1", NotFoundError, "does not exist", id="private-other-gear"),
    ],
)
def test_bad_continue_from_is_refused_before_any_container(
    svc: GearService, setup: str | None, continue_from: str, error: type[Exception], words: str
) -> None:
    if setup == "running":
        add(svc, "mine", "alice", ExecutionState.RUNNING, saved=False)
    elif setup == "unsaved":
        add(svc, "mine", "alice", ExecutionState.TERMINATED, saved=False)
    elif setup == "private":
        add(svc, "theirs", "bob", ExecutionState.SUCCEEDED)
    with pytest.raises(error, match=words) as caught:
        svc.plan(spec(continue_from))
    assert caught.value.hint  # type: ignore[attr-defined]
    assert len(svc.store.list_executions("mine")) == (1 if setup in ("running", "unsaved") else 0)


def test_public_gears_and_latest_resolve_to_closed_saved_executions(svc: GearService) -> None:
    add(svc, "theirs", "bob", ExecutionState.SUCCEEDED)
    svc.store.update_gear("theirs", lambda g: g.model_copy(update={"visibility": Visibility.PUBLIC}))
    assert svc.planner.resolve_parent(spec("theirs/1"), svc.access("alice")).id == "theirs/1"
    add(svc, "mine", "alice", ExecutionState.FAILED)
    add(svc, "mine", "alice", ExecutionState.SUCCEEDED)
    add(svc, "mine", "alice", ExecutionState.RUNNING, saved=False)
    assert svc.planner.resolve_parent(spec("latest"), svc.access("alice")).id == "mine/2"
