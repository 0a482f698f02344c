"""An execution's metrics: received in its container, validated and stored on the host, shown in its log.

Design (issue 12, ``openbayestool`` unchanged; issue 13, metric lines for any image):

- **In the container**: the command is wrapped so that :mod:`core.metrics_receiver` starts first, in the
  background and detached, when the image has ``python3``; the user's command is exec'd at once (it
  never waits for the receiver). The receiver listens on ``127.0.0.1:<random port>`` in the
  container's own network namespace: nothing outside the container reaches it and nothing it serves
  leaves it. ``JOB_UPDATE_URL``/``OPENBAYES_JOB_URL`` point there, ``JOB_ACCESS_TOKEN``/
  ``OPENBAYES_TOKEN`` hold a random token made for this execution, and ``NO_PROXY`` keeps a proxy of
  the user's out of the way. It appends each request to ``/hyperai/metrics/events.jsonl``: the folder
  ``<execution folder>/metrics`` on the host, outside the working directory, never shared.
- **On the host**: :class:`MetricsIngest` reads that file from a cursor kept in the store (regular
  file only, opened without following symlinks, at most :func:`folder_limit` bytes, records longer
  than 64 KiB skipped), validates each record (:mod:`core.metric_input`), stores the batch and moves
  the cursor in one transaction, and writes ``[hyperai] metric acc=0.98 (step 3)`` lines to the task
  log (at most 20 per 10 s, then one line saying how many more). A Task follows the file every
  0.5 s while it runs and passes every output line through :meth:`MetricsIngest.feed_line`; the
  closer takes what is left (and a workspace's output lines) when the execution closes.
- **Quota**: the folder counts towards the execution's disk quota (:func:`over_quota_with_metrics`) and may
  hold at most :func:`folder_limit` bytes; it is removed once its records are in the store.

An image without ``/bin/sh`` cannot be wrapped (its commands need a shell already); one without
``python3`` runs without a receiver (``openbayestool`` needs Python anyway); output lines work everywhere.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from hyperai_provider.core import safecopy
from hyperai_provider.core.backend import Backend
from hyperai_provider.core.container import MountSpec
from hyperai_provider.core.metric_input import (
    BASE_PATH,
    Refused,
    looks_like_metric,
    parse_output_line,
    parse_receiver_record,
    shown,
)
from hyperai_provider.core.metric_store import Cursor, MetricClear, MetricEvent, MetricPoint
from hyperai_provider.core.quota import execution_usage
from hyperai_provider.core.storage import StorageRoot, atomic_write_bytes, tree_usage
from hyperai_provider.models import ExecutionRecord

log = logging.getLogger(__name__)

SOURCE = "receiver"
FOLDER = "metrics"
EVENTS_FILE = "events.jsonl"
CONTAINER_FOLDER = "/hyperai/metrics"
CONTAINER_RECEIVER = "/hyperai/bin/metrics-receiver.py"
PORTS = (20000, 32000)
"""Receiver ports: below Linux's ephemeral range (32768-60999), so no outgoing connection takes one."""
MAX_FOLDER = 256 * 1024**2
MAX_RECORD = 64 * 1024
READ_CHUNK = 1024 * 1024
MAX_POINTS = 1_000_000
"""Points one execution may store; later ones are refused (logged once)."""
BATCH = 500
POLL_SECONDS = 0.5
SHOWN_PER_WINDOW = 20
WINDOW_SECONDS = 10.0
WRAPPER = (
    "( command -v python3 >/dev/null 2>&1 && exec python3 -I -S {script} {port} {folder} {limit} "
    '</dev/null >/dev/null 2>&1 & ) ; exec "$@"'
)
"""``sh -c`` script: start the receiver detached (the subshell exits at once, so the receiver's parent is
the container's init, not the user's program, which ``wait`` would otherwise hang on), then exec the
command."""


def folder_path(storage: StorageRoot, record: ExecutionRecord) -> Path:
    return storage.execution_dir(record.gear, record.number) / FOLDER


def folder_limit(record: ExecutionRecord) -> int:
    """Most bytes the receiver's file may hold: a sixteenth of the disk quota, at most 256 MiB."""
    return min(int(record.compute.disk_quota) // 16, MAX_FOLDER)


def over_quota_with_metrics(backend: Backend, record: ExecutionRecord) -> str | None:
    """``quota.over_disk_quota`` with the metrics folder counted too (and held to its own limit)."""
    metrics = tree_usage(folder_path(backend.storage, record)).bytes
    if metrics > folder_limit(record):
        return (
            f"the metrics folder holds {metrics:,} bytes, over its limit of {folder_limit(record):,} bytes "
            f"(a sixteenth of compute type {record.compute.name!r}'s disk quota)"
        )
    used = execution_usage(backend, record) + metrics
    if used <= int(record.compute.disk_quota):
        return None
    return (
        f"disk quota exceeded: the execution holds {used:,} bytes (working directory, output log, metrics "
        f"and container files), over the {record.compute.disk_quota.human_readable()} quota of compute type "
        f"{record.compute.name!r}"
    )


@cache
def _receiver_source() -> tuple[bytes, str]:
    data = (Path(__file__).parent / "metrics_receiver.py").read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:12]


def receiver_script(storage: StorageRoot) -> Path:
    """The receiver script under the storage root (``bin/``), written once per version."""
    data, digest = _receiver_source()
    path = storage.root / "bin" / f"metrics-receiver-{digest}.py"
    if not path.is_file():
        atomic_write_bytes(path, data)
        path.chmod(0o644)
    return path


@dataclass(frozen=True)
class ContainerParts:
    """What an execution's container gets for metrics: mounts, environment and its command wrapped."""

    mounts: tuple[MountSpec, ...]
    environment: dict[str, str]
    port: int
    limit: int

    def command(self, command: list[str]) -> list[str]:
        """``command`` started after the receiver; an empty one (the image's own) is left alone."""
        if not command:
            return command
        script = WRAPPER.format(
            script=CONTAINER_RECEIVER, port=self.port, folder=CONTAINER_FOLDER, limit=self.limit
        )
        return ["/bin/sh", "-c", script, "hyperai", *command]


def container_parts(backend: Backend, record: ExecutionRecord) -> ContainerParts:
    folder = folder_path(backend.storage, record)
    folder.mkdir(parents=True, exist_ok=True)
    mounts = (
        MountSpec(str(folder), CONTAINER_FOLDER),
        MountSpec(str(receiver_script(backend.storage)), CONTAINER_RECEIVER, read_only=True),
    )
    port = PORTS[0] + secrets.randbelow(PORTS[1] - PORTS[0])
    token = secrets.token_urlsafe(24)
    url = f"http://127.0.0.1:{port}{BASE_PATH}"
    given = record.environment.get("NO_PROXY") or record.environment.get("no_proxy") or ""
    no_proxy = ",".join(dict.fromkeys([*filter(None, given.split(",")), "127.0.0.1", "localhost"]))
    environment = {
        "JOB_UPDATE_URL": url,
        "OPENBAYES_JOB_URL": url,
        "JOB_ACCESS_TOKEN": token,
        "OPENBAYES_TOKEN": token,
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
    }
    return ContainerParts(mounts, environment, port, folder_limit(record))


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
        """Store the receiver's records from the cursor on (at most ``max_bytes``); True if more remain."""
        with self._lock:
            cursor = self._cursor or self.metrics.cursor(self.record.id, SOURCE)
            data = self._read(cursor.offset, max_bytes)
            if not data:
                self._cursor = cursor
                return False
            lines, read_to = self._split(data, cursor)
            now = time.time()
            events: list[MetricEvent] = []
            for raw in lines:
                for parsed in parse_receiver_record(raw, now, self.earliest):
                    if isinstance(parsed, Refused):
                        self._refuse(parsed.reason)
                    else:
                        events.append(parsed)
            stored = self.metrics.apply(self.record.id, self._capped(events), SOURCE, cursor, read_to)
            if stored is None:  # another process took this batch
                self._cursor = self._points = None
                return True
            self._cursor = read_to
            self._show(stored)
            return len(data) >= max_bytes

    def _read(self, offset: int, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of the receiver's file from ``offset``, never past :func:`folder_limit`."""
        try:
            folder = os.open(self.folder, safecopy.DIR_FLAGS)
        except FileNotFoundError:
            return b""
        try:
            fd, st = safecopy.open_regular(EVENTS_FILE, dir_fd=folder)
        except FileNotFoundError:
            return b""
        except safecopy.Unsafe as unsafe:
            self._say_once("unsafe", f"the receiver's file is a {unsafe.kind}, not a regular file: not read")
            return b""
        finally:
            os.close(folder)
        try:
            size = min(max_bytes, self.limit - offset, st.st_size - offset)
            if st.st_size > self.limit and offset + max(size, 0) >= self.limit:
                self._say_once("limit", f"records past the first {self.limit:,} bytes of the receiver's file were "
                                        "left out (its limit: a sixteenth of the disk quota)")  # fmt: skip
            return os.pread(fd, size, offset) if size > 0 else b""
        finally:
            os.close(fd)

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
