"""Input bindings: dataset versions or closed working directories mounted read-only at input0-4."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hyperai_provider.models.base import FrozenModel, SafeName

INPUT_SLOTS = ("input0", "input1", "input2", "input3", "input4")
InputSlot = Literal["input0", "input1", "input2", "input3", "input4"]
INPUT_ROOT = "/hyperai/input"
HOME = "/hyperai/home"
OUTPUT = "/output"
HOME_ALIASES = (OUTPUT, "/openbayes/home")
"""Where HyperAI also shows the working directory (the same mount, never a copy)."""
INPUT_ALIAS_ROOTS = ("/", "/openbayes/input/")
"""HyperAI's short (``/input0``) and OpenBayes (``/openbayes/input/input0``) paths of each binding."""


class DatasetSource(FrozenModel):
    """A dataset version ('dataset:NAME@VERSION')."""

    kind: Literal["dataset"] = "dataset"
    name: SafeName
    version: int | Literal["latest"] = "latest"
    sub_path: str = ""


class WorkdirSource(FrozenModel):
    """A closed execution's working directory; this is also what a Gear task returns as its XCom."""

    kind: Literal["workdir"] = "workdir"
    execution_id: str
    gear: SafeName
    state: str | None = None
    bytes_stored: int | None = None
    sub_path: str = ""


class InputBinding(FrozenModel):
    """One read-only mount; ``host_path`` is filled in when the binding is resolved."""

    slot: InputSlot
    source: DatasetSource | WorkdirSource = Field(discriminator="kind")
    host_path: str | None = Field(default=None, description="Resolved directory on the Docker host.")

    @property
    def container_path(self) -> str:
        return f"{INPUT_ROOT}/{self.slot}"

    @property
    def container_paths(self) -> list[str]:
        """Every path the binding is mounted at, read-only: ``/hyperai/input/inputN`` first."""
        return [self.container_path, *(f"{root}{self.slot}" for root in INPUT_ALIAS_ROOTS)]
