"""Records valid by construction, old records readable, and one configuration for every Airflow process."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import sqlalchemy as sa

from hyperai_provider.core.gears import GearService
from hyperai_provider.core.records import advance
from hyperai_provider.core.store import executions_table
from hyperai_provider.exceptions import ConfigurationError, ConflictError
from hyperai_provider.models import ComputeType, ExecutionRecord, ExecutionState

CPU = ComputeType(name="cpu", cpus=1, memory=1024**3, disk_quota=1024**3)  # type: ignore[arg-type]


def add(service: GearService, gear: str = "g") -> ExecutionRecord:
    def build(id_: str, number: int) -> ExecutionRecord:
        return ExecutionRecord(id=id_, gear=gear, number=number, owner="alice", compute=CPU, image="img")

    return service.store.create_execution(gear, "alice", build)


def test_an_invalid_transition_field_is_refused_and_the_store_stays_readable(service: GearService) -> None:
    record = add(service)
    with pytest.raises(ConfigurationError, match="bytes_stored"):
        service.store.transition(record.id, ExecutionState.FAILED, bytes_stored="lots")
    with pytest.raises(ConfigurationError, match="cannot be read back"):  # NaN is no JSON number
        service.store.update_execution(record.id, lambda r: r.model_copy(update={"parameters": {"lr": float("nan")}}))
    with pytest.raises(ConfigurationError):
        advance(record, ExecutionState.PREPARING, exit_code="zero")
    assert service.get(record.id).state is ExecutionState.CREATED  # nothing was written
    assert [r.id for r in service.executions()] == [record.id]


def test_a_version_1_record_with_extra_is_upgraded_when_read(service: GearService) -> None:
    record = add(service)
    old = json.loads(record.model_dump_json())
    for field in ("runner", "stop_requested", "synchronized", "workspace", "ended_because"):
        old.pop(field)
    old.update(
        schema_version=1,
        mode="workspace",
        extra={
            "stop_requested": "stopped by user",
            "runner_host": "worker-1",
            "runner_pid": 4242,
            "workspace_url": "http://127.0.0.1:1234/lab",
            "idle_timeout": 60.0,
            "ended_because": "idle",
        },
    )
    with service.store.engine.begin() as connection:
        connection.execute(
            executions_table.update().where(executions_table.c.id == record.id).values(document=json.dumps(old))
        )
    upgraded = service.get(record.id)
    assert upgraded.schema_version == 2
    assert upgraded.stop_requested == "stopped by user" and upgraded.ended_because == "idle"
    assert upgraded.runner is not None and (upgraded.runner.host, upgraded.runner.pid) == ("worker-1", 4242)
    assert upgraded.workspace is not None and upgraded.workspace.idle_timeout == 60.0
    # a change writes it back as version 2
    service.store.transition(record.id, ExecutionState.FAILED, "x")
    with service.store.engine.connect() as connection:
        document = connection.execute(sa.select(executions_table.c.document)).scalar_one()
    assert json.loads(document)["schema_version"] == 2 and "extra" not in json.loads(document)


def test_one_unreadable_row_never_breaks_listings(service: GearService, caplog: pytest.LogCaptureFixture) -> None:
    good, bad = add(service), add(service)
    with service.store.engine.begin() as connection:
        connection.execute(
            executions_table.update().where(executions_table.c.id == bad.id).values(document='{"id": 1}')
        )
    with caplog.at_level(logging.WARNING):
        assert [r.id for r in service.executions()] == [good.id]
    assert any("unreadable" in message for message in caplog.messages)
    with pytest.raises(ConflictError, match=f"hyperai delete {bad.id}"):
        service.get(bad.id)
    service.lifecycle_for("alice").delete_execution(bad.id)
    assert [r.id for r in service.executions()] == [good.id]


def test_the_trigger_rebuilds_its_service_from_the_connection_with_extras(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hyperai_provider.triggers.workspace import WorkspaceTrigger

    root = tmp_path / "from-connection"
    monkeypatch.setenv(
        "AIRFLOW_CONN_HYPERAI_DEFAULT",
        json.dumps({"conn_type": "hyperai", "extra": {"storage_root": str(root), "overlay": "off"}}),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        json.dumps({"conn_type": "smtp", "host": "mail.example.test", "port": 2525, "extra": {"from_email": "a@b.c"}}),
    )
    _, kwargs = WorkspaceTrigger("g/1", poll_interval=1).serialize()
    assert kwargs == {"execution_id": "g/1", "hyperai_conn_id": "hyperai_default", "poll_interval": 1}
    backend = WorkspaceTrigger(**kwargs).workspaces().backend
    assert backend.settings.storage_root == root and backend.settings.overlay == "off"
    assert backend.smtp is not None and (backend.smtp.host, backend.smtp.port) == ("mail.example.test", 2525)


def test_hyperai_options_in_airflow_cfg_are_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.configuration import conf

    from hyperai_provider.hooks.hyperai import HyperAIHook

    monkeypatch.delenv("HYPERAI_STORAGE_ROOT", raising=False)
    if not conf.has_section("hyperai"):
        conf.add_section("hyperai")
    monkeypatch.setattr(conf, "get", _with_option(conf.get, "storage_root", str(tmp_path / "from-cfg")))
    assert HyperAIHook().settings().storage_root == tmp_path / "from-cfg"


def _with_option(get, key: str, value: str):  # type: ignore[no-untyped-def]
    def patched(section: str, option: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if (section, option) == ("hyperai", key):
            return value
        return get(section, option, *args, **kwargs)

    return patched
