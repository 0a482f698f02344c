"""Email notifications on a real local SMTP server (aiosmtpd), and an unreachable one."""

from __future__ import annotations

import logging
import os

import pytest

from hyperai_provider.core.gears import GearService
from hyperai_provider.exceptions import ExecutionFailedError
from hyperai_provider.models import ExecutionState, NotificationSettings, NotifyEvent
from hyperai_provider.models.spec import ExecutionSpec
from tests.conftest import Inbox, free_port

pytestmark = pytest.mark.docker


def task(gear: str, command: str) -> ExecutionSpec:
    return ExecutionSpec.model_validate(
        {"gear": gear, "image": "python", "compute_type": "cpu", "command": command}
    )


def subscribe(service: GearService, gear: str, *events: NotifyEvent) -> None:
    service.store.ensure_gear(gear, service.settings.user)
    service.access().set_notifications(
        gear, NotificationSettings(recipients=["ops@example.test", "me@example.test"], events=list(events))
    )


def test_a_failed_execution_emails_its_facts_and_last_log_lines(
    docker_service: GearService, inbox: Inbox
) -> None:
    subscribe(docker_service, "ntfail", NotifyEvent.FAILED)
    with pytest.raises(ExecutionFailedError):
        docker_service.run(
            task("ntfail", "head -c 2048 /dev/zero > blob; echo the-line-before; exit 3"),
            on_line=lambda _: None,
        )
    assert len(inbox.messages) == 1
    recipients, message = inbox.messages[0]
    assert recipients == ["ops@example.test", "me@example.test"]
    assert message["Subject"] == "[HyperAI] ntfail/1 failed"
    assert message["From"] == "hyperai@example.test"
    body = message.get_payload(decode=True).decode()
    for expected in (
        "Execution: ntfail/1",
        "State: failed",
        "Duration: ",
        "Compute type: cpu",
        "Image: ",
        "Reason: the command exited with code 3",
        "Last log lines:",
        "the-line-before",
    ):
        assert expected in body, body
    stored = docker_service.get("ntfail/1").bytes_stored
    assert stored is not None and stored >= 2048 and f"Storage: {stored} bytes" in body


def test_only_the_events_asked_for_are_sent(docker_service: GearService, inbox: Inbox) -> None:
    subscribe(docker_service, "ntevents", NotifyEvent.FAILED)
    record = docker_service.run(task("ntevents", "echo fine"), on_line=lambda _: None)
    assert record.state is ExecutionState.SUCCEEDED and inbox.messages == []
    subscribe(docker_service, "ntevents", NotifyEvent.SUCCEEDED)
    docker_service.run(task("ntevents", "echo fine"), on_line=lambda _: None)
    assert [message["Subject"] for _, message in inbox.messages] == ["[HyperAI] ntevents/2 succeeded"]
    assert "Last log lines" not in inbox.messages[0][1].get_payload(decode=True).decode()


def test_an_unreachable_smtp_server_changes_nothing_but_is_logged(
    docker_service: GearService, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HYPERAI_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("HYPERAI_SMTP_PORT", str(free_port()))  # nothing listens there
    subscribe(docker_service, "ntdown", NotifyEvent.SUCCEEDED, NotifyEvent.FAILED)
    with caplog.at_level(logging.WARNING, logger="hyperai_provider.core.notify"):
        record = docker_service.run(task("ntdown", "echo fine"), on_line=lambda _: None)
        assert record.state is ExecutionState.SUCCEEDED
        with pytest.raises(ExecutionFailedError, match="exited with code 4"):
            docker_service.run(task("ntdown", "exit 4"), on_line=lambda _: None)
    assert docker_service.get("ntdown/2").state is ExecutionState.FAILED
    failures = [r.getMessage() for r in caplog.records if "Could not email" in r.getMessage()]
    assert len(failures) == 2 and "ntdown/1" in failures[0] and "ntdown/2" in failures[1]


def test_airflow_smtp_connection_feeds_the_notifier(
    docker_service: GearService, inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hyperai_provider.notifications.smtp import smtp_settings_from_airflow

    port = int(os.environ["HYPERAI_SMTP_PORT"])
    monkeypatch.delenv("HYPERAI_SMTP_HOST")
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        f'{{"conn_type": "smtp", "host": "127.0.0.1", "port": {port}, "extra": {{"from_email": "af@example.test"}}}}',
    )
    settings = smtp_settings_from_airflow()
    assert settings is not None and (settings.host, settings.port, settings.starttls) == (
        "127.0.0.1",
        port,
        False,
    )
    docker_service.backend.smtp = settings
    subscribe(docker_service, "ntairflow", NotifyEvent.FAILED)
    with pytest.raises(ExecutionFailedError):
        docker_service.run(task("ntairflow", "exit 1"), on_line=lambda _: None)
    assert [(m["Subject"], m["From"]) for _, m in inbox.messages] == [
        ("[HyperAI] ntairflow/1 failed", "af@example.test")
    ]
