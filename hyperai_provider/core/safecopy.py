"""Reading and copying out of working directories a container wrote: regular files only, never through a symlink.

A container is root in its own namespace: it can leave FIFOs, sockets, device nodes (when it had
``CAP_MKNOD``, or a layer written before that was dropped) and symlinks to host paths in its working
directory. The host process is root too, so one careless ``open()`` of such an entry reads a host device
(a block device's bytes, ``/dev/zero`` forever), blocks on a FIFO, or writes through a planted symlink
onto the host. Everything here holds these rules:

- a source file is opened only if ``lstat`` says it is a regular file, with ``O_NOFOLLOW | O_NONBLOCK``
  (no symlink followed, no FIFO waited on), and ``fstat`` of the open descriptor must be that same
  regular file;
- trees are walked through directory descriptors (``openat`` with ``O_NOFOLLOW | O_DIRECTORY``), so a
  directory swapped for a symlink mid-walk is never entered;
- targets are created under a destination through directory descriptors too: a symlink (or any
  non-directory) already in the destination is never followed, it is either reported as in the way or
  replaced, as the caller asks;
- anything else (FIFO, socket, character or block device) is skipped and logged with its path and type,
  never fatal.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import sys
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_DEPTH = 256
"""Folders nested deeper than this are skipped (a walk holds one descriptor per level)."""
TOO_DEEP = f"folder nested deeper than {MAX_DEPTH} levels"
COPYABLE = frozenset({"file", "dir", "symlink"})
_DIR_CACHE = 64


def kind_of(mode: int) -> str:
    """What an ``st_mode`` is, in words used in log lines and messages."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    return "unknown file type"


def describe(st: os.stat_result) -> str:
    """``kind_of``, with the device numbers of a device node."""
    what = kind_of(st.st_mode)
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        what += f" {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    return what


class Unsafe(Exception):
    """An entry that is not read or copied: not a regular file (or folder/symlink where those are
    allowed), reached through a symlink, or changed while it was being opened."""

    def __init__(self, path: str | Path, kind: str) -> None:
        super().__init__(f"{path} is a {kind}")
        self.path = str(path)
        self.kind = kind

    def log(self) -> None:
        skipped(self.path, self.kind)


def skipped(path: str | Path, kind: str | None = None) -> None:
    """Log an entry that is left out of a copy (path and type); ``kind`` is looked up when not given."""
    if kind is None:
        try:
            kind = describe(os.lstat(path))
        except OSError as error:
            kind = f"unreadable: {error.strerror}"
    log.warning(
        "Skipped %s (%s): only regular files, folders and symlinks are copied out of a working directory",
        path,
        kind,
    )


# -- reading one file ---------------------------------------------------------------------------------------


def open_regular(
    path: str | Path, *, dir_fd: int | None = None, follow_symlinks: bool = False
) -> tuple[int, os.stat_result]:
    """Open a regular file for reading; raise :class:`Unsafe` for anything else.

    ``lstat`` first (a device node is never opened, so no driver ``open`` runs), then ``O_NOFOLLOW |
    O_NONBLOCK`` (a symlink or FIFO swapped in meanwhile neither leads elsewhere nor blocks), then
    ``fstat``: the descriptor must be the regular file that was checked. ``follow_symlinks`` is for a
    path the host's user named explicitly, never for what a container wrote.
    """
    before = os.stat(path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
    if not stat.S_ISREG(before.st_mode):
        raise Unsafe(path, describe(before))
    flags = READ_FLAGS if not follow_symlinks else READ_FLAGS & ~os.O_NOFOLLOW
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENXIO):  # replaced by a symlink / a socket since the lstat
            raise Unsafe(path, "entry that changed while it was opened") from error
        raise
    after = os.fstat(fd)
    if not stat.S_ISREG(after.st_mode) or (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        os.close(fd)
        raise Unsafe(path, "entry that changed while it was opened")
    return fd, after


def read_regular(path: str | Path, *, limit: int | None = None, follow_symlinks: bool = False) -> bytes:
    """The contents of a regular file (at most ``limit`` bytes); :class:`Unsafe` for anything else."""
    fd, st = open_regular(path, follow_symlinks=follow_symlinks)
    with os.fdopen(fd, "rb") as handle:
        return handle.read(st.st_size if limit is None else min(limit, st.st_size))


def link_regular(source: str | Path, target: str | Path) -> int | None:
    """Hard-link ``source`` at ``target`` if it is a regular file; the size, or None (skipped and logged).

    ``link`` never opens the source and never follows a symlink; the ``lstat`` of the new link proves
    what was linked, so a device node or FIFO never stays in the destination.
    """
    os.link(source, target, follow_symlinks=False)
    st = os.lstat(target)
    if not stat.S_ISREG(st.st_mode):
        os.unlink(target)
        skipped(source, describe(st))
        return None
    return st.st_size


def tar_regular(tar: tarfile.TarFile, path: str | Path, arcname: str) -> int | None:
    """Add a regular file to ``tar`` from a descriptor opened by :func:`open_regular`; its size, or None
    when it is anything else (skipped and logged)."""
    try:
        fd, _ = open_regular(path)
    except Unsafe as error:
        error.log()
        return None
    with os.fdopen(fd, "rb") as handle:
        info = tar.gettarinfo(arcname=arcname, fileobj=handle)
        tar.addfile(info, handle)
    return info.size


def copy_contents(source_fd: int, target_fd: int) -> int:
    """Copy a regular file's bytes between descriptors (in the kernel where it can); the bytes copied."""
    offset = 0
    while True:
        try:
            sent = os.sendfile(target_fd, source_fd, offset, 1 << 30)
        except OSError as error:
            if error.errno not in (errno.EINVAL, errno.ENOSYS) or offset:
                raise
            return _copy_by_reading(source_fd, target_fd)
        if sent == 0:
            return offset
        offset += sent


def _copy_by_reading(source_fd: int, target_fd: int) -> int:
    total = 0
    while chunk := os.read(source_fd, 1 << 20):
        view = memoryview(chunk)
        while view:
            written = os.write(target_fd, view)
            view = view[written:]
        total += len(chunk)
    return total


# -- walking a tree -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One entry of a walk. ``dir_fd`` (its folder) and ``name`` are valid only while the walk is at it."""

    relative: str
    name: str
    kind: str  # "file" | "dir" | "symlink"
    dir_fd: int

    def lstat(self) -> os.stat_result:
        return os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)

    def readlink(self) -> str:
        return os.readlink(self.name, dir_fd=self.dir_fd)

    def open(self) -> tuple[int, os.stat_result]:
        """The file, opened by :func:`open_regular` relative to its folder's descriptor."""
        return open_regular(self.name, dir_fd=self.dir_fd)


def entry_kind(entry: os.DirEntry[str]) -> str:
    """What a directory entry is, never following a symlink (the words of :func:`kind_of`)."""
    if entry.is_symlink():
        return "symlink"
    if entry.is_dir(follow_symlinks=False):
        return "dir"
    if entry.is_file(follow_symlinks=False):
        return "file"
    return describe(entry.stat(follow_symlinks=False))


def walk(root: str | Path) -> Iterator[Entry]:
    """Every folder, regular file and symlink below ``root``, parents before children, sorted by name
    within a folder; anything else is skipped and logged. ``root`` itself is the host's choice (it may be
    reached through a symlink); nothing below it is."""
    yield from _walk(root, _log_special)


def remove_special_files(root: str | Path) -> list[str]:
    """Delete every entry below ``root`` that is not a regular file, folder or symlink (logged); their
    paths. Walks through directory descriptors and never follows a symlink."""
    removed: list[str] = []

    def remove(parent_fd: int, name: str, shown: Path, kind: str) -> None:
        skipped(shown, kind)
        if kind == TOO_DEEP:
            remove_tree_at(parent_fd, name)
        else:
            os.unlink(name, dir_fd=parent_fd)
        removed.append(str(shown))

    for _ in _walk(root, remove):
        pass
    return removed


def _log_special(parent_fd: int, name: str, shown: Path, kind: str) -> None:
    skipped(shown, kind)


def _walk(root: str | Path, on_special: Callable[[int, str, Path, str], None]) -> Iterator[Entry]:
    """The walk: one open descriptor per level of the folder being listed, closed on the way out."""
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    stack: list[tuple[int, str, Iterator[os.DirEntry[str]]]] = []
    try:
        stack.append((root_fd, "", _sorted_entries(root_fd)))
        while stack:
            fd, relative, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                if fd != root_fd:
                    os.close(fd)
                continue
            child = f"{relative}/{entry.name}" if relative else entry.name
            kind = entry_kind(entry)
            if kind not in COPYABLE:
                on_special(fd, entry.name, Path(root, child), kind)
                continue
            if kind == "dir" and len(stack) >= MAX_DEPTH:
                on_special(fd, entry.name, Path(root, child), TOO_DEEP)
                continue
            yield Entry(child, entry.name, kind, fd)
            if kind == "dir":
                opened = _open_subdir(fd, entry.name, Path(root, child))
                if opened is not None:
                    stack.append((opened, child, _sorted_entries(opened)))
    finally:
        for fd, _, _ in stack:
            if fd != root_fd:
                os.close(fd)
        os.close(root_fd)


def _sorted_entries(fd: int) -> Iterator[os.DirEntry[str]]:
    with os.scandir(fd) as entries:
        return iter(sorted(entries, key=lambda e: e.name))


def _open_subdir(parent_fd: int, name: str, shown: Path) -> int | None:
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
            skipped(shown, "entry that changed during the walk")
            return None
        raise


# -- writing under a destination ----------------------------------------------------------------------------


def remove_tree_at(parent_fd: int, name: str) -> None:
    """Remove the folder ``name`` of ``parent_fd`` and everything in it, never following a symlink."""
    if sys.version_info >= (3, 11):
        shutil.rmtree(name, dir_fd=parent_fd)
    else:  # pragma: no cover - shutil's fd-based removal of the folder the magic link names
        shutil.rmtree(f"/proc/self/fd/{parent_fd}/{name}")
