"""Copy-on-write working directories: overlay layer chains, their merged view, flattening, dependents.

A continued execution's ``/hyperai/home`` is an overlay mounted by Docker's ``local`` volume driver: the
parent's closed layers below (read-only, never changed again) and the child's own layer on top. The
child's own layer holds only what it changed: new and modified files, whiteouts (character devices 0/0)
for deletions, ``trusted.overlay.opaque=y`` on directories that replaced a lower one, and
``trusted.overlay.redirect`` on directories it renamed (``redirect_dir=on``).

:class:`MergedView` reads a chain the way the kernel does, without a container or a mount, so a
continued execution's full working directory can be listed, read, hard-linked or copied. Reading the
``trusted.*`` attributes needs root (CAP_SYS_ADMIN), as does the engine that wrote them.

Layer references in records are paths relative to the storage root, top first.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from hyperai_provider.core import safecopy
from hyperai_provider.core.storage import StorageRoot, Usage
from hyperai_provider.exceptions import ConfigurationError

if TYPE_CHECKING:
    from hyperai_provider.core.store import GearStore
    from hyperai_provider.models import ExecutionRecord

OPAQUE_XATTR = "trusted.overlay.opaque"
REDIRECT_XATTR = "trusted.overlay.redirect"
MAX_OPTION_BYTES = 4096
"""Docker's local driver passes ``o=`` to mount(2), whose option page is one 4 KiB page."""
DEFAULT_MAX_DEPTH = 40
"""Layers below a child before its parent's chain is flattened (the kernel allows 500; each layer
costs lookups, ~7 % warm per 100 layers)."""
FLAT_DIR = "merged"
WORK_DIR = "overlay-work"


@dataclass(frozen=True)
class MergedEntry:
    """One path of a merged view: where it lives physically, and what it is."""

    relative: str
    path: Path
    kind: str  # "dir" | "file" | "symlink", or what else it is ("FIFO", "character device", ...)


@dataclass
class _Node:
    entry: MergedEntry
    stack: list[tuple[int, Path]] = field(default_factory=list)
    """For directories: the physical directories merged into it, top first, with their layer index."""


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _xattr(path: Path | str, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return None


class MergedView:
    """The union of overlay layers (top first), read like the kernel reads it. Symlinks are never followed."""

    def __init__(self, layers: Sequence[Path]) -> None:
        self.layers = [Path(layer) for layer in layers]

    def _root_stack(self, below: int = -1) -> list[tuple[int, Path]]:
        stack: list[tuple[int, Path]] = []
        for index, layer in enumerate(self.layers):
            if index <= below or not layer.is_dir():
                continue
            stack.append((index, layer))
            if index < len(self.layers) - 1 and _xattr(layer, OPAQUE_XATTR) == b"y":
                break
        return stack

    def _children(self, stack: list[tuple[int, Path]], relative: str) -> dict[str, _Node]:
        """The merged entries of one directory, given the physical directories it merges."""
        nodes: dict[str, _Node] = {}
        settled: set[str] = set()  # names whose lower layers can no longer contribute
        last = len(self.layers) - 1
        for position, (index, directory) in enumerate(stack):
            try:
                entries = list(os.scandir(directory))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                name = entry.name
                if name in settled:
                    continue
                kind = safecopy.entry_kind(entry)
                if kind not in safecopy.COPYABLE and is_whiteout(entry.stat(follow_symlinks=False)):
                    settled.add(name)
                    continue
                child_relative = f"{relative}/{name}" if relative else name
                path = Path(entry.path)
                node = nodes.get(name)
                if kind != "dir":
                    if node is None:
                        nodes[name] = _Node(MergedEntry(child_relative, path, kind))
                    settled.add(name)
                    continue
                if node is None:
                    node = nodes[name] = _Node(MergedEntry(child_relative, path, "dir"))
                node.stack.append((index, path))
                if index == last:
                    continue
                if _xattr(path, OPAQUE_XATTR) == b"y":
                    settled.add(name)
                    continue
                redirect = _xattr(path, REDIRECT_XATTR)
                if redirect:
                    node.stack += self._redirected(redirect.decode(), stack[position + 1 :], index)
                    settled.add(name)
        return nodes

    def _redirected(
        self, target: str, siblings: list[tuple[int, Path]], index: int
    ) -> list[tuple[int, Path]]:
        """The lower directories a renamed directory (``redirect_dir``) still merges."""
        if target.startswith("/"):
            stack = self._root_stack(below=index)
            relative = ""
            for part in [p for p in target.split("/") if p]:
                node = self._children(stack, relative).get(part)
                if node is None or node.entry.kind != "dir":
                    return []
                stack, relative = node.stack, node.entry.relative
            return stack
        node = self._children(siblings, "").get(target)
        return node.stack if node is not None and node.entry.kind == "dir" else []

    def _lookup_node(self, relative: str) -> _Node | None:
        parts = [part for part in Path(relative).parts if part not in ("", ".", "/")]
        if ".." in parts:
            raise ConfigurationError(f"Path {relative!r} leaves the working directory.", "Remove '..'.")
        stack, current = self._root_stack(), ""
        node: _Node | None = _Node(MergedEntry("", self.layers[0], "dir"), stack)
        for part in parts:
            if node is None or node.entry.kind != "dir":
                return None
            node = self._children(node.stack, current).get(part)
            current = f"{current}/{part}" if current else part
        return node

    def lookup(self, relative: str) -> MergedEntry | None:
        """The entry at ``relative`` in the merged view, or None (absent, deleted, or below a symlink)."""
        node = self._lookup_node(relative)
        return node.entry if node is not None else None

    def exists(self, relative: str) -> bool:
        return self.lookup(relative) is not None

    def listdir(self, relative: str = "") -> list[MergedEntry]:
        node = self._lookup_node(relative)
        if node is None or node.entry.kind != "dir":
            raise ConfigurationError(f"{relative!r} is not a folder of this working directory.")
        return sorted(
            (n.entry for n in self._children(node.stack, node.entry.relative).values()),
            key=lambda e: e.relative,
        )

    def walk(self) -> Iterator[MergedEntry]:
        """Every entry of the merged view, parents before children."""
        pending = [("", self._root_stack())]
        while pending:
            relative, stack = pending.pop()
            for node in self._children(stack, relative).values():
                yield node.entry
                if node.entry.kind == "dir":
                    pending.append((node.entry.relative, node.stack))

    def usage(self) -> Usage:
        total = files = 0
        for entry in self.walk():
            if entry.kind == "file":
                files += 1
                total += entry.path.stat().st_size
        return Usage(bytes=total, files=files)

    def write_archive(self, fileobj: BinaryIO, on_file: Callable[[int], None] | None = None) -> None:
        """Write the merged view as a .tar.gz to ``fileobj`` (symlinks archived as links, never followed);
        ``on_file`` gets each file's size as it is added (for progress)."""
        import tarfile

        with tarfile.open(fileobj=fileobj, mode="w:gz") as tar:
            for entry in self.walk():
                if entry.kind == "file":  # read only as a regular file: O_NOFOLLOW | O_NONBLOCK, fstat
                    size = safecopy.tar_regular(tar, entry.path, entry.relative)
                    if on_file is not None and size is not None:
                        on_file(size)
                elif entry.kind in ("dir", "symlink"):
                    tar.add(entry.path, arcname=entry.relative, recursive=False)
                else:  # FIFO, socket, device node: never archived
                    safecopy.skipped(entry.path)

    def link_into(self, destination: Path) -> Usage:
        """Recreate the merged view at ``destination`` with hard links (layers are immutable: safe)."""
        total = files = 0
        destination.mkdir(parents=True, exist_ok=True)
        for entry in self.walk():
            target = destination / entry.relative
            if entry.kind == "dir":
                target.mkdir()
                os.chmod(target, stat.S_IMODE(entry.path.stat().st_mode))
            elif entry.kind == "symlink":
                target.symlink_to(os.readlink(entry.path))
            elif entry.kind == "file":
                size = safecopy.link_regular(entry.path, target)  # proven a regular file, else removed
                if size is not None:
                    files += 1
                    total += size
            else:  # FIFO, socket, device node: never linked into a view
                safecopy.skipped(entry.path)
        return Usage(bytes=total, files=files)


# -- chains in records --------------------------------------------------------------------------------------


def own_layer_ref(storage: StorageRoot, gear: str, number: int) -> str:
    return storage.layer_dir(gear, number).relative_to(storage.root).as_posix()


def flat_dir(storage: StorageRoot, gear: str, number: int) -> Path:
    """Where an execution's full working directory is materialised (hard links) to cut a deep chain."""
    return storage.execution_dir(gear, number) / FLAT_DIR


def workdir_layers(storage: StorageRoot, record: ExecutionRecord) -> list[Path]:
    """The layers of an execution's working directory, top (its own) first."""
    own = storage.layer_dir(record.gear, record.number)
    return [own, *(storage.root / ref for ref in record.lower_layers)]


def lower_layers_for_child(
    storage: StorageRoot, parent: ExecutionRecord, max_depth: int = DEFAULT_MAX_DEPTH
) -> tuple[list[str], bool]:
    """The lower layers (refs, top first) a child of ``parent`` stands on, and whether the parent's chain
    must first be flattened (its merged view hard-linked into one layer) because it is too deep."""
    flat = flat_dir(storage, parent.gear, parent.number)
    flat_ref = flat.relative_to(storage.root).as_posix()
    if flat.is_dir():
        return [flat_ref], False
    layers = [own_layer_ref(storage, parent.gear, parent.number), *parent.lower_layers]
    if len(layers) > max_depth:
        return [flat_ref], True
    return layers, False


def flatten(storage: StorageRoot, record: ExecutionRecord) -> Path:
    """Materialise a closed execution's merged view as one layer (hard links; temp name, then rename)."""
    destination = flat_dir(storage, record.gear, record.number)
    if destination.is_dir():
        return destination
    temporary = storage.temporary_dir(f"flatten-{record.gear}-{record.number}-")
    try:
        MergedView(workdir_layers(storage, record)).link_into(temporary / "view")
        try:
            os.rename(temporary / "view", destination)
        except OSError:
            if not destination.is_dir():  # else another child flattened the same parent first: use theirs
                raise
    finally:
        storage.remove_tree(temporary)
    return destination


def dependents(store: GearStore, storage: StorageRoot, record: ExecutionRecord) -> list[ExecutionRecord]:
    """Executions whose working directory stands on one of ``record``'s layers (its own or its flattened
    view): deleting those layers would break them. Walks descendants through ``parent``."""
    mine = {
        own_layer_ref(storage, record.gear, record.number),
        flat_dir(storage, record.gear, record.number).relative_to(storage.root).as_posix(),
    }
    found: list[ExecutionRecord] = []
    pending = [record.id]
    seen: set[str] = set()
    while pending:
        for child in store.children_of(pending.pop()):
            if child.id in seen:
                continue
            seen.add(child.id)
            if mine & set(child.lower_layers):
                found.append(child)
                pending.append(child.id)
    return found


# -- overlay volumes ----------------------------------------------------------------------------------------


def _check_path(path: Path) -> str:
    text = str(path)
    if any(char in text for char in ":,\\"):
        raise ConfigurationError(
            f"Overlay layer path {text!r} contains ':', ',' or '\\', which overlay mount options cannot carry.",
            "Use a storage root whose path has none of them, or set HYPERAI_OVERLAY=off.",
        )
    return text


def overlay_options(
    lower: Sequence[Path], upper: Path | None = None, work: Path | None = None
) -> dict[str, str]:
    """Options of a ``local`` volume that mounts an overlay; read-only when there is no upper layer."""
    option = "lowerdir=" + ":".join(_check_path(path) for path in lower)
    if upper is not None:
        if work is None:
            raise ValueError("an overlay with an upper layer needs a work dir")
        option += f",upperdir={_check_path(upper)},workdir={_check_path(work)},redirect_dir=on"
    if len(option.encode()) >= MAX_OPTION_BYTES:
        raise ConfigurationError(
            f"The overlay's layer list is {len(option.encode())} bytes; mount options are capped at "
            f"{MAX_OPTION_BYTES}.",
            "Use a shorter storage root path, or lower the chain depth (HYPERAI_OVERLAY_MAX_DEPTH).",
        )
    return {"type": "overlay", "device": "overlay", "o": option}


def remove_work_dir(path: Path) -> None:
    """The overlay work dir holds a root-owned, mode-000 ``work/`` the kernel left behind."""
    for inner in (path / "work", path / "index"):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError, PermissionError):
            for entry in os.scandir(inner):
                os.unlink(entry.path)
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(inner)
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(path)
