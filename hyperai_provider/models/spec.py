"""What a user asks for when starting an execution, validated before anything touches Docker."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from hyperai_provider.models.base import FrozenModel, SafeName
from hyperai_provider.models.binding import InputBinding
from hyperai_provider.models.execution import AirflowContext, ExecutionMode

Scalar = str | int | float | bool


class ExecutionSpec(FrozenModel):
    """A request for one execution; names are resolved against catalogs by the core."""

    gear: SafeName
    image: str = Field(min_length=1, description="Catalog name or image reference.")
    compute_type: str = Field(default="cpu", min_length=1)
    mode: ExecutionMode = ExecutionMode.TASK
    command: str | list[str] | None = Field(
        default=None, description="Shell string (run by /bin/sh -c) or argv list."
    )
    code: Path | None = Field(default=None, description="Folder or file copied into /hyperai/home.")
    code_from: str | None = Field(
        default=None, description="Execution id whose working directory provides the code (promotion)."
    )
    environment: dict[str, str] = Field(default_factory=dict)
    parameters: dict[str, Scalar] = Field(default_factory=dict)
    inputs: list[InputBinding] = Field(default_factory=list)
    continue_from: str | None = Field(default=None, description="Execution id, or 'latest'.")
    code_conflict: Literal["keep", "overwrite", "error"] = "keep"
    owner: str = ""
    airflow: AirflowContext | None = None
    pull: Literal["missing", "never", "always"] = "missing"

    @field_validator("parameters", mode="before")
    @classmethod
    def _flat_scalars(cls, value: object) -> object:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError(f"parameters must be a mapping of names to scalars, got {type(value).__name__}")
        for key, item in value.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"parameter names must be non-empty strings, got {key!r}")
            if not isinstance(item, (str, int, float, bool)):
                raise ValueError(
                    f"parameter {key!r} is a {type(item).__name__}; parameters must be a flat mapping of "
                    "str/int/float/bool (pass structured data as a file in the code folder instead)"
                )
        return value

    @field_validator("environment", mode="before")
    @classmethod
    def _string_env(cls, value: object) -> object:
        if value is None:
            return {}
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _command_present(self) -> ExecutionSpec:
        command = self.command
        empty = command is None or (isinstance(command, str) and not command.strip()) or command == []
        if empty and self.mode is ExecutionMode.TASK and not self._has_notebook():
            raise ValueError("command is empty: give the command to run, e.g. 'python train.py'")
        slots = [binding.slot for binding in self.inputs]
        duplicates = sorted({slot for slot in slots if slots.count(slot) > 1})
        if duplicates:
            raise ValueError(f"input slot(s) {', '.join(duplicates)} bound twice: bind each slot once")
        return self

    def _has_notebook(self) -> bool:
        """Code that may hold a notebook to run; the core checks that it holds exactly one."""
        if self.code_from:
            return True
        return self.code is not None and (self.code.suffix == ".ipynb" or self.code.is_dir())


def build_spec(**fields: object) -> ExecutionSpec:
    """Validate an execution request; bad input becomes one readable ConfigurationError."""
    from pydantic import ValidationError

    from hyperai_provider.exceptions import ConfigurationError

    try:
        return ExecutionSpec.model_validate(fields)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item["loc"])
            message = str(item["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        raise ConfigurationError(
            "Invalid execution request: " + "; ".join(problems), "Fix the task's arguments."
        ) from error
