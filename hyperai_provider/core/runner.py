"""Every call to the Docker engine: checks, create, start, stream, wait, stop, remove, volumes, probes.

What a container is (``ContainerSpec``) is pure data in :mod:`core.container`. The docker SDK is imported
lazily so that parsing a DAG never pays for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hyperai_provider.core.container import (
    DROPPED_CAPABILITIES,
    LABEL_EXECUTION,
    LABEL_MANAGED,
    LABEL_STORAGE_ROOT,
    PROBE_PIDS,
    SECURITY_OPTIONS,
    TAIL_LINE_CHARS,
    TAIL_LINES,
    ContainerResult,
    ContainerSpec,
    MountSpec,
    Watchdog,
)
from hyperai_provider.core.engine import Engine
from hyperai_provider.exceptions import EngineError

if TYPE_CHECKING:
    from docker.models.containers import Container

log = logging.getLogger(__name__)

class DockerRunner(Engine):
    """Containers and volumes on one engine (its connection and checks come from :class:`Engine`)."""

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
            try:
                reason = watchdog()
            except Exception as error:  # a failed look (engine busy) must not end the watching for good
                log.warning("Watching %s: %s", container.name, getattr(error, "headline", None) or error)
                continue
            if reason:
                stopped.append(reason)
                self.stop(container.name)
                return

    def stop(self, name: str, grace: float | None = None) -> bool:
        """Stop a container (SIGTERM, then SIGKILL after the grace). False if it does not exist."""
        import docker

        try:  # one call: an exited container answers 304 at once, a missing one 404
            self.client.api.stop(name, timeout=max(0, round(self.stop_grace_seconds if grace is None else grace)))
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
                cap_drop=list(DROPPED_CAPABILITIES),
                security_opt=list(SECURITY_OPTIONS),
                pids_limit=PROBE_PIDS,
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
