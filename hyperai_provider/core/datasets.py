"""Datasets with immutable, numbered versions, stored under ``<root>/datasets/<name>/<version>``.

A version is written under a temporary name in the storage root and renamed into place only once it
is complete; only then does the store list it, and a failed write (a full disk) leaves nothing behind.
A version made from a closed working directory shares its files through hard links: nothing writes
either side again, so nothing is copied. Datasets have owners and visibility like gears.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from hyperai_provider.core.access import Access
from hyperai_provider.core.backend import Backend
from hyperai_provider.core.quota import check_storage_quota
from hyperai_provider.core.storage import Usage, resolve_inside
from hyperai_provider.core.sync import copy_layers
from hyperai_provider.core.workdirs import Workdirs
from hyperai_provider.exceptions import ConfigurationError, ConflictError, NotFoundError, StorageError
from hyperai_provider.models import (
    OPEN_STATES,
    Dataset,
    DatasetSource,
    DatasetVersion,
    Visibility,
    check_name,
    split_execution_id,
)

ProgressSink = Callable[[str], None]


class Datasets:
    """Dataset operations as one user: reads go through the visibility rules, changes need ownership."""

    def __init__(self, backend: Backend, workdirs: Workdirs, user: str) -> None:
        self.backend = backend
        self.workdirs = workdirs
        self.access = Access(backend.store, user)
        self._store = backend.store
        self._storage = backend.storage

    # -- datasets ----------------------------------------------------------------------------------------

    def create(self, name: str, description: str = "", visibility: Visibility = Visibility.PRIVATE) -> Dataset:
        try:
            check_name(name, "dataset name")
        except ValueError as error:
            raise ConfigurationError(str(error)) from error
        dataset = Dataset(name=name, description=description, owner=self.access.user, visibility=visibility)
        return self._store.create_dataset(dataset)

    def ensure(self, name: str, description: str = "") -> Dataset:
        """The caller's dataset, created on first use (for DAGs that must run on a fresh storage root)."""
        try:
            return self.access.owned_dataset(name)
        except NotFoundError:
            try:
                return self.create(name, description)
            except ConflictError:  # created in between (by a concurrent task, or another user's private one)
                return self.access.owned_dataset(name)

    def get(self, name: str) -> Dataset:
        return self.access.dataset(name)

    def all(self) -> list[Dataset]:
        return self.access.datasets()

    def versions(self, name: str) -> list[DatasetVersion]:
        self.access.dataset(name)
        return self._store.list_dataset_versions(name)

    def set_visibility(self, name: str, visibility: Visibility) -> Dataset:
        return self.access.set_dataset_visibility(name, visibility)

    # -- versions ----------------------------------------------------------------------------------------

    def add_version_from_dir(
        self, name: str, source: Path, on_progress: ProgressSink | None = None
    ) -> DatasetVersion:
        """Copy a local folder into a new version (progress with files/s and MB/s)."""
        source = Path(source)
        if not source.is_dir():
            raise ConfigurationError(
                f"Dataset source {str(source)!r} is not a folder.", "Give the folder to upload as a version."
            )
        self.access.owned_dataset(name)
        check_storage_quota(self.backend)
        return self._write_version(
            name,
            f"upload:{source.resolve()}",
            lambda data: copy_layers([source], data, on_progress or (lambda _: None)).usage,
        )

    def add_version_from_execution(self, name: str, execution_id: str) -> DatasetVersion:
        """A new version holding a closed execution's working directory (hard links, no copy)."""
        try:
            split_execution_id(execution_id)
        except ValueError as error:
            raise ConfigurationError(str(error)) from error
        record = self.access.execution(execution_id)  # another user's private gear: unknown
        self.workdirs.require_saved(record, "publish")
        self.access.owned_dataset(name)
        check_storage_quota(self.backend)
        return self._write_version(
            name, f"execution:{execution_id}", lambda data: self.workdirs.link(record, data)
        )

    def _write_version(
        self, name: str, source: str, write: Callable[[Path], Usage]
    ) -> DatasetVersion:
        """Write a version under a temporary name, rename it into place when complete, then record it.
        Whatever fails on the way (a full disk), the temporary copy is removed."""
        number = self._store.reserve_dataset_version(name)
        temporary = self._storage.temporary_dir(f"dataset-{name}-{number}-")
        try:
            usage = write(temporary / "data")
            final = self._storage.dataset_version_dir(name, number)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(temporary / "data", final)  # atomic: the version appears complete or not at all
        except OSError as error:
            raise StorageError.from_os_error(error, f"writing version {number} of dataset {name!r}") from error
        finally:
            self._storage.remove_tree(temporary)
        version = DatasetVersion(
            dataset=name, version=number, source=source, bytes=usage.bytes, files=usage.files
        )
        return self._store.add_dataset_version(version)

    def resolve(self, source: DatasetSource) -> tuple[DatasetVersion, Path]:
        """The version a binding names ('latest' resolved) and the folder to mount (sub-path applied)."""
        return resolve_version(self.backend, self.access, source)

    # -- deletion ----------------------------------------------------------------------------------------

    def _bound_by_open_executions(self, name: str, version: int | None) -> list[str]:
        users = []
        for record in self._store.list_executions(states=OPEN_STATES):
            if record.closed:
                continue
            for binding in record.inputs:
                source = binding.source
                if not isinstance(source, DatasetSource) or source.name != name:
                    continue
                if version is None or source.version == version:
                    users.append(record.id)
        return users

    def delete_version(self, name: str, version: int) -> int:
        """Delete one version; refused while an open execution binds it. Returns the bytes released."""
        self.access.owned_dataset(name)
        if version not in {v.version for v in self.versions(name)}:
            raise NotFoundError(f"Dataset {name!r} has no version {version}.")
        users = self._bound_by_open_executions(name, version)
        if users:
            raise ConflictError(
                f"Dataset {name}@{version} is bound by running execution(s) {', '.join(users)}.",
                "Wait for them to end (or stop them), then delete the version.",
            )
        self._store.delete_dataset_version_row(name, version)
        return self._storage.discard(self._storage.dataset_version_dir(name, version))

    def delete(self, name: str) -> int:
        """Delete a dataset and all its versions; refused while an open execution binds any of them."""
        self.access.owned_dataset(name)
        users = self._bound_by_open_executions(name, None)
        if users:
            raise ConflictError(
                f"Dataset {name!r} is bound by running execution(s) {', '.join(users)}.",
                "Wait for them to end (or stop them), then delete the dataset.",
            )
        self._store.delete_dataset_row(name)
        return self._storage.discard(self._storage.dataset_dir(name))


def resolve_version(backend: Backend, access: Access, source: DatasetSource) -> tuple[DatasetVersion, Path]:
    """The version a binding names ('latest' resolved) and the folder to mount (sub-path applied), for a
    caller who may read the dataset."""
    access.dataset(source.name)
    versions = backend.store.list_dataset_versions(source.name)
    if not versions:
        raise NotFoundError(
            f"Dataset {source.name!r} has no versions yet.",
            f"Add one: `hyperai dataset version add {source.name} DIR`.",
        )
    if source.version == "latest":
        version = versions[-1]
    else:
        matching = [v for v in versions if v.version == source.version]
        if not matching:
            known = ", ".join(str(v.version) for v in versions)
            raise NotFoundError(
                f"Dataset {source.name!r} has no version {source.version}.", f"Its versions: {known}."
            )
        version = matching[0]
    folder = backend.storage.dataset_version_dir(source.name, version.version)
    return version, resolve_inside(folder, source.sub_path, "dataset sub-path")
