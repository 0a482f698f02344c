"""``hyperai run PATH``: run a HyperAI/OpenBayes project folder (openbayes.yaml) as one execution.

Like ``bayes gear run task``: the file gives compute type, image, command, parameters and bindings; the
options override them (``-- python main.py`` replaces the file's command, as with ``bayes``), and
``--continue GEAR/N`` continues from an execution's working directory. Secret parameters are read from
this shell's environment here, before anything starts.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
from typing import Any

from hyperai_provider.cli.common import service_from
from hyperai_provider.core.gears import GearService
from hyperai_provider.core.project import Project, load_project, resolve_secrets
from hyperai_provider.exceptions import ConfigurationError, ExecutionFailedError
from hyperai_provider.models import split_execution_id
from hyperai_provider.models.spec import ExecutionSpec, build_spec


def register(subparsers: Any) -> None:
    run = subparsers.add_parser(
        "run",
        help="run a project folder (openbayes.yaml) and stream its output",
        description="Run a HyperAI/OpenBayes project folder as one execution and stream its output. "
        "Secret parameters ({is_secret: true, source: env, env: NAME}) are read from this environment.",
    )
    run.add_argument("path", help="project folder, or its openbayes.yaml")
    run.usage = "hyperai run PATH [options] [-- COMMAND ...]"
    run.epilog = "-- COMMAND ...: the command to run instead of the file's (as `bayes gear run task -- ...`)."
    _command_after_double_dash(run)
    run.add_argument("--gear", help="gear to run in (default: the project's name or folder name)")
    run.add_argument(
        "--continue",
        dest="continue_from",
        metavar="GEAR/N",
        help="continue from this execution's working directory (default gear: its gear)",
    )
    run.add_argument(
        "--no-tuning",
        action="store_true",
        help="run one execution with the file's parameters even if hyper_tuning asks for a study",
    )
    add_overrides(run)
    run.set_defaults(handler=run_project)


def add_overrides(parser: argparse.ArgumentParser) -> None:
    """The options ``run`` and ``restart`` share."""
    parser.add_argument("--compute-type", help="compute type (overrides the file's resource)")
    parser.add_argument("--image", help="image catalog name or reference (overrides the file's env)")
    parser.add_argument(
        "--command", dest="command_line", help="shell command to run (overrides the file's command)"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a parameter (repeatable; VALUE is read as JSON when it is JSON: 3, 0.1, true)",
    )
    parser.add_argument("--json", action="store_true", help="print the final record as JSON")


def _command_after_double_dash(parser: argparse.ArgumentParser) -> None:
    """Everything after ``--`` is the command (``hyperai run PATH --image x -- python main.py --lr=1``).

    argparse cannot take it as a positional after options (it fills every positional at the first one),
    so the words after ``--`` are split off before the sub-command's own parsing."""
    parse = parser.parse_known_args
    parser.set_defaults(command_args=[])

    def parse_known_args(args: Any = None, namespace: Any = None) -> Any:
        words = list(args or [])
        if "--" not in words:
            return parse(words, namespace)
        cut = words.index("--")
        parsed, extras = parse(words[:cut], namespace)
        parsed.command_args = words[cut + 1 :]
        return parsed, extras

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]


def parse_params(items: list[str]) -> dict[str, Any]:
    """``--param lr=0.1 --param name=abc`` as ``{"lr": 0.1, "name": "abc"}``."""
    parameters: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"--param {item!r} is not KEY=VALUE.", "Example: --param lr=0.1")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        parameters[key] = value if isinstance(value, (str, int, float, bool)) else text
    return parameters


def run_project(args: argparse.Namespace) -> int:
    project = load_project(args.path)
    if not args.no_tuning:
        project.refuse_study(f"hyperai run {shlex.quote(args.path)} --no-tuning")
    secrets = resolve_secrets(project.secrets)  # here, before anything starts
    fields: dict[str, Any] = {"image": "python", "compute_type": "cpu", **project.operator_arguments()}
    fields.pop("secret_parameters", None)
    fields["command"] = _command(args, project)
    if args.continue_from:
        fields["continue_from"] = args.continue_from
    fields["gear"] = args.gear or _default_gear(args.continue_from, project)
    for key in ("compute_type", "image"):
        if getattr(args, key):
            fields[key] = getattr(args, key)
    fields["parameters"] = {**fields.get("parameters", {}), **parse_params(args.param)}
    service = service_from(args)
    fields["inputs"] = service.bindings_from(fields.get("inputs"))
    spec = build_spec(**fields, secret_environment=secrets)
    return submit(service, spec, args)


def _command(args: argparse.Namespace, project: Project) -> str | None:
    if args.command_args and args.command_line:
        raise ConfigurationError("Both --command and a command after -- were given.", "Give one of them.")
    command = shlex.join(args.command_args) if args.command_args else args.command_line or project.command
    if not command and not any(project.folder.rglob("*.ipynb")):
        raise ConfigurationError(
            f"{project.file_name} sets no command.",
            f"Set command: in the file, or give one: hyperai run {shlex.quote(args.path)} -- python main.py",
        )
    return command


def _default_gear(continue_from: str | None, project: Project) -> str:
    if continue_from:
        try:
            return split_execution_id(continue_from)[0]  # a continuation stays in its parent's gear
        except ValueError as error:
            raise ConfigurationError(f"--continue: {error}.", "Use '<gear>/<n>', e.g. mnist/3.") from None
    return project.name or project.folder.name


def submit(service: GearService, spec: ExecutionSpec, args: argparse.Namespace) -> int:
    """Run ``spec``, streaming its output; print the result (``--json``: the final record)."""
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops the container and saves, like Ctrl-C
    try:
        record = service.run(spec, on_line=lambda line: print(line, flush=True))
    except ExecutionFailedError as error:
        print(f"error: {error.headline}")
        return 1
    if args.json:
        print(
            json.dumps({**record.model_dump(mode="json"), "workdir": str(service.workdir(record))}, indent=2)
        )
    else:
        print(f"execution {record.id} {record.state.value}; working directory: {service.workdir(record)}")
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
