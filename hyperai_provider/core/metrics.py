"""An execution's metrics: received in its container, validated and stored on the host, shown in its log.

Design (issue 12, ``openbayestool`` unchanged; issue 13, metric lines for any image):

- **In the container** (:mod:`core.metric_container`): a receiver started before the command (which
  waits until it listens, ~10 ms), detached, on ``127.0.0.1:<random port>`` in the container's own
  network namespace (nothing outside the container reaches it), with a random token made for this
  execution; it appends each request to ``<execution folder>/metrics/events.jsonl`` (outside the
  working directory, never shared).
- **On the host**: :class:`MetricsIngest` reads that file from a cursor kept in the store (regular
  file only, opened without following symlinks, at most :func:`folder_limit` bytes, records longer
  than 64 KiB skipped), validates each record (:mod:`core.metric_input`), stores the batch and moves
  the cursor in one transaction, and writes ``[hyperai] metric acc=0.98 (step 3)`` lines to the task
  log (at most 20 per 10 s, then one line saying how many more). A Task follows the file every
  0.5 s while it runs and passes every output line through :meth:`MetricsIngest.feed_line`; the
  closer takes what is left (and a workspace's output lines) when the execution closes.
- **Quota**: the folder counts towards the execution's disk quota and is held to its own limit
  (:func:`~core.quota.over_disk_quota`); it is removed once its records are stored.

An image without ``/bin/sh`` cannot be wrapped (its commands need a shell already); one without
``python3`` runs without a receiver (``openbayestool`` needs Python anyway); output lines work everywhere.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from hyperai_provider.core import safecopy
from hyperai_provider.core.backend import Backend
from hyperai_provider.core.metric_container import EVENTS_FILE
from hyperai_provider.core.metric_input import (
    Refused,
    looks_like_metric,
    parse_output_line,
    parse_receiver_record,
    shown,
)
from hyperai_provider.core.metric_store import Cursor, MetricClear, MetricEvent, MetricPoint
from hyperai_provider.core.quota import metrics_folder as folder_path
from hyperai_provider.core.quota import metrics_folder_limit as folder_limit
from hyperai_provider.models import ExecutionRecord

log = logging.getLogger(__name__)

SOURCE = "receiver"
MAX_RECORD = 64 * 1024
READ_CHUNK = 1024 * 1024
MAX_POINTS = 1_000_000
"""Points one execution may store; later ones are refused (logged once)."""
BATCH = 500
POLL_SECONDS = 0.5
SHOWN_PER_WINDOW = 20
WINDOW_SECONDS = 10.0


class _Shown:
    """Metric lines for the task log: at most ``SHOWN_PER_WINDOW`` per window, then a count."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self.emit = emit
        self.started = time.monotonic()
        self.count = 0
        self.hidden = 0
        self.latest = ""

    def line(self, text: str) -> None:
        self.tick()
        if self.count < SHOWN_PER_WINDOW:
            self.count += 1
            self.emit(text)
        else:
            self.hidden += 1
            self.latest = text

    def tick(self) -> None:
        if time.monotonic() - self.started >= WINDOW_SECONDS:
            self.flush()
            self.started, self.count = time.monotonic(), 0

    def flush(self) -> None:
        if self.hidden:
            self.emit(f"[hyperai] metrics: {self.hidden:,} more line(s) not shown (all stored); the latest: "
                      f"{self.latest.removeprefix('[hyperai] ')}")  # fmt: skip
            self.hidden = 0


def describe(event: MetricEvent) -> str:
    if isinstance(event, MetricPoint):
        return f"[hyperai] metric {event.key}={event.value:.6g} (step {event.step})"
    if isinstance(event, MetricClear):
        return f"[hyperai] metric {event.key} cleared"
    if event.cleared:
        return f"[hyperai] param {event.key} cleared"
    return f"[hyperai] param {event.key}={event.value[:200]}"


class MetricsIngest:
    """Takes one execution's metrics into the store: the receiver's file (from the stored cursor) and
    output lines. Thread-safe; nothing here raises into the execution (failures are logged)."""

    def __init__(
        self, backend: Backend, record: ExecutionRecord, on_line: Callable[[str], None] | None = None
    ):
        self.metrics = backend.store.metrics
        self.record = record
        self.folder = folder_path(backend.storage, record)
        self.limit = folder_limit(record)
        self.shown = _Shown(on_line or log.info)
        self.earliest = record.created_at.timestamp() - 60
        self._lock = threading.RLock()
        self._pending: list[MetricEvent] = []
        self._cursor: Cursor | None = None
        """Where reading goes on (None: from the stored cursor)."""
        self._stored: Cursor | None = None
        """The stored cursor, as this reader last saw or moved it."""
        self._points: int | None = None
        self._said: set[str] = set()

    # -- output lines -------------------------------------------------------------------------------------

    def feed_line(self, line: str) -> None:
        """One line of the program's output: stored if it is a metric line, refused with a reason if it
        looks like one and breaks a rule, ignored otherwise."""
        if not looks_like_metric(line):
            return
        parsed = parse_output_line(line, time.time())
        if parsed is None:
            return
        with self._lock:
            if isinstance(parsed, Refused):
                self._refuse(parsed.reason)
                return
            self._pending.append(parsed)
            if len(self._pending) >= BATCH:
                self._quietly(self.flush)

    def flush(self) -> None:
        """Store the output lines' metrics collected so far."""
        with self._lock:
            if not self._pending:
                return
            events, self._pending = self._pending, []
            self._show(self.metrics.add(self.record.id, self._capped(events)))

    # -- the receiver's file ------------------------------------------------------------------------------

    def poll(self, max_bytes: int = READ_CHUNK) -> bool:
        """Store the receiver's records from the cursor on (at most ``max_bytes``); True if more remain.

        No file, or nothing new in it: no query at all. Records without events (the receiver's start)
        move only the cursor kept here; the stored cursor moves with the next batch that has events
        (until then another reader would only read those records again)."""
        with self._lock:
            opened = self._open()
            if opened is None:
                return False
            fd, size = opened
            try:
                if self._cursor is None and size > 0:
                    self._stored = self._cursor = self.metrics.cursor(self.record.id, SOURCE)
                data = self._read(fd, size, self._cursor.offset, max_bytes) if self._cursor else b""
            finally:
                os.close(fd)
            if not data:
                return False
            assert self._cursor is not None and self._stored is not None
            lines, read_to = self._split(data, self._cursor)
            now = time.time()
            events: list[MetricEvent] = []
            for raw in lines:
                for parsed in parse_receiver_record(raw, now, self.earliest):
                    if isinstance(parsed, Refused):
                        self._refuse(parsed.reason)
                    else:
                        events.append(parsed)
            if events:
                stored = self.metrics.apply(
                    self.record.id, self._capped(events), SOURCE, self._stored, read_to
                )
                if stored is None:  # another process took these records: read on from where it got to
                    self._cursor = self._stored = self._points = None
                    return True
                self._stored = read_to
                self._show(stored)
            self._cursor = read_to
            return len(data) >= max_bytes

    def _open(self) -> tuple[int, int] | None:
        """The receiver's file, opened safely, and its size; None when there is none (or it is unsafe)."""
        try:
            folder = os.open(self.folder, safecopy.DIR_FLAGS)
        except FileNotFoundError:
            return None
        try:
            fd, st = safecopy.open_regular(EVENTS_FILE, dir_fd=folder)
        except FileNotFoundError:
            return None
        except safecopy.Unsafe as unsafe:
            self._say_once("unsafe", f"the receiver's file is a {unsafe.kind}, not a regular file: not read")
            return None
        finally:
            os.close(folder)
        return fd, st.st_size

    def _read(self, fd: int, size: int, offset: int, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of the file from ``offset``, never past :func:`folder_limit`."""
        length = min(max_bytes, self.limit - offset, size - offset)
        if size > self.limit and offset + max(length, 0) >= self.limit:
            self._say_once("limit", f"records past the first {self.limit:,} bytes of the receiver's file were "
                                    "left out (its limit: a sixteenth of the disk quota)")  # fmt: skip
        return os.pread(fd, length, offset) if length > 0 else b""

    def _split(self, data: bytes, cursor: Cursor) -> tuple[list[bytes], Cursor]:
        """Complete records of ``data`` and the cursor after them; a record longer than ``MAX_RECORD`` is
        refused and skipped to its newline (across reads: ``Cursor.skipping``)."""
        lines: list[bytes] = []
        position, skipping = 0, cursor.skipping
        while (end := data.find(b"\n", position)) >= 0:
            if not skipping and end - position > MAX_RECORD:
                self._refuse(f"a receiver record longer than {MAX_RECORD:,} bytes")
            elif not skipping:
                lines.append(data[position:end])
            skipping, position = False, end + 1
        if len(data) - position > MAX_RECORD or (skipping and position < len(data)):
            if not skipping:
                self._refuse(f"a receiver record longer than {MAX_RECORD:,} bytes")
            skipping, position = True, len(data)
        return lines, Cursor(cursor.offset + position, skipping)

    # -- following and finishing --------------------------------------------------------------------------

    @contextmanager
    def following(self, interval: float = POLL_SECONDS) -> Iterator[MetricsIngest]:
        """While the body runs, take the receiver's records and flush output metrics every ``interval``
        seconds; afterwards take everything left."""
        stop = threading.Event()

        def follow() -> None:
            while not stop.wait(interval):
                self._quietly(self.poll)
                self._quietly(self.flush)
                self.shown.tick()

        thread = threading.Thread(target=follow, name=f"metrics {self.record.id}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(timeout=30)
            self.finish()

    def finish(self) -> bool:
        """Take everything left (the execution has stopped); True when the receiver's file is consumed."""
        consumed = False
        with self._lock:
            for _ in range(100_000):
                more = self._quietly(self.poll)
                if more is False:
                    consumed = True
                    break
                if more is None:  # failed (logged)
                    break
            self._quietly(self.flush)
            self.shown.flush()
        return consumed

    def discard(self) -> None:
        """Remove the receiver's folder (its records are in the store)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------------------------

    def _capped(self, events: list[MetricEvent]) -> list[MetricEvent]:
        """``events`` without the points past :data:`MAX_POINTS` (refused, said once)."""
        if not events:
            return events
        points = self.metrics.count(self.record.id) if self._points is None else self._points
        kept: list[MetricEvent] = []
        cleared = False
        for event in events:
            if isinstance(event, MetricPoint):
                if points >= MAX_POINTS:
                    self._say_once(
                        "points", f"more than {MAX_POINTS:,} metric points: later points are refused"
                    )
                    continue
                points += 1
            cleared = cleared or isinstance(event, MetricClear)
            kept.append(event)
        self._points = None if cleared else points  # a clear deleted points: count them again next time
        return kept

    def _show(self, events: list[MetricEvent]) -> None:
        for event in events:
            self.shown.line(describe(event))

    def _refuse(self, reason: str) -> None:
        log.warning("Execution %s: metric refused: %s", self.record.id, reason)
        self.shown.line(f"[hyperai] metric refused: {reason}")

    def _say_once(self, what: str, text: str) -> None:
        if what not in self._said:
            self._said.add(what)
            log.warning("Execution %s: metrics: %s", self.record.id, text)
            self.shown.emit(f"[hyperai] metrics: {text}")  # once: never held back

    def _quietly(self, step: Callable[[], bool | None]) -> bool | None:
        try:
            return step()
        except Exception as error:
            log.warning(
                "Execution %s: taking metrics failed: %s", self.record.id, getattr(error, "headline", error)
            )
            return None

    def __repr__(self) -> str:
        return f"MetricsIngest({shown(self.record.id)})"
