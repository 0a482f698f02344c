"""Datasets and versions on a real storage root (no engine needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperai_provider.core.gears import GearService
from hyperai_provider.exceptions import ConfigurationError, ConflictError, NotFoundError
from hyperai_provider.models import DatasetSource


def _folder(tmp_path: Path, files: int = 3) -> Path:
    folder = tmp_path / "upload"
    (folder / "sub").mkdir(parents=True)
    for index in range(files):
        (folder / "sub" / f"f{index}.txt").write_text(f"row {index}\n")
    (folder / "link").symlink_to("sub/f0.txt")
    return folder


def test_versions_are_numbered_immutable_copies(service: GearService, tmp_path: Path) -> None:
    datasets = service.datasets
    datasets.create("mnist", "digits")
    source = _folder(tmp_path)
    progress: list[str] = []
    first = datasets.add_version_from_dir("mnist", source, progress.append)
    (source / "sub" / "f0.txt").write_text("changed\n")
    second = datasets.add_version_from_dir("mnist", source)
    assert (first.version, second.version) == (1, 2)
    assert first.files == 3 and first.bytes > 0
    assert any("MB/s" in line for line in progress)
    one = service.storage.dataset_version_dir("mnist", 1)
    assert (one / "sub" / "f0.txt").read_text() == "row 0\n"
    assert (one / "link").is_symlink()
    assert [v.version for v in datasets.versions("mnist")] == [1, 2]
    assert list(service.storage.tmp.iterdir()) == []  # nothing left under a temporary name


def test_latest_and_numbered_versions_resolve_with_confined_sub_paths(
    service: GearService, tmp_path: Path
) -> None:
    service.datasets.create("d")
    service.datasets.add_version_from_dir("d", _folder(tmp_path))
    version, path = service.datasets.resolve(DatasetSource(name="d", version="latest", sub_path="sub"))
    assert version.version == 1 and path == service.storage.dataset_version_dir("d", 1) / "sub"
    for escape in ("../../..", "/etc", "link/.."):
        with pytest.raises(ConfigurationError):
            service.datasets.resolve(DatasetSource(name="d", version=1, sub_path=escape))
    outside = tmp_path / "outside"
    outside.mkdir()
    (service.storage.dataset_version_dir("d", 1) / "escape").symlink_to(outside)
    with pytest.raises(ConfigurationError, match="outside its source through a symlink"):
        service.datasets.resolve(DatasetSource(name="d", version=1, sub_path="escape"))


def test_unknown_datasets_and_versions_are_explained(service: GearService, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="hyperai datasets"):
        service.datasets.resolve(DatasetSource(name="nope"))
    service.datasets.create("empty")
    with pytest.raises(NotFoundError, match="has no versions yet"):
        service.datasets.resolve(DatasetSource(name="empty"))
    service.datasets.add_version_from_dir("empty", _folder(tmp_path))
    with pytest.raises(NotFoundError, match="has no version 7.*Its versions: 1"):
        service.datasets.resolve(DatasetSource(name="empty", version=7))
    with pytest.raises(ConflictError, match="already exists"):
        service.datasets.create("empty")
    with pytest.raises(ConfigurationError, match="not a safe identifier"):
        service.datasets.create("../evil")


def test_deleting_releases_storage_and_numbers_are_not_reused(service: GearService, tmp_path: Path) -> None:
    service.datasets.create("d")
    service.datasets.add_version_from_dir("d", _folder(tmp_path))
    service.datasets.add_version_from_dir("d", _folder(tmp_path / "b"))
    released = service.datasets.delete_version("d", 2)
    assert released > 0 and not service.storage.dataset_version_dir("d", 2).exists()
    assert service.datasets.add_version_from_dir("d", _folder(tmp_path / "c")).version == 3
    assert service.datasets.delete("d") > 0
    assert not service.storage.dataset_dir("d").exists()
    with pytest.raises(NotFoundError):
        service.datasets.get("d")


def test_storage_quota_refuses_new_versions(storage_root: Path, tmp_path: Path) -> None:
    from hyperai_provider.core.settings import HyperAISettings
    from hyperai_provider.exceptions import QuotaExceededError

    service = GearService(HyperAISettings(storage_root=storage_root, storage_quota=10))
    service.datasets.create("d")
    service.datasets.add_version_from_dir("d", _folder(tmp_path))
    with pytest.raises(QuotaExceededError, match="quota"):
        service.datasets.add_version_from_dir("d", _folder(tmp_path / "b"))


def test_model_objects_bind_as_their_sources(service: GearService, tmp_path: Path) -> None:
    from hyperai_provider.models import WorkdirSource

    dataset = service.datasets.create("objs")
    version = service.datasets.add_version_from_dir("objs", _folder(tmp_path))
    bindings = service.bindings_from({"input0": version, "input1": dataset, "input2": "objs/4:sub"})
    assert [b.source for b in bindings] == [
        DatasetSource(name="objs", version=1),
        DatasetSource(name="objs", version="latest"),
        WorkdirSource(execution_id="objs/4", gear="objs", sub_path="sub"),
    ]


def test_more_than_five_bindings_are_refused(service: GearService) -> None:
    from hyperai_provider.models import InputBinding

    with pytest.raises(ConfigurationError, match="unknown input slot.*input5"):
        service.bindings_from({f"input{n}": "dataset:d" for n in range(6)})
    six = [InputBinding(slot=f"input{n % 5}", source=DatasetSource(name="d")) for n in range(6)]  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="five slots"):
        service.planner.resolve_inputs(six, service.access())
