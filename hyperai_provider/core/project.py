"""HyperAI / OpenBayes project folders (``openbayes.yaml``) read into execution requests.

The keys HyperAI documents::

    resource: t4                     # compute type
    env: pytorch-2.5                 # runtime image
    command: python train.py
    parameters: {lr: 0.1}            # openbayes_params.json and --key=value
    data_bindings:                   # or the short form `bindings: ["NAME/VERSION:/input0", ...]`
      - data: mnist/1                # a dataset version ([user/]NAME/VERSION)
        path: /input0
      - data: mnist-train/3/output   # a previous execution's output bound to /output: continue from it
        path: /output

Unknown keys are reported, never ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hyperai_provider.exceptions import ConfigurationError
from hyperai_provider.models import INPUT_SLOTS

PROJECT_FILES = ("openbayes.yaml", "openbayes.yml", "hyperai.yaml", "hyperai.yml")
KNOWN_KEYS = {"name", "resource", "env", "command", "parameters", "data_bindings", "bindings", "description"}


@dataclass(frozen=True)
class Project:
    """What a project folder asks for, in this provider's terms."""

    folder: Path
    name: str | None = None
    compute_type: str | None = None
    image: str | None = None
    command: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    continue_from: str | None = None

    def operator_arguments(self) -> dict[str, Any]:
        """Arguments for GearTaskOperator / ExecutionSpec (only those the file sets)."""
        arguments: dict[str, Any] = {"code": str(self.folder)}
        for key, value in (
            ("compute_type", self.compute_type),
            ("image", self.image),
            ("command", self.command),
            ("continue_from", self.continue_from),
        ):
            if value:
                arguments[key] = value
        if self.parameters:
            arguments["parameters"] = dict(self.parameters)
        if self.inputs:
            arguments["inputs"] = dict(self.inputs)
        return arguments


def find_project_file(folder: Path) -> Path:
    for name in PROJECT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise ConfigurationError(
        f"{str(folder)!r} has no {PROJECT_FILES[0]}.",
        "Point at a HyperAI project folder (one with openbayes.yaml), or pass command/image/compute_type.",
    )


def load_project(path: Path | str) -> Project:
    """Read a project folder (or its yaml file directly)."""
    path = Path(path).expanduser().absolute()
    if not path.exists():
        raise ConfigurationError(f"Project path {str(path)!r} does not exist.", "Check the path.")
    file = path if path.is_file() else find_project_file(path)
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigurationError(f"{file} is not valid YAML: {error}", "Fix its syntax.") from error
    if not isinstance(data, dict):
        raise ConfigurationError(f"{file} must be a mapping of keys (resource, env, command, ...).")
    unknown = sorted(set(map(str, data)) - KNOWN_KEYS)
    if unknown:
        raise ConfigurationError(
            f"{file.name} has unknown key(s): {', '.join(unknown)}.",
            f"Known keys: {', '.join(sorted(KNOWN_KEYS))}.",
        )
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ConfigurationError(f"{file.name}: 'parameters' must be a mapping of names to values.")
    inputs, continue_from = _bindings(file.name, data.get("data_bindings"), data.get("bindings"))
    command = data.get("command")
    return Project(
        folder=file.parent,
        name=_optional_str(data.get("name")),
        compute_type=_optional_str(data.get("resource")),
        image=_optional_str(data.get("env")),
        command=str(command) if command is not None else None,
        parameters=parameters,
        inputs=inputs,
        continue_from=continue_from,
    )


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def _bindings(origin: str, long_form: object, short_form: object) -> tuple[dict[str, str], str | None]:
    entries: list[tuple[str, str]] = []
    for item in _as_list(origin, "data_bindings", long_form):
        if (
            not isinstance(item, dict)
            or set(item) - {"data", "path"}
            or "data" not in item
            or "path" not in item
        ):
            raise ConfigurationError(
                f"{origin}: each data_bindings entry needs 'data' and 'path' (got {item!r}).",
                "Example: {data: mnist/1, path: /input0}.",
            )
        entries.append((str(item["data"]), str(item["path"])))
    for item in _as_list(origin, "bindings", short_form):
        data, sep, target = str(item).rpartition(":")
        if not sep:
            raise ConfigurationError(
                f"{origin}: binding {item!r} needs a target.", "Example: 'mnist/1:/input0'."
            )
        entries.append((data, target))
    inputs: dict[str, str] = {}
    continue_from: str | None = None
    for data, target in entries:
        slot = _slot(origin, target)
        if slot == "output":
            continue_from = _execution_of_output(origin, data)
            continue
        if slot in inputs:
            raise ConfigurationError(f"{origin}: {target} is bound twice.", "Bind each input slot once.")
        inputs[slot] = _source(origin, data)
    return inputs, continue_from


def _as_list(origin: str, key: str, value: object) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigurationError(f"{origin}: '{key}' must be a list.")
    return value


def _slot(origin: str, target: str) -> str:
    name = target.rstrip("/").rsplit("/", 1)[-1]
    if target.rstrip("/") == "/output":
        return "output"
    if name in INPUT_SLOTS and target.rstrip("/") in (
        f"/{name}",
        f"/hyperai/input/{name}",
        f"/openbayes/input/{name}",
    ):
        return name
    raise ConfigurationError(
        f"{origin}: cannot bind to {target!r}.", "Targets are /input0 ... /input4, or /output (continue)."
    )


def _source(origin: str, data: str) -> str:
    """'[user/]NAME/VERSION' (a dataset), 'dataset:...' or '<gear>/<n>[/output]' as 'gear/n'."""
    if data.startswith("dataset:"):
        return data
    parts = [part for part in data.strip("/").split("/") if part]
    if parts and parts[-1] == "output":
        return _execution_of_output(origin, data)
    if len(parts) >= 2 and parts[-1].isdigit():
        return f"dataset:{parts[-2]}@{parts[-1]}"
    if len(parts) >= 2 and parts[-1] == "latest":
        return f"dataset:{parts[-2]}@latest"
    raise ConfigurationError(
        f"{origin}: cannot read data source {data!r}.",
        "Use NAME/VERSION for a dataset version, or GEAR/N/output for a previous execution's output.",
    )


def _execution_of_output(origin: str, data: str) -> str:
    parts = [part for part in data.strip("/").split("/") if part]
    if parts and parts[-1] == "output":
        parts = parts[:-1]
    if len(parts) >= 2 and parts[-1].isdigit():
        return f"{parts[-2]}/{parts[-1]}"
    raise ConfigurationError(
        f"{origin}: {data!r} bound to /output is not an execution's output.",
        "Use GEAR/N/output, e.g. mnist/3/output.",
    )
