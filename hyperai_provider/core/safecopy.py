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

import contextlib
import errno
import logging
import os
import secrets
import shutil
import stat
import sys
import tarfile
from collections import OrderedDict
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


def _entry_kind(entry: os.DirEntry[str]) -> str:
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
            _remove_tree_at(parent_fd, name)
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
            kind = _entry_kind(entry)
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


class Blocked(Exception):
    """A destination path whose parent folder is, in the destination, not a folder (a symlink, a file)."""

    def __init__(self, prefix: str, kind: str) -> None:
        super().__init__(f"{prefix} is a {kind} in the destination")
        self.prefix = prefix
        self.kind = kind


def split_relative(relative: str) -> list[str]:
    parts = [part for part in relative.split("/") if part not in ("", ".")]
    if not parts or ".." in parts or relative.startswith("/"):
        raise ValueError(f"not a relative path inside the destination: {relative!r}")
    return parts


class Destination:
    """Creates folders, files and symlinks under ``root`` through directory descriptors.

    No symlink below ``root`` is ever followed: a non-folder where a folder is needed raises
    :class:`Blocked`, or is replaced when the caller passes ``replace=True``; files are created with
    ``O_EXCL | O_NOFOLLOW`` or written under a temporary name and renamed over the old entry (``rename``
    replaces a symlink itself, never its target). Folders are created 0700 and get their modes and times
    when the destination is closed, children first (so read-only folders can still be filled).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._dirs: OrderedDict[str, int] = OrderedDict()
        self._attributes: list[tuple[str, int, int, int]] = []

    def __enter__(self) -> Destination:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close(apply_attributes=exc_info[0] is None)

    def close(self, apply_attributes: bool = True) -> None:
        try:
            if apply_attributes:
                for relative, mode, atime_ns, mtime_ns in reversed(self._attributes):
                    fd = self._directory(split_relative(relative), create=False, replace=False)
                    os.chmod(fd, mode)
                    os.utime(fd, ns=(atime_ns, mtime_ns))
        finally:
            self._attributes.clear()
            for fd in self._dirs.values():
                os.close(fd)
            self._dirs.clear()
            if self._root_fd >= 0:
                os.close(self._root_fd)
                self._root_fd = -1

    # -- folders

    def _directory(self, parts: list[str], *, create: bool, replace: bool) -> int:
        """The descriptor of the folder ``parts`` below the root, opened component by component from the
        nearest folder already open (a few recent ones are kept open)."""
        if not parts:
            return self._root_fd
        depth, fd = len(parts), self._root_fd
        while depth > 0:
            cached = self._dirs.get("/".join(parts[:depth]))
            if cached is not None:
                self._dirs.move_to_end("/".join(parts[:depth]))
                fd = cached
                break
            depth -= 1
        for index in range(depth, len(parts)):
            fd = self._open_child_dir(fd, parts[: index + 1], create=create, replace=replace)
            self._dirs["/".join(parts[: index + 1])] = fd
            if len(self._dirs) > _DIR_CACHE:  # never the one just opened: it is the newest
                os.close(self._dirs.popitem(last=False)[1])
        return fd

    def _open_child_dir(self, parent: int, parts: list[str], *, create: bool, replace: bool) -> int:
        name = parts[-1]
        try:
            return os.open(name, DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
        except OSError as error:
            if error.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            kind = describe(os.stat(name, dir_fd=parent, follow_symlinks=False))
            if not replace:
                raise Blocked("/".join(parts), kind) from error
            os.unlink(name, dir_fd=parent)  # a symlink, file or device in the way: removed, never followed
        os.mkdir(name, 0o755, dir_fd=parent)
        return os.open(name, DIR_FLAGS, dir_fd=parent)

    def _parent(self, relative: str, replace: bool) -> tuple[int, str]:
        parts = split_relative(relative)
        return self._directory(parts[:-1], create=True, replace=replace), parts[-1]

    def blocker(self, relative: str) -> Blocked | None:
        """What in the destination stands where a parent folder of ``relative`` would be (a symlink, a
        file, a device), or None. Creates nothing."""
        parts = split_relative(relative)
        fd = self._root_fd
        opened: list[int] = []
        try:
            for index, name in enumerate(parts[:-1]):
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    return None
                if not stat.S_ISDIR(st.st_mode):
                    return Blocked("/".join(parts[: index + 1]), describe(st))
                fd = os.open(name, DIR_FLAGS, dir_fd=fd)
                opened.append(fd)
            return None
        finally:
            for descriptor in opened:
                os.close(descriptor)

    def lexists(self, relative: str) -> bool:
        """Whether ``relative`` exists in the destination, reached without following any symlink."""
        if self.blocker(relative) is not None:
            return False
        parts = split_relative(relative)
        try:
            fd = self._directory(parts[:-1], create=False, replace=False)
            os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    def mkdir(self, relative: str, like: os.stat_result | None = None) -> None:
        """Create a folder (an existing folder is fine); ``like`` gives the mode and times it ends with."""
        parent, name = self._parent(relative, replace=False)
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=parent)
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            raise Blocked(relative, describe(st))
        if like is not None:
            self._attributes.append(
                (relative, stat.S_IMODE(like.st_mode), like.st_atime_ns, like.st_mtime_ns)
            )

    # -- files and symlinks

    def write(self, relative: str, source_fd: int, like: os.stat_result, *, replace: bool = False) -> int:
        """Copy an open regular file to ``relative`` with ``like``'s mode and times; the bytes copied.
        Without ``replace`` the target must not exist; with it, whatever is there is replaced."""
        parent, name = self._parent(relative, replace=replace)
        temporary = _temporary_name(name) if replace else name
        fd = os.open(temporary, CREATE_FLAGS, 0o600, dir_fd=parent)
        try:
            try:
                size = copy_contents(source_fd, fd)
                os.chmod(fd, stat.S_IMODE(like.st_mode))
                os.utime(fd, ns=(like.st_atime_ns, like.st_mtime_ns))
            finally:
                os.close(fd)
            if replace:
                self._rename_over(parent, temporary, name)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=parent)
            raise
        return size

    def write_bytes(self, relative: str, data: bytes, mode: int = 0o644) -> None:
        """Write ``data`` to ``relative`` under a temporary name, fsync, rename over what is there."""
        parent, name = self._parent(relative, replace=True)
        temporary = _temporary_name(name)
        fd = os.open(temporary, CREATE_FLAGS, mode, dir_fd=parent)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            self._rename_over(parent, temporary, name)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=parent)
            raise

    def symlink(self, relative: str, target: str, *, replace: bool = False) -> None:
        """Create a symlink (its target is text, never resolved here)."""
        parent, name = self._parent(relative, replace=replace)
        if not replace:
            os.symlink(target, name, dir_fd=parent)
            return
        temporary = _temporary_name(name)
        os.symlink(target, temporary, dir_fd=parent)
        try:
            self._rename_over(parent, temporary, name)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=parent)
            raise

    def link(self, relative: str, source_name: str, source_dir_fd: int) -> int | None:
        """Hard-link a regular file (named relative to ``source_dir_fd``) at ``relative``; its size, or
        None when it turned out not to be a regular file (skipped and logged)."""
        parent, name = self._parent(relative, replace=False)
        os.link(source_name, name, src_dir_fd=source_dir_fd, dst_dir_fd=parent, follow_symlinks=False)
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode):
            os.unlink(name, dir_fd=parent)
            skipped(self.root / relative, describe(st))
            return None
        return st.st_size

    def _rename_over(self, parent: int, temporary: str, name: str) -> None:
        try:
            os.replace(temporary, name, src_dir_fd=parent, dst_dir_fd=parent)
        except OSError as error:
            if error.errno not in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                raise
            self._drop_cached(parent, name)
            _remove_tree_at(parent, name)  # a folder stands where the file goes: the upload wins
            os.replace(temporary, name, src_dir_fd=parent, dst_dir_fd=parent)

    def _drop_cached(self, parent: int, name: str) -> None:
        for key, fd in list(self._dirs.items()):
            if fd == parent:
                prefix = f"{key}/{name}"
                break
        else:
            prefix = name if parent == self._root_fd else ""
        if not prefix:
            return
        for key in [k for k in self._dirs if k == prefix or k.startswith(prefix + "/")]:
            os.close(self._dirs.pop(key))


def _temporary_name(name: str) -> str:
    return f".{name[:200]}.{secrets.token_hex(4)}.hyperai-tmp"


def _remove_tree_at(parent_fd: int, name: str) -> None:
    """Remove the folder ``name`` of ``parent_fd`` and everything in it, never following a symlink."""
    if sys.version_info >= (3, 11):
        shutil.rmtree(name, dir_fd=parent_fd)
    else:  # pragma: no cover - shutil's fd-based removal of the folder the magic link names
        shutil.rmtree(f"/proc/self/fd/{parent_fd}/{name}")
