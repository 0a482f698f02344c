"""Deleting executions and gears, and collecting orphans left by workers that died.

Deletion is irreversible, so it is guarded: never while an execution runs, never under a continuation
that stands on the layer (unless told to flatten that continuation or delete it too). Dataset versions
made from a working directory share its files by hard links, so they survive.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from hyperai_provider.core import layers
from hyperai_provider.core.access import Access
from hyperai_provider.core.backend import Backend, runner_alive
from hyperai_provider.core.closer import Closer, Outcome
from hyperai_provider.core.container import LABEL_EXECUTION
from hyperai_provider.core.records import revise
from hyperai_provider.core.workdirs import Workdirs
from hyperai_provider.exceptions import ConflictError, NotFoundError
from hyperai_provider.models import (
    OPEN_STATES,
    ExecutionRecord,
    ExecutionState,
    WorkdirSource,
    split_execution_id,
)

log = logging.getLogger(__name__)

ORPHAN_REASON = "its worker died; the janitor stopped it"


@dataclass
class Deletion:
    deleted: list[str] = field(default_factory=list)
    flattened: list[str] = field(default_factory=list)
    bytes_released: int = 0


def users_of(open_records: list[ExecutionRecord], ids: set[str], folders: Sequence[str] = ()) -> list[str]:
    """Open executions that read one of ``ids``: as an input, as the parent they continue, or as their code.
    A promotion of a one-layer working directory records its code source as a host path: ``folders`` are
    the ids' execution folders (real paths), matched against it."""
    found = []
    for record in open_records:
        sources = {b.source.execution_id for b in record.inputs if isinstance(b.source, WorkdirSource)}
        if record.parent:
            sources.add(record.parent)
        code = record.code_source or ""
        if code:
            sources.add(code.partition(":")[0])
        in_folder = os.path.isabs(code) and any(
            os.path.commonpath([os.path.realpath(code), folder]) == folder for folder in folders
        )
        if (sources & ids or in_folder) and record.id not in ids:
            found.append(record.id)
    return found


class Lifecycle:
    """Deletion and garbage collection, as one user (only owners delete)."""

    def __init__(self, backend: Backend, workdirs: Workdirs, closer: Closer, user: str) -> None:
        self.backend = backend
        self.workdirs = workdirs
        self.closer = closer
        self.access = Access(backend.store, user)

    # -- deletion ----------------------------------------------------------------------------------------

    def plan_delete(
        self, execution_id: str, cascade: bool = False, flatten: bool = False
    ) -> list[ExecutionRecord]:
        """The executions a deletion would remove (the target, plus dependents with ``cascade``);
        raise with the reason and the way out when it is refused."""
        record = self.access.execution(execution_id)
        self.access.owned_gear(record.gear)
        if not record.closed:
            raise ConflictError(
                f"Execution {record.id} is {record.state.value}; a running execution cannot be deleted.",
                f"Stop it first (`hyperai stop {record.id}`), then delete it.",
            )
        dependents = self.workdirs.dependents(record)
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
        targets = [record, *dependents] if cascade else [record]
        self._refuse_if_read([t.id for t in targets])
        return targets

    def _refuse_if_read(self, ids: list[str]) -> None:
        """Deletion never takes data from under an open execution (input, parent or code source)."""
        open_records = self.backend.store.list_executions(states=OPEN_STATES)
        storage = self.backend.storage
        folders = [os.path.realpath(storage.execution_dir(*split_execution_id(id_))) for id_ in ids]
        readers = users_of(open_records, set(ids), folders)
        if readers:
            raise ConflictError(
                f"{', '.join(sorted(ids))} cannot be deleted: open execution(s) {', '.join(readers)} read it.",
                "Wait for them to end (or stop them), then delete.",
            )

    def delete_execution(self, execution_id: str, cascade: bool = False, flatten: bool = False) -> Deletion:
        """Delete an execution (and with ``cascade`` its continuations) and release its storage; an
        unreadable record can be deleted too (by its gear's owner)."""
        if self._unreadable(execution_id):
            gear, number = split_execution_id(execution_id)
            self.access.owned_gear(gear)
            released = self.backend.storage.discard(self.backend.storage.execution_dir(gear, number))
            self.backend.store.delete_execution_row(execution_id)
            return Deletion(deleted=[execution_id], bytes_released=released)
        targets = self.plan_delete(execution_id, cascade, flatten)
        result = Deletion()
        if flatten and not cascade:
            for child in self.workdirs.dependents(targets[0]):
                self.make_self_contained(child)
                result.flattened.append(child.id)
        for record in reversed(targets):  # children first: never remove a layer something stands on
            result.bytes_released += self._remove(record)
            result.deleted.append(record.id)
        return result

    def _unreadable(self, execution_id: str) -> bool:
        try:
            self.backend.store.get_execution(execution_id)
        except ConflictError:
            return True
        except NotFoundError:
            return False
        return False

    def delete_gear(self, gear: str, cascade: bool = False, flatten: bool = False) -> Deletion:
        """Delete a gear with all its executions; refused while any of them runs."""
        store = self.backend.store
        self.access.owned_gear(gear)
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
            for child in self.workdirs.dependents(record)
            if child.gear != gear
        ]
        if outside and not (cascade or flatten):
            raise ConflictError(
                f"Executions of other gears continue from gear {gear!r}: "
                f"{', '.join(sorted({child.id for child in outside}))}.",
                "Pass --flatten to make them self-contained first, or --cascade to delete them too.",
            )
        self._refuse_if_read([record.id for record in records])
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
        result.bytes_released += self.backend.storage.discard(self.backend.storage.gear_dir(gear))
        return result

    def make_self_contained(self, record: ExecutionRecord) -> None:
        """Rewrite a continuation's own layer as its full merged view (hard links), so it no longer stands
        on any other execution's layer. Its stored bytes become its whole working directory."""
        storage = self.backend.storage
        chain = self.workdirs.layers(record)
        if len(chain) == 1:
            return
        temporary = storage.temporary_dir(f"self-contained-{record.gear}-{record.number}-")
        layers.MergedView(chain).link_into(temporary / "home")
        own = storage.layer_dir(record.gear, record.number)
        retired = temporary / "old-home"
        os.rename(own, retired)
        os.rename(temporary / "home", own)
        usage = self.workdirs.seal(record)
        self.backend.store.update_execution(
            record.id, lambda current: revise(current, lower_layers=[], bytes_stored=usage.bytes)
        )
        storage.remove_tree(temporary)

    def _remove(self, record: ExecutionRecord) -> int:
        storage = self.backend.storage
        released = storage.discard(storage.execution_dir(record.gear, record.number))
        self.backend.store.delete_execution_row(record.id)
        return released

    # -- orphans -----------------------------------------------------------------------------------------

    def collect_orphans(self) -> list[str]:
        """Close every open execution whose runner died (a SIGKILLed worker), in any state: its container
        is stopped, its working directory kept, its record terminated (not completely saved). Leftover
        containers of closed or deleted executions are removed. Returns the execution ids closed."""
        backend = self.backend
        handled = []
        for record in backend.store.list_executions(states=OPEN_STATES):
            if not record.closed and runner_alive(record.runner) is False:
                self.closer.close(record.id, Outcome(ExecutionState.TERMINATED, ORPHAN_REASON, saved_completely=False))
                log.warning("Collected orphan %s: %s", record.id, ORPHAN_REASON)
                handled.append(record.id)
        for container in backend.runner.managed_containers(str(backend.settings.storage_root)):
            execution_id = (container.labels or {}).get(LABEL_EXECUTION, "")
            try:
                record = backend.store.get_execution(execution_id)
            except (NotFoundError, ConflictError):
                backend.runner.remove(container.name)
                continue
            if record.closed:
                self.closer.release(record)
        return handled
