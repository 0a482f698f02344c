"""Response models of the JSON API (what the pages show, as data)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from hyperai_provider.models import ExecutionRecord, Gear


class GearOut(BaseModel):
    name: str
    owner: str
    visibility: str
    executions: int = Field(description="Executions the caller can see.")
    bytes_stored: int = Field(description="Bytes of those executions' own layers.")

    @classmethod
    def of(cls, gear: Gear, records: list[ExecutionRecord]) -> GearOut:
        return cls(
            name=gear.name,
            owner=gear.owner,
            visibility=gear.visibility.value,
            executions=len(records),
            bytes_stored=sum(r.bytes_stored or 0 for r in records),
        )


class ExecutionOut(BaseModel):
    id: str
    gear: str
    number: int
    state: str
    mode: str
    compute_type: str
    image: str
    owner: str
    started_at: datetime | None
    ended_at: datetime | None
    duration_seconds: float | None
    bytes_stored: int | None
    parent: str | None
    dag_id: str | None
    run_id: str | None
    task_id: str | None

    @classmethod
    def of(cls, record: ExecutionRecord) -> ExecutionOut:
        duration = None
        if record.started_at and record.ended_at:
            duration = (record.ended_at - record.started_at).total_seconds()
        airflow = record.airflow
        return cls(
            id=record.id,
            gear=record.gear,
            number=record.number,
            state=record.state.value,
            mode=record.mode.value,
            compute_type=record.compute.name,
            image=record.image,
            owner=record.owner,
            started_at=record.started_at,
            ended_at=record.ended_at,
            duration_seconds=duration,
            bytes_stored=record.bytes_stored,
            parent=record.parent,
            dag_id=airflow.dag_id if airflow else None,
            run_id=airflow.run_id if airflow else None,
            task_id=airflow.task_id if airflow else None,
        )


class FileEntryOut(BaseModel):
    path: str
    kind: str = Field(description="dir, file, symlink or other.")
    bytes: int | None


class ActionOut(BaseModel):
    """The outcome of an action, with where to look next."""

    message: str
    location: str | None = None
