"""The one way an execution closes: Task, Workspace, termination, orphan collection and abort alike.

:meth:`Closer.close` stops the container (a no-op when it already exited), keeps a workspace's output,
saves the working directory when the execution got as far as running (accounting + completion marker),
gives the record its final state, releases what was made for it (container, volumes, overlay work dir,
materialised views, workspace token) and sends the gear's notification. It is idempotent: a record that
is already closed only has its leftovers released.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hyperai_provider.core import layers
from hyperai_provider.core.backend import Backend
from hyperai_provider.core.metrics import MetricsIngest
from hyperai_provider.core.output import OutputLog
from hyperai_provider.core.quota import log_limit
from hyperai_provider.core.workdirs import Workdirs
from hyperai_provider.exceptions import StorageError
from hyperai_provider.models import ExecutionMode, ExecutionRecord, ExecutionState

log = logging.getLogger(__name__)

TOKEN_FILE = "jupyter_token"
"""A running workspace's JupyterLab token: a 0600 file beside its log, never in a record."""


@dataclass(frozen=True)
class Outcome:
    """How an execution ended."""

    state: ExecutionState
    reason: str = ""
    exit_code: int | None = None
    saved_completely: bool = True
    """False when the program may not have finished its writes (killed, its worker died)."""
    last_lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.state.closed:
            raise ValueError(f"an outcome is a closed state, not {self.state.value}")


class Closer:
    """Closes executions; the only code that gives a record a closed state."""

    def __init__(self, backend: Backend, workdirs: Workdirs) -> None:
        self.backend = backend
        self.workdirs = workdirs

    def close(self, id_: str, outcome: Outcome) -> ExecutionRecord:
        """Save, record, release and notify; return the closed record."""
        store = self.backend.store
        record = store.get_execution(id_)
        if record.closed:
            self.release(record)
            return record
        self._stop(record)
        store.release_reserve()  # the disk is full: its container stopped, this close finds room
        metrics = MetricsIngest(self.backend, record)  # what the execution reported and is not stored yet
        if record.mode is ExecutionMode.WORKSPACE:
            self._keep_workspace_output(record, metrics.feed_line)
        if metrics.finish():
            metrics.discard()
        fields: dict[str, Any] = {
            "exit_code": outcome.exit_code,
            "saved_completely": False,
            "ended_because": outcome.reason or None,
        }
        reason = outcome.reason
        if record.state in (ExecutionState.RUNNING, ExecutionState.SAVING):
            if record.state is ExecutionState.RUNNING:
                record = store.transition(id_, ExecutionState.SAVING, outcome.reason)
            try:
                fields["bytes_stored"] = self.workdirs.seal(record).bytes
                fields["saved_completely"] = outcome.saved_completely
            except OSError as error:  # a full disk must not leave the record open
                reason = StorageError.from_os_error(error, f"saving {id_}").headline
        if outcome.state is not ExecutionState.SUCCEEDED:
            fields["failure_reason"] = (
                f"terminated: {reason}" if outcome.state is ExecutionState.TERMINATED else reason
            )
        state = outcome.state
        if state is ExecutionState.SUCCEEDED and reason != outcome.reason:
            state, fields["failure_reason"] = ExecutionState.FAILED, reason
        closed = store.transition(id_, state, reason, **fields)
        self.release(closed)
        self._notify(closed, outcome.last_lines or None)
        return closed

    def release(self, record: ExecutionRecord) -> None:
        """Remove what was made for an execution: container, volumes, overlay work dir, views, token.
        Each step runs even when an earlier one fails (an engine that went away)."""
        runner, storage = self.backend.runner, self.backend.storage
        folder = storage.execution_dir(record.gear, record.number)
        steps = (
            lambda: runner.remove(record.container_name),
            lambda: runner.remove_execution_volumes(record.id),
            lambda: layers.remove_work_dir(folder / layers.WORK_DIR),
            lambda: self.workdirs.discard_views(record),
            lambda: (folder / TOKEN_FILE).unlink(missing_ok=True),
        )
        for step in steps:
            try:
                step()
            except Exception as error:
                log.warning("Releasing %s: %s", record.id, getattr(error, "headline", None) or error)

    def _stop(self, record: ExecutionRecord) -> None:
        if not record.container_name:
            return
        try:
            self.backend.runner.stop(record.container_name)
        except Exception as error:
            log.warning("Could not stop %s: %s", record.container_name, getattr(error, "headline", None) or error)

    def _keep_workspace_output(self, record: ExecutionRecord, on_line: Callable[[str], None]) -> None:
        """Append JupyterLab's output to the execution's log (bounded, token redacted) before the
        container goes; each line is passed to ``on_line`` too (metric lines)."""
        storage = self.backend.storage
        try:
            token = (storage.execution_dir(record.gear, record.number) / TOKEN_FILE).read_text().strip()
        except OSError:
            token = ""
        try:
            with OutputLog(storage.log_path(record.gear, record.number), log_limit(record)) as out:
                sink = out.tee(on_line)
                self.backend.runner.output_lines(
                    record.container_name, lambda line: sink(line.replace(token, "<token>") if token else line)
                )
        except Exception as error:
            log.warning("Could not keep the output of %s: %s", record.id, getattr(error, "headline", None) or error)

    def _notify(self, record: ExecutionRecord, last_lines: list[str] | None) -> None:
        """Send the gear's notification; never raises (it must not change the execution's outcome)."""
        from hyperai_provider.core.notify import notify_closed

        try:
            notify_closed(self.backend, record, last_lines)
        except Exception:
            log.exception("Could not send the notification for %s", record.id)
