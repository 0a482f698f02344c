"""Helpers shared by the command groups: the service from global options, tables, JSON, errors."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from hyperai_provider.core.gears import GearService
from hyperai_provider.core.settings import HyperAISettings
from hyperai_provider.exceptions import ConflictError, EngineError, HyperAIError, NotFoundError
from hyperai_provider.models import ExecutionRecord
from hyperai_provider.units import human_bytes, human_duration

EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_ENGINE = 5
EXIT_FAILED = 1


__all__ = ["human_bytes", "human_duration"]


def service_from(args: argparse.Namespace) -> GearService:
    settings = HyperAISettings.from_env(
        storage_root=getattr(args, "storage_root", None),
        store_url=getattr(args, "store_url", None),
        docker_host=getattr(args, "docker_host", None),
    )
    return GearService(settings)


def fail(error: HyperAIError) -> int:
    print(f"error: {error.headline}", file=sys.stderr)
    if error.hint:
        print(error.hint, file=sys.stderr)
    if isinstance(error, NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(error, ConflictError):
        return EXIT_CONFLICT
    if isinstance(error, EngineError):
        return EXIT_ENGINE
    return EXIT_FAILED


def confirmed(args: argparse.Namespace, what: str) -> bool:
    """Whether deleting ``what`` is confirmed: ``--yes``, or 'yes' typed on a terminal."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        print(f"error: deleting {what} is irreversible; pass --yes to confirm", file=sys.stderr)
        return False
    return input(f"Delete {what}? This cannot be undone. Type 'yes' to confirm: ").strip().lower() == "yes"


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[("" if value is None else str(value)) for value in row] for row in rows]
    widths = [max([len(header), *(len(row[i]) for row in cells)]) for i, header in enumerate(headers)]
    print(
        "  ".join(header.upper().ljust(width) for header, width in zip(headers, widths, strict=True)).rstrip()
    )
    for row in cells:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())


def execution_row(record: ExecutionRecord) -> list[Any]:
    started = record.started_at.strftime("%Y-%m-%d %H:%M:%S") if record.started_at else "-"
    return [
        record.id,
        record.state.value,
        record.mode.value,
        record.compute.name,
        record.image_name or record.image,
        started,
        human_duration(record.duration_seconds),
        human_bytes(record.bytes_stored),
        record.parent or "",
    ]


EXECUTION_HEADERS = ["id", "state", "mode", "compute", "image", "started", "duration", "storage", "parent"]
