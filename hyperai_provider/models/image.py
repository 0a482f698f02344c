"""Runtime images: catalog names that map to image references."""

from __future__ import annotations

from pydantic import Field

from hyperai_provider.models.base import FrozenModel, SafeName


class RuntimeImage(FrozenModel):
    """One entry of the image catalog."""

    name: SafeName = Field(description="Catalog name, e.g. 'numpy'.")
    reference: str = Field(
        min_length=1, description="Docker image reference, e.g. 'hyperai/base:bookworm-1'."
    )
    description: str = Field(default="", description="One line shown in listings.")
    jupyter: bool = Field(default=False, description="Whether the image has JupyterLab (Workspace mode).")
    build_hint: str = Field(
        default="", description="How to get this image when it is missing (shown in errors)."
    )
