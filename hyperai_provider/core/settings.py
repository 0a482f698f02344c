"""Where things live: storage root, store URL, Docker host. Read when asked, never at import time."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

OverlayMode = Literal["auto", "on", "off"]


def default_storage_root() -> Path:
    """``HYPERAI_STORAGE_ROOT``, else ``[hyperai] storage_root`` via env, else ``$AIRFLOW_HOME/hyperai``."""
    for variable in ("HYPERAI_STORAGE_ROOT", "AIRFLOW__HYPERAI__STORAGE_ROOT"):
        value = os.environ.get(variable)
        if value:
            return Path(value).expanduser().absolute()
    airflow_home = os.environ.get("AIRFLOW_HOME") or "~/airflow"
    return (Path(airflow_home).expanduser() / "hyperai").absolute()


def current_user() -> str:
    return os.environ.get("HYPERAI_USER") or getpass.getuser()


@dataclass(frozen=True)
class HyperAISettings:
    """Resolved configuration of one HyperAI installation (shared by operators, CLI and web UI)."""

    storage_root: Path = field(default_factory=default_storage_root)
    store_url: str | None = None
    docker_host: str | None = None
    user: str = field(default_factory=current_user)
    storage_quota: int | None = None
    overlay: OverlayMode = "auto"
    overlay_max_depth: int = 40
    """Layers a continuation may stand on before its parent's chain is flattened (hard links)."""
    stop_grace_seconds: float = 2.0

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.storage_root / 'store.db'}"

    @classmethod
    def from_env(cls, **overrides: object) -> HyperAISettings:
        """Settings from HYPERAI_* environment variables; explicit non-None overrides win."""
        values: dict[str, object] = {
            "storage_root": default_storage_root(),
            "store_url": os.environ.get("HYPERAI_STORE_URL") or None,
            "docker_host": os.environ.get("HYPERAI_DOCKER_HOST") or None,
            "overlay": os.environ.get("HYPERAI_OVERLAY", "auto"),
            "overlay_max_depth": int(os.environ.get("HYPERAI_OVERLAY_MAX_DEPTH", "40")),
        }
        quota = os.environ.get("HYPERAI_STORAGE_QUOTA")
        if quota:
            from pydantic import ByteSize, TypeAdapter

            values["storage_quota"] = int(TypeAdapter(ByteSize).validate_python(quota))
        values.update({key: value for key, value in overrides.items() if value is not None})
        if isinstance(values["storage_root"], str):
            values["storage_root"] = Path(str(values["storage_root"])).expanduser().absolute()
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    user: str | None = None
    password: str | None = None
    starttls: bool = False
    sender: str = "hyperai@localhost"
    timeout: float = 10.0

    @classmethod
    def from_env(cls) -> SmtpSettings | None:
        host = os.environ.get("HYPERAI_SMTP_HOST")
        if not host:
            return None
        return cls(
            host=host,
            port=int(os.environ.get("HYPERAI_SMTP_PORT", "25")),
            user=os.environ.get("HYPERAI_SMTP_USER") or None,
            password=os.environ.get("HYPERAI_SMTP_PASSWORD") or None,
            starttls=os.environ.get("HYPERAI_SMTP_STARTTLS", "").lower() in ("1", "true", "yes"),
            sender=os.environ.get("HYPERAI_SMTP_FROM", "hyperai@localhost"),
        )
