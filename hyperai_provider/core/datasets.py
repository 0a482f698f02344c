"""Datasets with immutable, numbered versions, stored under ``<root>/datasets/<name>/<version>``.

A version is written under a temporary name in the storage root and renamed into place only once it
is complete; only then does the store list it. A version made from a closed working directory shares
its files through hard links: nothing writes either side again, so nothing is copied.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from hyperai_provider.core.storage import resolve_inside
from hyperai_provider.core.sync import copy_layers
from hyperai_provider.exceptions import ConfigurationError, ConflictError, NotFoundError
from hyperai_provider.models import Dataset, DatasetSource, DatasetVersion, check_name, split_execution_id

if TYPE_CHECKING:
    from hyperai_provider.core.gears import GearService
    from hyperai_provider.core.storage import StorageRoot
    from hyperai_provider.core.store import GearStore

ProgressSink = Callable[[str], None]


class Datasets:
    """Dataset operations over one gear service's storage root and store."""

    def __init__(self, service: GearService) -> None:
        self.service = service

    @property
    def _store(self) -> GearStore:
        return self.service.store

    @property
    def _storage(self) -> StorageRoot:
        return self.service.storage

    # -- datasets ----------------------------------------------------------------------------------------

    def create(self, name: str, description: str = "", owner: str | None = None) -> Dataset:
        try:
            check_name(name, "dataset name")
        except ValueError as error:
            raise ConfigurationError(str(error)) from error
        dataset = Dataset(name=name, description=description, owner=owner or self.service.settings.user)
        return self._store.create_dataset(dataset)

    def ensure(self, name: str, description: str = "") -> Dataset:
        """The dataset, created on first use (for DAGs that must run on a fresh storage root)."""
        try:
            return self._store.get_dataset(name)
        except NotFoundError:
            try:
                return self.create(name, description)
            except ConflictError:  # created by a concurrent task in between
                return self._store.get_dataset(name)

    def get(self, name: str) -> Dataset:
        return self._store.get_dataset(name)

    def all(self) -> list[Dataset]:
        return self._store.list_datasets()

    def versions(self, name: str) -> list[DatasetVersion]:
        self._store.get_dataset(name)
        return self._store.list_dataset_versions(name)

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
        self.service.check_storage_quota()
        number = self._store.reserve_dataset_version(name)
        temporary = self._storage.temporary_dir(f"dataset-{name}-{number}-")
        result = copy_layers([source], temporary / "data", on_progress or (lambda _: None))
        return self._publish(
            name, number, temporary / "data", f"upload:{source.resolve()}", result.bytes, result.files
        )

    def add_version_from_execution(self, name: str, execution_id: str) -> DatasetVersion:
        """A new version holding a closed execution's working directory (hard links, no copy)."""
        try:
            split_execution_id(execution_id)
        except ValueError as error:
            raise ConfigurationError(str(error)) from error
        record = self.service.access().execution(execution_id)  # another user's private gear: unknown
        if not record.closed or not self._storage.is_saved(record.gear, record.number):
            raise ConflictError(
                f"Execution {execution_id} is {record.state.value}; its working directory is not saved yet.",
                "Create a dataset version from it once it has ended.",
            )
        self._store.get_dataset(name)
        self.service.check_storage_quota()
        number = self._store.reserve_dataset_version(name)
        temporary = self._storage.temporary_dir(f"dataset-{name}-{number}-")
        usage = self.service.link_workdir(record, temporary / "data")
        return self._publish(
            name, number, temporary / "data", f"execution:{execution_id}", usage.bytes, usage.files
        )

    def _publish(
        self, name: str, number: int, data: Path, source: str, size: int, files: int
    ) -> DatasetVersion:
        final = self._storage.dataset_version_dir(name, number)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(data, final)  # atomic: the version appears complete or not at all
        data.parent.rmdir()
        version = DatasetVersion(dataset=name, version=number, source=source, bytes=size, files=files)
        return self._store.add_dataset_version(version)

    def resolve(self, source: DatasetSource) -> tuple[DatasetVersion, Path]:
        """The version a binding names ('latest' resolved) and the folder to mount (sub-path applied)."""
        versions = self.versions(source.name)
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
        folder = self._storage.dataset_version_dir(source.name, version.version)
        return version, resolve_inside(folder, source.sub_path, "dataset sub-path")

    # -- deletion ----------------------------------------------------------------------------------------

    def _bound_by_open_executions(self, name: str, version: int | None) -> list[str]:
        users = []
        for record in self.service.store.list_executions():
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
        if version not in {v.version for v in self.versions(name)}:
            raise NotFoundError(f"Dataset {name!r} has no version {version}.")
        users = self._bound_by_open_executions(name, version)
        if users:
            raise ConflictError(
                f"Dataset {name}@{version} is bound by running execution(s) {', '.join(users)}.",
                "Wait for them to end (or stop them), then delete the version.",
            )
        self._store.delete_dataset_version_row(name, version)
        return self._discard(self._storage.dataset_version_dir(name, version))

    def delete(self, name: str) -> int:
        """Delete a dataset and all its versions; refused while an open execution binds any of them."""
        self._store.get_dataset(name)
        users = self._bound_by_open_executions(name, None)
        if users:
            raise ConflictError(
                f"Dataset {name!r} is bound by running execution(s) {', '.join(users)}.",
                "Wait for them to end (or stop them), then delete the dataset.",
            )
        self._store.delete_dataset_row(name)
        return self._discard(self._storage.dataset_dir(name))

    def _discard(self, folder: Path) -> int:
        """Move out of sight first (so no half-deleted version is ever visible), then remove."""
        if not folder.exists():
            return 0
        graveyard = self._storage.tmp / f"deleted-{folder.name}-{time.time_ns()}"
        self._storage.tmp.mkdir(parents=True, exist_ok=True)
        os.rename(folder, graveyard)
        return self._storage.remove_tree(graveyard)
