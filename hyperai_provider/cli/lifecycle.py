"""``hyperai stop | delete | delete-gear | download | notify | visibility | gc``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from hyperai_provider.cli.common import (
    EXIT_CONFLICT,
    add_json_flag,
    confirmed,
    human_bytes,
    print_json,
    service_from,
)
from hyperai_provider.exceptions import ConflictError
from hyperai_provider.models import NotificationSettings, NotifyEvent, Visibility


def register(subparsers: Any) -> None:
    stop = subparsers.add_parser("stop", help="stop a running execution (its working directory is saved)")
    stop.add_argument("execution_id")
    stop.set_defaults(handler=stop_execution)

    delete = subparsers.add_parser("delete", help="delete an execution and its storage (irreversible)")
    delete.add_argument("execution_id")
    _guard_flags(delete)
    delete.set_defaults(handler=delete_execution)

    delete_gear = subparsers.add_parser(
        "delete-gear", help="delete a gear with all its executions (irreversible)"
    )
    delete_gear.add_argument("gear")
    _guard_flags(delete_gear)
    delete_gear.set_defaults(handler=delete_whole_gear)

    download = subparsers.add_parser(
        "download", help="copy a working directory (merged view) to a folder or archive"
    )
    download.add_argument("execution_id")
    download.add_argument("destination", type=Path, help="a new folder, or a file ending in .tar.gz / .tgz")
    download.set_defaults(handler=download_workdir)

    notify = subparsers.add_parser("notify", help="show or set a gear's email notifications")
    notify.add_argument("gear")
    notify.add_argument("--to", help="comma-separated recipients")
    notify.add_argument("--on", help="comma-separated events: succeeded, failed, terminated")
    notify.add_argument("--off", action="store_true", help="send no email for this gear")
    add_json_flag(notify)
    notify.set_defaults(handler=set_notifications)

    visibility = subparsers.add_parser("visibility", help="make a gear public or private")
    visibility.add_argument("gear")
    visibility.add_argument("visibility", choices=[v.value for v in Visibility])
    visibility.set_defaults(handler=set_visibility)

    gc = subparsers.add_parser("gc", help="stop containers whose worker died; keep and mark their executions")
    add_json_flag(gc)
    gc.set_defaults(handler=collect_garbage)


def _guard_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--cascade", action="store_true", help="also delete continuations standing on it")
    parser.add_argument(
        "--flatten", action="store_true", help="make continuations standing on it self-contained"
    )


def stop_execution(args: argparse.Namespace) -> int:
    service = service_from(args)
    service.access().owned_gear(service.access().execution(args.execution_id).gear)
    record = service.stop(args.execution_id)
    print(
        f"{record.id}: stop requested"
        if not record.closed
        else f"{record.id} is already {record.state.value}"
    )
    return 0


def delete_execution(args: argparse.Namespace) -> int:
    service = service_from(args)
    try:
        record = service.access().execution(args.execution_id)
    except ConflictError:  # its stored record cannot be read: only its row and folder go (owner only)
        record = None
    service.access().owned_gear(record.gear if record else args.execution_id.rpartition("/")[0])
    targets = [args.execution_id]
    if record is not None:  # refusals before asking
        targets = [t.id for t in service.lifecycle.plan_delete(record.id, args.cascade, args.flatten)]
    if not confirmed(args, " and ".join(targets)):
        return EXIT_CONFLICT
    result = service.lifecycle.delete_execution(args.execution_id, args.cascade, args.flatten)
    if result.flattened:
        print(f"made self-contained: {', '.join(result.flattened)}")
    print(f"deleted {', '.join(result.deleted)}; released {human_bytes(result.bytes_released)}")
    return 0


def delete_whole_gear(args: argparse.Namespace) -> int:
    service = service_from(args)
    service.access().owned_gear(args.gear)
    if not confirmed(args, f"gear {args.gear} and all its executions"):
        return EXIT_CONFLICT
    result = service.lifecycle.delete_gear(args.gear, args.cascade, args.flatten)
    print(
        f"deleted gear {args.gear} ({len(result.deleted)} executions); released {human_bytes(result.bytes_released)}"
    )
    return 0


class _Progress:
    def __init__(self, total: int) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.started = self.last = time.monotonic()

    def advance(self, size: int) -> None:
        self.done += size
        now = time.monotonic()
        if now - self.last >= 0.5 or self.done >= self.total:
            self.last = now
            rate = self.done / max(now - self.started, 1e-6) / 1e6
            percent = min(100, 100 * self.done // self.total)
            sys.stderr.write(
                f"\r{percent:3d}% {human_bytes(self.done)} of {human_bytes(self.total)} ({rate:.1f} MB/s)"
            )
            sys.stderr.flush()

    def finish(self) -> None:
        sys.stderr.write("\n")


def download_workdir(args: argparse.Namespace) -> int:
    service = service_from(args)
    record = service.access().execution(args.execution_id)
    view = service.workdir_view(record)
    destination: Path = args.destination
    if destination.exists():
        print(f"error: {destination} already exists; choose a new path", file=sys.stderr)
        return EXIT_CONFLICT
    progress = _Progress(view.usage().bytes)
    archive = destination.name.endswith((".tar.gz", ".tgz"))
    temporary = destination.with_name(f".{destination.name}.partial")
    if archive:
        with temporary.open("wb") as handle:
            view.write_archive(handle, progress.advance)
    else:
        from hyperai_provider.core.sync import copy_layers

        copy_layers(service.workdirs.layers(record), temporary, lambda _: None)
        progress.advance(progress.total)
    temporary.rename(destination)  # complete or not there at all
    progress.finish()
    print(f"{record.id} -> {destination}")
    return 0


def set_notifications(args: argparse.Namespace) -> int:
    service = service_from(args)
    access = service.access()
    gear = access.gear(args.gear)
    settings = gear.notifications
    if args.off:
        settings = NotificationSettings(recipients=[], events=settings.events)
    if args.to is not None:
        settings = settings.model_copy(
            update={"recipients": [a.strip() for a in args.to.split(",") if a.strip()]}
        )
    if args.on is not None:
        try:
            events = [NotifyEvent(e.strip()) for e in args.on.split(",") if e.strip()]
        except ValueError:
            print("error: events are succeeded, failed, terminated", file=sys.stderr)
            return 2
        settings = settings.model_copy(update={"events": events})
    if settings != gear.notifications:
        gear = access.set_notifications(args.gear, NotificationSettings.model_validate(settings.model_dump()))
    if args.json:
        print_json(gear.notifications.model_dump(mode="json"))
    else:
        recipients = ", ".join(gear.notifications.recipients) or "nobody"
        on = ", ".join(e.value for e in gear.notifications.events)
        print(f"{gear.name}: email {recipients} on {on}")
    return 0


def set_visibility(args: argparse.Namespace) -> int:
    gear = service_from(args).access().set_visibility(args.gear, Visibility(args.visibility))
    print(f"{gear.name} is now {gear.visibility.value}")
    return 0


def collect_garbage(args: argparse.Namespace) -> int:
    handled = service_from(args).lifecycle.collect_orphans()
    if args.json:
        print_json({"collected": handled})
    else:
        print(f"collected {len(handled)} orphaned execution(s){': ' + ', '.join(handled) if handled else ''}")
    return 0
