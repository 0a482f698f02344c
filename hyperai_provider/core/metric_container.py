"""What an execution's container gets for metrics, and the folder it reports into.

The command is wrapped (``sh -c``) so that :mod:`core.metrics_receiver` starts first, in the background
and detached, when the image has ``python3``; the user's command is exec'd unchanged once the receiver
listens (~10 ms: it binds before importing anything else), so no call finds nobody listening. The receiver listens on ``127.0.0.1:<random port>`` in the container's own
network namespace; ``JOB_UPDATE_URL``/``OPENBAYES_JOB_URL`` point there, ``JOB_ACCESS_TOKEN``/
``OPENBAYES_TOKEN`` hold a random token made for this execution, ``NO_PROXY`` keeps a proxy of the user's
out of the way. It appends to ``/hyperai/metrics/events.jsonl``: the folder ``<execution folder>/metrics``
on the host (outside the working directory, this execution's only), which counts towards the disk quota
and may hold at most :func:`folder_limit` bytes. The script itself is written once per version under the
storage root (``bin/``) and mounted read-only.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from hyperai_provider.core.backend import Backend
from hyperai_provider.core.container import MountSpec
from hyperai_provider.core.metric_input import BASE_PATH
from hyperai_provider.core.quota import metrics_folder as folder_path
from hyperai_provider.core.quota import metrics_folder_limit as folder_limit
from hyperai_provider.core.storage import StorageRoot, atomic_write_bytes
from hyperai_provider.models import ExecutionRecord

EVENTS_FILE = "events.jsonl"
CONTAINER_FOLDER = "/hyperai/metrics"
CONTAINER_RECEIVER = "/hyperai/bin/metrics-receiver.py"
PORTS = (20000, 32000)
"""Receiver ports: below Linux's ephemeral range (32768-60999), so no outgoing connection takes one."""
WRAPPER = (
    ': "$(command -v python3 >/dev/null 2>&1 && (exec python3 -I -S {script} {port} {folder} {limit} '
    '3>&1 </dev/null >/dev/null 2>&1 &))" ; exec "$@"'
)
"""``sh -c`` script: start the receiver detached (its subshell exits at once, so the receiver's parent is
the container's init, not the user's program, which ``wait`` would otherwise hang on), wait until it
listens (the command substitution ends when the receiver closes fd 3, or exits), then exec the command
unchanged. Without ``python3`` nothing is waited for."""


@cache
def _receiver_source() -> tuple[bytes, str]:
    data = (Path(__file__).parent / "metrics_receiver.py").read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:12]


def receiver_script(storage: StorageRoot) -> Path:
    """The receiver script under the storage root (``bin/``), written once per version."""
    data, digest = _receiver_source()
    path = storage.root / "bin" / f"metrics-receiver-{digest}.py"
    if not path.is_file():
        atomic_write_bytes(path, data)
        path.chmod(0o644)
    return path


@dataclass(frozen=True)
class ContainerParts:
    """What an execution's container gets for metrics: mounts, environment and its command wrapped."""

    mounts: tuple[MountSpec, ...]
    environment: dict[str, str]
    port: int
    limit: int

    def command(self, command: list[str]) -> list[str]:
        """``command`` started after the receiver; an empty one (the image's own) is left alone."""
        if not command:
            return command
        script = WRAPPER.format(
            script=CONTAINER_RECEIVER, port=self.port, folder=CONTAINER_FOLDER, limit=self.limit
        )
        return ["/bin/sh", "-c", script, "hyperai", *command]


def container_parts(backend: Backend, record: ExecutionRecord) -> ContainerParts:
    folder = folder_path(backend.storage, record)
    folder.mkdir(parents=True, exist_ok=True)
    mounts = (
        MountSpec(str(folder), CONTAINER_FOLDER),
        MountSpec(str(receiver_script(backend.storage)), CONTAINER_RECEIVER, read_only=True),
    )
    port = PORTS[0] + secrets.randbelow(PORTS[1] - PORTS[0])
    token = secrets.token_urlsafe(24)
    url = f"http://127.0.0.1:{port}{BASE_PATH}"
    given = record.environment.get("NO_PROXY") or record.environment.get("no_proxy") or ""
    no_proxy = ",".join(dict.fromkeys([*filter(None, given.split(",")), "127.0.0.1", "localhost"]))
    environment = {
        "JOB_UPDATE_URL": url,
        "OPENBAYES_JOB_URL": url,
        "JOB_ACCESS_TOKEN": token,
        "OPENBAYES_TOKEN": token,
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
    }
    return ContainerParts(mounts, environment, port, folder_limit(record))
