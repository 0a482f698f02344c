"""The ``hyperai`` connection: Docker host, storage root and store URL for the gear service."""

from __future__ import annotations

import json
import os
from typing import Any

from airflow.sdk import BaseHook

from hyperai_provider.core.gears import GearService
from hyperai_provider.core.settings import HyperAISettings


def _airflow_option(key: str) -> str | None:
    try:
        from airflow.configuration import conf

        value = conf.get("hyperai", key, fallback=None)
    except Exception:
        return None
    return value or None


class HyperAIHook(BaseHook):
    """Builds a :class:`GearService` from a ``hyperai`` connection; no I/O until first used.

    Connection fields: host = Docker host URL (empty: local socket); extra = ``{"storage_root": ...,
    "store_url": ..., "overlay": "auto"|"on"|"off"}``. A missing connection means local defaults.
    """

    conn_name_attr = "hyperai_conn_id"
    default_conn_name = "hyperai_default"
    conn_type = "hyperai"
    hook_name = "HyperAI"

    def __init__(self, hyperai_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.hyperai_conn_id = hyperai_conn_id
        self._service: GearService | None = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema", "login", "password", "port"],
            "relabeling": {"host": "Docker host URL (empty: local socket)"},
            "placeholders": {
                "host": "unix:///var/run/docker.sock",
                "extra": json.dumps(
                    {"storage_root": "/srv/hyperai", "store_url": "sqlite:////srv/hyperai/store.db"}
                ),
            },
        }

    def settings(self) -> HyperAISettings:
        """The one configuration resolver of every Airflow process (worker, triggerer, api-server):
        connection extra > ``HYPERAI_*`` environment > ``[hyperai]`` in airflow.cfg > defaults."""
        extra: dict[str, Any] = {}
        host: str | None = None
        try:
            connection = self.get_connection(self.hyperai_conn_id)
        except Exception:
            if self.hyperai_conn_id != self.default_conn_name:
                raise
            self.log.debug("No %s connection; using local defaults", self.hyperai_conn_id)
        else:
            host = connection.host or None
            extra = connection.extra_dejson or {}

        def option(key: str) -> Any:
            return extra.get(key) or os.environ.get(f"HYPERAI_{key.upper()}") or _airflow_option(key)

        return HyperAISettings.from_env(
            storage_root=option("storage_root"),
            store_url=option("store_url"),
            docker_host=host or _airflow_option("docker_host"),
            overlay=option("overlay"),
            user=option("user"),
        )

    def get_conn(self) -> GearService:
        if self._service is None:
            from hyperai_provider.notifications.smtp import smtp_settings_from_airflow

            self._service = GearService(self.settings())
            self._service.backend.smtp = smtp_settings_from_airflow()
        return self._service

    @property
    def service(self) -> GearService:
        return self.get_conn()
