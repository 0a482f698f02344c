"""The gear service: the one facade operators, CLI and web UI use to run and inspect executions.

A thin composition of the parts that each own one rule: :class:`~core.backend.Backend` (settings,
storage, store, runner, catalogs), :class:`~core.workdirs.Workdirs` (layers, views, the completion
marker), :class:`~core.planner.Planner` (every check, nothing created), :class:`~core.closer.Closer`
(the one way to close) and :class:`~core.executions.Executions` (create, prepare, run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hyperai_provider.core.access import Access
from hyperai_provider.core.backend import Backend
from hyperai_provider.core.closer import Closer
from hyperai_provider.core.datasets import Datasets
from hyperai_provider.core.executions import Executions, LineSink
from hyperai_provider.core.layers import MergedView
from hyperai_provider.core.lifecycle import Lifecycle
from hyperai_provider.core.planner import ExecutionPlan, Planner
from hyperai_provider.core.runner import DockerRunner
from hyperai_provider.core.settings import HyperAISettings
from hyperai_provider.core.storage import StorageRoot
from hyperai_provider.core.store import GearStore
from hyperai_provider.core.workdirs import Workdirs
from hyperai_provider.exceptions import ConfigurationError
from hyperai_provider.models import AirflowContext, ExecutionRecord, InputBinding, WorkdirSource
from hyperai_provider.models.sources import parse_bindings
from hyperai_provider.models.spec import ExecutionSpec

if TYPE_CHECKING:
    from hyperai_provider.core.workspace import Workspaces

log = logging.getLogger(__name__)

__all__ = ["ExecutionPlan", "GearService", "LineSink"]


class GearService:
    """Runs and records executions under one storage root, on one Docker engine."""

    def __init__(self, settings: HyperAISettings | None = None, runner: DockerRunner | None = None) -> None:
        self.backend = Backend.from_settings(settings or HyperAISettings.from_env(), runner)
        self.workdirs = Workdirs(self.backend)
        self.planner = Planner(self.backend, self.workdirs)
        self.closer = Closer(self.backend, self.workdirs)
        self.executions_ = Executions(self.backend, self.workdirs, self.closer)

    # -- the parts -------------------------------------------------------------------------------------

    @property
    def settings(self) -> HyperAISettings:
        return self.backend.settings

    @property
    def storage(self) -> StorageRoot:
        return self.backend.storage

    @property
    def store(self) -> GearStore:
        return self.backend.store

    @property
    def runner(self) -> DockerRunner:
        return self.backend.runner

    def access(self, user: str | None = None) -> Access:
        """The visibility and ownership rules as ``user`` (default: the configured user)."""
        return Access(self.backend.store, user or self.settings.user)

    def datasets_for(self, user: str | None = None) -> Datasets:
        return Datasets(self.backend, self.workdirs, user or self.settings.user)

    @cached_property
    def datasets(self) -> Datasets:
        return self.datasets_for()

    def lifecycle_for(self, user: str | None = None) -> Lifecycle:
        return Lifecycle(self.backend, self.workdirs, self.closer, user or self.settings.user)

    @cached_property
    def lifecycle(self) -> Lifecycle:
        return self.lifecycle_for()

    @cached_property
    def workspaces(self) -> Workspaces:
        from hyperai_provider.core.workspace import Workspaces

        return Workspaces(self.backend, self.planner, self.executions_, self.closer)

    # -- running ---------------------------------------------------------------------------------------

    def plan(self, spec: ExecutionSpec) -> ExecutionPlan:
        """Resolve names and check everything before anything exists (creates nothing)."""
        return self.planner.plan(spec)

    def create(self, plan: ExecutionPlan) -> ExecutionRecord:
        return self.executions_.create(plan)

    def run(
        self,
        spec: ExecutionSpec,
        on_line: LineSink = print,
        on_created: Callable[[ExecutionRecord], None] | None = None,
    ) -> ExecutionRecord:
        """Plan, create and run a Task-mode execution to its end; raise if it did not succeed."""
        self.collect_orphans_quietly()
        plan = self.plan(spec)
        record = self.create(plan)
        if on_created is not None:
            on_created(record)
        return self.executions_.run_task(record, plan, on_line)

    def stop(self, id_: str, reason: str = "stopped by user") -> ExecutionRecord:
        """Ask an execution to stop at whatever step it is; the process running it closes the record."""
        return self.executions_.request_stop(id_, reason)

    def collect_orphans_quietly(self) -> None:
        """Before starting, close executions whose worker died (never fails the new execution)."""
        try:
            handled = self.lifecycle.collect_orphans()
        except Exception:
            log.exception("Orphan collection failed")
            return
        if handled:
            log.warning("Collected orphaned execution(s) %s (their workers died)", ", ".join(handled))

    def bindings_from(self, inputs: dict[str, Any] | None) -> list[InputBinding]:
        """Parse operator/CLI ``inputs`` into bindings (no I/O; resolved when planned)."""
        try:
            return parse_bindings(inputs)
        except ValueError as error:
            raise ConfigurationError(f"Invalid inputs: {error}") from error

    def reference(self, record: ExecutionRecord) -> WorkdirSource:
        """The working-directory reference a Gear task returns as its XCom."""
        return WorkdirSource(
            execution_id=record.id, gear=record.gear, state=record.state.value, bytes_stored=record.bytes_stored
        )

    # -- queries ---------------------------------------------------------------------------------------

    def get(self, id_: str) -> ExecutionRecord:
        return self.backend.store.get_execution(id_)

    def executions(self, gear: str | None = None) -> list[ExecutionRecord]:
        return self.backend.store.list_executions(gear)

    def workdir(self, record: ExecutionRecord) -> Path:
        """Host path of an execution's own layer (its whole working directory unless continued)."""
        return self.workdirs.own(record)

    def workdir_view(self, record: ExecutionRecord) -> MergedView:
        """An execution's full working directory (deletions included), readable without a container."""
        return self.workdirs.view(record)

    def previous_try(self, gear: str, airflow: AirflowContext) -> ExecutionRecord | None:
        """The latest saved execution of an earlier try of the same Airflow task instance (retry, clear)."""
        key = (airflow.dag_id, airflow.task_id, airflow.run_id, airflow.map_index)
        earlier = [
            record
            for record in self.backend.store.list_executions(gear)
            if record.airflow is not None
            and (record.airflow.dag_id, record.airflow.task_id, record.airflow.run_id, record.airflow.map_index)
            == key
            and record.airflow.try_number < airflow.try_number
            and record.closed
            and self.workdirs.is_saved(record)
        ]
        return max(
            earlier,
            key=lambda record: (record.airflow.try_number, record.number),  # type: ignore[union-attr]
            default=None,
        )
