"""Quotas: the storage root's (refuses new executions and dataset versions) and an execution's disk quota
(stops it while it runs, in Task and Workspace mode alike)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from hyperai_provider.core.backend import Backend
from hyperai_provider.core.output import DEFAULT_LIMIT_BYTES
from hyperai_provider.core.storage import StorageRoot, tree_usage
from hyperai_provider.exceptions import QuotaExceededError
from hyperai_provider.models import ExecutionRecord


def storage_used(backend: Backend) -> int:
    """Bytes the storage root holds, from the store's accounting (no tree walk)."""
    store = backend.store
    executions = sum(record.bytes_stored or 0 for record in store.list_executions())
    datasets = sum(v.bytes for d in store.list_datasets() for v in store.list_dataset_versions(d.name))
    return executions + datasets


def check_storage_quota(backend: Backend) -> None:
    """Refuse new executions and dataset versions once the storage root holds its quota."""
    quota = backend.settings.storage_quota
    if quota is None:
        return
    used = storage_used(backend)
    if used >= quota:
        raise QuotaExceededError(
            f"The storage root {backend.settings.storage_root} holds {used:,} bytes, at or over its "
            f"quota of {quota:,} bytes.",
            "Delete executions or dataset versions you no longer need (`hyperai delete`, "
            "`hyperai dataset delete`), or raise HYPERAI_STORAGE_QUOTA.",
        )


def log_limit(record: ExecutionRecord) -> int:
    """Most bytes an execution's ``output.log`` keeps: a fraction of its disk quota (the log counts towards
    the quota, but must not be able to use all of it), at most :data:`~core.output.DEFAULT_LIMIT_BYTES`."""
    return min(int(record.compute.disk_quota) // 4, DEFAULT_LIMIT_BYTES)


METRICS_FOLDER = "metrics"
MAX_METRICS_FOLDER = 256 * 1024**2


def metrics_folder(storage: StorageRoot, record: ExecutionRecord) -> Path:
    """Where an execution's metrics receiver writes (outside its working directory)."""
    return storage.execution_dir(record.gear, record.number) / METRICS_FOLDER


def metrics_folder_limit(record: ExecutionRecord) -> int:
    """Most bytes the receiver's file may hold: a sixteenth of the disk quota, at most 256 MiB."""
    return min(int(record.compute.disk_quota) // 16, MAX_METRICS_FOLDER)


def execution_usage(backend: Backend, record: ExecutionRecord) -> int:
    """What counts towards an execution's disk quota: its own layer, its output log, and what its
    container wrote outside the working directory (its writable layer: /tmp and the like)."""
    storage = backend.storage
    used = tree_usage(storage.layer_dir(record.gear, record.number)).bytes
    with contextlib.suppress(OSError):
        used += storage.log_path(record.gear, record.number).stat().st_size
    used += tree_usage(metrics_folder(storage, record)).bytes
    return used + (backend.runner.writable_layer_bytes(record.container_name) or 0)


def over_disk_quota(backend: Backend, record: ExecutionRecord) -> str | None:
    """Why ``record`` must be stopped for its disk quota, or None while it is within it (Task and Workspace
    mode alike); the metrics folder is also held to its own limit."""
    metrics = tree_usage(metrics_folder(backend.storage, record)).bytes
    if metrics > metrics_folder_limit(record):
        return (
            f"the metrics folder holds {metrics:,} bytes, over its limit of {metrics_folder_limit(record):,} "
            f"bytes (a sixteenth of compute type {record.compute.name!r}'s disk quota)"
        )
    quota = int(record.compute.disk_quota)
    used = execution_usage(backend, record)
    if used <= quota:
        return None
    return (
        f"disk quota exceeded: the execution holds {used:,} bytes (working directory, output log, metrics "
        f"and container files), over the {record.compute.disk_quota.human_readable()} quota of compute type "
        f"{record.compute.name!r}"
    )
