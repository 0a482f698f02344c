"""Airflow's SMTP settings for the core notifier: the ``smtp_default`` connection, else the ``[smtp]``
configuration section. ``HYPERAI_SMTP_HOST`` in the environment wins over both."""

from __future__ import annotations

import logging
import os

from hyperai_provider.core.settings import SmtpSettings

log = logging.getLogger(__name__)


def smtp_settings_from_airflow(conn_id: str = "smtp_default") -> SmtpSettings | None:
    """SMTP settings from Airflow, or None when Airflow has none (or HYPERAI_SMTP_* is set)."""
    if os.environ.get("HYPERAI_SMTP_HOST"):
        return None
    try:
        from airflow.sdk import BaseHook

        connection = BaseHook.get_connection(conn_id)
    except Exception:
        connection = None
    if connection is not None and connection.host:
        extra = connection.extra_dejson or {}
        return SmtpSettings(
            host=connection.host,
            port=int(connection.port or 25),
            user=connection.login or None,
            password=connection.password or None,
            starttls=not bool(extra.get("disable_tls", True)),
            sender=str(extra.get("from_email") or "hyperai@localhost"),
        )
    try:
        from airflow.configuration import conf

        host = conf.get("smtp", "smtp_host", fallback=None)
        if not host:
            return None
        return SmtpSettings(
            host=host,
            port=conf.getint("smtp", "smtp_port", fallback=25),
            starttls=conf.getboolean("smtp", "smtp_starttls", fallback=False),
            sender=conf.get("smtp", "smtp_mail_from", fallback=None) or "hyperai@localhost",
            timeout=float(conf.getint("smtp", "smtp_timeout", fallback=10)),
        )
    except Exception:
        log.debug("No SMTP settings in Airflow's configuration", exc_info=True)
        return None
