"""``hyperai restart GEAR/N``: continue from an execution, as ``bayes gear restart`` does.

The new execution runs in the same gear on the parent's working directory (copy-on-write), with the
parent's compute type, image, command, parameters, environment and bindings unless an option replaces
them, and streams its output like ``hyperai run``. The parent's secret parameters are read again from
this shell's environment, one variable per secret name (the record keeps names only, never values).
"""

from __future__ import annotations

import argparse
import os
import shlex
from typing import Any

from hyperai_provider.cli.common import service_from
from hyperai_provider.cli.run import add_overrides, parse_params, submit
from hyperai_provider.core.code import parameter_arguments
from hyperai_provider.core.project import resolve_secrets
from hyperai_provider.exceptions import ConfigurationError
from hyperai_provider.models import ExecutionMode, ExecutionRecord
from hyperai_provider.models.spec import build_spec


def register(subparsers: Any) -> None:
    restart = subparsers.add_parser(
        "restart",
        help="continue from an execution (like bayes gear restart) and stream its output",
        description="Start a new execution in GEAR that continues from GEAR/N's working directory, with its "
        "compute type, image, command and parameters unless given here.",
    )
    restart.add_argument("execution_id", metavar="GEAR/N", help="the execution to continue from")
    add_overrides(restart)
    restart.set_defaults(handler=restart_execution)


def restart_execution(args: argparse.Namespace) -> int:
    service = service_from(args)
    parent = service.access().execution(args.execution_id)  # another user's private gear: "not found"
    fields = restart_fields(
        parent,
        compute_type=args.compute_type,
        image=args.image,
        command=args.command_line,
        parameters=parse_params(args.param),
    )
    return submit(service, build_spec(**fields, secret_environment=_secrets(parent)), args)


def restart_fields(
    parent: ExecutionRecord,
    *,
    compute_type: str | None = None,
    image: str | None = None,
    command: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The request that continues ``parent``: its settings, each replaced by the one given. Inputs are
    left to the planner, which rebinds the parent's."""
    if parent.mode is ExecutionMode.WORKSPACE and not command:
        raise ConfigurationError(
            f"{parent.id} was a Workspace (JupyterLab); restart continues it as a task.",
            f"Give the command to run on its working directory: hyperai restart {parent.id} --command '...'",
        )
    return {
        "gear": parent.gear,
        "continue_from": parent.id,
        "compute_type": compute_type or parent.compute.name,
        "image": image or parent.image_name or parent.image,
        "command": command or original_command(parent),
        "parameters": {**parent.parameters, **(parameters or {})},
        "environment": dict(parent.environment),
    }


def original_command(record: ExecutionRecord) -> str | list[str] | None:
    """The command as it was given: the record's argv without the ``--key=value`` parameters the core
    appended (a shell string runs as ``/bin/sh -c "COMMAND ARGS"``)."""
    argv = list(record.command)
    arguments = parameter_arguments(record.parameters)
    if len(argv) == 3 and argv[:2] == ["/bin/sh", "-c"]:
        line, suffix = argv[2], " ".join(map(shlex.quote, arguments))
        return line[: -len(suffix) - 1] if arguments and line.endswith(" " + suffix) else line
    if arguments and argv[-len(arguments) :] == arguments:
        argv = argv[: -len(arguments)]
    return argv or None


def _secrets(parent: ExecutionRecord) -> dict[str, str]:
    """The parent's secret parameters, each from the environment variable of its name."""
    return resolve_secrets({name: name for name in parent.secret_names}, os.environ)
