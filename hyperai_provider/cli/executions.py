"""``hyperai gears``, ``executions``, ``show``, ``compute-types``, ``images``."""

from __future__ import annotations

import argparse
from typing import Any

from hyperai_provider.cli.common import (
    EXECUTION_HEADERS,
    add_json_flag,
    execution_row,
    human_bytes,
    print_json,
    print_table,
    service_from,
)
from hyperai_provider.models import ExecutionMode


def register(subparsers: Any) -> None:
    gears = subparsers.add_parser("gears", help="list gears")
    add_json_flag(gears)
    gears.set_defaults(handler=list_gears)

    history = subparsers.add_parser("executions", help="execution history (all gears, or one)")
    history.add_argument("gear", nargs="?", help="only this gear")
    add_json_flag(history)
    history.set_defaults(handler=list_executions)

    show = subparsers.add_parser("show", help="one execution in detail")
    show.add_argument("execution_id", help="'<gear>/<n>'")
    add_json_flag(show)
    show.set_defaults(handler=show_execution)

    compute = subparsers.add_parser("compute-types", help="the compute-type catalog")
    add_json_flag(compute)
    compute.set_defaults(handler=list_compute_types)

    images = subparsers.add_parser("images", help="the image catalog")
    add_json_flag(images)
    images.set_defaults(handler=list_images)


def list_gears(args: argparse.Namespace) -> int:
    service = service_from(args)
    access = service.access()
    gears = access.gears()
    if args.json:
        print_json([gear.model_dump(mode="json") for gear in gears])
        return 0
    rows = []
    for gear in gears:
        executions = access.executions(gear.name)
        stored = sum(record.bytes_stored or 0 for record in executions)
        rows.append([gear.name, gear.owner, gear.visibility.value, len(executions), human_bytes(stored)])
    print_table(["gear", "owner", "visibility", "executions", "storage"], rows)
    return 0


def list_executions(args: argparse.Namespace) -> int:
    service = service_from(args)
    records = service.access().executions(args.gear)  # an unknown gear says so
    if args.json:
        print_json([record.model_dump(mode="json") for record in records])
        return 0
    print_table(EXECUTION_HEADERS, [execution_row(record) for record in records])
    return 0


def show_execution(args: argparse.Namespace) -> int:
    service = service_from(args)
    record = service.access().execution(args.execution_id)
    workdir = service.workdir(record)
    if args.json:
        print_json({**record.model_dump(mode="json"), "workdir": str(workdir)})
        return 0
    fields: list[tuple[str, Any]] = [
        ("id", record.id),
        ("state", record.state.value),
        ("mode", record.mode.value),
        ("owner", record.owner),
        ("compute type", f"{record.compute.name} ({record.compute.description})"),
        ("image", record.image),
        ("command", " ".join(record.command)),
        ("parameters", record.parameters or "-"),
        ("parent", record.parent or "-"),
        ("exit code", record.exit_code if record.exit_code is not None else "-"),
        ("failure", record.failure_reason or "-"),
        ("storage", human_bytes(record.bytes_stored)),
        ("working dir", workdir),
    ]
    for binding in record.inputs:
        fields.append(
            (binding.slot, f"{binding.source.model_dump(exclude_defaults=True)} -> {binding.host_path}")
        )
    for name in ("stop_requested", "synchronized", "ended_because"):
        if getattr(record, name):
            fields.append((name.replace("_", " "), getattr(record, name)))
    if record.mode is ExecutionMode.WORKSPACE and not record.closed:
        from hyperai_provider.core.workspace import workspace_path

        fields.append(("open", f"{workspace_path(record)}lab in the Airflow web UI (owner only)"))
    if record.airflow:
        fields.append(
            ("airflow", f"{record.airflow.dag_id}.{record.airflow.task_id} {record.airflow.run_id}")
        )
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        print(f"{name.ljust(width)}  {value}")
    print("timeline:")
    for change in record.history:
        print(
            f"  {change.at.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]}  {change.state.value:<13} {change.message}"
        )
    return 0


def list_compute_types(args: argparse.Namespace) -> int:
    catalog = service_from(args).backend.catalogs.compute_types
    if args.json:
        print_json([entry.model_dump(mode="json") for entry in catalog.values()])
        return 0
    rows = [
        [
            c.name,
            f"{c.cpus:g}",
            c.memory.human_readable(),
            c.gpus,
            c.gpu_model or "",
            c.disk_quota.human_readable(),
        ]
        for c in catalog.values()
    ]
    print_table(["name", "cpus", "memory", "gpus", "gpu model", "disk quota"], rows)
    return 0


def list_images(args: argparse.Namespace) -> int:
    catalog = service_from(args).backend.catalogs.images
    if args.json:
        print_json([entry.model_dump(mode="json") for entry in catalog.values()])
        return 0
    print_table(
        ["name", "reference", "jupyter", "description"],
        [[i.name, i.reference, i.jupyter, i.description] for i in catalog.values()],
    )
    return 0
