"""The copy fallback of a continuation ("Synchronizing Data"): copy a merged view, reporting speed.

Used only where an overlay cannot be mounted (detected, or ``overlay="off"``): it costs seconds to
minutes and doubles storage, which is why it says so, with files/s and MB/s, while it runs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hyperai_provider.core import safecopy, safewrite
from hyperai_provider.core.layers import MergedView
from hyperai_provider.core.storage import Usage

ProgressSink = Callable[[str], None]


@dataclass(frozen=True)
class SyncResult:
    files: int
    bytes: int
    seconds: float

    @property
    def usage(self) -> Usage:
        return Usage(bytes=self.bytes, files=self.files)

    @property
    def files_per_second(self) -> float:
        return self.files / self.seconds if self.seconds > 0 else float(self.files)

    @property
    def megabytes_per_second(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else self.bytes / 1e6

    def describe(self) -> str:
        return (
            f"{self.files:,} files, {self.bytes / 1e6:,.1f} MB in {self.seconds:.1f} s "
            f"({self.files_per_second:,.0f} files/s, {self.megabytes_per_second:,.1f} MB/s)"
        )


def copy_layers(
    layers: Sequence[Path], destination: Path, on_progress: ProgressSink, interval: float = 1.0
) -> SyncResult:
    """Copy the merged view of ``layers`` into ``destination`` (contents, modes, times; symlinks as
    symlinks, never followed), reporting progress every ``interval`` seconds and once at the end.

    Regular files only: a FIFO, socket or device node is skipped and logged, never opened; each file is
    opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked with ``fstat``; targets are created through
    directory descriptors, so no symlink in ``destination`` is followed either."""
    began = last = time.monotonic()
    files = copied = 0
    with safewrite.Destination(destination) as target:
        for entry in MergedView(layers).walk():
            if entry.kind == "dir":
                target.mkdir(entry.relative, entry.path.lstat())
            elif entry.kind == "symlink":
                target.symlink(entry.relative, os.readlink(entry.path))
            elif entry.kind == "file":
                try:
                    fd, st = safecopy.open_regular(entry.path)
                except safecopy.Unsafe as error:
                    error.log()
                    continue
                try:
                    copied += target.write(entry.relative, fd, st)
                finally:
                    os.close(fd)
                files += 1
            else:
                safecopy.skipped(entry.path)
            now = time.monotonic()
            if now - last >= interval:
                last = now
                on_progress("synchronizing: " + SyncResult(files, copied, now - began).describe())
    result = SyncResult(files, copied, time.monotonic() - began)
    on_progress("synchronized " + result.describe())
    return result
