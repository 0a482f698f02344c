"""Code upload: copy a folder or file into the working directory, honouring ``.hyperaiignore``."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pathspec

from hyperai_provider.core.storage import atomic_write_json
from hyperai_provider.exceptions import ConfigurationError, ConflictError

IGNORE_FILE = ".hyperaiignore"
PARAMETER_FILES = ("hyperai_params.json", "openbayes_params.json")
ALWAYS_IGNORED = ["__pycache__/", ".git/", IGNORE_FILE]

log = logging.getLogger(__name__)


@dataclass
class CodeCopy:
    copied: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    """Files not copied because the working directory already had them (continuation, 'keep')."""


def _ignore_spec(source_dir: Path) -> pathspec.PathSpec:
    lines = list(ALWAYS_IGNORED)
    ignore_file = source_dir / IGNORE_FILE
    if ignore_file.is_file():
        lines += ignore_file.read_text().splitlines()
    return pathspec.PathSpec.from_lines("gitwildmatch", lines)


def code_files(source: Path) -> list[tuple[Path, str]]:
    """(absolute path, path relative to the working dir) of every file to upload, ignores applied."""
    if not source.exists():
        raise ConfigurationError(
            f"Code path {str(source)!r} does not exist.", "Give an existing folder or file."
        )
    if source.is_file():
        return [(source, source.name)]
    spec = _ignore_spec(source)
    files: list[tuple[Path, str]] = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source).as_posix()
        if path.is_dir() and not path.is_symlink():
            continue
        if spec.match_file(relative):
            continue
        files.append((path, relative))
    return files


def copy_code(
    source: Path,
    home: Path,
    conflict: Literal["keep", "overwrite", "error"] = "keep",
    exists: Callable[[str], bool] | None = None,
) -> CodeCopy:
    """Copy code into ``home``. ``exists`` tells whether the working directory already has a path
    (a continuation's merged view); by default, whether ``home`` has it."""
    exists = exists or (lambda relative: (home / relative).exists())
    files = code_files(source)
    conflicts = [relative for _, relative in files if exists(relative)]
    if conflicts and conflict == "error":
        raise ConflictError(
            f"Code file(s) {', '.join(conflicts)} already exist in the working directory being continued.",
            "Rename them, or pass code_conflict='overwrite' (use the upload) or 'keep' (use the working dir's).",
        )
    result = CodeCopy()
    for path, relative in files:
        if conflict == "keep" and relative in conflicts:
            log.warning("Kept the working directory's %s; the uploaded copy was not used", relative)
            result.kept.append(relative)
            continue
        target = home / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            target.unlink(missing_ok=True)
            target.symlink_to(path.readlink())
        else:
            shutil.copy2(path, target)
        result.copied.append(relative)
    return result


def write_parameters(home: Path, parameters: Mapping[str, object]) -> None:
    """Write HyperAI's parameter files (both names) into the working directory."""
    for name in PARAMETER_FILES:
        atomic_write_json(home / name, parameters)


def parameter_arguments(parameters: Mapping[str, object]) -> list[str]:
    """HyperAI's custom parameters as ``--key=value`` arguments (booleans as true/false)."""
    return [f"--{key}={_format(value)}" for key, value in parameters.items()]


def _format(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
