"""The gear service: the one facade operators, CLI and web UI use to run and inspect executions.

An execution goes: plan (every check, nothing created) -> create (record, id) -> prepare (working dir,
code, parameters) -> run (container) -> save (accounting, completion marker) -> close (final state).
"""

from __future__ import annotations

import hashlib
import logging
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from hyperai_provider.core import layers
from hyperai_provider.core.catalog import Catalogs
from hyperai_provider.core.code import code_files, copy_code, parameter_arguments, write_parameters
from hyperai_provider.core.lifecycle import runner_identity
from hyperai_provider.core.notebooks import check_notebooks, default_command, export_into
from hyperai_provider.core.notify import SmtpSettings
from hyperai_provider.core.runner import (
    LABEL_EXECUTION,
    LABEL_GEAR,
    LABEL_MANAGED,
    LABEL_STORAGE_ROOT,
    ContainerResult,
    ContainerSpec,
    DockerRunner,
    MountSpec,
    Watchdog,
)
from hyperai_provider.core.settings import HyperAISettings
from hyperai_provider.core.storage import StorageRoot, Usage, atomic_write_json, resolve_inside, tree_usage
from hyperai_provider.core.store import GearStore, advance
from hyperai_provider.core.sync import copy_layers
from hyperai_provider.exceptions import (
    ConfigurationError,
    ConflictError,
    ExecutionFailedError,
    ExecutionTerminatedError,
    HyperAIError,
    NotFoundError,
    QuotaExceededError,
)
from hyperai_provider.models import (
    HOME,
    INPUT_SLOTS,
    OUTPUT,
    AirflowContext,
    ComputeType,
    DatasetSource,
    ExecutionMode,
    ExecutionRecord,
    ExecutionState,
    InputBinding,
    RuntimeImage,
    Visibility,
    WorkdirSource,
    split_execution_id,
)
from hyperai_provider.models.binding import parse_bindings
from hyperai_provider.models.spec import ExecutionSpec

if TYPE_CHECKING:
    from hyperai_provider.core.access import Access
    from hyperai_provider.core.datasets import Datasets
    from hyperai_provider.core.lifecycle import Lifecycle

log = logging.getLogger(__name__)

LineSink = Callable[[str], None]
STOP_REQUESTED = "stop_requested"


@dataclass(frozen=True)
class ExecutionPlan:
    """A spec with every name resolved and every check passed; nothing exists yet."""

    spec: ExecutionSpec
    compute: ComputeType
    image: str
    image_entry: RuntimeImage | None
    code: Path | None
    inputs: list[InputBinding] = field(default_factory=list)
    notebooks: list[str] = field(default_factory=list)
    """Uploaded notebooks (relative paths), exported to scripts in Task mode."""
    parent: ExecutionRecord | None = None
    """The closed execution this one continues from."""
    lower_layers: list[str] = field(default_factory=list)
    """Overlay continuation: the parent's layers the child stands on (empty: fresh, or copied)."""
    flatten: bool = False
    """The parent's chain is too deep: materialise its merged view (hard links) before mounting."""


def container_name(record: ExecutionRecord) -> str:
    return record.container_name or f"hyperai-{record.gear}-{record.number}"


def build_command(command: str | list[str] | None, parameters: dict[str, Any]) -> list[str]:
    """argv for the container: a shell string runs under /bin/sh -c; parameters follow as --key=value."""
    arguments = parameter_arguments(parameters)
    if command is None or command == "" or command == []:
        return []
    if isinstance(command, str):
        return ["/bin/sh", "-c", " ".join([command, *map(shlex.quote, arguments)])]
    return [*command, *arguments]


class GearService:
    """Runs and records executions under one storage root, on one Docker engine."""

    def __init__(self, settings: HyperAISettings | None = None, runner: DockerRunner | None = None) -> None:
        self.settings = settings or HyperAISettings.from_env()
        self.storage = StorageRoot(self.settings.storage_root)
        self.runner = runner or DockerRunner(
            self.settings.docker_host,
            self.settings.stop_grace_seconds,
            self.storage.tmp / "engine-facts.json",
        )
        self._store: GearStore | None = None
        self.smtp: SmtpSettings | None = None  # None: HYPERAI_SMTP_* (an Airflow adapter may set it)
        self._catalogs: Catalogs | None = None

    @property
    def store(self) -> GearStore:
        if self._store is None:
            self.storage.ensure()
            self._store = GearStore(self.settings.resolved_store_url)
        return self._store

    @property
    def catalogs(self) -> Catalogs:
        if self._catalogs is None:
            self._catalogs = Catalogs(self.settings.storage_root)
        return self._catalogs

    # -- planning: every check, before anything is created ------------------------------------------------

    def plan(self, spec: ExecutionSpec) -> ExecutionPlan:
        """Resolve names and check everything that can be checked before a container exists."""
        compute = self.catalogs.compute_type(spec.compute_type)
        image, image_entry = self.catalogs.image(spec.image)
        parent = self.resolve_parent(spec) if spec.continue_from else None
        if parent is not None and not spec.inputs:
            inherited = [InputBinding(slot=b.slot, source=b.source) for b in parent.inputs]
            spec = spec.model_copy(update={"inputs": inherited})
        code = self.code_from(spec.code_from) if spec.code_from else spec.code
        if code is not None and not code.exists():
            raise ConfigurationError(
                f"Code path {str(code)!r} does not exist.",
                "Give a folder or file, absolute or relative to the DAG file's folder.",
            )
        notebooks: list[str] = []
        if code is not None and spec.mode is ExecutionMode.TASK:
            notebooks = check_notebooks(code_files(code))
            if not spec.command:
                spec = spec.model_copy(update={"command": default_command(notebooks)})
        inputs = self.resolve_inputs(spec.inputs, spec.owner)
        self.check_storage_quota()
        self.runner.check_compute(compute)
        self.runner.ensure_image(image, spec.pull, image_entry.build_hint if image_entry else "")
        lower_layers: list[str] = []
        flatten = False
        if parent is not None and self.use_overlay(image):
            lower_layers, flatten = layers.lower_layers_for_child(
                self.storage, parent, self.settings.overlay_max_depth
            )
            layers.overlay_options([self.storage.root / ref for ref in lower_layers], None)  # length check
        return ExecutionPlan(
            spec=spec,
            compute=compute,
            image=image,
            image_entry=image_entry,
            code=code,
            inputs=inputs,
            notebooks=notebooks,
            parent=parent,
            lower_layers=lower_layers,
            flatten=flatten,
        )

    def resolve_parent(self, spec: ExecutionSpec) -> ExecutionRecord:
        """The closed, saved execution ``spec.continue_from`` names (an id, or 'latest' of the gear)."""
        reference = (spec.continue_from or "").strip()
        if reference == "latest":
            closed = [
                record
                for record in self.store.list_executions(spec.gear)
                if record.closed and self.storage.is_saved(record.gear, record.number)
            ]
            if not closed:
                raise NotFoundError(
                    f"continue_from='latest': gear {spec.gear!r} has no closed execution to continue from.",
                    "Run it once without continue_from first, or name an execution id ('gear/3').",
                )
            return max(closed, key=lambda record: record.number)
        try:
            split_execution_id(reference)
        except ValueError as error:
            raise ConfigurationError(
                f"continue_from={reference!r} is not an execution id.",
                "Use '<gear>/<n>' (e.g. 'mnist/3') or 'latest'.",
            ) from error
        record = self.store.get_execution(reference)
        if record.gear != spec.gear:
            gear = self.store.get_gear(record.gear)
            owner = spec.owner or self.settings.user
            if gear.visibility is Visibility.PRIVATE and gear.owner != owner:
                raise NotFoundError(
                    f"Execution {reference} belongs to gear {gear.name!r}, which is private to "
                    f"{gear.owner!r}; {owner!r} cannot continue from it.",
                    "Ask its owner to make the gear public, or continue from one of your own executions.",
                )
        if not record.closed:
            raise ConflictError(
                f"Execution {reference} is still {record.state.value}; only a closed execution can be continued.",
                "Wait for it to end (or stop it), then continue from it.",
            )
        if not self.storage.is_saved(record.gear, record.number):
            raise ConflictError(
                f"Execution {reference} ended without its working directory being saved.",
                "Continue from another execution of the gear.",
            )
        return record

    def use_overlay(self, image: str) -> bool:
        """Whether continuations mount an overlay (else they copy): settings.overlay, and a probe in 'auto'."""
        mode = self.settings.overlay
        if mode not in ("auto", "on", "off"):
            raise ConfigurationError(
                f"overlay={mode!r} is not a mode.", "Set HYPERAI_OVERLAY to 'auto', 'on' or 'off'."
            )
        if mode != "auto":
            return mode == "on"
        reason = layers.probe_overlay(
            self.runner.client, self.storage, image, self.storage.tmp / "overlay-probe.json"
        )
        if reason is not None:
            log.warning("Overlays are unavailable on this engine (%s); continuations will copy", reason)
        return reason is None

    def code_from(self, reference: str) -> Path:
        """Promotion: the folder of a closed execution's working directory that provides a task's code
        (``'<gear>/<n>'`` or ``'<gear>/<n>:sub/path'``)."""
        id_, _, sub_path = reference.partition(":")
        try:
            split_execution_id(id_)
        except ValueError as error:
            raise ConfigurationError(f"Invalid code reference {reference!r}: {error}.") from error
        record = self.store.get_execution(id_)
        if not record.closed or not self.storage.is_saved(record.gear, record.number):
            raise ConflictError(
                f"Execution {id_} is {record.state.value}; its working directory is not saved yet.",
                "Take code only from a closed execution (close the workspace first).",
            )
        layers = self.workdir_layers(record)
        if len(layers) == 1:
            base = layers[0]
        else:
            base = self.storage.temporary_dir("code-from-")
            self.link_workdir(record, base)
        return resolve_inside(base, sub_path, "code sub-path")

    @property
    def lifecycle(self) -> Lifecycle:
        from hyperai_provider.core.lifecycle import Lifecycle

        return Lifecycle(self)

    def access(self, user: str | None = None) -> Access:
        """The visibility rules as ``user`` (default: the configured user) sees the store."""
        from hyperai_provider.core.access import Access

        return Access(self.store, user or self.settings.user)

    @property
    def datasets(self) -> Datasets:
        from hyperai_provider.core.datasets import Datasets

        return Datasets(self)

    def resolve_inputs(self, inputs: list[InputBinding], owner: str = "") -> list[InputBinding]:
        """Check each binding and fill in its host path: a dataset version ('latest' pinned to a number)
        or a closed execution's working directory that ``owner`` may see, the sub-path confined to its
        source."""
        if len(inputs) > len(INPUT_SLOTS):
            raise ConfigurationError(
                f"{len(inputs)} input bindings given; an execution has five slots ({', '.join(INPUT_SLOTS)}).",
                "Bind at most five sources (bind a parent folder to see several datasets).",
            )
        return [self._resolve_input(binding, owner) for binding in inputs]

    def _resolve_input(self, binding: InputBinding, owner: str = "") -> InputBinding:
        source = binding.source
        where = f"{binding.slot} ({source.kind})"
        if isinstance(source, DatasetSource):
            version, path = self.datasets.resolve(source)
            pinned = source.model_copy(update={"version": version.version})
            return binding.model_copy(update={"source": pinned, "host_path": str(path)})
        try:
            split_execution_id(source.execution_id)
        except ValueError as error:
            raise ConfigurationError(f"{where}: {error}") from error
        record = self.access(owner or None).execution(source.execution_id)  # others' private: unknown
        if not record.closed:
            raise ConflictError(
                f"{where}: execution {record.id} is still {record.state.value}; only a closed working "
                "directory can be bound.",
                "Bind it once it has ended (in a DAG, make this task downstream of it).",
            )
        if not self.storage.is_saved(record.gear, record.number):
            raise ConflictError(
                f"{where}: execution {record.id} ended without its working directory being saved.",
                "Bind another execution.",
            )
        chain = self.workdir_layers(record)
        if len(chain) == 1:
            path = resolve_inside(chain[0], source.sub_path, "sub-path")
        elif source.sub_path:  # a sub-folder of a merged view: materialise it with hard links (no copy)
            if not self.workdir_view(record).exists(source.sub_path.strip("/")):
                raise ConfigurationError(
                    f"{where}: sub-path {source.sub_path!r} does not exist in {record.id}."
                )
            merged = self.storage.temporary_dir(f"input-{record.gear}-{record.number}-")
            self.link_workdir(record, merged / "view")
            path = resolve_inside(merged / "view", source.sub_path, "sub-path")
        else:
            path = chain[0]  # mounted as the merged overlay by container_spec
        resolved = source.model_copy(update={"gear": record.gear, "state": record.state.value})
        return binding.model_copy(update={"source": resolved, "host_path": str(path)})

    def input_mount(self, binding: InputBinding, record: ExecutionRecord) -> MountSpec:
        """The read-only mount of one resolved binding in ``record``'s container."""
        source = binding.source
        if isinstance(source, WorkdirSource) and not source.sub_path:
            return self.workdir_mount(
                self.store.get_execution(source.execution_id), binding.container_path, record
            )
        return MountSpec(str(binding.host_path), binding.container_path, read_only=True)

    def storage_used(self) -> int:
        """Bytes the storage root holds, from the store's accounting (no tree walk)."""
        executions = sum(record.bytes_stored or 0 for record in self.store.list_executions())
        datasets = sum(
            v.bytes for d in self.store.list_datasets() for v in self.store.list_dataset_versions(d.name)
        )
        return executions + datasets

    def check_storage_quota(self) -> None:
        """Refuse new executions and dataset versions once the storage root holds its quota."""
        quota = self.settings.storage_quota
        if quota is None:
            return
        used = self.storage_used()
        if used >= quota:
            raise QuotaExceededError(
                f"The storage root {self.settings.storage_root} holds {used:,} bytes, at or over its quota of "
                f"{quota:,} bytes.",
                "Delete executions or dataset versions you no longer need (`hyperai delete`, "
                "`hyperai dataset delete`), or raise HYPERAI_STORAGE_QUOTA.",
            )

    # -- running ---------------------------------------------------------------------------------------

    def create(self, plan: ExecutionPlan) -> ExecutionRecord:
        """Allocate the execution id and write its first record (state 'created')."""
        spec = plan.spec
        owner = spec.owner or self.settings.user
        inherited_code = plan.parent.code_source if plan.parent else None

        def build(id_: str, number: int) -> ExecutionRecord:
            return ExecutionRecord(
                id=id_,
                gear=spec.gear,
                number=number,
                mode=spec.mode,
                owner=owner,
                compute=plan.compute,
                image=plan.image,
                image_name=plan.image_entry.name if plan.image_entry else None,
                command=build_command(spec.command, spec.parameters),
                parameters=dict(spec.parameters),
                environment=dict(spec.environment),
                code_source=str(plan.code) if plan.code else inherited_code,
                inputs=plan.inputs,
                parent=plan.parent.id if plan.parent else None,
                lower_layers=list(plan.lower_layers),
                airflow=spec.airflow,
                container_name=self.container_name_for(spec.gear, number),
            )

        return self.store.create_execution(spec.gear, owner, build)

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
        return self.execute(record, plan, on_line)

    def execute(
        self, record: ExecutionRecord, plan: ExecutionPlan, on_line: LineSink = print
    ) -> ExecutionRecord:
        """Prepare the working directory, run the container, save, and close the record."""
        result: ContainerResult | None = None
        try:
            self.prepare(record, plan, on_line)
            container_spec = self.container_spec(record, plan)
            with self.storage.log_path(record.gear, record.number).open("a", encoding="utf-8") as log_file:
                container = self.runner.start(container_spec)
                self.store.update_execution(
                    record.id,
                    lambda current: advance(
                        current,
                        ExecutionState.RUNNING,
                        "container started",
                        extra={**current.extra, **runner_identity()},
                    ),
                )
                on_line(f"[hyperai] execution {record.id} running in container {container_spec.name}")
                result = self.runner.stream_and_wait(
                    container, _tee(log_file, on_line), watchdog=self.watchdog(record, plan)
                )
        except HyperAIError as error:
            self._close_failed(record.id, error.headline)
            raise
        except BaseException as error:
            self.terminate_interrupted(record, f"interrupted ({type(error).__name__})")
            raise
        finally:
            self.release(record)
        return self.close(record.id, result)

    def collect_orphans_quietly(self) -> None:
        """Before starting, stop containers whose worker died (never fails the new execution)."""
        try:
            handled = self.lifecycle.collect_orphans()
        except Exception:
            log.exception("Orphan collection failed")
            return
        if handled:
            log.warning("Collected orphaned execution(s) %s (their workers died)", ", ".join(handled))

    def terminate_interrupted(self, record: ExecutionRecord, reason: str) -> None:
        """The process running an execution is being stopped (SIGTERM/SIGINT, Airflow's kill): stop the
        container within the short grace, save what it wrote, and record whether that is complete."""
        try:
            self.runner.stop(record.container_name)
            exit_code = self.runner.exit_code(record.container_name)
        except HyperAIError:
            exit_code = None
        reason = self.store.get_execution(record.id).extra.get(STOP_REQUESTED) or reason
        # exited on SIGTERM within the grace: its files were flushed; killed (137) or unknown: maybe not
        self.save_and_terminate(record.id, reason, exit_code, complete=exit_code is not None and exit_code != 137)

    def save_and_terminate(
        self, id_: str, reason: str, exit_code: int | None, complete: bool
    ) -> ExecutionRecord:
        """Save what a stopped execution wrote and record it terminated; ``complete`` says whether the
        program had the chance to finish its writes. A record that is already closed stays as it is."""
        current = self.store.get_execution(id_)
        if current.closed:
            return current
        stored = None
        if current.state in (ExecutionState.RUNNING, ExecutionState.SAVING):
            if current.state is ExecutionState.RUNNING:
                self.store.transition(id_, ExecutionState.SAVING, reason)
            stored = self.save(current)
        closed = self.store.transition(
            id_,
            ExecutionState.TERMINATED,
            reason,
            failure_reason=f"terminated: {reason}",
            exit_code=exit_code,
            bytes_stored=stored,
            saved_completely=complete and stored is not None,
        )
        self.closed(closed)
        return closed

    def prepare(self, record: ExecutionRecord, plan: ExecutionPlan, on_line: LineSink = print) -> None:
        """Create the working directory, copy code, write parameters (state 'preparing')."""
        self.store.transition(record.id, ExecutionState.PREPARING)
        home = self.storage.layer_dir(record.gear, record.number)
        home.mkdir(parents=True, exist_ok=True)
        exists = self.continue_workdir(record, plan, on_line) if plan.parent is not None else None
        if plan.code is not None:
            copied = copy_code(plan.code, home, plan.spec.code_conflict, exists)
            for kept in copied.kept:
                on_line(f"[hyperai] kept the continued working directory's {kept} (code_conflict='keep')")
            on_line(f"[hyperai] copied {len(copied.copied)} code file(s) from {plan.code}")
            for script in export_into(home, [n for n in plan.notebooks if n in copied.copied]):
                on_line(f"[hyperai] exported notebook to {script}")
        if record.parameters:
            write_parameters(home, record.parameters)

    def continue_workdir(
        self, record: ExecutionRecord, plan: ExecutionPlan, on_line: LineSink
    ) -> Callable[[str], bool]:
        """Give a continuation its parent's working directory: an overlay volume over the parent's layers,
        or (no overlays) a copy in the 'synchronizing' state. Returns whether a path exists in the result."""
        assert plan.parent is not None
        home = self.storage.layer_dir(record.gear, record.number)
        if not record.lower_layers:
            self.store.transition(record.id, ExecutionState.SYNCHRONIZING, f"copying {plan.parent.id}")
            on_line(f"[hyperai] continuing from {plan.parent.id} by copying (overlays unavailable or off)")
            result = copy_layers(layers.workdir_layers(self.storage, plan.parent), home, on_line)
            self.store.update_execution(
                record.id,
                lambda current: current.model_copy(
                    update={"extra": {**current.extra, "synchronized": result.describe()}}
                ),
            )
            return lambda relative: (home / relative).exists() or (home / relative).is_symlink()
        if plan.flatten:
            on_line(f"[hyperai] flattening the working directory of {plan.parent.id} (chain too deep)")
            layers.flatten(self.storage, plan.parent)
        lower = [self.storage.root / ref for ref in record.lower_layers]
        work = self.storage.execution_dir(record.gear, record.number) / layers.WORK_DIR
        work.mkdir(exist_ok=True)
        layers.create_volume(
            self.runner.client,
            container_name(record),
            layers.overlay_options(lower, home, work),
            layers.volume_labels(self.labels(record), record.id),
        )
        on_line(
            f"[hyperai] continuing from {plan.parent.id} without copying: overlay over {len(lower)} layer(s)"
        )
        view = layers.MergedView([home, *lower])
        return view.exists

    def release(self, record: ExecutionRecord) -> None:
        """Remove the container and the volumes made for it (overlay home, read-only inputs)."""
        try:
            self.runner.remove(record.container_name)
        finally:
            layers.remove_execution_volumes(self.runner.client, record.id)
            layers.remove_work_dir(self.storage.execution_dir(record.gear, record.number) / layers.WORK_DIR)

    def workdir_mount(
        self, record: ExecutionRecord, target: str, for_execution: ExecutionRecord
    ) -> MountSpec:
        """A read-only mount of a closed execution's full working directory at ``target`` in
        ``for_execution``'s container: a bind of its layer, or for a continued one a read-only overlay
        volume of its chain (removed by :meth:`release` of ``for_execution``)."""
        chain = layers.workdir_layers(self.storage, record)
        if len(chain) == 1:
            return MountSpec(str(chain[0]), target, read_only=True)
        name = f"{container_name(for_execution)}-{target.strip('/').replace('/', '-')}"
        layers.create_volume(
            self.runner.client,
            name,
            layers.overlay_options(chain),
            layers.volume_labels(self.labels(for_execution), for_execution.id),
        )
        return MountSpec(name, target, read_only=True, kind="volume")

    def container_spec(self, record: ExecutionRecord, plan: ExecutionPlan) -> ContainerSpec:
        home = str(self.storage.layer_dir(record.gear, record.number))
        mounts = [MountSpec(home, HOME), MountSpec(home, OUTPUT)]
        if record.lower_layers:
            volume = container_name(record)
            mounts = [MountSpec(volume, HOME, kind="volume"), MountSpec(volume, OUTPUT, kind="volume")]
        mounts += [self.input_mount(binding, record) for binding in record.inputs]
        environment = {
            "PYTHONUNBUFFERED": "1",
            **record.environment,
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
            command=record.command,
            working_dir=HOME,
            environment=environment,
            mounts=tuple(mounts),
            labels=self.labels(record),
            compute=record.compute,
        )

    def container_name_for(self, gear: str, number: int) -> str:
        """Container (and overlay volume) name: the execution id plus a short digest of the storage root,
        so two storage roots running the same gear on one engine never take each other's names."""
        digest = hashlib.sha256(str(self.settings.storage_root).encode()).hexdigest()[:6]
        return f"hyperai-{gear}-{number}-{digest}"

    def labels(self, record: ExecutionRecord) -> dict[str, str]:
        labels = {
            LABEL_MANAGED: "true",
            LABEL_EXECUTION: record.id,
            LABEL_GEAR: record.gear,
            LABEL_STORAGE_ROOT: str(self.settings.storage_root),
        }
        if record.airflow is not None:
            for key, value in record.airflow.model_dump().items():
                labels[f"io.hyperai.airflow.{key}"] = str(value)
        return labels

    def watchdog(self, record: ExecutionRecord, plan: ExecutionPlan) -> Watchdog | None:
        """A check run while the container runs: the compute type's disk quota bounds its own layer."""
        layer = self.storage.layer_dir(record.gear, record.number)
        quota = int(record.compute.disk_quota)

        def check() -> str | None:
            used = tree_usage(layer).bytes
            if used > quota:
                return (
                    f"disk quota exceeded: the working directory holds {used:,} bytes, over the "
                    f"{record.compute.disk_quota.human_readable()} quota of compute type {record.compute.name!r}"
                )
            return None

        return check

    def save(self, record: ExecutionRecord) -> int:
        """Account the execution's own layer and write its completion marker; return bytes stored."""
        usage = tree_usage(self.storage.layer_dir(record.gear, record.number))
        atomic_write_json(
            self.storage.saved_marker(record.gear, record.number),
            {"execution": record.id, "bytes": usage.bytes, "files": usage.files},
        )
        return usage.bytes

    def close(self, id_: str, result: ContainerResult | None) -> ExecutionRecord:
        """Save and give the record its final state from the container's result."""
        assert result is not None  # execute() only gets here after the container ended
        record = self.store.transition(id_, ExecutionState.SAVING)
        stored = self.save(record)
        stop_reason = self.store.get_execution(id_).extra.get(STOP_REQUESTED)
        fields: dict[str, Any] = {"exit_code": result.exit_code, "bytes_stored": stored}
        if stop_reason:
            record = self.store.transition(
                id_,
                ExecutionState.TERMINATED,
                stop_reason,
                failure_reason=f"terminated: {stop_reason}",
                saved_completely=result.exit_code != 137,
                **fields,
            )
            self.closed(record, result.last_lines)
            raise ExecutionTerminatedError(
                id_, f"terminated ({stop_reason})", result.exit_code, result.last_lines
            )
        if result.exit_code == 0 and not result.stopped_because:
            record = self.store.transition(id_, ExecutionState.SUCCEEDED, saved_completely=True, **fields)
            self.closed(record, result.last_lines)
            return record
        reason = failure_reason(result, record.compute)
        record = self.store.transition(
            id_, ExecutionState.FAILED, reason, failure_reason=reason, saved_completely=True, **fields
        )
        self.closed(record, result.last_lines)
        raise ExecutionFailedError(id_, reason, result.exit_code, result.last_lines)

    def closed(self, record: ExecutionRecord, last_lines: list[str] | None = None) -> None:
        """Called once when an execution reaches a closed state: sends the gear's notifications.
        Never raises: a notification failure must not change the execution's outcome."""
        from hyperai_provider.core.notify import notify_closed

        try:
            notify_closed(self, record, last_lines)
        except Exception:
            log.exception("Could not send the notification for %s", record.id)

    def _close_failed(self, id_: str, reason: str, terminated: bool = False) -> None:
        record = self.store.get_execution(id_)
        if record.closed:
            return
        state = ExecutionState.TERMINATED if terminated else ExecutionState.FAILED
        self.closed(self.store.transition(id_, state, reason, failure_reason=reason))

    def bindings_from(self, inputs: dict[str, Any] | None) -> list[InputBinding]:
        """Parse operator/CLI ``inputs`` into bindings (no I/O; resolved in :meth:`plan`)."""
        try:
            return parse_bindings(inputs)
        except ValueError as error:
            raise ConfigurationError(f"Invalid inputs: {error}") from error

    def reference(self, record: ExecutionRecord) -> WorkdirSource:
        """The working-directory reference a Gear task returns as its XCom."""
        return WorkdirSource(
            execution_id=record.id,
            gear=record.gear,
            state=record.state.value,
            bytes_stored=record.bytes_stored,
        )

    # -- queries -----------------------------------------------------------------------------------------

    def get(self, id_: str) -> ExecutionRecord:
        return self.store.get_execution(id_)

    def executions(self, gear: str | None = None) -> list[ExecutionRecord]:
        return self.store.list_executions(gear)

    def workdir(self, record: ExecutionRecord) -> Path:
        """Host path of an execution's own layer (its whole working directory unless continued)."""
        return self.storage.layer_dir(record.gear, record.number)

    def workdir_layers(self, record: ExecutionRecord) -> list[Path]:
        """The layers that make up an execution's working directory, top (its own) first."""
        return layers.workdir_layers(self.storage, record)

    def workdir_view(self, record: ExecutionRecord) -> layers.MergedView:
        """An execution's full working directory (deletions included), readable without a container."""
        return layers.MergedView(self.workdir_layers(record))

    def link_workdir(self, record: ExecutionRecord, destination: Path) -> Usage:
        """Materialise a closed execution's full working directory at ``destination`` without copying
        file contents (hard links). Used for dataset versions made from a working directory."""
        chain = self.workdir_layers(record)
        if len(chain) == 1:
            own = chain[0] == self.storage.layer_dir(record.gear, record.number)
            known = self.storage.saved_usage(record.gear, record.number) if own else None
            return self.storage.hardlink_tree(chain[0], destination, known)
        return layers.MergedView(chain).link_into(destination)

    def previous_try(self, gear: str, airflow: AirflowContext) -> ExecutionRecord | None:
        """The latest saved execution of an earlier try of the same Airflow task instance (retry, clear)."""
        earlier = [
            record
            for record in self.store.list_executions(gear)
            if record.airflow is not None
            and (
                record.airflow.dag_id,
                record.airflow.task_id,
                record.airflow.run_id,
                record.airflow.map_index,
            )
            == (airflow.dag_id, airflow.task_id, airflow.run_id, airflow.map_index)
            and record.airflow.try_number < airflow.try_number
            and record.closed
            and self.storage.is_saved(record.gear, record.number)
        ]
        return max(
            earlier,
            key=lambda record: (record.airflow.try_number, record.number),  # type: ignore[union-attr]
            default=None,
        )

    def dependents(self, record: ExecutionRecord) -> list[ExecutionRecord]:
        """Executions standing on ``record``'s layers: never delete its working directory while any exist."""
        return layers.dependents(self.store, self.storage, record)

    def stop(self, id_: str, reason: str = "stopped by user") -> ExecutionRecord:
        """Ask a running execution to stop; the process running it records the termination."""
        record = self.store.get_execution(id_)
        if record.closed:
            return record

        def mark(current: ExecutionRecord) -> ExecutionRecord:
            return current.model_copy(update={"extra": {**current.extra, STOP_REQUESTED: reason}})

        record = self.store.update_execution(id_, mark)
        self.runner.stop(record.container_name)
        return record


def failure_reason(result: ContainerResult, compute: ComputeType) -> str:
    if result.stopped_because:
        return result.stopped_because
    if result.oom_killed:
        return (
            f"out of memory: the container was killed at the compute type's {compute.memory.human_readable()} "
            f"limit ({compute.name!r}); use a larger compute type"
        )
    return f"the command exited with code {result.exit_code}"


def _tee(log_file: IO[str], on_line: LineSink) -> LineSink:
    def sink(line: str) -> None:
        log_file.write(line + "\n")
        log_file.flush()
        on_line(line)

    return sink
