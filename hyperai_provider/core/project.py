"""HyperAI / OpenBayes project folders (``openbayes.yaml``) read into execution requests.

The file is the one ``bayes gear init`` writes (openbayes-cli 0.28)::

    resource: t4                       # compute type
    env: pytorch-2.6-2204              # runtime image (HyperAI runtime names map to our images)
    command: python train.py
    node: 1                            # more than one node is refused (no multi-node executions yet)
    parameters:
      lr: 0.1                          # --lr=0.1 and openbayes_params.json
      HF_TOKEN: {is_secret: true, source: env, env: HF_TOKEN}   # the container's environment only
    data_bindings:                     # or the short form `bindings: ["mnist/1:/input0", "a/3/output:/output:rw"]`
      - data: mnist/1                  # a dataset version ([user/]NAME/VERSION); `name:` may replace `data:`
        path: /input0
        type: ro
      - data: mnist-train/3/output     # a previous execution's output bound to /output: continue from it
        path: /output
        type: rw
    hyper_tuning: {max_job_count: 0, ...}  # validated; studies do not run here yet

A misspelt key is an error naming the key it probably meant; nothing is silently ignored. Secret
parameters are read from the submitting environment only when the execution is submitted
(:func:`resolve_secrets`), never when the file is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hyperai_provider.core.project_keys import check_all_keys, check_keys, validate
from hyperai_provider.exceptions import ConfigurationError
from hyperai_provider.models import INPUT_SLOTS
from hyperai_provider.models.openbayes import (
    DataBinding,
    DataBindingGroups,
    HyperTuning,
    OpenBayesFile,
    SecretParameter,
)

PROJECT_FILES = ("openbayes.yaml", "openbayes.yml", "hyperai.yaml", "hyperai.yml")
CONTINUE_TARGETS = ("/output", "/openbayes/home", "/hyperai/home")
_SECRET_KEYS = {*SecretParameter.model_fields, "isSecret"}


@dataclass(frozen=True)
class Project:
    """What a project folder asks for, in this provider's terms."""

    folder: Path
    name: str | None = None
    compute_type: str | None = None
    image: str | None = None
    command: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, SecretParameter] = field(default_factory=dict)
    """Secret parameters by name: where each value comes from (never the value of an ``env`` one)."""
    inputs: dict[str, str] = field(default_factory=dict)
    continue_from: str | None = None
    node: int = 1
    hyper_tuning: HyperTuning | None = None
    file_name: str = PROJECT_FILES[0]

    @property
    def tuning(self) -> bool:
        """Whether the file asks for a study (``hyper_tuning.max_job_count`` above 0)."""
        return self.hyper_tuning is not None and self.hyper_tuning.enabled

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
        if self.secrets:
            arguments["secret_parameters"] = dict(self.secrets)
        return arguments

    def refuse_study(self, single_run_hint: str) -> None:
        """Refuse a project whose file asks for a study: studies (HyperTuning) do not run here yet."""
        if self.tuning:
            assert self.hyper_tuning is not None
            raise ConfigurationError(
                f"{self.file_name} asks for a HyperTuning study (hyper_tuning.max_job_count: "
                f"{self.hyper_tuning.max_job_count}); studies are not supported here yet.",
                f"To run one execution with the file's parameters: {single_run_hint}, "
                "or set hyper_tuning.max_job_count: 0 in the file.",
            )


def find_project_file(folder: Path) -> Path:
    for name in PROJECT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise ConfigurationError(
        f"{str(folder)!r} has no {PROJECT_FILES[0]}.",
        "Point at a HyperAI project folder (one with openbayes.yaml), or pass command/image/compute_type.",
    )


def load_project(path: Path | str) -> Project:
    """Read a project folder (or its yaml file directly); every problem is a ConfigurationError."""
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
    origin = file.name
    check_all_keys(origin, data)
    parsed = validate(origin, OpenBayesFile, data)
    if parsed.node > 1:
        raise ConfigurationError(
            f"{origin}: node: {parsed.node} asks for a multi-node execution; only single-node executions "
            "exist here.",
            "Set node: 1 (one container with all of the compute type's CPUs and GPUs).",
        )
    parameters, secrets = _parameters(origin, parsed.parameters)
    inputs, continue_from = _bindings(origin, parsed.data_bindings, parsed.bindings)
    return Project(
        folder=file.parent,
        name=parsed.name,
        compute_type=parsed.resource,
        image=parsed.env,
        command=parsed.command,
        parameters=parameters,
        secrets=secrets,
        inputs=inputs,
        continue_from=continue_from,
        node=max(parsed.node, 1),
        hyper_tuning=parsed.hyper_tuning,
        file_name=origin,
    )


# -- secrets ------------------------------------------------------------------------------------------


def secret_sources(secrets: Mapping[str, Any] | None) -> dict[str, SecretParameter]:
    """Secret parameters as models: a SecretParameter, its mapping form, or the name of an environment
    variable (``{"HF_TOKEN": "MY_HF_TOKEN"}``)."""
    sources: dict[str, SecretParameter] = {}
    for name, item in (secrets or {}).items():
        if isinstance(item, SecretParameter):
            sources[name] = item
        elif isinstance(item, str):
            sources[name] = SecretParameter(source="env", env=item)
        else:
            sources[name] = validate(f"secret parameter {name!r}", SecretParameter, item)
    return sources


def resolve_secrets(
    secrets: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The secret values from the submitting environment (``os.environ`` by default), by parameter name.

    Call it when the execution is submitted (the CLI's run, an operator's ``execute``); a variable that
    is missing or empty is an error naming every one missing, before anything starts."""
    environ = os.environ if environ is None else environ
    values: dict[str, str] = {}
    missing: list[str] = []
    for name, secret in secret_sources(secrets).items():
        if secret.source == "env":
            assert secret.env is not None
            value = environ.get(secret.env, "")
            if not value:
                missing.append(f"{name} (from ${secret.env})")
            values[name] = value
        else:
            values[name] = (
                "true" if secret.value is True else "false" if secret.value is False else str(secret.value)
            )
    if missing:
        variables = sorted({secret.env for secret in secret_sources(secrets).values() if secret.env})
        raise ConfigurationError(
            f"Secret parameter(s) {', '.join(missing)} have no value: the environment variable is not set "
            "or empty where the execution is submitted.",
            f"Set it where you submit (the shell running `hyperai`, or the Airflow worker), e.g. "
            f"export {variables[0] if variables else 'NAME'}=...; its value goes to the container's "
            "environment only.",
        )
    return values


def _parameters(origin: str, raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, SecretParameter]]:
    """Plain parameters (scalars, or ``{value: X}`` / ``{value: X, is_secret: false}``) and secret ones."""
    plain: dict[str, Any] = {}
    secrets: dict[str, SecretParameter] = {}
    for name, value in raw.items():
        name = str(name)
        if not isinstance(value, dict):
            plain[name] = value
            continue
        where = f"{origin}: parameters.{name}"
        check_keys(where, value, _SECRET_KEYS)
        flags = {key: value[key] for key in ("is_secret", "isSecret") if key in value}
        if any(flags.values()):
            item = {key: item for key, item in value.items() if key not in ("is_secret", "isSecret")}
            secrets[name] = validate(where, SecretParameter, item)
        elif value.get("source") is not None or value.get("env") is not None:
            raise ConfigurationError(
                f"{where} has source/env but is_secret is not true.",
                "Add is_secret: true (a value read from the environment is a secret), or give the value itself.",
            )
        elif "value" in value:
            plain[name] = value["value"]
        else:
            raise ConfigurationError(
                f"{where} is a mapping without a value.", "Give a plain value, e.g. lr: 0.1, or {value: 0.1}."
            )
    return plain, secrets


# -- bindings -----------------------------------------------------------------------------------------


def _bindings(
    origin: str, groups: DataBindingGroups | None, short_form: list[str] | None
) -> tuple[dict[str, str], str | None]:
    """``data_bindings`` (entries, or openbayes-cli's mapping form) and ``bindings`` (short strings)."""
    entries: list[DataBinding] = []
    if groups is not None:
        entries += [*groups.data_bindings, *groups.data_binding]
        entries += [_short(origin, item) for item in [*groups.bindings, *groups.binding]]
    entries += [_short(origin, item) for item in short_form or []]
    inputs: dict[str, str] = {}
    continue_from: str | None = None
    seen: set[tuple[str, str]] = set()
    for entry in entries:
        slot = _slot(origin, entry.path)
        if (entry.source, slot) in seen:  # the same binding written twice (both forms): once
            continue
        seen.add((entry.source, slot))
        if slot == "output":
            parent = _execution_of_output(origin, entry.source)
            if continue_from not in (None, parent):
                raise ConfigurationError(
                    f"{origin}: /output is bound twice ({continue_from} and {parent}).",
                    "Continue from one execution's output.",
                )
            continue_from = parent
            continue
        if entry.type == "rw":
            raise ConfigurationError(
                f"{origin}: {entry.source}:{entry.path} is bound read-write; inputs are read-only here "
                "(dataset versions and saved working directories never change).",
                "Bind it with type: ro (write results to /output), or bind GEAR/N/output to /output to "
                "continue from that execution.",
            )
        if slot in inputs:
            raise ConfigurationError(f"{origin}: {entry.path} is bound twice.", "Bind each input slot once.")
        inputs[slot] = _source(origin, entry.source)
    return inputs, continue_from


def _short(origin: str, item: str) -> DataBinding:
    """``DATA:PATH`` or ``DATA:PATH:ro|rw`` (openbayes-cli's short form)."""
    text, binding_type = item, "ro"
    head, sep, tail = item.rpartition(":")
    if sep and tail.strip().lower() in ("ro", "rw", "read_only", "read_write"):
        text, binding_type = head, tail
    data, sep, target = text.rpartition(":")
    if not sep or not data or not target:
        raise ConfigurationError(
            f"{origin}: binding {item!r} needs a source and a target.",
            "Example: 'mnist/1:/input0', or 'mnist-train/3/output:/output:rw' to continue.",
        )
    return validate(
        f"{origin}: binding {item!r}", DataBinding, {"data": data, "path": target, "type": binding_type}
    )


def _slot(origin: str, target: str) -> str:
    path = target.rstrip("/")
    if path in CONTINUE_TARGETS:
        return "output"
    name = path.rsplit("/", 1)[-1]
    if name in INPUT_SLOTS and path in (f"/{name}", f"/hyperai/input/{name}", f"/openbayes/input/{name}"):
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
