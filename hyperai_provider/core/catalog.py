"""Compute-type and image catalogs: packaged YAML plus an optional user file that overrides or adds."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from hyperai_provider.exceptions import ConfigurationError, ImageNotFoundError
from hyperai_provider.models import ComputeType, RuntimeImage

M = TypeVar("M", bound=BaseModel)


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml is ~10x faster when present


def _read_yaml(text: str, origin: str) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_Loader) or {}
    except yaml.YAMLError as error:
        raise ConfigurationError(f"{origin} is not valid YAML: {error}", "Fix the file's syntax.") from error
    if not isinstance(data, dict):
        raise ConfigurationError(f"{origin} must map names to entries.", "See the packaged catalog.")
    return data


def _load(model: type[M], packaged: str, user_file: Path | None) -> dict[str, M]:
    sources = [(resources.files("hyperai_provider.catalogs").joinpath(packaged).read_text(), packaged)]
    if user_file is not None and user_file.is_file():
        sources.append((user_file.read_text(), str(user_file)))
    entries: dict[str, M] = {}
    for text, origin in sources:
        for name, fields in _read_yaml(text, origin).items():
            try:
                entries[str(name)] = model.model_validate({"name": str(name), **(fields or {})})
            except ValidationError as error:
                raise ConfigurationError(
                    f"Entry {name!r} in {origin} is invalid: {error}", "Fix or remove the entry."
                ) from error
    return entries


def _user_file(variable: str, storage_root: Path | None, filename: str) -> Path | None:
    if os.environ.get(variable):
        return Path(os.environ[variable]).expanduser()
    return storage_root / filename if storage_root else None


class Catalogs:
    """Both catalogs, loaded once per instance."""

    def __init__(self, storage_root: Path | None = None) -> None:
        self.compute_types: dict[str, ComputeType] = _load(
            ComputeType,
            "compute_types.yaml",
            _user_file("HYPERAI_COMPUTE_TYPES", storage_root, "compute_types.yaml"),
        )
        self.images: dict[str, RuntimeImage] = _load(
            RuntimeImage, "images.yaml", _user_file("HYPERAI_IMAGES", storage_root, "images.yaml")
        )

    def compute_type(self, name: str) -> ComputeType:
        try:
            return self.compute_types[name]
        except KeyError:
            known = ", ".join(sorted(self.compute_types))
            raise ConfigurationError(
                f"Unknown compute type {name!r}.",
                f"Use one of: {known}; or add it to a compute_types.yaml catalog file.",
            ) from None

    def image(self, name_or_reference: str) -> tuple[str, RuntimeImage | None]:
        """Return (image reference, catalog entry or None for a raw reference)."""
        entry = self.images.get(name_or_reference)
        if entry is not None:
            return entry.reference, entry
        if _looks_like_reference(name_or_reference):
            return name_or_reference, None
        known = ", ".join(sorted(self.images))
        raise ImageNotFoundError(
            f"Unknown image {name_or_reference!r}: not a catalog name and not an image reference.",
            f"Use a catalog name ({known}) or a reference such as 'repository/name:tag'.",
        )


def _looks_like_reference(value: str) -> bool:
    return ("/" in value or ":" in value or "@" in value) and " " not in value
