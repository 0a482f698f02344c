"""Code upload: copy a folder or file into the working directory, honouring ``.hyperaiignore``."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pathspec

from hyperai_provider.core import safecopy, safewrite
from hyperai_provider.core.storage import atomic_write_json
from hyperai_provider.exceptions import ConfigurationError, ConflictError

IGNORE_FILE = ".hyperaiignore"
PARAMETER_FILES = ("hyperai_params.json", "openbayes_params.json")
ALWAYS_IGNORED = ["__pycache__/", ".git/", IGNORE_FILE]
IGNORE_FILE_LIMIT = 1024**2

log = logging.getLogger(__name__)


@dataclass
class CodeCopy:
    copied: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    """Files not copied because the working directory already had them (continuation, 'keep')."""


def _ignore_spec(source_dir: Path) -> pathspec.PathSpec:
    lines = [*ALWAYS_IGNORED, ".openbayesignore"]
    for name in (IGNORE_FILE, ".openbayesignore"):  # ours, and openbayes-cli's (same gitignore syntax)
        try:  # a working directory's own ignore file: never through a symlink, never a FIFO
            text = safecopy.read_regular(source_dir / name, limit=IGNORE_FILE_LIMIT)
        except FileNotFoundError:
            text = b""
        except safecopy.Unsafe as error:
            error.log()
            text = b""
        lines += text.decode("utf-8", errors="replace").splitlines()
    return pathspec.PathSpec.from_lines("gitwildmatch", lines)


def code_files(source: Path) -> list[tuple[Path, str]]:
    """(absolute path, path relative to the working dir) of every file to upload, ignores applied.

    Regular files and symlinks only (symlinks are copied as links, never followed); FIFOs, sockets and
    device nodes are skipped and logged. The folder is walked through directory descriptors, so nothing
    below ``source`` is reached through a symlink.
    """
    try:
        mode = source.stat().st_mode
    except FileNotFoundError:
        raise ConfigurationError(
            f"Code path {str(source)!r} does not exist.", "Give an existing folder or file."
        ) from None
    if stat.S_ISREG(mode):
        return [(source, source.name)]
    if not stat.S_ISDIR(mode):
        raise ConfigurationError(
            f"Code path {str(source)!r} is a {safecopy.kind_of(mode)}, not a folder or a regular file.",
            "Give a folder or a regular file.",
        )
    spec = _ignore_spec(source)
    return [
        (source / entry.relative, entry.relative)
        for entry in safecopy.walk(source)
        if entry.kind != "dir" and not spec.match_file(entry.relative)
    ]


def copy_code(
    source: Path,
    home: Path,
    conflict: Literal["keep", "overwrite", "error"] = "keep",
    exists: Callable[[str], bool] | None = None,
) -> CodeCopy:
    """Copy code into ``home``. ``exists`` tells whether the working directory already has a path
    (a continuation's merged view); by default, whether ``home`` has it.

    Nothing in ``home`` is followed: a symlink (or file) that a continued working directory has where an
    uploaded file's folder goes is a conflict like an existing file — kept ('keep'), replaced by a real
    folder ('overwrite'), or refused ('error') — so uploaded code never lands outside ``home``.
    """
    files = code_files(source)
    result = CodeCopy()
    with safewrite.Destination(home) as destination:
        conflicts = _conflicts(files, destination, exists)
        if conflicts and conflict == "error":
            raise ConflictError(
                f"Code file(s) {', '.join(_named(conflicts))} already exist in the working directory being "
                "continued.",
                "Rename them, or pass code_conflict='overwrite' (use the upload) or 'keep' (use the working "
                "dir's).",
            )
        for path, relative in files:
            if conflict == "keep" and relative in conflicts:
                log.warning("Kept the working directory's %s; the uploaded copy was not used", relative)
                result.kept.append(relative)
                continue
            if _copy_one(path, relative, destination):
                result.copied.append(relative)
    return result


def _conflicts(
    files: list[tuple[Path, str]], destination: safewrite.Destination, exists: Callable[[str], bool] | None
) -> dict[str, str]:
    """Uploaded paths the working directory already has, or has a non-folder in the way of (why)."""
    found: dict[str, str] = {}
    for _, relative in files:
        blocked = destination.blocker(relative)
        if blocked is not None:
            found[relative] = f"{blocked.prefix} is a {blocked.kind}"
        elif exists(relative) if exists is not None else destination.lexists(relative):
            found[relative] = "exists"
    return found


def _named(conflicts: dict[str, str]) -> list[str]:
    return [relative if why == "exists" else f"{relative} ({why})" for relative, why in conflicts.items()]


def _copy_one(path: Path, relative: str, destination: safewrite.Destination) -> bool:
    """Copy one upload (replacing whatever the working directory has there); False if it was skipped."""
    if path.is_symlink():
        destination.symlink(relative, os.readlink(path), replace=True)
        return True
    try:
        fd, st = safecopy.open_regular(path)
    except safecopy.Unsafe as error:  # changed since it was listed
        error.log()
        return False
    try:
        destination.write(relative, fd, st, replace=True)
    finally:
        os.close(fd)
    return True


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
