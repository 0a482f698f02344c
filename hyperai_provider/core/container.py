"""What one execution's container is, as pure data: mounts, hardening, limits, labels (no engine needed).

``ContainerSpec.create_kwargs`` turns it into the Docker SDK's arguments; :mod:`core.runner` does the I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from hyperai_provider.models import ComputeType

LABEL_PREFIX = "io.hyperai"
LABEL_MANAGED = f"{LABEL_PREFIX}.managed"
LABEL_EXECUTION = f"{LABEL_PREFIX}.execution"
LABEL_GEAR = f"{LABEL_PREFIX}.gear"
LABEL_STORAGE_ROOT = f"{LABEL_PREFIX}.storage-root"
TAIL_LINES = 40
TAIL_LINE_CHARS = 2000


@dataclass(frozen=True)
class MountSpec:
    """A bind mount of a host path, or a named volume (overlay continuations)."""

    source: str
    target: str
    read_only: bool = False
    kind: Literal["bind", "volume"] = "bind"


DROPPED_CAPABILITIES = (
    "MKNOD",  # device nodes in a working directory the host later copies (read a host disk through it)
    "NET_RAW",  # raw sockets: spoofing on the engine's bridge (ping still works: ping_group_range)
    "SYS_CHROOT",
    "AUDIT_WRITE",
    "SETFCAP",  # file capabilities on binaries the next execution or the host might run
    "SETPCAP",
    "NET_BIND_SERVICE",  # ports < 1024 still bind: Docker sets ip_unprivileged_port_start=0
)
"""Capabilities Docker grants by default that training code does not need. Root in the container keeps
CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID and SETUID: pip/venv installs, chown/chmod of its own
files, su to another user, signals to its own processes, JupyterLab."""
SECURITY_OPTIONS = ("no-new-privileges",)
PROBE_PIDS = 64
"""Processes a probe container (``command -v jupyter``, the overlay check) may start."""
"""No setuid binary or file capability raises a process's privileges inside the container."""


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to create one execution's container."""

    name: str
    image: str
    command: list[str]
    working_dir: str
    environment: dict[str, str]
    mounts: tuple[MountSpec, ...]
    labels: dict[str, str]
    compute: ComputeType
    ports: dict[str, tuple[str, int]] = field(default_factory=dict)
    """container port ('8888/tcp') -> (host address, host port; 0 picks a free one)."""

    def create_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``client.containers.create``."""
        from docker.types import DeviceRequest, Mount

        compute = self.compute
        kwargs: dict[str, Any] = {
            "image": self.image,
            "command": self.command,
            "name": self.name,
            "working_dir": self.working_dir,
            "environment": dict(self.environment),
            "labels": dict(self.labels),
            "mounts": [
                Mount(target=m.target, source=m.source, type=m.kind, read_only=m.read_only)
                for m in self.mounts
            ],
            "nano_cpus": int(compute.cpus * 1_000_000_000),
            "mem_limit": int(compute.memory),
            "memswap_limit": int(compute.memory),
            "shm_size": int(compute.shm_size),
            "pids_limit": int(compute.pids),
            "cap_drop": list(DROPPED_CAPABILITIES),
            "security_opt": list(SECURITY_OPTIONS),
            "init": True,
            "detach": True,
            "stdin_open": False,
            "tty": False,
        }
        if compute.gpus:
            kwargs["device_requests"] = [DeviceRequest(count=compute.gpus, capabilities=[["gpu"]])]
        if self.ports:
            kwargs["ports"] = {
                port: (address, host_port or None) for port, (address, host_port) in self.ports.items()
            }
        return kwargs


@dataclass(frozen=True)
class ContainerResult:
    exit_code: int
    oom_killed: bool
    last_lines: list[str]
    stopped_because: str | None = None
    """Set when a watchdog stopped the container (e.g. 'disk quota exceeded')."""


Watchdog = Callable[[], str | None]
"""Called every few seconds while the container runs; a returned reason stops the container."""
