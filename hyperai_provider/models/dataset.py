"""Datasets and their immutable, numbered versions."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from hyperai_provider.models.base import SCHEMA_VERSION, FrozenModel, SafeName, Visibility, utcnow


class Dataset(FrozenModel):
    schema_version: int = SCHEMA_VERSION
    name: SafeName
    owner: str = ""
    visibility: Visibility = Field(
        default=Visibility.PRIVATE, description="Private: only its owner lists, reads and binds it."
    )
    description: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class DatasetVersion(FrozenModel):
    """An immutable version; visible only once completely written."""

    schema_version: int = SCHEMA_VERSION
    dataset: SafeName
    version: int = Field(ge=1)
    source: str = Field(description="Where it came from: 'upload:<dir>' or 'execution:<gear>/<n>'.")
    bytes: int = Field(ge=0)
    files: int = Field(ge=0)
    created_at: datetime = Field(default_factory=utcnow)
