"""Email notifications when an execution closes, through an smtplib-compatible backend.

SMTP settings (:class:`~core.settings.SmtpSettings`) come from ``HYPERAI_SMTP_HOST`` / ``_PORT`` / ``_USER`` / ``_PASSWORD`` / ``_STARTTLS`` /
``_FROM`` (the Airflow adapter fills them from Airflow's SMTP connection). A failure to send is logged
and never changes the execution's outcome.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable
from email.message import EmailMessage
from typing import TYPE_CHECKING

from hyperai_provider.core.settings import SmtpSettings
from hyperai_provider.models import ExecutionRecord, ExecutionState, NotifyEvent

if TYPE_CHECKING:
    from hyperai_provider.core.backend import Backend

log = logging.getLogger(__name__)


SmtpFactory = Callable[[SmtpSettings], smtplib.SMTP]


def _connect(settings: SmtpSettings) -> smtplib.SMTP:
    client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    if settings.starttls:
        client.starttls()
    if settings.user:
        client.login(settings.user, settings.password or "")
    return client


def message_for(service: Backend, record: ExecutionRecord, last_lines: list[str] | None) -> EmailMessage:
    """The notification: id, state, duration, compute type, storage, and the last log lines on failure."""
    duration = record.duration_seconds
    lines = [
        f"Execution: {record.id}",
        f"State: {record.state.value}",
        f"Duration: {'-' if duration is None else f'{duration:.1f} s'}",
        f"Compute type: {record.compute.name} ({record.compute.description or record.compute.cpus})",
        f"Image: {record.image}",
        f"Storage: {record.bytes_stored if record.bytes_stored is not None else '-'} bytes",
    ]
    if record.failure_reason:
        lines.append(f"Reason: {record.failure_reason}")
    if record.saved_completely is False:
        lines.append("Warning: the working directory may not have been saved completely.")
    if record.airflow is not None:
        lines.append(f"Airflow: {record.airflow.dag_id}.{record.airflow.task_id} ({record.airflow.run_id})")
    if record.state is not ExecutionState.SUCCEEDED:
        tail = last_lines if last_lines is not None else _log_tail(service, record)
        if tail:
            lines += ["", "Last log lines:", *(f"  {line}" for line in tail)]
    message = EmailMessage()
    message["Subject"] = f"[HyperAI] {record.id} {record.state.value}"
    message.set_content("\n".join(lines) + "\n")
    return message


def _log_tail(service: Backend, record: ExecutionRecord, count: int = 20) -> list[str]:
    path = service.storage.log_path(record.gear, record.number)
    try:
        return path.read_text(errors="replace").splitlines()[-count:]
    except OSError:
        return []


def notify_closed(
    service: Backend,
    record: ExecutionRecord,
    last_lines: list[str] | None = None,
    smtp: SmtpSettings | None = None,
    connect: SmtpFactory = _connect,
) -> bool:
    """Send the gear's notification for a closed execution if its settings ask for this event.
    Returns whether a message was sent; failures are logged, never raised."""
    try:
        gear = service.store.get_gear(record.gear)
    except Exception:
        return False
    settings = gear.notifications
    if not settings.recipients or NotifyEvent(record.state.value) not in settings.events:
        return False
    smtp = smtp or service.smtp or SmtpSettings.from_env()
    if smtp is None:
        log.warning(
            "Gear %s asks for email on %s but no SMTP server is configured (HYPERAI_SMTP_HOST)",
            gear.name,
            record.state.value,
        )
        return False
    message = message_for(service, record, last_lines)
    message["From"] = smtp.sender
    message["To"] = ", ".join(settings.recipients)
    try:
        with connect(smtp) as client:
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as error:
        log.warning("Could not email %s about %s: %s", ", ".join(settings.recipients), record.id, error)
        return False
    return True
