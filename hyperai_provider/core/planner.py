"""Planning: resolve every name and pass every check before anything exists.

:meth:`Planner.plan` is pure: it writes no record, file, link, volume or container. What an execution
needs materialised (a merged view to take code from, a sub-folder of a continued working directory to
bind) is named in the plan and made by the execution itself once it exists, in its own folder.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hyperai_provider.core import layers
from hyperai_provider.core.access import Access
from hyperai_provider.core.backend import Backend
from hyperai_provider.core.code import code_files, parameter_arguments
from hyperai_provider.core.notebooks import check_notebooks, default_command
from hyperai_provider.core.quota import check_storage_quota
from hyperai_provider.core.workdirs import Workdirs
from hyperai_provider.exceptions import ConfigurationError, NotFoundError
from hyperai_provider.models import (
    INPUT_SLOTS,
    ComputeType,
    DatasetSource,
    ExecutionMode,
    ExecutionRecord,
    InputBinding,
    RuntimeImage,
    split_execution_id,
)
from hyperai_provider.models.spec import ExecutionSpec


@dataclass(frozen=True)
class View:
    """A merged view an execution materialises in its own folder when it is prepared."""

    source: ExecutionRecord
    sub_path: str = ""


@dataclass(frozen=True)
class ExecutionPlan:
    """A spec with every name resolved and every check passed; nothing exists yet."""

    spec: ExecutionSpec
    owner: str
    compute: ComputeType
    image: str
    image_entry: RuntimeImage | None
    code: Path | None = None
    """A folder or file to upload, or (promotion) a closed execution's single-layer working dir."""
    code_view: View | None = None
    """Promotion from a continued execution: its merged view, materialised as the view ``code``."""
    code_reference: str | None = None
    """Promotion: the execution (``gear/n[:sub/path]``) the code comes from, as the record keeps it."""
    inputs: list[InputBinding] = field(default_factory=list)
    """Resolved bindings; one without ``host_path`` is bound from the view named by its slot."""
    input_views: dict[str, View] = field(default_factory=dict)
    notebooks: list[str] = field(default_factory=list)
    """Uploaded notebooks (relative paths), exported to scripts in Task mode."""
    parent: ExecutionRecord | None = None
    lower_layers: list[str] = field(default_factory=list)
    """Overlay continuation: the parent's layers the child stands on (empty: fresh, or copied)."""
    flatten: bool = False
    """The parent's chain is too deep: materialise its merged view (hard links) before mounting."""

    @property
    def code_source(self) -> str | None:
        """What the record keeps as the code's origin: an execution reference, or the uploaded path."""
        return self.code_reference or (str(self.code) if self.code is not None else None)


def build_command(command: str | list[str] | None, parameters: dict[str, Any]) -> list[str]:
    """argv for the container: a shell string runs under /bin/sh -c; parameters follow as --key=value."""
    arguments = parameter_arguments(parameters)
    if command is None or command == "" or command == []:
        return []
    if isinstance(command, str):
        return ["/bin/sh", "-c", " ".join([command, *map(shlex.quote, arguments)])]
    return [*command, *arguments]


class Planner:
    """Turns an :class:`ExecutionSpec` into an :class:`ExecutionPlan`, creating nothing."""

    def __init__(self, backend: Backend, workdirs: Workdirs) -> None:
        self.backend = backend
        self.workdirs = workdirs

    def access(self, owner: str) -> Access:
        return Access(self.backend.store, owner)

    def plan(self, spec: ExecutionSpec) -> ExecutionPlan:
        """Resolve names and check everything that can be checked before a container exists."""
        backend = self.backend
        owner = spec.owner or backend.settings.user
        access = self.access(owner)
        access.require_runnable(spec.gear)
        compute = backend.catalogs.compute_type(spec.compute_type)
        image, image_entry = backend.catalogs.image(spec.image)
        parent = self.resolve_parent(spec, access) if spec.continue_from else None
        if parent is not None and not spec.inputs:
            inherited = [InputBinding(slot=b.slot, source=b.source) for b in parent.inputs]
            spec = spec.model_copy(update={"inputs": inherited})
        code, code_view = self._code(spec, access)
        code_reference = spec.code_from.strip() if spec.code_from else None
        notebooks: list[str] = []
        if spec.mode is ExecutionMode.TASK and (code is not None or code_view is not None):
            notebooks = check_notebooks(self._code_listing(code, code_view))
            if not spec.command:
                spec = spec.model_copy(update={"command": default_command(notebooks)})
        inputs, input_views = self.resolve_inputs(spec.inputs, access)
        check_storage_quota(backend)
        backend.runner.check_compute(compute)
        backend.runner.ensure_image(image, spec.pull, image_entry.build_hint if image_entry else "")
        lower_layers: list[str] = []
        flatten = False
        if parent is not None and self.workdirs.overlay_available(image):
            lower_layers, flatten = layers.lower_layers_for_child(
                backend.storage, parent, backend.settings.overlay_max_depth
            )
            layers.overlay_options([backend.storage.root / ref for ref in lower_layers], None)  # length check
        return ExecutionPlan(
            spec=spec,
            owner=owner,
            compute=compute,
            image=image,
            image_entry=image_entry,
            code=code,
            code_view=code_view,
            code_reference=code_reference,
            inputs=inputs,
            input_views=input_views,
            notebooks=notebooks,
            parent=parent,
            lower_layers=lower_layers,
            flatten=flatten,
        )

    def resolve_parent(self, spec: ExecutionSpec, access: Access) -> ExecutionRecord:
        """The closed, saved execution ``spec.continue_from`` names (an id, or 'latest' of the gear)."""
        reference = (spec.continue_from or "").strip()
        if reference == "latest":
            closed = []
            if self._gear_exists(access, spec.gear):
                closed = [r for r in access.executions(spec.gear) if r.closed and self.workdirs.is_saved(r)]
            if not closed:
                raise NotFoundError(
                    f"continue_from='latest': gear {spec.gear!r} has no closed execution to continue from.",
                    "Run it once without continue_from first, or name an execution id ('gear/3').",
                )
            return max(closed, key=lambda record: record.number)
        _check_id(reference, "continue_from")
        record = access.execution(reference)  # another user's private gear: "does not exist"
        self.workdirs.require_saved(record, "continue")
        return record

    @staticmethod
    def _gear_exists(access: Access, gear: str) -> bool:
        try:
            access.gear(gear)
        except NotFoundError:
            return False
        return True

    def _code(self, spec: ExecutionSpec, access: Access) -> tuple[Path | None, View | None]:
        """Where the code comes from: an upload path, or (promotion) a closed execution's working dir."""
        if not spec.code_from:
            if spec.code is not None and not spec.code.exists():
                raise ConfigurationError(
                    f"Code path {str(spec.code)!r} does not exist.",
                    "Give a folder or file, absolute or relative to the DAG file's folder.",
                )
            return spec.code, None
        id_, _, sub_path = spec.code_from.partition(":")
        _check_id(id_, "code")
        record = access.execution(id_)
        self.workdirs.require_saved(record, "code")
        path = self.workdirs.check_sub_path(record, sub_path, "code sub-path")
        return (path, None) if path is not None else (None, View(record, sub_path.strip("/")))

    def _code_listing(self, code: Path | None, view: View | None) -> list[tuple[Path, str]]:
        """The files of the code to upload (physical path, relative path), for the notebook checks."""
        if code is not None:
            return code_files(code)
        assert view is not None
        prefix = f"{view.sub_path}/" if view.sub_path else ""
        return [
            (entry.path, entry.relative.removeprefix(prefix))
            for entry in self.workdirs.view(view.source).walk()
            if entry.kind == "file" and entry.relative.startswith(prefix)
        ]

    def resolve_inputs(
        self, inputs: list[InputBinding], access: Access
    ) -> tuple[list[InputBinding], dict[str, View]]:
        """Check each binding and fill in its host path: a dataset version ('latest' pinned to a number)
        or a closed execution's working directory that the caller may see, the sub-path confined to its
        source. A sub-folder of a continued working directory is bound from a view made at prepare."""
        if len(inputs) > len(INPUT_SLOTS):
            raise ConfigurationError(
                f"{len(inputs)} input bindings given; an execution has five slots ({', '.join(INPUT_SLOTS)}).",
                "Bind at most five sources (bind a parent folder to see several datasets).",
            )
        resolved: list[InputBinding] = []
        views: dict[str, View] = {}
        for binding in inputs:
            source = binding.source
            if isinstance(source, DatasetSource):
                from hyperai_provider.core.datasets import resolve_version

                version, path = resolve_version(self.backend, access, source)
                pinned = source.model_copy(update={"version": version.version})
                resolved.append(binding.model_copy(update={"source": pinned, "host_path": str(path)}))
                continue
            where = f"{binding.slot} ({source.kind})"
            _check_id(source.execution_id, where)
            record = access.execution(source.execution_id)
            self.workdirs.require_saved(record, "bind")
            host: Path | None = self.workdirs.layers(record)[0]
            if source.sub_path:
                host = self.workdirs.check_sub_path(record, source.sub_path, f"{where} sub-path")
            if host is None:
                views[binding.slot] = View(record, source.sub_path.strip("/"))
            workdir = source.model_copy(update={"gear": record.gear, "state": record.state.value})
            resolved.append(
                binding.model_copy(update={"source": workdir, "host_path": str(host) if host else None})
            )
        return resolved, views


def _check_id(reference: str, where: str) -> None:
    try:
        split_execution_id(reference)
    except ValueError as error:
        raise ConfigurationError(f"{where}: {error}.", "Use '<gear>/<n>' (e.g. 'mnist/3').") from error
