"""Creating, preparing and running executions: create (record) -> prepare (working dir, code, parameters,
views) -> start (container) -> wait -> close (:mod:`core.closer`).

A stop asked for at any step is honoured: before the container starts nothing starts, after it the
container is stopped; either way the record closes ``terminated``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Literal

from hyperai_provider.core import layers
from hyperai_provider.core.backend import Backend, this_runner
from hyperai_provider.core.closer import Closer, Outcome
from hyperai_provider.core.code import copy_code, write_parameters
from hyperai_provider.core.container import ContainerResult, ContainerSpec, MountSpec
from hyperai_provider.core.metric_container import container_parts
from hyperai_provider.core.metrics import MetricsIngest
from hyperai_provider.core.notebooks import export_into
from hyperai_provider.core.output import OutputLog
from hyperai_provider.core.planner import ExecutionPlan, build_command
from hyperai_provider.core.quota import log_limit, over_disk_quota
from hyperai_provider.core.records import revise
from hyperai_provider.core.sync import copy_layers
from hyperai_provider.core.workdirs import Workdirs
from hyperai_provider.exceptions import (
    EngineError,
    ExecutionFailedError,
    ExecutionTerminatedError,
    HyperAIError,
    StorageError,
)
from hyperai_provider.models import (
    HOME,
    HOME_ALIASES,
    OUTPUT,
    ComputeType,
    ExecutionRecord,
    ExecutionState,
    InputBinding,
    WorkdirSource,
)

log = logging.getLogger(__name__)

LineSink = Callable[[str], None]


class StopRequested(Exception):
    """A stop was asked for before the container started."""


class Executions:
    """Create, prepare and run executions on one backend."""

    def __init__(self, backend: Backend, workdirs: Workdirs, closer: Closer) -> None:
        self.backend = backend
        self.workdirs = workdirs
        self.closer = closer

    # -- create ------------------------------------------------------------------------------------------

    def create(self, plan: ExecutionPlan) -> ExecutionRecord:
        """Allocate the execution id and write its first record (state 'created'), naming its runner."""
        spec = plan.spec
        inherited_code = plan.parent.code_source if plan.parent else None

        def build(id_: str, number: int) -> ExecutionRecord:
            draft = ExecutionRecord(
                id=id_,
                gear=spec.gear,
                number=number,
                mode=spec.mode,
                owner=plan.owner,
                compute=plan.compute,
                image=plan.image,
                image_name=plan.image_entry.name if plan.image_entry else None,
                command=build_command(spec.command, spec.parameters),
                parameters=dict(spec.parameters),
                environment=dict(spec.environment),
                secret_names=sorted(spec.secret_environment),
                code_source=plan.code_source or inherited_code,
                parent=plan.parent.id if plan.parent else None,
                lower_layers=list(plan.lower_layers),
                airflow=spec.airflow,
                container_name=self.backend.container_name(spec.gear, number),
                runner=this_runner(),
            )
            return revise(draft, inputs=[self._bound(draft, binding, plan) for binding in plan.inputs])

        return self.backend.store.create_execution(spec.gear, plan.owner, build)

    def _bound(self, draft: ExecutionRecord, binding: InputBinding, plan: ExecutionPlan) -> InputBinding:
        """A binding whose source is a view: its host path is the view's place in this execution's folder."""
        view = plan.input_views.get(binding.slot)
        if view is None:
            return binding
        path = self.workdirs.view_path(draft, binding.slot, view.sub_path)
        return binding.model_copy(update={"host_path": str(path)})

    # -- prepare -----------------------------------------------------------------------------------------

    def prepare(self, record: ExecutionRecord, plan: ExecutionPlan, on_line: LineSink = print) -> None:
        """Working directory, views, code and parameters (state 'preparing')."""
        store = self.backend.store
        store.transition(record.id, ExecutionState.PREPARING)
        home = self.workdirs.own(record)
        home.mkdir(parents=True, exist_ok=True)
        for slot, view in plan.input_views.items():
            self.workdirs.materialize(view.source, record, slot)
            self.check_stop(record.id)
        exists = self.continue_workdir(record, plan, on_line) if plan.parent is not None else None
        self.check_stop(record.id)
        code = plan.code
        if plan.code_view is not None:
            code = self.workdirs.materialize(plan.code_view.source, record, "code")
            code = code / plan.code_view.sub_path if plan.code_view.sub_path else code
        if code is not None:
            copied = copy_code(code, home, plan.spec.code_conflict, exists)
            for kept in copied.kept:
                on_line(f"[hyperai] kept the continued working directory's {kept} (code_conflict='keep')")
            on_line(f"[hyperai] copied {len(copied.copied)} code file(s) from {plan.code_source}")
            for script in export_into(home, [n for n in plan.notebooks if n in copied.copied]):
                on_line(f"[hyperai] exported notebook to {script}")
        if record.parameters:
            write_parameters(home, record.parameters)
        self.check_stop(record.id)

    def continue_workdir(
        self, record: ExecutionRecord, plan: ExecutionPlan, on_line: LineSink
    ) -> Callable[[str], bool]:
        """Give a continuation its parent's working directory: an overlay volume over the parent's layers,
        or (no overlays) a copy in the 'synchronizing' state. Returns whether a path exists in the result."""
        assert plan.parent is not None
        store, home = self.backend.store, self.workdirs.own(record)
        if not record.lower_layers:
            store.transition(record.id, ExecutionState.SYNCHRONIZING, f"copying {plan.parent.id}")
            on_line(f"[hyperai] continuing from {plan.parent.id} by copying (overlays unavailable or off)")
            result = copy_layers(self.workdirs.layers(plan.parent), home, on_line)
            store.update_execution(record.id, lambda current: revise(current, synchronized=result.describe()))
            return layers.MergedView([home]).exists
        if plan.flatten:
            on_line(f"[hyperai] flattening the working directory of {plan.parent.id} (chain too deep)")
            layers.flatten(self.backend.storage, plan.parent)
        lower = [self.backend.storage.root / ref for ref in record.lower_layers]
        work = self.backend.execution_path(record) / layers.WORK_DIR
        work.mkdir(exist_ok=True)
        self.backend.runner.create_volume(
            record.container_name, layers.overlay_options(lower, home, work), self.backend.labels(record)
        )
        on_line(f"[hyperai] continuing from {plan.parent.id} without copying: overlay over {len(lower)} layer(s)")
        return layers.MergedView([home, *lower]).exists

    def container_spec(self, record: ExecutionRecord, secrets: dict[str, str] | None = None) -> ContainerSpec:
        """The container of an execution: its working directory at ``/hyperai/home`` and HyperAI's other
        paths for it, each binding read-only at every path HyperAI shows it, hard limits, labels."""
        home = str(self.workdirs.own(record))
        kind: Literal["bind", "volume"] = "bind"
        if record.lower_layers:
            home, kind = record.container_name, "volume"
        mounts = [MountSpec(home, target, kind=kind) for target in (HOME, *HOME_ALIASES)]
        for binding in record.inputs:
            source = self._input_mount(binding, record)
            mounts += [replace(source, target=target) for target in binding.container_paths]
        metrics = container_parts(self.backend, record)  # openbayestool's receiver (core.metric_container)
        mounts += metrics.mounts
        environment = {
            "PYTHONUNBUFFERED": "1",
            **record.environment,
            **(secrets or {}),
            **metrics.environment,
            "HYPERAI_GEAR": record.gear,
            "HYPERAI_EXECUTION_ID": record.id,
            "HYPERAI_HOME": HOME,
            "HYPERAI_OUTPUT": OUTPUT,
        }
        for binding in record.inputs:
            environment[f"HYPERAI_{binding.slot.upper()}"] = binding.container_path
        return ContainerSpec(
            name=record.container_name,
            image=record.image,
            command=metrics.command(record.command),
            working_dir=HOME,
            environment=environment,
            mounts=tuple(mounts),
            labels=self.backend.labels(record),
            compute=record.compute,
        )

    def _input_mount(self, binding: InputBinding, record: ExecutionRecord) -> MountSpec:
        source = binding.source
        if isinstance(source, WorkdirSource) and not source.sub_path:
            bound = self.backend.store.get_execution(source.execution_id)
            return self.workdirs.mount(bound, binding.container_path, record)
        return MountSpec(str(binding.host_path), binding.container_path, read_only=True)

    # -- stop --------------------------------------------------------------------------------------------

    def check_stop(self, id_: str) -> None:
        if self.backend.store.get_execution(id_).stop_requested:
            raise StopRequested

    def request_stop(self, id_: str, reason: str = "stopped by user") -> ExecutionRecord:
        """Ask an execution to stop, at whatever step it is; the process running it closes the record."""
        record = self.backend.store.get_execution(id_)
        if record.closed:
            return record
        record = self.backend.store.update_execution(
            id_, lambda current: current if current.closed else revise(current, stop_requested=reason)
        )
        self.backend.runner.stop(record.container_name)
        return record

    # -- Task mode ----------------------------------------------------------------------------------------

    def run_task(self, record: ExecutionRecord, plan: ExecutionPlan, on_line: LineSink = print) -> ExecutionRecord:
        """Prepare, run the container to its end, and close the record; raise if it did not succeed."""
        store, runner = self.backend.store, self.backend.runner
        try:
            self.prepare(record, plan, on_line)
            spec = self.container_spec(record, plan.spec.secret_environment)
            log_path = self.backend.storage.log_path(record.gear, record.number)
            ingest = MetricsIngest(self.backend, record, on_line)
            with OutputLog(log_path, log_limit(record)) as output, ingest.following():
                container = runner.start(spec)
                store.transition(record.id, ExecutionState.RUNNING, "container started")
                if store.get_execution(record.id).stop_requested:  # asked for while it was starting
                    runner.stop(record.container_name)
                on_line(f"[hyperai] execution {record.id} running in container {spec.name}")

                def sink(line: str) -> None:
                    output.write_line(line)
                    on_line(line)
                    ingest.feed_line(line)  # a metric line is stored too

                result = runner.stream_and_wait(
                    container, sink, watchdog=lambda: over_disk_quota(self.backend, record)
                )
        except StopRequested:
            closed = self.closer.close(record.id, self._stopped(record.id, None))
            raise ExecutionTerminatedError(record.id, f"terminated ({closed.ended_because})") from None
        except HyperAIError as error:
            self.closer.close(record.id, Outcome(ExecutionState.FAILED, error.headline))
            raise
        except BaseException as error:
            failure = self._failure(record.id, error)
            if failure is None:  # SIGTERM/SIGINT, Airflow's kill: stop within the grace and save
                self.terminate_interrupted(record, f"interrupted ({type(error).__name__})")
                raise
            complete = not isinstance(failure, EngineError)
            self.closer.close(record.id, Outcome(ExecutionState.FAILED, failure.headline, saved_completely=complete))
            raise failure from None  # the message says what happened; the raw chain would bury it
        return self._close_task(record.id, result)

    def _failure(self, id_: str, error: BaseException) -> EngineError | StorageError | None:
        """What an unexpected error means for the user: the engine went away, or the storage root could
        not be written; None for an interruption."""
        engine = self.backend.runner.engine_failure(error)  # requests' ConnectionError is an OSError too
        if engine is not None:
            log.info("Execution %s lost its engine: %r", id_, error)
            return engine
        if isinstance(error, OSError):
            state = self.backend.store.get_execution(id_).state.value
            return StorageError.from_os_error(error, f"execution {id_} ({state})")
        return None

    def _close_task(self, id_: str, result: ContainerResult) -> ExecutionRecord:
        stop = self.backend.store.get_execution(id_).stop_requested
        if stop:
            closed = self.closer.close(id_, self._stopped(id_, result.exit_code, result.last_lines))
            raise ExecutionTerminatedError(id_, f"terminated ({stop})", result.exit_code, result.last_lines)
        if result.exit_code == 0 and not result.stopped_because:
            closed = self.closer.close(
                id_, Outcome(ExecutionState.SUCCEEDED, exit_code=0, last_lines=result.last_lines)
            )
            if closed.state is ExecutionState.SUCCEEDED:
                return closed
            raise ExecutionFailedError(id_, closed.failure_reason or "saving failed", 0, result.last_lines)
        record = self.backend.store.get_execution(id_)
        reason = failure_reason(result, record.compute)
        self.closer.close(id_, Outcome(ExecutionState.FAILED, reason, result.exit_code, True, result.last_lines))
        raise ExecutionFailedError(id_, reason, result.exit_code, result.last_lines)

    def _stopped(self, id_: str, exit_code: int | None, last_lines: list[str] | None = None) -> Outcome:
        reason = self.backend.store.get_execution(id_).stop_requested or "stopped"
        # exited on SIGTERM within the grace: its files were flushed; killed (137) or unknown: maybe not
        complete = exit_code is not None and exit_code != 137
        return Outcome(ExecutionState.TERMINATED, reason, exit_code, complete, list(last_lines or []))

    def terminate_interrupted(self, record: ExecutionRecord, reason: str) -> ExecutionRecord:
        """The process running an execution is being stopped (SIGTERM/SIGINT, Airflow's kill): stop the
        container within the short grace, save what it wrote, and record whether that is complete."""
        runner = self.backend.runner
        try:
            runner.stop(record.container_name)
            exit_code = runner.exit_code(record.container_name)
        except Exception:
            exit_code = None
        current = self.backend.store.get_execution(record.id)
        reason = current.stop_requested or reason
        complete = exit_code is not None and exit_code != 137
        return self.closer.close(record.id, Outcome(ExecutionState.TERMINATED, reason, exit_code, complete))


def failure_reason(result: ContainerResult, compute: ComputeType) -> str:
    if result.stopped_because:
        return result.stopped_because
    if result.oom_killed:
        return (
            f"out of memory: the container was killed at the compute type's {compute.memory.human_readable()} "
            f"limit ({compute.name!r}); use a larger compute type"
        )
    return f"the command exited with code {result.exit_code}"
