"""The ``hyperai`` command line, over the same gear service as the operators.

Each command group lives in its own module with a ``register(subparsers)`` function.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hyperai_provider.cli import datasets, executions, lifecycle, metrics, notebooks, restart, run, storage
from hyperai_provider.cli.common import fail
from hyperai_provider.exceptions import HyperAIError

COMMAND_GROUPS = [executions, lifecycle, datasets, run, restart, notebooks, storage, metrics]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hyperai",
        description="HyperAI Gears: executions, working directories, datasets.",
    )
    parser.add_argument(
        "--storage-root", help="storage root (default: $HYPERAI_STORAGE_ROOT or $AIRFLOW_HOME/hyperai)"
    )
    parser.add_argument(
        "--store-url", help="SQLAlchemy URL of the Gear store (default: SQLite in the storage root)"
    )
    parser.add_argument("--docker-host", help="Docker engine URL (default: local socket)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in COMMAND_GROUPS:
        group.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except HyperAIError as error:
        return fail(error)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        return 0


if __name__ == "__main__":
    sys.exit(main())
