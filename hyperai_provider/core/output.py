"""An execution's output, in bounded memory and bounded disk.

:class:`LineSplitter` turns the container's byte stream into text lines in linear time, holding at most
one line's worth of bytes: a line longer than :data:`LINE_LIMIT` is passed on in pieces, each piece
but the last ending with :data:`CONTINUED`.

:class:`OutputLog` writes those lines to the execution's ``output.log`` and stops at a byte limit.

The file format, for readers and followers (``hyperai logs [-f]``, the execution page):

- plain UTF-8 text, one line per ``\\n``, append-only: bytes once written never change, so a reader
  keeps a byte offset and continues from it; nothing is ever rewritten or rotated;
- every line is appended with a single ``write`` of the whole line and its ``\\n`` (``O_APPEND``), so a
  reader that consumes only up to the last ``\\n`` it sees never shows half a line (:func:`read_from`);
- no line is longer than ``LINE_LIMIT`` bytes plus the marker, so the last N lines are found by
  reading backwards from the end in blocks, never the whole file (:func:`tail`);
- when the limit is reached a line starting with :data:`TRUNCATED_PREFIX` says where, and the file
  grows no more (on close one more such line says how much was left out); the last
  :data:`TRUNCATION_RESERVE` bytes of the limit are kept free for those lines, so the file never
  exceeds its limit (a limit below the reserve keeps only those lines);
- the log is complete once the execution's record is closed; a follower reads to the end once more
  after it sees the record closed.

What counts towards the execution's disk quota is :attr:`OutputLog.size` (equal to the file's
``st_size``, which a watchdog in another process may stat instead).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

LINE_LIMIT = 64 * 1024
"""Bytes of one line held in memory; longer lines are passed on in pieces of at most this size."""
CONTINUED = " [hyperai: line longer than 64 KiB, continued on the next line]"
"""Ends every piece of a long line but its last."""
DEFAULT_LIMIT_BYTES = 1024**3
"""Default most bytes an ``output.log`` holds."""
TRUNCATED_PREFIX = "[hyperai] output.log truncated"
TRUNCATION_RESERVE = 512
"""Bytes of the limit kept free for the truncation lines."""
READ_BLOCK = 64 * 1024
MAX_LINE_BYTES = LINE_LIMIT + len(CONTINUED.encode()) + 1
"""The longest line in an ``output.log``, its newline included."""


def _decode(raw: bytes | bytearray) -> str:
    return raw.decode("utf-8", errors="replace")


def _cut(raw: bytes | bytearray | memoryview, limit: int) -> int:
    """Where to cut ``raw`` (longer than ``limit``) so that no UTF-8 character is split."""
    cut = limit
    while cut > limit - 3 and raw[cut] & 0xC0 == 0x80:  # a continuation byte: back up to its start
        cut -= 1
    return cut


class LineSplitter:
    """Bytes in (any chunking), text lines out; memory bounded by ``limit`` plus one chunk.

    ``feed`` returns the lines completed by a chunk, ``finish`` the last unterminated one. A trailing
    ``\\r`` is stripped from each line; bytes that are not UTF-8 become U+FFFD.
    """

    def __init__(self, limit: int = LINE_LIMIT) -> None:
        if limit < 4:
            raise ValueError("a line limit below 4 bytes cannot hold a UTF-8 character")
        self.limit = limit
        self._pending = bytearray()

    @property
    def pending_bytes(self) -> int:
        return len(self._pending)

    def feed(self, chunk: bytes) -> list[str]:
        out: list[str] = []
        pending = self._pending
        searched = len(pending)  # the pending bytes hold no newline: search only the new chunk
        pending += chunk
        last = pending.find(b"\n", searched)
        if last != -1:
            last = pending.rfind(b"\n")
            block = pending[:last]
            parts = block.split(b"\n") if len(block) > self.limit else None
            if parts is None or max(map(len, parts)) <= self.limit:  # no long line: decode all at once
                # ('\n' ends any incomplete UTF-8 sequence, so this equals decoding line by line)
                text = _decode(block)
                lines = text.split("\n")
                out.extend([line.rstrip("\r") for line in lines] if "\r" in text else lines)
            else:
                for raw in parts:
                    self._line(raw, out)
            del pending[: last + 1]
        while len(pending) > self.limit:  # an unterminated line already too long: pass a piece on
            cut = _cut(pending, self.limit)
            out.append(_decode(pending[:cut]) + CONTINUED)
            del pending[:cut]
        return out

    def finish(self) -> list[str]:
        out: list[str] = []
        if self._pending:
            self._line(self._pending, out)
            self._pending = bytearray()
        return out

    def _line(self, raw: bytes | bytearray, out: list[str]) -> None:
        view = memoryview(raw)
        while len(view) > self.limit:
            cut = _cut(view, self.limit)
            out.append(_decode(bytes(view[:cut])) + CONTINUED)
            view = view[cut:]
        out.append(_decode(bytes(view)).rstrip("\r"))


class OutputLog:
    """Appends an execution's output lines to its ``output.log``, up to ``limit_bytes``.

    Use as a context manager (opens in append mode, creating the file; an existing file's bytes count
    towards the limit)::

        with OutputLog(path, limit_bytes) as output:
            runner.stream_and_wait(container, output.tee(on_line), ...)

    Past the limit nothing more is written; a line says so and where, ``truncated`` turns true, and
    later lines are only counted (``lines_dropped``, ``bytes_dropped``).
    """

    def __init__(self, path: Path, limit_bytes: int = DEFAULT_LIMIT_BYTES) -> None:
        self.path = Path(path)
        self.limit_bytes = int(limit_bytes)
        self.bytes_written = 0
        """Bytes this writer appended (the truncation lines included)."""
        self.lines_written = 0
        self.lines_dropped = 0
        self.bytes_dropped = 0
        self.truncated = False
        self.content_limit = max(0, self.limit_bytes - TRUNCATION_RESERVE)
        """Bytes of output lines the file may hold (the limit less the reserve for truncation lines)."""
        self._fd: int | None = None
        self._start = 0

    @property
    def size(self) -> int:
        """Bytes the file holds now: what counts towards the execution's disk quota."""
        return self._start + self.bytes_written

    def open(self) -> OutputLog:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
            self._fd = os.open(self.path, flags, 0o644)
            self._start = os.fstat(self._fd).st_size
        return self

    def close(self) -> None:
        if self._fd is None:
            return
        try:
            if self.truncated and self.lines_dropped:
                self._append(
                    f"{TRUNCATED_PREFIX}: {self.lines_dropped:,} later line(s), {self.bytes_dropped:,} "
                    "bytes, were left out.\n"
                )
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> OutputLog:
        return self.open()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def write_line(self, line: str) -> None:
        """Append ``line`` and a newline, unless the log is full (then only count it). A line longer
        than ``LINE_LIMIT`` bytes is written in pieces, as :class:`LineSplitter` makes them."""
        data = (line + "\n").encode("utf-8", errors="replace")
        if len(data) > MAX_LINE_BYTES:
            splitter = LineSplitter()
            for piece in splitter.feed(data[:-1]) + splitter.finish():
                self.write_line(piece)
            return
        if not self.truncated and self._start + self.bytes_written + len(data) > self.content_limit:
            self._truncate()
        if self.truncated:
            self.lines_dropped += 1
            self.bytes_dropped += len(data)
            return
        if self._fd is not None:
            written = os.write(self._fd, data)  # one write per line: readers never see half of one
            self.bytes_written += written
            if written < len(data):  # not seen on regular files; finish the line anyway
                self._append(data[written:])
        else:
            self._append(data)  # raises: not open
        self.lines_written += 1

    def tee(self, on_line: Callable[[str], None]) -> Callable[[str], None]:
        """A line sink that appends to this log, then passes the line on."""

        def sink(line: str) -> None:
            self.write_line(line)
            on_line(line)

        return sink

    def _truncate(self) -> None:
        self.truncated = True
        self._append(
            f"{TRUNCATED_PREFIX} at byte {self.size:,} after {self.lines_written:,} line(s) of this run: "
            f"it reached its limit of {self.limit_bytes:,} bytes; later output is not kept in this "
            "file.\n"
        )

    def _append(self, data: str | bytes) -> None:
        if self._fd is None:
            raise ValueError(f"{self.path} is not open; use OutputLog as a context manager")
        raw = data.encode("utf-8", errors="replace") if isinstance(data, str) else data
        view = memoryview(raw)
        while view:  # a regular file takes the whole write; the loop only guards against short writes
            written = os.write(self._fd, view)
            self.bytes_written += written
            view = view[written:]


def tail(path: Path, lines: int = 40) -> tuple[list[str], int]:
    """The last ``lines`` complete lines of a log and the offset just after them (where a follower
    continues with :func:`read_from`). Reads backwards in blocks: the cost is that of the lines shown,
    not of the file. A missing file has no lines (offset 0)."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return [], 0
    with handle:
        position = os.fstat(handle.fileno()).st_size
        blocks: list[bytes] = []
        newlines = 0
        while position > 0 and newlines <= lines:  # one newline more than lines: the first is whole too
            start = max(0, position - READ_BLOCK)
            handle.seek(start)
            block = handle.read(position - start)
            blocks.append(block)
            newlines += block.count(b"\n")
            position = start
    data = b"".join(reversed(blocks))
    complete_end = data.rfind(b"\n") + 1
    found = data[:complete_end].split(b"\n")[:-1]
    if position > 0:
        found = found[1:]  # the first may be cut by the block boundary
    return ([_decode(raw) for raw in found[-lines:]] if lines > 0 else []), position + complete_end


def read_from(path: Path, offset: int, max_bytes: int = 1024 * 1024) -> tuple[list[str], int]:
    """Complete lines from ``offset`` on (reading at most ``max_bytes``), and the offset to continue
    from. A line still being written (no ``\\n`` yet) is left for the next call."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return [], offset
    size = max(max_bytes, MAX_LINE_BYTES)  # at least one whole line of an OutputLog
    with handle:
        handle.seek(offset)
        data = handle.read(size)
    complete_end = data.rfind(b"\n") + 1
    if complete_end == 0 and len(data) == size:  # a longer line (not written by OutputLog): pass it on
        return [_decode(data)], offset + size
    return [_decode(raw) for raw in data[:complete_end].split(b"\n")[:-1]], offset + complete_end
