"""Runtime images: catalog names that map to image references."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from hyperai_provider.models.base import FrozenModel, SafeName

_ENTRY_NAME = re.compile(r"^(?P<family>[a-z][a-z0-9_]*)(?:-(?P<version>\d+(?:\.\d+)*))?$")
_VERSION = re.compile(r"^\d+(?:\.\d+)*$")


def version_tuple(version: str) -> tuple[int, ...]:
    """``'2.14'`` -> ``(2, 14)``."""
    return tuple(int(part) for part in version.split("."))


class RuntimeImage(FrozenModel):
    """One entry of the image catalog."""

    name: SafeName = Field(description="Catalog name, e.g. 'numpy' or 'pytorch-2.14'.")
    reference: str = Field(
        min_length=1, description="Docker image reference, e.g. 'hyperai/base:bookworm-1'."
    )
    description: str = Field(default="", description="One line shown in listings.")
    jupyter: bool = Field(default=False, description="Whether the image has JupyterLab (Workspace mode).")
    build_hint: str = Field(
        default="", description="How to get this image when it is missing (shown in errors)."
    )
    family: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_]*$",
        description=(
            "Image family that HyperAI runtime names are matched against (e.g. 'pytorch'); "
            "default: the name's part before '-<version>' ('pytorch-2.14' -> 'pytorch')."
        ),
    )
    version: str | None = Field(
        default=None,
        description="Framework version within the family, e.g. '2.14'; default: from the name.",
    )

    @field_validator("version")
    @classmethod
    def _numeric_version(cls, value: str | None) -> str | None:
        if value is not None and not _VERSION.match(value):
            raise ValueError(f"version {value!r} must be numbers separated by dots, e.g. '2.14'")
        return value

    def runtime(self) -> tuple[str | None, tuple[int, ...] | None]:
        """(family, version) this entry serves for HyperAI runtime names; family None = none."""
        parsed = _ENTRY_NAME.match(self.name)
        family = self.family or (parsed["family"] if parsed else None)
        version = self.version or (parsed["version"] if parsed else None)
        return family, version_tuple(version) if version else None
