"""Shared base for every model: frozen, unknown fields rejected, names checked once."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from enum import Enum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

SCHEMA_VERSION = 1
"""Version of every persisted record; bump when a stored field changes meaning."""

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class FrozenModel(BaseModel):
    """Immutable model that rejects unknown fields (typos fail instead of being ignored)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False, allow_inf_nan=False)
    """``allow_inf_nan=False``: JSON has no NaN or infinity, so a record holding one could not be read back."""


def check_name(value: str, what: str = "name") -> str:
    """Return ``value`` if it is a safe identifier (also usable in container and file names)."""
    if not isinstance(value, str) or not _NAME_PATTERN.match(value) or ".." in value:
        raise ValueError(
            f"{what} {value!r} is not a safe identifier: use 1-100 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (for example 'mnist-train')"
        )
    return value


def _check_name(value: str) -> str:
    return check_name(value)


SafeName = Annotated[str, AfterValidator(_check_name)]
"""A gear, dataset or compute-type name: letters, digits, ``_-.``; no path separators."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Visibility(str, Enum):
    """Who may read a gear or a dataset: its owner only, or everybody."""

    PRIVATE = "private"
    PUBLIC = "public"
