"""Deleting executions and gears, and collecting orphans left by workers that died.

Deletion is irreversible, so it is guarded: never while an execution runs, never under a continuation
that stands on the layer (unless told to flatten that continuation or delete it too). Dataset versions
made from a working directory share its files by hard links, so they survive.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hyperai_provider.core import layers
from hyperai_provider.core.runner import LABEL_EXECUTION
from hyperai_provider.core.storage import atomic_write_json, tree_usage
from hyperai_provider.exceptions import ConflictError, NotFoundError
from hyperai_provider.models import ExecutionRecord

if TYPE_CHECKING:
    from hyperai_provider.core.gears import GearService

log = logging.getLogger(__name__)

RUNNER_HOST = "runner_host"
RUNNER_PID = "runner_pid"


@dataclass
class Deletion:
    deleted: list[str] = field(default_factory=list)
    flattened: list[str] = field(default_factory=list)
    bytes_released: int = 0


def runner_identity() -> dict[str, object]:
    """Who runs an execution: kept in the record so a janitor can tell a live runner from a dead one."""
    return {RUNNER_HOST: socket.gethostname(), RUNNER_PID: os.getpid()}


def runner_alive(record: ExecutionRecord) -> bool | None:
    """True/False when the runner was on this host; None when it is unknown or elsewhere."""
    host, pid = record.extra.get(RUNNER_HOST), record.extra.get(RUNNER_PID)
    if host != socket.gethostname() or not isinstance(pid, int):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Lifecycle:
    """Deletion and garbage collection over one gear service."""

    def __init__(self, service: GearService) -> None:
        self.service = service

    # -- deletion ----------------------------------------------------------------------------------------

    def plan_delete(
        self, execution_id: str, cascade: bool = False, flatten: bool = False
    ) -> list[ExecutionRecord]:
        """The executions a deletion would remove (the target, plus dependents with ``cascade``);
        raise with the reason and the way out when it is refused."""
        store = self.service.store
        record = store.get_execution(execution_id)
        if not record.closed:
            raise ConflictError(
                f"Execution {record.id} is {record.state.value}; a running execution cannot be deleted.",
                f"Stop it first (`hyperai stop {record.id}`), then delete it.",
            )
        dependents = layers.dependents(store, self.service.storage, record)
        if dependents and not (cascade or flatten):
            names = ", ".join(child.id for child in dependents)
            raise ConflictError(
                f"Execution {record.id} has continuation(s) standing on its working directory: {names}.",
                "Pass --flatten to make them self-contained first (keeps them), or --cascade to delete them too.",
            )
        running = [child.id for child in dependents if not child.closed]
        if running:
            raise ConflictError(
                f"Continuation(s) {', '.join(running)} of {record.id} are still running.",
                "Wait for them to end or stop them, then delete.",
            )
        return [record, *dependents] if cascade else [record]

    def delete_execution(self, execution_id: str, cascade: bool = False, flatten: bool = False) -> Deletion:
        """Delete an execution (and with ``cascade`` its continuations) and release its storage."""
        targets = self.plan_delete(execution_id, cascade, flatten)
        result = Deletion()
        if flatten and not cascade:
            for child in layers.dependents(self.service.store, self.service.storage, targets[0]):
                self.make_self_contained(child)
                result.flattened.append(child.id)
        for record in reversed(targets):  # children first: never remove a layer something stands on
            result.bytes_released += self._remove(record)
            result.deleted.append(record.id)
        return result

    def delete_gear(self, gear: str, cascade: bool = False, flatten: bool = False) -> Deletion:
        """Delete a gear with all its executions; refused while any of them runs."""
        store = self.service.store
        store.get_gear(gear)
        records = store.list_executions(gear)
        running = [record.id for record in records if not record.closed]
        if running:
            raise ConflictError(
                f"Gear {gear!r} has running execution(s): {', '.join(running)}.",
                "Stop them first (`hyperai stop ID`), then delete the gear.",
            )
        outside = [
            child
            for record in records
            for child in layers.dependents(store, self.service.storage, record)
            if child.gear != gear
        ]
        if outside and not (cascade or flatten):
            raise ConflictError(
                f"Executions of other gears continue from gear {gear!r}: "
                f"{', '.join(sorted({child.id for child in outside}))}.",
                "Pass --flatten to make them self-contained first, or --cascade to delete them too.",
            )
        result = Deletion()
        for child in outside:
            if flatten and not cascade:
                self.make_self_contained(child)
                result.flattened.append(child.id)
        doomed = records + (
            [child for child in outside if child.id not in {r.id for r in records}] if cascade else []
        )
        for record in sorted(doomed, key=lambda r: len(r.lower_layers), reverse=True):
            result.bytes_released += self._remove(record)
            result.deleted.append(record.id)
        store.delete_gear_row(gear)
        result.bytes_released += self.service.storage.remove_tree(self.service.storage.gear_dir(gear))
        return result

    def make_self_contained(self, record: ExecutionRecord) -> None:
        """Rewrite a continuation's own layer as its full merged view (hard links), so it no longer stands
        on any other execution's layer. Its stored bytes become its whole working directory."""
        storage = self.service.storage
        chain = layers.workdir_layers(storage, record)
        if len(chain) == 1:
            return
        temporary = storage.temporary_dir(f"self-contained-{record.gear}-{record.number}-")
        layers.MergedView(chain).link_into(temporary / "home")
        own = storage.layer_dir(record.gear, record.number)
        retired = temporary / "old-home"
        os.rename(own, retired)
        os.rename(temporary / "home", own)
        usage = tree_usage(own)
        atomic_write_json(
            storage.saved_marker(record.gear, record.number),
            {"execution": record.id, "bytes": usage.bytes, "files": usage.files},
        )
        self.service.store.update_execution(
            record.id,
            lambda current: current.model_copy(update={"lower_layers": [], "bytes_stored": usage.bytes}),
        )
        storage.remove_tree(temporary)

    def _remove(self, record: ExecutionRecord) -> int:
        storage = self.service.storage
        folder = storage.execution_dir(record.gear, record.number)
        graveyard = storage.tmp / f"deleted-{record.gear}-{record.number}-{time.time_ns()}"
        released = 0
        if folder.exists():
            storage.tmp.mkdir(parents=True, exist_ok=True)
            os.rename(folder, graveyard)  # out of sight at once, then removed
            released = storage.remove_tree(graveyard)
        self.service.store.delete_execution_row(record.id)
        return released

    # -- orphans -----------------------------------------------------------------------------------------

    def collect_orphans(self) -> list[str]:
        """Stop containers whose runner died (SIGKILLed worker), keep their working directories, and mark
        their records terminated (not completely saved). Returns the execution ids handled."""
        service = self.service
        handled = []
        for container in service.runner.managed_containers(str(service.settings.storage_root)):
            execution_id = (container.labels or {}).get(LABEL_EXECUTION, "")
            try:
                record = service.store.get_execution(execution_id)
            except NotFoundError:
                service.runner.remove(container.name)
                continue
            if record.closed:
                service.release(record)
                continue
            if runner_alive(record) is not False:
                continue  # its runner lives (or runs elsewhere): not ours to touch
            service.runner.stop(container.name)
            self._close_orphan(record)
            service.release(record)
            handled.append(record.id)
        return handled

    def _close_orphan(self, record: ExecutionRecord) -> None:
        service = self.service
        reason = "its worker died; the container was stopped by the janitor"
        service.save_and_terminate(
            record.id, reason, service.runner.exit_code(record.container_name), complete=False
        )
        log.warning("Collected orphan %s: %s", record.id, reason)
