"""Docker lifecycle of one execution's container: checks, create, start, stream, wait, stop, remove.

``ContainerSpec`` is pure data (unit-testable without an engine); ``DockerRunner`` talks to the engine.
The docker SDK is imported lazily so that parsing a DAG never pays for it.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hyperai_provider.core.storage import atomic_write_json
from hyperai_provider.exceptions import ConfigurationError, EngineError, ImageNotFoundError
from hyperai_provider.models import ComputeType
from hyperai_provider.units import human_bytes

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

LABEL_PREFIX = "io.hyperai"
LABEL_MANAGED = f"{LABEL_PREFIX}.managed"
LABEL_EXECUTION = f"{LABEL_PREFIX}.execution"
LABEL_GEAR = f"{LABEL_PREFIX}.gear"
LABEL_STORAGE_ROOT = f"{LABEL_PREFIX}.storage-root"
TAIL_LINES = 40
TAIL_LINE_CHARS = 2000
FACTS_TTL_SECONDS = 300


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


class DockerRunner:
    """Talks to one Docker engine. No I/O in ``__init__``; the client is built on first use."""

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
                f"the Docker engine has {human_bytes(memory)}.",
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

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self, spec: ContainerSpec) -> Container:
        """Create and start the container; a container that fails to start is removed, never left behind."""
        import docker

        kwargs = spec.create_kwargs()
        try:
            container = self.client.containers.create(**kwargs)
        except docker.errors.APIError as error:
            if error.status_code != 409:
                raise EngineError(
                    f"Docker refused to create container {spec.name}: {error.explanation}"
                ) from error
            self.remove(spec.name)  # a leftover of an earlier attempt with the same identity
            container = self.client.containers.create(**kwargs)
        try:
            container.start()
        except docker.errors.APIError as error:
            self.remove(spec.name)
            raise EngineError(
                f"Container {spec.name} could not start: {error.explanation}",
                "Check the image, the command and the engine's capabilities.",
            ) from error
        return container

    def stream_and_wait(
        self,
        container: Container,
        on_line: Callable[[str], None],
        watchdog: Watchdog | None = None,
        watch_interval: float = 2.0,
    ) -> ContainerResult:
        """Forward output line by line as it arrives, then return the exit status.

        Memory stays bounded and time linear whatever the program prints: a line longer than
        ``output.LINE_LIMIT`` bytes is forwarded in pieces, each but the last ending with
        ``output.CONTINUED``; ``last_lines`` keeps each line's first ``TAIL_LINE_CHARS`` characters.
        """
        from hyperai_provider.core.output import LineSplitter

        tail: deque[str] = deque(maxlen=TAIL_LINES)
        stopped: list[str] = []
        done = threading.Event()
        watcher = None
        if watchdog is not None:
            watcher = threading.Thread(
                target=self._watch, args=(container, watchdog, watch_interval, done, stopped), daemon=True
            )
            watcher.start()
        try:
            splitter = LineSplitter()
            for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=True):
                self._emit(splitter.feed(chunk), tail, on_line)
            self._emit(splitter.finish(), tail, on_line)
            status = container.wait()
        finally:
            done.set()
            if watcher is not None:
                watcher.join(timeout=5)
        container.reload()
        state = container.attrs.get("State", {})
        return ContainerResult(
            exit_code=int(status.get("StatusCode", state.get("ExitCode", -1))),
            oom_killed=bool(state.get("OOMKilled")),
            last_lines=list(tail),
            stopped_because=stopped[0] if stopped else None,
        )

    @staticmethod
    def _emit(lines: list[str], tail: deque[str], on_line: Callable[[str], None]) -> None:
        for line in lines:
            tail.append(line if len(line) <= TAIL_LINE_CHARS else line[:TAIL_LINE_CHARS] + " [...]")
            on_line(line)

    def _watch(
        self,
        container: Container,
        watchdog: Watchdog,
        interval: float,
        done: threading.Event,
        stopped: list[str],
    ) -> None:
        while not done.wait(interval):
            reason = watchdog()
            if reason:
                stopped.append(reason)
                self.stop(container.name)
                return

    def stop(self, name: str, grace: float | None = None) -> bool:
        """Stop a container (SIGTERM, then SIGKILL after the grace). False if it does not exist."""
        import docker

        try:
            container = self.client.containers.get(name)
            container.stop(timeout=max(0, round(self.stop_grace_seconds if grace is None else grace)))
            return True
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as error:
            if error.status_code == 404:
                return False
            raise

    def exit_code(self, name: str) -> int | None:
        """The exit code of a stopped container; None while it runs or when it does not exist."""
        import docker

        try:
            state = self.client.api.inspect_container(name).get("State", {})
        except docker.errors.NotFound:
            return None
        return None if state.get("Running") else int(state.get("ExitCode", -1))

    def remove(self, name: str) -> None:
        """Remove a container, running or not; nothing to do if it does not exist."""
        import docker

        try:
            self.client.api.remove_container(name, force=True)
        except docker.errors.APIError as error:
            if error.status_code not in (404, 409):  # 409: removal already in progress
                raise

    def managed_containers(self, storage_root: str | None = None) -> list[Container]:
        """Containers this provider created (optionally only those of one storage root), running or not."""
        filters = {"label": [f"{LABEL_MANAGED}=true"]}
        if storage_root:
            filters["label"].append(f"{LABEL_STORAGE_ROOT}={storage_root}")
        return list(self.client.containers.list(all=True, filters=filters))

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

    # -- volumes (overlay working directories) -------------------------------------------------------------

    def create_volume(self, name: str, options: dict[str, str], labels: dict[str, str]) -> str:
        """(Re)create a named ``local`` volume with driver ``options``; a leftover of the same name is replaced."""
        import docker

        self.remove_volume(name)
        try:
            self.client.volumes.create(name=name, driver="local", driver_opts=options, labels=labels)
        except docker.errors.APIError as error:
            raise EngineError(f"Docker could not create volume {name}: {error.explanation}") from error
        return name

    def remove_volume(self, name: str) -> None:
        import docker

        try:
            self.client.api.remove_volume(name, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as error:
            if error.status_code != 404:
                raise

    def remove_execution_volumes(self, execution_id: str) -> None:
        """Remove every volume made for one execution (its overlay home, read-only inputs)."""
        for volume in self.client.volumes.list(filters={"label": f"{LABEL_EXECUTION}={execution_id}"}):
            self.remove_volume(volume.name)

    def run_probe(self, image: str, command: list[str], mounts: list[MountSpec] | None = None) -> bool:
        """Run a throwaway container (no network, hardened like an execution's); True if it exited 0."""
        import docker
        from docker.types import Mount

        try:
            self.client.containers.run(
                image,
                command,
                entrypoint=[],
                remove=True,
                network_mode="none",
                mounts=[Mount(target=m.target, source=m.source, type=m.kind, read_only=m.read_only) for m in mounts or []],
            )
        except docker.errors.ContainerError:
            return False
        except docker.errors.APIError as error:
            raise EngineError(f"Docker could not run a probe in image {image!r}: {error.explanation}") from error
        return True

    def inspect(self, name: str) -> dict[str, Any] | None:
        """``docker inspect`` of a container; None when it does not exist."""
        import docker

        try:
            return dict(self.client.api.inspect_container(name))
        except docker.errors.NotFound:
            return None

    def writable_layer_bytes(self, name: str, budget: float = 0.05) -> int | None:
        """Bytes a container wrote outside its mounts (/tmp, pip installs...): its writable layer's
        ``SizeRw``; None when the container does not exist.

        The engine walks the layer to answer: ~4 us a file here (36-100 ms for 10,000 files, 0.4 s for
        100,000). A measurement is therefore reused until measuring again keeps the time spent
        measuring under ``budget`` (a fraction) of the time passed: a watchdog calling every 2 s
        measures on every call while the layer is small, and less often once it holds many files.
        """
        import re

        cache: dict[str, tuple[int, float, float]] = self.__dict__.setdefault("_writable_layer_sizes", {})
        cached = cache.get(name)
        if cached is not None:
            size, measured_at, cost = cached
            if time.monotonic() - measured_at < cost / budget:
                return size
        started = time.monotonic()
        found = self.client.api.containers(all=True, size=True, filters={"name": f"^/{re.escape(name)}$"})
        if not found:
            cache.pop(name, None)
            return None
        size = int(found[0].get("SizeRw") or 0)
        now = time.monotonic()
        if len(cache) > 1000:  # containers measured once and gone: forget them all
            cache.clear()
        cache[name] = (size, now, now - started)
        return size

    def output_lines(self, name: str, on_line: Callable[[str], None]) -> int:
        """Pass each line a (stopped) container printed to ``on_line``, streamed in bounded memory (long
        lines in pieces, as ``stream_and_wait`` does); return the lines passed. Nothing when it does
        not exist."""
        import docker

        from hyperai_provider.core.output import LineSplitter

        splitter, count = LineSplitter(), 0
        try:
            for chunk in self.client.api.logs(name, stdout=True, stderr=True, stream=True, follow=False):
                for line in splitter.feed(chunk):
                    on_line(line)
                    count += 1
        except docker.errors.NotFound:
            return count
        for line in splitter.finish():
            on_line(line)
            count += 1
        return count
