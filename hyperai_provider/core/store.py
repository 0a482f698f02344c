"""The Gear store: gears, executions, datasets and versions in SQL (SQLite by default).

Records are pydantic models kept as JSON documents beside a few indexed columns; the document is the
truth, the columns serve queries. Safe for several processes: SQLite writes take the database lock at
``BEGIN IMMEDIATE``, so read-modify-write sequences (id allocation, state transitions) never interleave.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from hyperai_provider.core.metric_store import MetricStore
from hyperai_provider.core.records import advance, document_of, parse_record, read_records
from hyperai_provider.exceptions import ConflictError, NotFoundError, StorageError
from hyperai_provider.models import (
    Dataset,
    DatasetVersion,
    ExecutionRecord,
    ExecutionState,
    Gear,
    execution_id,
)

Named = TypeVar("Named", Gear, Dataset)

RESERVE_BYTES = 2 * 1024 * 1024
"""Space set aside beside a SQLite store file (``store.reserve``): given up once the disk is full, so the
records of executions that filled it can still be closed; set aside again when a store opens with room."""

metadata = sa.MetaData()

gears_table = sa.Table(
    "hyperai_gears",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False, default=""),
    sa.Column("next_number", sa.Integer, nullable=False, default=1),
    sa.Column("document", sa.Text, nullable=False),
)

executions_table = sa.Table(
    "hyperai_executions",
    metadata,
    sa.Column("id", sa.String(120), primary_key=True),
    sa.Column("gear", sa.String(100), nullable=False, index=True),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("state", sa.String(20), nullable=False, index=True),
    sa.Column("parent", sa.String(120), nullable=True, index=True),
    sa.Column("document", sa.Text, nullable=False),
    sa.UniqueConstraint("gear", "number"),
)

datasets_table = sa.Table(
    "hyperai_datasets",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("next_version", sa.Integer, nullable=False, default=1),
    sa.Column("document", sa.Text, nullable=False),
)

dataset_versions_table = sa.Table(
    "hyperai_dataset_versions",
    metadata,
    sa.Column("dataset", sa.String(100), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("document", sa.Text, nullable=False),
)


def _make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 60})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's implicit transactions defer the lock).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class GearStore:
    """All persistent records. One instance per process is enough; it is thread-safe through its pool."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _make_engine(url)
        metadata.create_all(self.engine)
        self.metrics = MetricStore(self.engine, self._write)
        """Metric points, parameters and ingest cursors of executions (deleted with them)."""
        local = url.startswith("sqlite:///") and url != "sqlite:///:memory:"
        self.reserve = Path(url.removeprefix("sqlite:///")).with_suffix(".reserve") if local else None
        self._set_reserve_aside()

    def _set_reserve_aside(self) -> None:
        if self.reserve is None or self.reserve.exists():
            return
        try:
            fd = os.open(self.reserve, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError:  # made by another process meanwhile, or no room for even the name
            return
        try:
            os.posix_fallocate(fd, 0, RESERVE_BYTES)
        except OSError:  # no room (or no fallocate): go without
            self.reserve.unlink(missing_ok=True)
        finally:
            os.close(fd)

    def release_reserve(self) -> bool:
        """Give the reserve up if the disk is full (less free than the reserve): the closer calls this once
        the container that filled it stopped, so closing its record finds room. True if released."""
        if self.reserve is None:
            return False
        try:
            free = os.statvfs(self.reserve.parent)
            if free.f_bavail * free.f_frsize >= RESERVE_BYTES:
                return False
            self.reserve.unlink()
        except OSError:
            return False
        return True

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction; a full disk is a StorageError (SQLite rolled the transaction back)."""
        try:
            with self.engine.begin() as connection:
                yield connection
        except sa.exc.OperationalError as error:
            if "database or disk is full" not in str(error.orig):
                raise
            full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            raise StorageError.from_os_error(full, "writing the Gear store") from error

    # -- gears -------------------------------------------------------------------------------------

    def _named(self, connection: Connection, model: type[Named], name: str) -> Named | None:
        table = _TABLES[model]
        row = connection.execute(sa.select(table.c.document).where(table.c.name == name)).first()
        return model.model_validate_json(row.document) if row is not None else None

    def _get(self, model: type[Named], name: str) -> Named:
        with self.engine.connect() as connection:
            found = self._named(connection, model, name)
        if found is None:
            raise _missing(model, name)
        return found

    def _list(self, model: type[Named]) -> list[Named]:
        table = _TABLES[model]
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(table.c.document).order_by(table.c.name)).all()
        return [model.model_validate_json(row.document) for row in rows]

    def _update(self, model: type[Named], name: str, change: Callable[[Named], Named]) -> Named:
        """Read, change, validate and write one gear or dataset atomically."""
        table = _TABLES[model]
        with self._write() as connection:
            current = self._named(connection, model, name)
            if current is None:
                raise _missing(model, name)
            changed = model.model_validate(change(current).model_dump())
            values: dict[str, Any] = {"document": changed.model_dump_json()}
            if model is Gear:
                values["owner"] = changed.owner
            connection.execute(table.update().where(table.c.name == name).values(**values))
            return changed

    # -- gears -------------------------------------------------------------------------------------

    def ensure_gear(self, name: str, owner: str) -> Gear:
        """Return the gear, creating it (owned by ``owner``) on first use."""
        with self._write() as connection:
            gear = self._named(connection, Gear, name)
            if gear is not None:
                return gear
            gear = Gear(name=name, owner=owner)
            connection.execute(
                gears_table.insert().values(name=name, owner=owner, next_number=1, document=gear.model_dump_json())
            )
            return gear

    def get_gear(self, name: str) -> Gear:
        return self._get(Gear, name)

    def list_gears(self) -> list[Gear]:
        return self._list(Gear)

    def update_gear(self, name: str, change: Callable[[Gear], Gear]) -> Gear:
        return self._update(Gear, name, change)

    def delete_gear_row(self, name: str) -> None:
        with self._write() as connection:
            MetricStore.delete_for(connection, sa.select(executions_table.c.id).where(executions_table.c.gear == name))
            connection.execute(executions_table.delete().where(executions_table.c.gear == name))
            connection.execute(gears_table.delete().where(gears_table.c.name == name))

    # -- executions --------------------------------------------------------------------------------

    def create_execution(
        self, gear: str, owner: str, build: Callable[[str, int], ExecutionRecord]
    ) -> ExecutionRecord:
        """Allocate the gear's next number (never reused) and insert the record ``build(id, n)`` returns;
        refused when the gear exists and belongs to another user (checked in the same transaction)."""
        existing = self.ensure_gear(gear, owner)
        if existing.owner != owner:
            raise ConflictError(
                f"Gear {gear!r} belongs to another user; executions run only in their owner's gear.",
                "Use a gear name of your own (gear=...).",
            )
        with self._write() as connection:
            number = connection.execute(
                sa.select(gears_table.c.next_number).where(gears_table.c.name == gear)
            ).scalar_one()
            connection.execute(
                gears_table.update().where(gears_table.c.name == gear).values(next_number=number + 1)
            )
            record = build(execution_id(gear, number), number)
            connection.execute(executions_table.insert().values(**self._execution_row(record)))
            return record

    @staticmethod
    def _execution_row(record: ExecutionRecord) -> dict[str, Any]:
        return {
            "id": record.id,
            "gear": record.gear,
            "number": record.number,
            "state": record.state.value,
            "parent": record.parent,
            "document": document_of(record),
        }

    def get_execution(self, id_: str) -> ExecutionRecord:
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(executions_table.c.document).where(executions_table.c.id == id_)
            ).first()
        if row is None:
            raise NotFoundError(
                f"Execution {id_!r} does not exist.", "List executions with `hyperai executions GEAR`."
            )
        return parse_record(id_, row.document)

    def list_executions(
        self, gear: str | None = None, states: Collection[ExecutionState] | None = None
    ) -> list[ExecutionRecord]:
        query = sa.select(executions_table.c.id, executions_table.c.document).order_by(
            executions_table.c.gear, executions_table.c.number
        )
        if gear is not None:
            query = query.where(executions_table.c.gear == gear)
        if states:
            query = query.where(executions_table.c.state.in_([state.value for state in states]))
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return read_records(rows)

    def children_of(self, id_: str) -> list[ExecutionRecord]:
        query = sa.select(executions_table.c.id, executions_table.c.document).where(
            executions_table.c.parent == id_
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return read_records(rows)

    def update_execution(
        self, id_: str, change: Callable[[ExecutionRecord], ExecutionRecord]
    ) -> ExecutionRecord:
        """Read, change and write one record atomically."""
        with self._write() as connection:
            row = connection.execute(
                sa.select(executions_table.c.document).where(executions_table.c.id == id_)
            ).first()
            if row is None:
                raise NotFoundError(f"Execution {id_!r} does not exist.")
            record = change(parse_record(id_, row.document))
            values = self._execution_row(record)
            values.pop("id")
            connection.execute(executions_table.update().where(executions_table.c.id == id_).values(**values))
            return record

    def transition(
        self, id_: str, state: ExecutionState, message: str = "", **fields: Any
    ) -> ExecutionRecord:
        """Move an execution to ``state`` (checked against the state machine) and set ``fields``."""

        def change(record: ExecutionRecord) -> ExecutionRecord:
            return advance(record, state, message, **fields)

        return self.update_execution(id_, change)

    def delete_execution_row(self, id_: str) -> None:
        with self._write() as connection:
            MetricStore.delete_for(connection, [id_])
            connection.execute(executions_table.delete().where(executions_table.c.id == id_))

    # -- datasets ----------------------------------------------------------------------------------

    def create_dataset(self, dataset: Dataset) -> Dataset:
        with self._write() as connection:
            if self._named(connection, Dataset, dataset.name) is not None:
                raise ConflictError(
                    f"Dataset {dataset.name!r} already exists.", "Add a version to it, or pick another name."
                )
            connection.execute(
                datasets_table.insert().values(name=dataset.name, next_version=1, document=dataset.model_dump_json())
            )
        return dataset

    def get_dataset(self, name: str) -> Dataset:
        return self._get(Dataset, name)

    def list_datasets(self) -> list[Dataset]:
        return self._list(Dataset)

    def update_dataset(self, name: str, change: Callable[[Dataset], Dataset]) -> Dataset:
        return self._update(Dataset, name, change)

    def reserve_dataset_version(self, name: str) -> int:
        """Take the dataset's next version number (never reused, even if the write fails)."""
        with self._write() as connection:
            number = connection.execute(
                sa.select(datasets_table.c.next_version).where(datasets_table.c.name == name)
            ).scalar_one_or_none()
            if number is None:
                raise NotFoundError(
                    f"Dataset {name!r} does not exist.", f"Create it first: `hyperai dataset create {name}`."
                )
            connection.execute(
                datasets_table.update().where(datasets_table.c.name == name).values(next_version=number + 1)
            )
            return int(number)

    def add_dataset_version(self, version: DatasetVersion) -> DatasetVersion:
        with self._write() as connection:
            connection.execute(
                dataset_versions_table.insert().values(
                    dataset=version.dataset, version=version.version, document=version.model_dump_json()
                )
            )
        return version

    def list_dataset_versions(self, name: str) -> list[DatasetVersion]:
        query = (
            sa.select(dataset_versions_table.c.document)
            .where(dataset_versions_table.c.dataset == name)
            .order_by(dataset_versions_table.c.version)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [DatasetVersion.model_validate_json(row.document) for row in rows]

    def delete_dataset_version_row(self, name: str, version: int) -> None:
        with self._write() as connection:
            connection.execute(
                dataset_versions_table.delete().where(
                    (dataset_versions_table.c.dataset == name) & (dataset_versions_table.c.version == version)
                )
            )

    def delete_dataset_row(self, name: str) -> None:
        with self._write() as connection:
            connection.execute(
                dataset_versions_table.delete().where(dataset_versions_table.c.dataset == name)
            )
            connection.execute(datasets_table.delete().where(datasets_table.c.name == name))


_TABLES: dict[type[Gear] | type[Dataset], sa.Table] = {Gear: gears_table, Dataset: datasets_table}


def _missing(model: type[Gear] | type[Dataset], name: str) -> NotFoundError:
    if model is Gear:
        return NotFoundError(f"Gear {name!r} does not exist.", "List gears with `hyperai gears`.")
    return NotFoundError(f"Dataset {name!r} does not exist.", "List datasets with `hyperai datasets`.")
