"""Compute types: named sizes for an execution (CPU, GPU, memory, shared memory, disk)."""

from __future__ import annotations

from pydantic import ByteSize, Field, PositiveFloat

from hyperai_provider.models.base import FrozenModel, SafeName


class ComputeType(FrozenModel):
    """One entry of the compute-type catalog; resources as data, no logic."""

    name: SafeName = Field(description="Catalog name, as users write it (e.g. 'cpu', 't4').")
    description: str = Field(default="", description="One line shown in listings.")
    cpus: PositiveFloat = Field(description="Hard CPU limit in cores (a CFS quota, not shares).")
    memory: ByteSize = Field(description="Hard memory limit, e.g. '4GiB'.")
    gpus: int = Field(default=0, ge=0, description="Number of GPUs requested from the engine.")
    gpu_model: str | None = Field(default=None, description="GPU model, informational (e.g. 'T4').")
    shm_size: ByteSize = Field(default=ByteSize(64 * 1024**2), description="Size of /dev/shm.")
    disk_quota: ByteSize = Field(description="Most bytes the working directory may hold.")
