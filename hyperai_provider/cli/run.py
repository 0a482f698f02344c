"""``hyperai run PATH``: run a HyperAI/OpenBayes project folder (openbayes.yaml) as one execution."""

from __future__ import annotations

import argparse
import json
import signal
from typing import Any

from hyperai_provider.cli.common import service_from
from hyperai_provider.core.project import load_project
from hyperai_provider.exceptions import ExecutionFailedError
from hyperai_provider.models.spec import build_spec


def register(subparsers: Any) -> None:
    run = subparsers.add_parser("run", help="run a project folder (openbayes.yaml) and stream its output")
    run.add_argument("path", help="project folder, or its openbayes.yaml")
    run.add_argument("--gear", help="gear to run in (default: the project's name or folder name)")
    run.add_argument("--compute-type", help="override the project's resource")
    run.add_argument("--image", help="override the project's env")
    run.add_argument("--json", action="store_true", help="print the final record as JSON")
    run.set_defaults(handler=run_project)


def run_project(args: argparse.Namespace) -> int:
    project = load_project(args.path)
    fields: dict[str, Any] = {"image": "python", "compute_type": "cpu", **project.operator_arguments()}
    fields["gear"] = args.gear or project.name or project.folder.name
    if args.compute_type:
        fields["compute_type"] = args.compute_type
    if args.image:
        fields["image"] = args.image
    service = service_from(args)
    fields["inputs"] = service.bindings_from(fields.get("inputs"))
    spec = build_spec(**fields)
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
