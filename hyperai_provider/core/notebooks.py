"""Notebooks as code: check ``.ipynb`` files before start and export them to ``.py`` scripts.

nbformat/nbconvert are imported lazily: parsing a DAG never pays for them.
"""

from __future__ import annotations

import importlib
import json
import warnings
from pathlib import Path
from typing import Any

from hyperai_provider.core import safecopy, safewrite
from hyperai_provider.core.storage import atomic_write_bytes
from hyperai_provider.exceptions import ConfigurationError

SUFFIX = ".ipynb"


def is_notebook(path: str | Path) -> bool:
    return str(path).endswith(SUFFIX)


def script_name(relative: str) -> str:
    """Where a notebook's script goes: ``analysis/train.ipynb`` -> ``analysis/train.py``."""
    return relative[: -len(SUFFIX)] + ".py"


def read_notebook(path: Path, *, follow_symlinks: bool = False) -> Any:
    """Parse and validate a notebook; raise ConfigurationError saying what is wrong with it.

    Only a regular file is read (opened with ``O_NOFOLLOW | O_NONBLOCK``): a FIFO named ``x.ipynb`` is
    refused instead of blocking, a device is never opened, a symlink is refused unless
    ``follow_symlinks`` (for a file the host's user named, never for what a container wrote).
    """
    nbformat = _require("nbformat")

    try:
        text = safecopy.read_regular(path, follow_symlinks=follow_symlinks).decode("utf-8")
    except safecopy.Unsafe as error:
        raise ConfigurationError(
            f"Notebook {str(path)!r} is not a regular file (it is a {error.kind}).",
            "Notebooks are read only as regular files: replace it by the notebook itself, or list it in "
            ".hyperaiignore.",
        ) from error
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigurationError(
            f"Notebook {str(path)!r} cannot be read ({error}).", "Give a readable UTF-8 .ipynb file."
        ) from error
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigurationError(
            f"Notebook {str(path)!r} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}).",
            "Save it again from Jupyter, or remove it from the code folder (or add it to .hyperaiignore).",
        ) from error
    try:
        notebook = nbformat.reads(text, as_version=4)
        nbformat.validate(notebook)
    except (
        Exception
    ) as error:  # nbformat raises several unrelated types (ValidationError, NBFormatError, ...)
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigurationError(
            f"Notebook {str(path)!r} is not a valid nbformat 4 notebook: {first_line}",
            "Open and save it with JupyterLab to repair it, or remove it from the code.",
        ) from error
    return notebook


def export_script(notebook_path: Path, output: Path, *, follow_symlinks: bool = True) -> Path:
    """Export a notebook's code cells to a Python script at ``output`` (written atomically). For a
    notebook the user named; :func:`export_into` exports what is in a working directory."""
    atomic_write_bytes(output, _script(notebook_path, follow_symlinks=follow_symlinks))
    return output


def _script(notebook_path: Path, *, follow_symlinks: bool) -> bytes:
    notebook = read_notebook(notebook_path, follow_symlinks=follow_symlinks)
    PythonExporter = _require("nbconvert").PythonExporter
    with warnings.catch_warnings():
        # Without IPython, nbconvert warns that magics stay as written; the script runs under python3 anyway.
        warnings.filterwarnings("ignore", message="IPython is needed", category=UserWarning)
        body, _ = PythonExporter().from_notebook_node(notebook)
    return str(body).encode("utf-8")


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ConfigurationError(
            f"Notebooks in the code need {module}, which is not installed.",
            "Install the extra: pip install 'hyperai-provider[notebooks]' (nbformat, nbconvert).",
        ) from error


def check_notebooks(files: list[tuple[Path, str]]) -> list[str]:
    """Validate every notebook among uploaded ``(path, relative)`` files; return their relative paths.

    A notebook whose script name is also uploaded as a ``.py`` is refused: the export would overwrite it.
    """
    relatives = {relative for _, relative in files}
    notebooks = []
    for path, relative in files:
        if not is_notebook(relative):
            continue
        read_notebook(path)
        if script_name(relative) in relatives:
            raise ConfigurationError(
                f"The code has both {relative} and {script_name(relative)}; exporting the notebook would "
                "overwrite the script.",
                "Rename one of them, or list the one you do not need in .hyperaiignore.",
            )
        notebooks.append(relative)
    return notebooks


def default_command(notebooks: list[str]) -> list[str]:
    """argv that runs the one uploaded notebook's script; a clear error when that is ambiguous."""
    if len(notebooks) != 1:
        found = ", ".join(notebooks) if notebooks else "none"
        raise ConfigurationError(
            f"No command was given and the code does not hold exactly one notebook (found: {found}).",
            "Give the command to run, e.g. command='python3 train.py'.",
        )
    return ["python3", script_name(notebooks[0])]


def export_into(home: Path, notebooks: list[str]) -> list[str]:
    """Export each uploaded notebook next to itself in the working directory; return the scripts.
    Neither the notebook nor the script is reached through a symlink in the working directory."""
    scripts = []
    with safewrite.Destination(home) as destination:
        for relative in notebooks:
            safewrite.split_relative(relative)  # no '..', not absolute
            if destination.blocker(relative) is not None:
                raise ConfigurationError(
                    f"Notebook {relative} is below a symlink or file in the working directory.",
                    "Upload it with code_conflict='overwrite', or rename the folder.",
                )
            destination.write_bytes(script_name(relative), _script(home / relative, follow_symlinks=False))
            scripts.append(script_name(relative))
    return scripts
