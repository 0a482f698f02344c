"""``hyperai storage [GEAR]``: bytes stored per execution (its own layer only), per gear and in total.

Answers from the Gear store (each execution's bytes are recorded when it is saved), never by walking the
storage tree, so it is instant whatever the size.
"""

from __future__ import annotations

import argparse
from typing import Any

from hyperai_provider.cli.common import add_json_flag, human_bytes, print_json, print_table, service_from
from hyperai_provider.models import ExecutionRecord


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "storage", help="storage used: per gear and in total, or per execution of one gear"
    )
    parser.add_argument("gear", nargs="?", help="show this gear's executions")
    add_json_flag(parser)
    parser.set_defaults(handler=show_storage)


def _bytes(records: list[ExecutionRecord]) -> int:
    return sum(record.bytes_stored or 0 for record in records)


def show_storage(args: argparse.Namespace) -> int:
    service = service_from(args)
    if args.gear:
        return _one_gear(args, service.access().executions(args.gear))  # an unknown gear says so
    access = service.access()
    records = access.executions()
    by_gear: dict[str, list[ExecutionRecord]] = {gear.name: [] for gear in access.gears()}
    for record in records:
        by_gear.setdefault(record.gear, []).append(record)
    total = _bytes(records)
    if args.json:
        gears = [
            {"gear": name, "executions": len(items), "bytes": _bytes(items)}
            for name, items in by_gear.items()
        ]
        print_json({"total_bytes": total, "gears": gears})
        return 0
    rows: list[list[Any]] = [
        [name, len(items), human_bytes(_bytes(items)), _bytes(items)] for name, items in by_gear.items()
    ]
    rows.append(["TOTAL", len(records), human_bytes(total), total])
    print_table(["gear", "executions", "storage", "bytes"], rows)
    return 0


def _one_gear(args: argparse.Namespace, records: list[ExecutionRecord]) -> int:
    total = _bytes(records)
    if args.json:
        rows = [
            {
                "id": record.id,
                "state": record.state.value,
                "parent": record.parent,
                "layers": 1 + len(record.lower_layers),
                "bytes": record.bytes_stored,
            }
            for record in records
        ]
        print_json({"gear": args.gear, "total_bytes": total, "executions": rows})
        return 0
    table: list[list[Any]] = [
        [
            record.id,
            record.state.value,
            record.parent or "",
            1 + len(record.lower_layers),
            human_bytes(record.bytes_stored),
            record.bytes_stored,
        ]
        for record in records
    ]
    table.append(["TOTAL", "", "", "", human_bytes(total), total])
    print_table(["execution", "state", "parent", "layers", "storage", "bytes"], table)
    return 0
