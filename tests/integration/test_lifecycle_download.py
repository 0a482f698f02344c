"""`hyperai download`: a continued execution's merged working directory, as a folder or a .tar.gz."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from hyperai_provider.core.gears import GearService
from hyperai_provider.models.spec import ExecutionSpec
from tests.conftest import run_cli

pytestmark = pytest.mark.docker

AS_ALICE = {"HYPERAI_USER": "alice"}


def task(**fields) -> ExecutionSpec:  # type: ignore[no-untyped-def]
    return ExecutionSpec.model_validate({"gear": "lcdl", "image": "python", "compute_type": "cpu", **fields})


def test_download_gives_the_merged_view_as_a_folder_or_an_archive(
    docker_service: GearService, tmp_path: Path
) -> None:
    root = docker_service.settings.storage_root
    parent = docker_service.run(
        task(command="mkdir -p sub && echo a > sub/a.txt && echo gone > gone.txt && echo old > kept.txt"),
        on_line=lambda _: None,
    )
    child = docker_service.run(
        task(command="rm gone.txt && echo new > kept.txt && echo b > b.txt", continue_from=parent.id),
        on_line=lambda _: None,
    )
    expected = {"sub/a.txt": "a\n", "kept.txt": "new\n", "b.txt": "b\n"}

    folder = tmp_path / "out"
    done = run_cli("download", child.id, str(folder), storage_root=root, env=AS_ALICE)
    assert done.returncode == 0, done.stderr
    assert "100%" in done.stderr
    files = {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*") if p.is_file()}
    assert {name: text for name, text in files.items() if name in expected or name == "gone.txt"} == expected

    archive = tmp_path / "out.tar.gz"
    done = run_cli("download", child.id, str(archive), storage_root=root, env=AS_ALICE)
    assert done.returncode == 0, done.stderr
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        assert "gone.txt" not in names and set(expected) <= names
        member = tar.extractfile("kept.txt")
        assert member is not None and member.read() == b"new\n"
    assert not list(tmp_path.glob(".*partial"))

    again = run_cli("download", child.id, str(archive), storage_root=root, env=AS_ALICE)
    assert again.returncode == 4 and "already exists" in again.stderr
    hidden = run_cli(
        "download", child.id, str(tmp_path / "x"), storage_root=root, env={"HYPERAI_USER": "bob"}
    )
    assert hidden.returncode == 3 and "does not exist" in hidden.stderr
