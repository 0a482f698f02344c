"""The Docker engine: connection, facts (cached), and the checks made before anything is created."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ByteSize

from hyperai_provider.core.storage import atomic_write_json
from hyperai_provider.exceptions import ConfigurationError, EngineError, ImageNotFoundError
from hyperai_provider.models import ComputeType

if TYPE_CHECKING:
    import docker

FACTS_TTL_SECONDS = 300


class Engine:
    """One Docker engine: its connection (built on first use, no I/O in ``__init__``), its facts, and the
    checks made before anything is created."""

    def __init__(
        self, base_url: str | None = None, stop_grace_seconds: float = 2.0, facts_cache: Path | None = None
    ) -> None:
        self.base_url = base_url
        self.stop_grace_seconds = stop_grace_seconds
        self.facts_cache = facts_cache
        self._client: docker.DockerClient | None = None
        self._info: dict[str, Any] | None = None

    @property
    def where(self) -> str:
        return self.base_url or "the local socket (DOCKER_HOST or /var/run/docker.sock)"

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            import docker

            try:
                if self.base_url:
                    client = docker.DockerClient(base_url=self.base_url, version="auto")
                else:
                    client = docker.from_env(version="auto")  # "auto" asks the engine: a reachability check
                client.api.trust_env = False  # proxies never apply to the engine socket; saves ms per call
            except docker.errors.DockerException as error:
                raise EngineError(
                    f"The Docker engine at {self.where} is not reachable ({error}).",
                    "Start it (scripts/setup_docker.sh starts dockerd), or set the hyperai connection's host.",
                ) from error
            self._client = client
        return self._client

    def engine_info(self) -> dict[str, Any]:
        """The engine facts the checks need (CPUs, memory, runtimes).

        ``docker info`` costs ~30 ms on every task start, so the facts are cached in ``facts_cache``
        for a few minutes; they change only when the engine is reconfigured and restarted.
        """
        if self._info is None:
            self._info = self._cached_facts()
        if self._info is None:
            info = self.client.info()
            self._info = {
                key: info.get(key) for key in ("ID", "NCPU", "MemTotal", "Runtimes", "ServerVersion")
            }
            if self.facts_cache is not None:
                atomic_write_json(
                    self.facts_cache, {"where": self.where, "at": time.time(), "facts": self._info}
                )
        return self._info

    def _cached_facts(self) -> dict[str, Any] | None:
        if self.facts_cache is None:
            return None
        try:
            cached = json.loads(self.facts_cache.read_text())
        except (OSError, ValueError):
            return None
        fresh = time.time() - float(cached.get("at", 0)) < FACTS_TTL_SECONDS
        return cached.get("facts") if fresh and cached.get("where") == self.where else None

    # -- checks before anything is created -----------------------------------------------------------

    def check_compute(self, compute: ComputeType) -> None:
        """Refuse compute types the engine cannot serve (CPUs, memory, GPU runtime)."""
        info = self.engine_info()
        cpus, memory = info.get("NCPU", 0), info.get("MemTotal", 0)
        if compute.gpus:
            runtimes = sorted((info.get("Runtimes") or {}).keys())
            if "nvidia" not in runtimes:
                raise EngineError(
                    f"Compute type {compute.name!r} needs {compute.gpus} GPU(s), but the Docker engine at "
                    f"{self.where} has no NVIDIA runtime (runtimes: {', '.join(runtimes) or 'none'}).",
                    "Install the NVIDIA Container Toolkit and restart dockerd, or use a CPU compute type "
                    "such as 'cpu'.",
                )
        if cpus and compute.cpus > cpus:
            raise ConfigurationError(
                f"Compute type {compute.name!r} asks for {compute.cpus:g} CPUs; the Docker engine has {cpus}.",
                "Pick a smaller compute type, or add one that fits to compute_types.yaml.",
            )
        if memory and int(compute.memory) > memory:
            raise ConfigurationError(
                f"Compute type {compute.name!r} asks for {compute.memory.human_readable()} of memory; "
                f"the Docker engine has {ByteSize(memory).human_readable()}.",
                "Pick a smaller compute type, or add one that fits to compute_types.yaml.",
            )

    def ensure_image(self, reference: str, pull: str = "missing", hint: str = "") -> None:
        """Make sure the image is local, pulling it when allowed; explain how to get it otherwise."""
        import docker

        if pull != "always":
            try:
                self.client.images.get(reference)
                return
            except docker.errors.ImageNotFound:
                if pull == "never":
                    raise ImageNotFoundError(
                        f"Image {reference!r} is not on the Docker engine and pulling is disabled.",
                        hint or f"Build or load it first (docker pull {reference}).",
                    ) from None
        try:
            self.client.images.pull(reference)
        except docker.errors.DockerException as error:
            raise ImageNotFoundError(
                f"Image {reference!r} is not on the Docker engine and could not be pulled ({error}).",
                hint or "Build it locally (scripts/build_images.sh) or make a registry reachable.",
            ) from error

    def engine_failure(self, error: BaseException) -> EngineError | None:
        """An :class:`EngineError` naming the engine when ``error`` means it went away (connection refused
        or reset, socket gone, engine restarting); None for anything else."""
        import docker
        import requests

        connection_errors = (requests.exceptions.ConnectionError, ConnectionError, docker.errors.DockerException)
        if isinstance(error, EngineError):
            return error
        if not isinstance(error, connection_errors) or isinstance(error, docker.errors.ContainerError):
            return None
        if isinstance(error, docker.errors.APIError) and error.status_code not in (None, 500, 502, 503):
            return None
        return EngineError(
            f"The Docker engine at {self.where} went away while the execution ran ({type(error).__name__}).",
            "Check that dockerd is running (scripts/setup_docker.sh starts it), then run the task again; "
            "the working directory was kept.",
        )
