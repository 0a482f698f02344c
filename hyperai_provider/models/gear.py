"""Gears, their owners, visibility and notification settings."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import Field

from hyperai_provider.models.base import SCHEMA_VERSION, FrozenModel, SafeName, Visibility, utcnow


class NotifyEvent(str, Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TERMINATED = "terminated"


class NotificationSettings(FrozenModel):
    """Who gets an email for which closing events of a gear."""

    recipients: list[str] = Field(default_factory=list)
    events: list[NotifyEvent] = Field(default_factory=lambda: [NotifyEvent.FAILED, NotifyEvent.TERMINATED])


class Gear(FrozenModel):
    """A computing container that owns a history of executions."""

    schema_version: int = SCHEMA_VERSION
    name: SafeName
    owner: str = ""
    visibility: Visibility = Visibility.PRIVATE
    created_at: datetime = Field(default_factory=utcnow)
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
