"""Execution records as stored: valid by construction, readable after any single bad write.

:func:`advance` is the state machine's one enforcement point; :func:`revise` the one way to change fields
(the whole record is validated again, which ``model_copy`` would skip); :func:`document_of` refuses a
record that would not read back (NaN has no JSON form); :func:`read_records` skips an unreadable row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from hyperai_provider.exceptions import ConfigurationError, ConflictError
from hyperai_provider.models import ALLOWED_TRANSITIONS, ExecutionRecord, ExecutionState, StateChange, utcnow

log = logging.getLogger(__name__)


def document_of(record: ExecutionRecord) -> str:
    """The JSON kept for ``record``, checked to read back as the same record before anything is written:
    one bad write must never make a gear's history unreadable."""
    document = record.model_dump_json()
    try:
        ExecutionRecord.model_validate_json(document)
    except ValidationError as error:
        raise ConfigurationError(
            f"Execution {record.id} would be stored in a form that cannot be read back: {error.errors()[0]['msg']}.",
            "This is a bug in the caller: the record was changed without validation.",
        ) from error
    return document


def read_records(rows: Sequence[Any]) -> list[ExecutionRecord]:
    """Records from rows; an unreadable row is skipped and logged, never breaks a listing."""
    records = []
    for row in rows:
        try:
            records.append(ExecutionRecord.model_validate_json(row.document))
        except ValidationError as error:
            log.warning("Skipped an unreadable execution record (%s): %s", _row_id(row), error.errors()[0]["msg"])
    return records


def _row_id(row: Any) -> str:
    return str(getattr(row, "id", None) or "unknown id")


def parse_record(id_: str, document: str) -> ExecutionRecord:
    try:
        return ExecutionRecord.model_validate_json(document)
    except ValidationError as error:
        raise ConflictError(
            f"The stored record of execution {id_} cannot be read ({error.errors()[0]['msg']}).",
            f"Delete it with `hyperai delete {id_} --yes`; other executions are not affected.",
        ) from error


def revise(record: ExecutionRecord, **fields: Any) -> ExecutionRecord:
    """``record`` with ``fields`` changed, the whole record validated again (``model_copy`` would not)."""
    try:
        return ExecutionRecord.model_validate({**record.model_dump(), **fields})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise ConfigurationError(f"Invalid change to execution {record.id}: {problems}.") from error


def advance(
    record: ExecutionRecord, state: ExecutionState, message: str = "", **fields: Any
) -> ExecutionRecord:
    """Return ``record`` moved to ``state`` with ``fields`` set, validated as a whole; refuse transitions
    the state machine does not allow."""
    if state is not record.state and state not in ALLOWED_TRANSITIONS[record.state]:
        raise ConflictError(
            f"Execution {record.id} cannot go from {record.state.value} to {state.value}.",
            "It is already closed." if record.closed else None,
        )
    now: datetime = utcnow()
    update: dict[str, Any] = {
        "state": state,
        "history": [*record.history, StateChange(state=state, at=now, message=message)],
        **fields,
    }
    if state is ExecutionState.RUNNING and record.started_at is None:
        update["started_at"] = now
    if state.closed:
        update["ended_at"] = now
    return revise(record, **update)
