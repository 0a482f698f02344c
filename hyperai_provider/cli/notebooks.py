"""``hyperai notebook export NOTEBOOK [-o FILE]``: the notebook-to-script export tasks do, by hand."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hyperai_provider.core.notebooks import export_script, is_notebook
from hyperai_provider.exceptions import ConfigurationError


def register(subparsers: Any) -> None:
    notebook = subparsers.add_parser("notebook", help="notebooks as code")
    commands = notebook.add_subparsers(dest="notebook_command", metavar="COMMAND", required=True)
    export = commands.add_parser("export", help="export a notebook's code cells to a .py script (nbconvert)")
    export.add_argument("notebook", type=Path, help="the .ipynb file")
    export.add_argument("-o", "--output", type=Path, help="script to write (default: NOTEBOOK with .py)")
    export.set_defaults(handler=export_notebook)


def export_notebook(args: argparse.Namespace) -> int:
    source: Path = args.notebook
    if not is_notebook(source) or not source.is_file():
        raise ConfigurationError(
            f"{str(source)!r} is not a .ipynb file.", "Give the path of a Jupyter notebook."
        )
    output: Path = args.output or source.with_suffix(".py")
    if output.resolve() == source.resolve():
        raise ConfigurationError("The output would overwrite the notebook.", "Give another -o FILE.")
    export_script(source, output)
    print(output)
    return 0
