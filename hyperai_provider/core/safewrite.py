"""Writing into a destination folder without ever following what is already there: the target side of
:mod:`core.safecopy`. A symlink (or any non-directory) in the destination is never written through: it is
reported as in the way (:class:`Blocked`) or replaced, as the caller asks."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections import OrderedDict
from pathlib import Path

from hyperai_provider.core.safecopy import (
    _DIR_CACHE,
    CREATE_FLAGS,
    DIR_FLAGS,
    copy_contents,
    describe,
    remove_tree_at,
    skipped,
)


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
            remove_tree_at(parent, name)  # a folder stands where the file goes: the upload wins
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
