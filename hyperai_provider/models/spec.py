"""What a user asks for when starting an execution, validated before anything touches Docker."""

from __future__ import annotations

import math
import shlex
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from hyperai_provider.models.base import FrozenModel, SafeName, check_name
from hyperai_provider.models.binding import InputBinding
from hyperai_provider.models.execution import AirflowContext, ExecutionMode
from hyperai_provider.models.reference import EXAMPLE, reference_problem

Scalar = str | int | float | bool

MAX_ARG_STRLEN = 131072
"""Linux's limit on one argument or environment string, its terminating NUL included (32 pages)."""

ARGUMENT_LIST_LIMIT = 1024 * 1024
"""Most bytes the command line and the environment may take together (each string with its NUL).

Linux refuses ``execve`` beyond ARG_MAX (a quarter of the stack limit: 2 MiB with the usual 8 MiB stack),
counting argv, the environment and a pointer per string; half of it leaves room for the image's own
environment and the variables the provider adds."""

_INT_LIMIT = 2**63
"""Integers beyond 64 bits are refused: JSON readers lose them and very long ones cannot be written."""

_LARGE_DATA_HINT = "put large data in a file in the code folder (e.g. config.json) and read it from there"


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
    secret_environment: dict[str, str] = Field(
        default_factory=dict,
        repr=False,
        description="Secret parameters: given to the container as environment variables only; the record "
        "keeps their names, never their values.",
    )
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
            if "\0" in key:
                raise ValueError(
                    f"parameter name {key!r} contains a NUL byte, which no program argument can hold"
                )
            if not isinstance(item, (str, int, float, bool)):
                raise ValueError(
                    f"parameter {key!r} is a {type(item).__name__}; parameters must be a flat mapping of "
                    "str/int/float/bool (pass structured data as a file in the code folder instead)"
                )
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(
                    f"parameter {key!r} is {item}; parameters must be finite numbers (JSON has no NaN or "
                    f"infinity, so neither the record nor the parameter file could hold it): pass {str(item)!r} "
                    "as a string if your program parses it"
                )
            if isinstance(item, int) and not isinstance(item, bool) and not -_INT_LIMIT <= item < _INT_LIMIT:
                raise ValueError(
                    f"parameter {key!r} is an integer beyond 64 bits; pass it as a string instead"
                )
            if isinstance(item, str) and "\0" in item:
                raise ValueError(
                    f"parameter {key!r} contains a NUL byte, which no program argument can hold: remove it, "
                    f"or {_LARGE_DATA_HINT}"
                )
        return value

    @field_validator("image")
    @classmethod
    def _valid_image(cls, value: str) -> str:
        try:
            return check_name(value)  # a catalog name (checked against the catalogs by the core)
        except ValueError:
            pass
        problem = reference_problem(value)
        if problem is not None:
            raise ValueError(
                f"image {value!r} is neither a catalog name nor a valid image reference: {problem}. "
                f"Use a catalog name such as 'python', or a reference such as {EXAMPLE}"
            )
        return value

    @field_validator("command")
    @classmethod
    def _no_nul_in_command(cls, value: str | list[str] | None) -> str | list[str] | None:
        items = [value] if isinstance(value, str) else (value or [])
        for index, item in enumerate(items):
            if "\0" in item:
                where = "command" if isinstance(value, str) else f"command item {index} ({item!r})"
                raise ValueError(
                    f"{where} contains a NUL byte, which no program argument can hold: remove it "
                    "(it usually comes from binary data pasted or rendered into the command)"
                )
        return value

    @field_validator("environment", "secret_environment", mode="before")
    @classmethod
    def _string_env(cls, value: object) -> object:
        if value is None:
            return {}
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        return value

    @field_validator("environment", "secret_environment")
    @classmethod
    def _valid_env(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not key:
                raise ValueError("an environment variable has an empty name: give every variable a name")
            if "=" in key:
                raise ValueError(
                    f"environment variable name {key!r} contains '=', which ends a name: give the name alone "
                    "and the value as its value, e.g. environment={'MODE': 'fast'}"
                )
            if "\0" in key:
                raise ValueError(f"environment variable name {key!r} contains a NUL byte: remove it")
            if "\0" in item:
                raise ValueError(
                    f"environment variable {key!r} contains a NUL byte, which no environment value can hold: "
                    f"remove it, or {_LARGE_DATA_HINT}"
                )
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
        self._check_argument_sizes()
        return self

    def _check_argument_sizes(self) -> None:
        """Refuse a command line Linux could not start (the container would fail after it was created)."""
        # ``--key=value`` as the core renders it; str(True) and 'true' have the same length, so sizes are exact.
        arguments = {key: f"--{key}={value}" for key, value in self.parameters.items()}
        strings: list[tuple[str, str]]  # (what, string) for every argv and environment string
        if isinstance(self.command, str):
            line = " ".join([self.command, *map(shlex.quote, arguments.values())])
            strings = [("the shell command line (command and parameters)", line)]
        else:
            strings = [(f"command item {index}", item) for index, item in enumerate(self.command or [])]
            strings += [(f"parameter {key!r}", argument) for key, argument in arguments.items()]
        strings += [
            (f"environment variable {key!r}", f"{key}={item}")
            for key, item in {**self.environment, **self.secret_environment}.items()
        ]
        total = 0
        for what, string in strings:
            size = len(string.encode("utf-8", "surrogatepass")) + 1
            if size > MAX_ARG_STRLEN:
                raise ValueError(
                    f"{what} is {size:,} bytes; Linux passes at most {MAX_ARG_STRLEN:,} bytes "
                    f"(128 KiB) in one argument or environment string: {_LARGE_DATA_HINT}"
                )
            total += size
        if total > ARGUMENT_LIST_LIMIT:
            raise ValueError(
                f"the command line and environment take {total:,} bytes; at most {ARGUMENT_LIST_LIMIT:,} "
                f"(1 MiB, half of Linux's 2 MiB ARG_MAX) can be passed to a program: {_LARGE_DATA_HINT}"
            )

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
