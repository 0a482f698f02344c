"""Parsing what users write to name a binding source: strings, models, or an upstream task's XCom."""

from __future__ import annotations

from hyperai_provider.models.binding import INPUT_SLOTS, DatasetSource, InputBinding, WorkdirSource
from hyperai_provider.models.dataset import Dataset, DatasetVersion
from hyperai_provider.models.execution import ExecutionRecord


def parse_source(value: object) -> DatasetSource | WorkdirSource:
    """A binding value: 'dataset:NAME[@VERSION][/sub/path]', '<gear>/<n>[:sub/path]', a model (a source,
    a Dataset (its latest version), a DatasetVersion or an ExecutionRecord), or the XCom dict of an
    upstream Gear task or dataset operator (optionally with 'sub_path')."""
    if isinstance(value, (DatasetSource, WorkdirSource)):
        return value
    if isinstance(value, DatasetVersion):
        return DatasetSource(name=value.dataset, version=value.version)
    if isinstance(value, Dataset):
        return DatasetSource(name=value.name)
    if isinstance(value, ExecutionRecord):
        return WorkdirSource(execution_id=value.id, gear=value.gear)
    if isinstance(value, dict):
        kind = value.get("kind", "workdir")
        model = DatasetSource if kind == "dataset" else WorkdirSource
        return model.model_validate(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            f"cannot bind {value!r}: use 'dataset:NAME@VERSION', an execution id like 'gear/3', "
            "or an upstream Gear task's output"
        )
    text = value.strip()
    if text.startswith("dataset:"):
        rest = text.removeprefix("dataset:")
        name_version, _, sub_path = rest.partition("/")
        name, _, version = name_version.partition("@")
        parsed_version: int | str = "latest"
        if version and version != "latest":
            if not version.isdigit():
                raise ValueError(f"dataset version {version!r} in {value!r} must be a number or 'latest'")
            parsed_version = int(version)
        return DatasetSource(name=name, version=parsed_version, sub_path=sub_path)  # type: ignore[arg-type]
    execution, _, sub_path = text.partition(":")
    gear, sep, number = execution.rpartition("/")
    if not sep or not number.isdigit():
        raise ValueError(
            f"cannot bind {value!r}: expected 'dataset:NAME@VERSION' or an execution id '<gear>/<n>'"
        )
    return WorkdirSource(execution_id=execution, gear=gear, sub_path=sub_path)


def parse_bindings(inputs: dict[str, object] | None) -> list[InputBinding]:
    """Validate ``{"input0": value, ...}``: known slots only, at most five."""
    inputs = inputs or {}
    if not isinstance(inputs, dict):
        raise ValueError(f"inputs must be a mapping of slots to sources, got {type(inputs).__name__}")
    unknown = sorted(str(slot) for slot in inputs if slot not in INPUT_SLOTS)
    if unknown:
        raise ValueError(
            f"unknown input slot(s) {', '.join(unknown)}: HyperAI binds data at {', '.join(INPUT_SLOTS)}"
        )
    return [InputBinding(slot=slot, source=parse_source(value)) for slot, value in inputs.items()]  # type: ignore[arg-type]
