"""Compute types: named sizes for an execution (CPU, GPU, memory, shared memory, disk)."""

from __future__ import annotations

from pydantic import ByteSize, Field, PositiveFloat, field_validator

from hyperai_provider.models.base import FrozenModel, SafeName

DOCKER_MIN_MEMORY = 6 * 1024**2
"""Docker refuses a memory limit below 6 MiB (and reads 0 as 'unlimited')."""
DOCKER_MIN_CPUS = 0.01
"""Docker refuses fewer than 0.01 CPUs (10,000,000 NanoCPUs)."""


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
    pids: int = Field(
        default=4096,
        ge=64,
        description="Most processes and threads the container may hold at once (cgroup pids.max); "
        "bounds a fork bomb. At least 64 (the init process, a shell, a few data-loader workers).",
    )

    @field_validator("cpus")
    @classmethod
    def _docker_min_cpus(cls, value: float) -> float:
        if value < DOCKER_MIN_CPUS:
            raise ValueError(
                f"cpus {value:g} is below Docker's minimum of {DOCKER_MIN_CPUS}: use 0.01 or more"
            )
        return value

    @field_validator("memory")
    @classmethod
    def _docker_min_memory(cls, value: ByteSize) -> ByteSize:
        if value < DOCKER_MIN_MEMORY:
            raise ValueError(
                f"memory {value.human_readable()} is below Docker's minimum of 6 MiB: use e.g. '512MiB' or more"
            )
        return value

    @field_validator("shm_size")
    @classmethod
    def _positive_shm(cls, value: ByteSize) -> ByteSize:
        if value <= 0:
            raise ValueError(
                f"shm_size {int(value)} is not a size (Docker would read it as its 64 MiB default): "
                "give a positive size such as '64MiB', or leave it out"
            )
        return value
