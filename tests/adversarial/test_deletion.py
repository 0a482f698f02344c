"""Data loss (issue 11): deletion never takes a working directory from under an open execution.

`hyperai delete GEAR/N` used to succeed while a running execution bound GEAR/N as an input: the running
program's input emptied mid-run and it still ended `succeeded` (dataset versions were protected; this
path and `delete-gear` were not). The same held for an execution copying GEAR/N as its parent (the copy
fallback, no overlay to stand on) or taking its code from it. Each reader here is held at a known step
(a gate file it waits for, or its worker paused on a progress line), deletion is tried every way
(service, `hyperai delete`, `hyperai delete-gear`, with --cascade/--flatten), and is refused; the reader
then ends `succeeded` with its input whole, and only after it ended does deletion work.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hyperai_provider.core.gears import GearService
from hyperai_provider.core.settings import HyperAISettings
from hyperai_provider.exceptions import ConflictError
from hyperai_provider.models import ExecutionState, Visibility
from hyperai_provider.models.spec import build_spec
from tests.conftest import managed_names, run_cli, wait_for_state

pytestmark = pytest.mark.docker

ROWS = 200_000
SOURCE_SCRIPT = f"mkdir sub && seq {ROWS} > sub/numbers.txt && cp sub/numbers.txt numbers.txt"
GATE = "gate"
WAIT_FOR_GATE = f"for i in $(seq 1200); do [ -e {GATE} ] && break; sleep 0.1; done; [ -e {GATE} ] || exit 9; "
"""A reader waits (at most two minutes) for the test to create its gate file in its working directory."""
AS_ALICE = {"HYPERAI_USER": "alice"}


def quiet(_: str) -> None:
    pass


def task(gear: str, inputs: list[Any] | None = None, **fields: object):  # type: ignore[no-untyped-def]
    return build_spec(
        **{
            "gear": gear,
            "image": "hyperai/base:bookworm-1",
            "compute_type": "cpu",
            "inputs": inputs or [],
            **fields,
        }
    )


def source(service: GearService) -> str:
    record = service.run(task("src", command=SOURCE_SCRIPT), on_line=quiet)
    assert record.state is ExecutionState.SUCCEEDED
    return record.id


class Reader:
    """An execution run to its end in a thread (``service.run`` blocks). Its worker pauses on the first
    output line containing ``hold_on`` until :meth:`release`; its command may wait for :meth:`open_gate`."""

    def __init__(
        self, service: GearService, spec: Any, execution_id: str, hold_on: str | None = None
    ) -> None:
        self.service, self.spec, self.id, self.hold_on = service, spec, execution_id, hold_on
        self.lines: list[str] = []
        self.error: BaseException | None = None
        self.released = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.service.run(self.spec, on_line=self._line)
        except BaseException as error:
            self.error = error

    def _line(self, line: str) -> None:
        self.lines.append(line)
        if self.hold_on is not None and self.hold_on in line:
            self.hold_on = None
            assert self.released.wait(120), "the test never released the worker"

    def start(self) -> Reader:
        self.thread.start()
        return self

    def wait_for(self, state: ExecutionState) -> None:
        wait_for_state(
            self.service,
            self.id,
            state,
            alive=self.thread.is_alive,
            details=lambda: "\n".join(self.lines[-20:]),
        )

    def release(self) -> None:
        self.released.set()

    def open_gate(self) -> None:
        (self.service.workdir(self.service.get(self.id)) / GATE).touch()

    def finish(self) -> Any:
        self.release()
        self.open_gate()
        self.thread.join(timeout=180)
        assert not self.thread.is_alive(), f"{self.id} did not end"
        if self.error is not None:
            raise self.error
        return self.service.get(self.id)

    def abandon(self) -> None:
        """After a failed assertion: let the worker go and stop the execution."""
        self.release()
        if self.thread.is_alive():
            with contextlib.suppress(Exception):  # not created yet, or already closed
                self.service.stop(self.id)
            self.thread.join(timeout=60)


def refuses_deleting(service: GearService, storage_root: Path, execution_id: str, reader: str) -> None:
    """Every way of deleting ``execution_id`` (and its gear) is refused and names ``reader``."""
    lifecycle = service.lifecycle
    gear = execution_id.split("/")[0]
    attempts: dict[str, Callable[[], object]] = {
        "delete": lambda: lifecycle.delete_execution(execution_id),
        "delete --cascade": lambda: lifecycle.delete_execution(execution_id, cascade=True),
        "delete --flatten": lambda: lifecycle.delete_execution(execution_id, flatten=True),
        "delete-gear": lambda: lifecycle.delete_gear(gear),
        "delete-gear --cascade": lambda: lifecycle.delete_gear(gear, cascade=True),
    }
    for what, attempt in attempts.items():
        with pytest.raises(ConflictError, match=reader) as error:
            attempt()
        assert "Wait for them to end" in error.value.hint, what
    for command in (["delete", execution_id, "--yes"], ["delete-gear", gear, "--yes", "--cascade"]):
        result = run_cli(*command, storage_root=storage_root, env=AS_ALICE)
        assert result.returncode == 4 and reader in result.stderr, (command, result.stdout + result.stderr)
    assert service.get(execution_id).state is ExecutionState.SUCCEEDED


def intact(service: GearService, execution_id: str) -> None:
    home = service.workdir(service.get(execution_id))
    for name in ("numbers.txt", "sub/numbers.txt"):
        assert (home / name).read_text().count("\n") == ROWS, name


def deletes_after(service: GearService, storage_root: Path, execution_id: str) -> None:
    """Once no open execution reads it, the CLI deletes it and its gear."""
    folder = service.storage.execution_dir(*execution_id.split("/"))  # type: ignore[arg-type]
    deleted = run_cli("delete", execution_id, "--yes", storage_root=storage_root, env=AS_ALICE)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert not folder.exists()
    gone = run_cli(
        "delete-gear", execution_id.split("/")[0], "--yes", storage_root=storage_root, env=AS_ALICE
    )
    assert gone.returncode == 0, gone.stdout + gone.stderr


def read_rows(path: str) -> str:
    return f"wc -l < {path}; tail -n 1 {path}"


@pytest.mark.parametrize(
    ("binding", "path"),
    [
        pytest.param("src/1", "/hyperai/input/input0/numbers.txt", id="whole-working-directory"),
        pytest.param("src/1:sub", "/hyperai/input/input0/numbers.txt", id="sub-path"),
    ],
)
def test_an_input_of_a_running_execution_cannot_be_deleted(
    docker_service: GearService, storage_root: Path, binding: str, path: str
) -> None:
    parent = source(docker_service)
    inputs = docker_service.bindings_from({"input0": binding})
    reader = Reader(
        docker_service, task("reader", inputs, command=WAIT_FOR_GATE + read_rows(path)), "reader/1"
    )
    reader.start()
    try:
        reader.wait_for(ExecutionState.RUNNING)
        refuses_deleting(docker_service, storage_root, parent, "reader/1")
        intact(docker_service, parent)
        record = reader.finish()
    finally:
        reader.abandon()
    assert record.state is ExecutionState.SUCCEEDED, record.failure_reason
    assert reader.lines.count(str(ROWS)) == 2, reader.lines[-5:]  # the whole input, to its last row
    deletes_after(docker_service, storage_root, parent)
    assert managed_names(storage_root) == set()


def test_another_users_reader_protects_a_public_input_too(
    docker_service: GearService, storage_root: Path
) -> None:
    parent = source(docker_service)
    docker_service.access().set_visibility("src", Visibility.PUBLIC)
    bob = GearService(HyperAISettings(storage_root=storage_root, user="bob"))
    try:
        inputs = bob.bindings_from({"input0": parent})
        path = "/hyperai/input/input0/numbers.txt"
        reader = Reader(
            bob, task("bob-reader", inputs, command=WAIT_FOR_GATE + read_rows(path)), "bob-reader/1"
        )
        reader.start()
        try:
            reader.wait_for(ExecutionState.RUNNING)
            with pytest.raises(ConflictError, match="bob-reader/1"):
                docker_service.lifecycle.delete_execution(parent)
            with pytest.raises(ConflictError, match="bob-reader/1"):
                docker_service.lifecycle.delete_gear("src")
            record = reader.finish()
        finally:
            reader.abandon()
        assert record.state is ExecutionState.SUCCEEDED and reader.lines.count(str(ROWS)) == 2
        assert docker_service.lifecycle.delete_execution(parent).deleted == [parent]
    finally:
        bob.backend.close()


def test_the_parent_of_a_copying_continuation_cannot_be_deleted(
    storage_root: Path, docker_engine: Any, base_image: str
) -> None:
    """Without overlays a continuation copies its parent (state 'synchronizing'): it stands on no layer, so
    only the read guard protects the parent, while the copy runs and while the child runs."""
    service = GearService(HyperAISettings(storage_root=storage_root, user="alice", overlay="off"))
    try:
        parent = source(service)
        spec = task("cont", continue_from=parent, command=WAIT_FOR_GATE + read_rows("numbers.txt"))
        reader = Reader(service, spec, "cont/1", hold_on="by copying").start()
        try:
            reader.wait_for(ExecutionState.SYNCHRONIZING)
            refuses_deleting(service, storage_root, parent, "cont/1")
            reader.release()
            reader.wait_for(ExecutionState.RUNNING)
            refuses_deleting(service, storage_root, parent, "cont/1")
            intact(service, parent)
            record = reader.finish()
        finally:
            reader.abandon()
        assert record.state is ExecutionState.SUCCEEDED, record.failure_reason
        assert record.lower_layers == [] and record.synchronized  # it did copy
        assert reader.lines.count(str(ROWS)) == 2, reader.lines[-5:]
        deletes_after(service, storage_root, parent)
        intact(service, record.id)  # the copy is the child's own
        assert managed_names(storage_root) == set()
    finally:
        service.backend.close()


@pytest.mark.parametrize(("sub_path", "path"), [("", "sub/numbers.txt"), ("sub", "numbers.txt")])
def test_the_code_source_of_an_open_execution_cannot_be_deleted(
    docker_service: GearService, storage_root: Path, sub_path: str, path: str
) -> None:
    """Promotion (code from a closed execution's working directory): refused while the new execution is
    preparing (its code being copied) and while it runs. This one was not guarded: a one-layer source was
    recorded by its host path, which the guard did not recognise; now the record names the execution."""
    parent = source(docker_service)
    code_from = f"{parent}:{sub_path}" if sub_path else parent
    spec = task("promo", code_from=code_from, command=WAIT_FOR_GATE + read_rows(path))
    reader = Reader(docker_service, spec, "promo/1", hold_on="code file(s) from").start()
    try:
        reader.wait_for(ExecutionState.PREPARING)
        refuses_deleting(docker_service, storage_root, parent, "promo/1")
        reader.release()
        reader.wait_for(ExecutionState.RUNNING)
        refuses_deleting(docker_service, storage_root, parent, "promo/1")
        record = reader.finish()
    finally:
        reader.abandon()
    assert record.state is ExecutionState.SUCCEEDED, record.failure_reason
    assert record.code_source == code_from  # the execution it came from, whatever its layers
    assert reader.lines.count(str(ROWS)) == 2, reader.lines[-5:]
    deletes_after(docker_service, storage_root, parent)
    assert (docker_service.workdir(record) / path).read_text().count("\n") == ROWS  # its own copy
    assert managed_names(storage_root) == set()
