"""``hyperai datasets`` and ``hyperai dataset create|show|visibility|version add|version delete|delete``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hyperai_provider.cli.common import (
    add_json_flag,
    confirmed,
    human_bytes,
    print_json,
    print_table,
    service_from,
)
from hyperai_provider.models import Visibility


def register(subparsers: Any) -> None:
    listing = subparsers.add_parser("datasets", help="list datasets")
    add_json_flag(listing)
    listing.set_defaults(handler=list_datasets)

    dataset = subparsers.add_parser("dataset", help="create, show and delete datasets and their versions")
    commands = dataset.add_subparsers(dest="dataset_command", metavar="COMMAND", required=True)

    create = commands.add_parser("create", help="create an empty dataset (private unless --public)")
    create.add_argument("name")
    create.add_argument("--description", default="")
    create.add_argument("--public", action="store_true", help="every user may list, read and bind it")
    create.set_defaults(handler=create_dataset)

    visibility = commands.add_parser("visibility", help="make a dataset public or private (owner only)")
    visibility.add_argument("name")
    visibility.add_argument("visibility", choices=[v.value for v in Visibility])
    visibility.set_defaults(handler=set_visibility)

    show = commands.add_parser("show", help="a dataset and its versions")
    show.add_argument("name")
    add_json_flag(show)
    show.set_defaults(handler=show_dataset)

    delete = commands.add_parser("delete", help="delete a dataset and all its versions (irreversible)")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(handler=delete_dataset)

    version = commands.add_parser("version", help="add or delete a version")
    version_commands = version.add_subparsers(dest="version_command", metavar="COMMAND", required=True)
    add = version_commands.add_parser("add", help="add a version from a folder or an execution's working dir")
    add.add_argument("name")
    add.add_argument("dir", nargs="?", type=Path, help="folder to upload (copied)")
    add.add_argument("--from-execution", metavar="GEAR/N", help="a closed execution's working dir (no copy)")
    add_json_flag(add)
    add.set_defaults(handler=add_version)

    remove = version_commands.add_parser("delete", help="delete one version (irreversible)")
    remove.add_argument("name")
    remove.add_argument("version", type=int)
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    remove.set_defaults(handler=delete_version)


def list_datasets(args: argparse.Namespace) -> int:
    datasets = service_from(args).datasets
    rows, documents = [], []
    for dataset in datasets.all():
        versions = datasets.versions(dataset.name)
        latest = versions[-1].version if versions else None
        documents.append({**dataset.model_dump(mode="json"), "versions": len(versions), "latest": latest})
        rows.append(
            [
                dataset.name,
                dataset.owner,
                dataset.visibility.value,
                len(versions),
                latest or "-",
                human_bytes(sum(v.bytes for v in versions)),
            ]
        )
    if args.json:
        print_json(documents)
    else:
        print_table(["name", "owner", "visibility", "versions", "latest", "storage"], rows)
    return 0


def create_dataset(args: argparse.Namespace) -> int:
    visibility = Visibility.PUBLIC if args.public else Visibility.PRIVATE
    dataset = service_from(args).datasets.create(args.name, args.description, visibility)
    print(f"created dataset {dataset.name} ({dataset.visibility.value})")
    return 0


def set_visibility(args: argparse.Namespace) -> int:
    dataset = service_from(args).datasets.set_visibility(args.name, Visibility(args.visibility))
    print(f"dataset {dataset.name} is {dataset.visibility.value}")
    return 0


def show_dataset(args: argparse.Namespace) -> int:
    service = service_from(args)
    dataset = service.datasets.get(args.name)
    versions = service.datasets.versions(args.name)
    if args.json:
        print_json(
            {
                **dataset.model_dump(mode="json"),
                "versions": [
                    {
                        **v.model_dump(mode="json"),
                        "path": str(service.storage.dataset_version_dir(v.dataset, v.version)),
                    }
                    for v in versions
                ],
            }
        )
        return 0
    print(f"dataset {dataset.name} (owner {dataset.owner or '-'}, {dataset.visibility.value}) {dataset.description}".rstrip())
    print_table(
        ["version", "files", "size", "created", "source"],
        [
            [v.version, v.files, human_bytes(v.bytes), v.created_at.strftime("%Y-%m-%d %H:%M:%S"), v.source]
            for v in versions
        ],
    )
    return 0


class _Progress:
    """One status line on stderr, rewritten in place on a terminal."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()

    def __call__(self, message: str) -> None:
        if self.tty:
            sys.stderr.write("\r\033[K" + message)
            if message.startswith("synchronized"):
                sys.stderr.write("\n")
        else:
            sys.stderr.write(message + "\n")
        sys.stderr.flush()


def add_version(args: argparse.Namespace) -> int:
    datasets = service_from(args).datasets
    if (args.dir is None) == (args.from_execution is None):
        print("error: give a folder or --from-execution GEAR/N (one of them)", file=sys.stderr)
        return 2
    if args.from_execution:
        version = datasets.add_version_from_execution(args.name, args.from_execution)
    else:
        version = datasets.add_version_from_dir(args.name, args.dir, _Progress())
    if args.json:
        print_json(version.model_dump(mode="json"))
    else:
        print(
            f"{version.dataset}@{version.version}: {version.files} files, {human_bytes(version.bytes)} ({version.source})"
        )
    return 0


def delete_version(args: argparse.Namespace) -> int:
    if not confirmed(args, f"dataset version {args.name}@{args.version}"):
        return 4
    released = service_from(args).datasets.delete_version(args.name, args.version)
    print(f"deleted {args.name}@{args.version}; released {human_bytes(released)}")
    return 0


def delete_dataset(args: argparse.Namespace) -> int:
    if not confirmed(args, f"dataset {args.name} and all its versions"):
        return 4
    released = service_from(args).datasets.delete(args.name)
    print(f"deleted dataset {args.name}; released {human_bytes(released)}")
    return 0
