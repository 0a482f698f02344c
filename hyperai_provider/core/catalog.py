"""Compute-type and image catalogs: packaged YAML plus an optional user file that overrides or adds."""

from __future__ import annotations

import logging
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from hyperai_provider.exceptions import ConfigurationError, ImageNotFoundError
from hyperai_provider.models import ComputeType, RuntimeImage

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger(__name__)

_RUNTIME_NAME = re.compile(
    r"^(?P<family>[a-z][a-z0-9_]*)"
    r"(?:-(?P<version>\d+(?:\.(?:\d+|x))*)(?:-(?P<variant>[a-z0-9][a-z0-9._-]*))?)?$"
)
"""A HyperAI runtime name: ``pytorch``, ``pytorch-2.x``, ``pytorch-2.6-2204``, ``tensorflow-2.15-2204``."""


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
        """Return (image reference, catalog entry or None for a raw reference).

        A catalog name is used as it is; anything with ``:``, ``/`` or ``@`` that is not one is a
        plain reference. Otherwise a HyperAI runtime name (``pytorch-2.6-2204``, ``tensorflow-2.x``,
        ``pytorch``) maps to the closest image of its family, with a logged warning; an unknown
        family is an error listing what exists.
        """
        entry = self.images.get(name_or_reference)
        if entry is not None:
            return entry.reference, entry
        if _looks_like_reference(name_or_reference):
            return name_or_reference, None
        entry = self._runtime_alias(name_or_reference)
        return entry.reference, entry

    def families(self) -> dict[str, list[RuntimeImage]]:
        """Catalog entries by the family that HyperAI runtime names are matched against."""
        found: dict[str, list[RuntimeImage]] = {}
        for entry in self.images.values():
            family, _ = entry.runtime()
            if family is not None:
                found.setdefault(family, []).append(entry)
        return found

    def _runtime_alias(self, name: str) -> RuntimeImage:
        parsed = _RUNTIME_NAME.match(name.lower())
        families = self.families()
        if parsed is None or parsed["family"] not in families:
            known = ", ".join(sorted(self.images))
            family_names = ", ".join(sorted(families))
            why = f"no image family {parsed['family']!r} exists" if parsed else "not a HyperAI runtime name"
            raise ImageNotFoundError(
                f"Unknown image {name!r}: not a catalog name, not an image reference, and {why}.",
                f"Use a catalog name ({known}), a HyperAI runtime name of a family we have "
                f"({family_names}; e.g. 'pytorch-2.6-2204'), a reference such as 'repository/name:tag', "
                "or add an entry to an images.yaml catalog file.",
            )
        family = parsed["family"]
        chosen, reason = _closest(family, parsed["version"], families[family])
        if parsed["variant"]:
            reason += f"; its '-{parsed['variant']}' variant suffix is ignored"
        log.warning(
            "Image %r is not in the catalog: using %r (%s), %s.", name, chosen.name, chosen.reference, reason
        )
        return chosen


def _looks_like_reference(value: str) -> bool:
    return ("/" in value or ":" in value or "@" in value) and " " not in value


def _closest(family: str, asked: str | None, entries: list[RuntimeImage]) -> tuple[RuntimeImage, str]:
    """The entry of one family closest to the asked version (``'2.6'``, ``'2.x'`` or None), and why."""
    versioned = [(version, entry) for entry in entries for _, version in [entry.runtime()] if version]
    if not versioned:
        chosen = sorted(entries, key=lambda entry: entry.name)[0]
        return chosen, f"the {family} image we have (it has no version to compare)"
    have = ", ".join(_dotted(version) for version, _ in sorted(versioned, key=lambda pair: pair[0]))
    parts = asked.split(".") if asked else []
    wildcard = not parts or parts[-1] == "x"
    prefix = tuple(int(part) for part in parts if part != "x")
    if wildcard:
        matching = [pair for pair in versioned if pair[0][: len(prefix)] == prefix]
        if matching:
            _, chosen = max(matching, key=lambda pair: pair[0])
            scope = f" {asked}" if asked else ""
            return chosen, f"the newest {family}{scope} image we have (versions: {have})"

    def distance(pair: tuple[tuple[int, ...], RuntimeImage]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Major first, then minor, ... over the parts both name ('2.14' serves '2.14.1');
        between equally close versions the newer one wins."""
        version = pair[0]
        gaps = tuple(abs(a - b) for a, b in zip(version, prefix, strict=False))
        return gaps + (0,) * (len(prefix) - len(gaps)), tuple(-v for v in version)

    version, chosen = min(versioned, key=distance)
    asked_text = _dotted(prefix)
    if not any(distance((version, chosen))[0]):
        return chosen, f"the same {family} version as {asked_text} (versions: {have})"
    reason = f"the {family} version closest to {asked_text} (versions: {have})"
    if version[0] != prefix[0]:
        reason += f"; a different major version: code written for {family} {asked_text} may not run"
    return chosen, reason


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))
