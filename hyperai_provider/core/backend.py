"""The parts every service works on: settings, storage root, store, Docker runner, catalogs.

Data and construction only, no behaviour: :class:`Backend` builds each part on first use (no I/O in
``__init__``) and names what must be named the same way everywhere (containers, labels).
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from hyperai_provider.core.catalog import Catalogs
from hyperai_provider.core.container import LABEL_EXECUTION, LABEL_GEAR, LABEL_MANAGED, LABEL_STORAGE_ROOT
from hyperai_provider.core.runner import DockerRunner
from hyperai_provider.core.settings import HyperAISettings, SmtpSettings
from hyperai_provider.core.storage import StorageRoot
from hyperai_provider.core.store import GearStore
from hyperai_provider.models import ExecutionRecord, RunnerIdentity


@dataclass
class Backend:
    """One installation's parts: where data lives, where records live, which engine runs containers."""

    settings: HyperAISettings
    runner: DockerRunner
    storage: StorageRoot
    smtp: SmtpSettings | None = None
    """None: ``HYPERAI_SMTP_*`` (the Airflow adapter fills it from Airflow's SMTP connection)."""
    _store: GearStore | None = field(default=None, repr=False)
    _catalogs: Catalogs | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: HyperAISettings, runner: DockerRunner | None = None) -> Backend:
        storage = StorageRoot(settings.storage_root)
        runner = runner or DockerRunner(
            settings.docker_host, settings.stop_grace_seconds, storage.tmp / "engine-facts.json"
        )
        return cls(settings=settings, runner=runner, storage=storage)

    @property
    def store(self) -> GearStore:
        if self._store is None:
            self.storage.ensure()
            self._store = GearStore(self.settings.resolved_store_url)
        return self._store

    @property
    def catalogs(self) -> Catalogs:
        if self._catalogs is None:
            self._catalogs = Catalogs(self.settings.storage_root)
        return self._catalogs

    def close(self) -> None:
        """Release the store's connections (the next use reopens them)."""
        if self._store is not None:
            self._store.dispose()

    def container_name(self, gear: str, number: int) -> str:
        """Container (and overlay volume) name: the execution id plus a short digest of the storage root,
        so two storage roots running the same gear on one engine never take each other's names."""
        digest = hashlib.sha256(str(self.settings.storage_root).encode()).hexdigest()[:6]
        return f"hyperai-{gear}-{number}-{digest}"

    def labels(self, record: ExecutionRecord) -> dict[str, str]:
        """Labels of everything made on the engine for ``record`` (container, volumes)."""
        labels = {
            LABEL_MANAGED: "true",
            LABEL_EXECUTION: record.id,
            LABEL_GEAR: record.gear,
            LABEL_STORAGE_ROOT: str(self.settings.storage_root),
        }
        if record.airflow is not None:
            for key, value in record.airflow.model_dump().items():
                labels[f"io.hyperai.airflow.{key}"] = str(value)
        return labels

    def execution_path(self, record: ExecutionRecord) -> Path:
        return self.storage.execution_dir(record.gear, record.number)


def this_runner() -> RunnerIdentity:
    """The process running now: recorded so a janitor can tell a live runner from a dead one."""
    return RunnerIdentity(host=socket.gethostname(), pid=os.getpid())


def runner_alive(runner: RunnerIdentity | None) -> bool | None:
    """True/False when the runner was on this host; None when it is unknown or elsewhere."""
    if runner is None or runner.host != socket.gethostname():
        return None
    try:
        os.kill(runner.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
