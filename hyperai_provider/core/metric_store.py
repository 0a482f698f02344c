"""Metrics in the Gear store: points (key, step, value, time), parameters and ingest cursors per execution.

:class:`MetricStore` works on the Gear store's engine and write transactions (``GearStore.metrics``).
Every change of one batch happens in one transaction: steps are assigned there (a point without a step
gets its key's last step + 1, the first is 1), so concurrent writers never give two points the same
implicit step, and an ingest cursor moves only if it still is where the batch was read from (two
processes reading the same file never store a record twice).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

metric_metadata = sa.MetaData()

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only

metrics_table = sa.Table(
    "hyperai_metrics",
    metric_metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("execution_id", sa.String(120), nullable=False),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_hyperai_metrics_execution_key_step", "execution_id", "key", "step"),
)

metric_params_table = sa.Table(
    "hyperai_metric_params",
    metric_metadata,
    sa.Column("execution_id", sa.String(120), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
)

metric_cursors_table = sa.Table(
    "hyperai_metric_cursors",
    metric_metadata,
    sa.Column("execution_id", sa.String(120), primary_key=True),
    sa.Column("source", sa.String(40), primary_key=True),
    sa.Column("offset", sa.BigInteger, nullable=False),
    sa.Column("skipping", sa.Boolean, nullable=False, default=False),
)

_TABLES = (metrics_table, metric_params_table, metric_cursors_table)


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One value of a metric; ``step`` None until stored (then the key's next step)."""

    key: str
    value: float
    step: int | None
    at: float
    """Unix time (seconds)."""


@dataclass(frozen=True, slots=True)
class MetricParam:
    """A parameter (``log_param``); ``value`` is its JSON text. The empty string (``clear_param``)
    removes it."""

    key: str
    value: str
    at: float

    @property
    def cleared(self) -> bool:
        return self.value == '""'


@dataclass(frozen=True, slots=True)
class MetricClear:
    """``clear_metric``: the key's points are deleted (its steps start again at 1)."""

    key: str
    at: float


MetricEvent = MetricPoint | MetricParam | MetricClear


@dataclass(frozen=True, slots=True)
class Cursor:
    """How far an ingest source (a file) has been read: its byte offset, and whether it is in the middle
    of a record too long to keep (skipped up to the next newline)."""

    offset: int = 0
    skipping: bool = False


@dataclass(frozen=True, slots=True)
class MetricSummary:
    key: str
    last: float
    last_step: int
    count: int
    at: float


class MetricStore:
    """Metric points, parameters and cursors; ``write`` is the Gear store's write transaction."""

    def __init__(self, engine: Engine, write: Callable[[], AbstractContextManager[Connection]]) -> None:
        self.engine = engine
        self._write = write
        metric_metadata.create_all(engine)

    # -- writing ------------------------------------------------------------------------------------------

    def apply(
        self,
        execution_id: str,
        events: Sequence[MetricEvent],
        source: str | None = None,
        read_from: Cursor | None = None,
        read_to: Cursor | None = None,
    ) -> list[MetricEvent] | None:
        """Store ``events`` in order, in one transaction; return them as stored (points with their steps).

        With ``source``, the batch was read from ``read_from`` to ``read_to`` of that source: the cursor
        moves to ``read_to`` with it, and nothing is stored (None) if another process moved it first.
        """
        with self._write() as connection:
            if source is not None:
                assert read_from is not None and read_to is not None
                if self._cursor(connection, execution_id, source) != read_from:
                    return None
                self._set_cursor(connection, execution_id, source, read_to)
            steps = self._last_steps(
                connection, execution_id, {e.key for e in events if isinstance(e, MetricPoint)}
            )
            stored: list[MetricEvent] = []
            points: list[dict[str, Any]] = []
            for event in events:
                if isinstance(event, MetricPoint):
                    step = event.step if event.step is not None else steps.get(event.key, 0) + 1
                    steps[event.key] = max(step, steps.get(event.key, step))
                    event = MetricPoint(event.key, event.value, step, event.at)
                    points.append({"execution_id": execution_id, "key": event.key, "step": step,
                                   "value": event.value, "at": event.at})  # fmt: skip
                else:
                    self._insert_points(connection, points)  # in order: a clear deletes earlier points only
                    points = []
                    self._apply_other(connection, execution_id, event)
                    if isinstance(event, MetricClear):
                        steps.pop(event.key, None)
                stored.append(event)
            self._insert_points(connection, points)
        return stored

    def add(self, execution_id: str, events: Sequence[MetricEvent]) -> list[MetricEvent]:
        """Store ``events`` (points, parameters, clears) in one transaction."""
        stored = self.apply(execution_id, events)
        assert stored is not None
        return stored

    @staticmethod
    def _insert_points(connection: Connection, points: list[dict[str, Any]]) -> None:
        if points:
            connection.execute(metrics_table.insert(), points)

    @staticmethod
    def _apply_other(connection: Connection, execution_id: str, event: MetricParam | MetricClear) -> None:
        if isinstance(event, MetricClear):
            connection.execute(
                metrics_table.delete().where(
                    (metrics_table.c.execution_id == execution_id) & (metrics_table.c.key == event.key)
                )
            )
            return
        table = metric_params_table
        where = (table.c.execution_id == execution_id) & (table.c.key == event.key)
        connection.execute(table.delete().where(where))
        if not event.cleared:
            connection.execute(
                table.insert().values(
                    execution_id=execution_id, key=event.key, value=event.value, at=event.at
                )
            )

    @staticmethod
    def _last_steps(connection: Connection, execution_id: str, keys: set[str]) -> dict[str, int]:
        if not keys:
            return {}
        t = metrics_table
        query = (
            sa.select(t.c.key, sa.func.max(t.c.step))
            .where((t.c.execution_id == execution_id) & t.c.key.in_(sorted(keys)))
            .group_by(t.c.key)
        )
        return {key: int(step) for key, step in connection.execute(query)}

    # -- cursors ------------------------------------------------------------------------------------------

    def cursor(self, execution_id: str, source: str) -> Cursor:
        with self.engine.connect() as connection:
            return self._cursor(connection, execution_id, source)

    @staticmethod
    def _cursor(connection: Connection, execution_id: str, source: str) -> Cursor:
        t = metric_cursors_table
        row = connection.execute(
            sa.select(t.c.offset, t.c.skipping).where(
                (t.c.execution_id == execution_id) & (t.c.source == source)
            )
        ).first()
        return Cursor() if row is None else Cursor(int(row.offset), bool(row.skipping))

    @staticmethod
    def _set_cursor(connection: Connection, execution_id: str, source: str, cursor: Cursor) -> None:
        t = metric_cursors_table
        where = (t.c.execution_id == execution_id) & (t.c.source == source)
        values = {"offset": cursor.offset, "skipping": cursor.skipping}
        if connection.execute(t.update().where(where).values(**values)).rowcount == 0:
            connection.execute(t.insert().values(execution_id=execution_id, source=source, **values))

    # -- reading ------------------------------------------------------------------------------------------

    def points(self, execution_id: str, key: str | None = None) -> list[MetricPoint]:
        """Every point of an execution (or of one key), in the order they were stored."""
        t = metrics_table
        where = t.c.execution_id == execution_id
        if key is not None:
            where = where & (t.c.key == key)
        query = sa.select(t.c.key, t.c.value, t.c.step, t.c.at).where(where).order_by(t.c.id)
        with self.engine.connect() as connection:
            return [MetricPoint(row.key, row.value, row.step, row.at) for row in connection.execute(query)]

    def count(self, execution_id: str) -> int:
        t = metrics_table
        query = sa.select(sa.func.count()).select_from(t).where(t.c.execution_id == execution_id)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def summary(self, execution_id: str) -> list[MetricSummary]:
        """Per key (by name): the last value stored, its step and time, and how many points there are."""
        t = metrics_table
        grouped = (
            sa.select(t.c.key, sa.func.count().label("n"), sa.func.max(t.c.id).label("last"))
            .where(t.c.execution_id == execution_id)
            .group_by(t.c.key)
        )
        with self.engine.connect() as connection:
            counts = {row.last: row.n for row in connection.execute(grouped)}
            rows = connection.execute(
                sa.select(t.c.id, t.c.key, t.c.value, t.c.step, t.c.at).where(t.c.id.in_(list(counts)))
            ).all() if counts else []  # fmt: skip
        found = [MetricSummary(row.key, row.value, row.step, counts[row.id], row.at) for row in rows]
        return sorted(found, key=lambda summary: summary.key)

    def last_values(self, execution_id: str) -> dict[str, float]:
        """``{key: last value}`` (what a Gear task's XCom carries)."""
        return {summary.key: summary.last for summary in self.summary(execution_id)}

    def params(self, execution_id: str) -> dict[str, Any]:
        t = metric_params_table
        query = sa.select(t.c.key, t.c.value).where(t.c.execution_id == execution_id).order_by(t.c.key)
        with self.engine.connect() as connection:
            return {row.key: _json_value(row.value) for row in connection.execute(query)}

    # -- deleting -----------------------------------------------------------------------------------------

    @staticmethod
    def delete_for(connection: Connection, execution_ids: Iterable[str] | sa.Select[Any]) -> None:
        """Delete the metrics of executions (ids, or a select of ids) in the caller's transaction."""
        ids = execution_ids if isinstance(execution_ids, sa.Select) else list(execution_ids)
        for table in _TABLES:
            connection.execute(table.delete().where(table.c.execution_id.in_(ids)))


def _json_value(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return None if isinstance(value, float) and not math.isfinite(value) else value
