"""Merged views of overlay layers read without a container; chains, flattening and dependents."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hyperai_provider.core import layers
from hyperai_provider.core.layers import MergedView
from hyperai_provider.core.storage import StorageRoot
from hyperai_provider.core.sync import copy_layers
from hyperai_provider.exceptions import ConfigurationError
from hyperai_provider.models import ComputeType, ExecutionRecord, ExecutionState
from tests.conftest import needs_root


def whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def stack(tmp_path: Path) -> tuple[Path, Path, Path]:
    """upper over middle over lower, the way the kernel leaves them after two continuations."""
    upper, middle, lower = tmp_path / "upper", tmp_path / "middle", tmp_path / "lower"
    write(lower / "keep.txt", "lower keep")
    write(lower / "changed.txt", "lower version")
    write(lower / "deleted.txt", "gone later")
    write(lower / "data" / "a.txt", "a")
    write(lower / "data" / "b.txt", "b")
    write(lower / "replaced" / "old.txt", "old")
    write(lower / "moved" / "inside.txt", "moved content")
    write(middle / "changed.txt", "middle version")
    write(middle / "data" / "c.txt", "c")
    (middle / "link").symlink_to("/etc/passwd")
    upper.mkdir()
    return upper, middle, lower


@needs_root
def test_merged_view_applies_whiteouts_opaque_dirs_and_redirects(stack: tuple[Path, Path, Path]) -> None:
    upper, middle, lower = stack
    whiteout(upper / "deleted.txt")
    (upper / "data").mkdir()
    whiteout(upper / "data" / "a.txt")
    (upper / "replaced").mkdir()
    os.setxattr(upper / "replaced", layers.OPAQUE_XATTR, b"y")
    write(upper / "replaced" / "new.txt", "new")
    (upper / "renamed").mkdir()
    os.setxattr(upper / "renamed", layers.REDIRECT_XATTR, b"/moved")
    whiteout(upper / "moved")

    view = MergedView([upper, middle, lower])
    files = {e.relative: e.path.read_text() for e in view.walk() if e.kind == "file"}
    assert files == {
        "keep.txt": "lower keep",
        "changed.txt": "middle version",
        "data/b.txt": "b",
        "data/c.txt": "c",
        "replaced/new.txt": "new",
        "renamed/inside.txt": "moved content",
    }
    assert not view.exists("deleted.txt") and not view.exists("moved") and not view.exists("data/a.txt")
    link = view.lookup("link")
    assert link is not None and link.kind == "symlink"  # listed, never followed
    assert [e.relative for e in view.listdir("data")] == ["data/b.txt", "data/c.txt"]


@needs_root
def test_link_into_and_copy_give_the_same_tree_and_leave_layers_alone(
    stack: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    upper, middle, lower = stack
    whiteout(upper / "deleted.txt")
    before = {p: p.read_bytes() for p in lower.rglob("*") if p.is_file()}
    linked = MergedView([upper, middle, lower]).link_into(tmp_path / "linked")
    progress: list[str] = []
    copied = copy_layers([upper, middle, lower], tmp_path / "copied", progress.append)

    def tree(root: Path) -> dict[str, str]:
        return {
            p.relative_to(root).as_posix(): p.read_text()
            for p in root.rglob("*")
            if p.is_file() and not p.is_symlink()
        }

    assert tree(tmp_path / "linked") == tree(tmp_path / "copied")
    assert "deleted.txt" not in tree(tmp_path / "linked")
    assert linked.files == copied.files == 7
    assert os.readlink(tmp_path / "copied" / "link") == "/etc/passwd"
    assert (tmp_path / "linked" / "keep.txt").stat().st_ino == (lower / "keep.txt").stat().st_ino
    assert "files/s" in progress[-1] and "MB/s" in progress[-1]
    assert {p: p.read_bytes() for p in lower.rglob("*") if p.is_file()} == before


def test_lookup_refuses_parent_escapes(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    with pytest.raises(ConfigurationError, match="leaves the working directory"):
        MergedView([tmp_path / "a"]).lookup("../etc")


def test_overlay_options_are_read_only_without_upper_and_refuse_unsafe_paths(tmp_path: Path) -> None:
    options = layers.overlay_options([tmp_path / "a", tmp_path / "b"])
    assert options == {"type": "overlay", "device": "overlay", "o": f"lowerdir={tmp_path}/a:{tmp_path}/b"}
    rw = layers.overlay_options([tmp_path / "a"], tmp_path / "u", tmp_path / "w")["o"]
    assert rw.endswith(f"upperdir={tmp_path}/u,workdir={tmp_path}/w,redirect_dir=on")
    with pytest.raises(ConfigurationError, match="cannot carry"):
        layers.overlay_options([tmp_path / "a:b"])
    with pytest.raises(ConfigurationError, match="capped"):
        layers.overlay_options([tmp_path / f"layer-{n:04d}-{'x' * 40}" for n in range(100)])


def record(
    gear: str, number: int, parent: str | None = None, lower: list[str] | None = None
) -> ExecutionRecord:
    return ExecutionRecord(
        id=f"{gear}/{number}",
        gear=gear,
        number=number,
        state=ExecutionState.SUCCEEDED,
        compute=ComputeType(name="cpu", cpus=1, memory=1024**3, disk_quota=1024**3),  # type: ignore[arg-type]
        image="img",
        parent=parent,
        lower_layers=lower or [],
    )


def test_children_stand_on_their_parents_chain_until_it_is_too_deep(tmp_path: Path) -> None:
    storage = StorageRoot(tmp_path)
    root = record("g", 1)
    lower, flatten = layers.lower_layers_for_child(storage, root, max_depth=2)
    assert (lower, flatten) == (["gears/g/1/home"], False)
    second = record("g", 2, "g/1", lower)
    lower, flatten = layers.lower_layers_for_child(storage, second, max_depth=2)
    assert (lower, flatten) == (["gears/g/2/home", "gears/g/1/home"], False)
    third = record("g", 3, "g/2", lower)
    lower, flatten = layers.lower_layers_for_child(storage, third, max_depth=2)
    assert (lower, flatten) == (["gears/g/3/merged"], True)


def test_flatten_materialises_the_merged_view_once(tmp_path: Path) -> None:
    storage = StorageRoot(tmp_path)
    write(storage.layer_dir("g", 1) / "a.txt", "one")
    write(storage.layer_dir("g", 2) / "b.txt", "two")
    child = record("g", 2, "g/1", ["gears/g/1/home"])
    flat = layers.flatten(storage, child)
    assert sorted(p.name for p in flat.iterdir()) == ["a.txt", "b.txt"]
    assert layers.lower_layers_for_child(storage, child, max_depth=40) == (["gears/g/2/merged"], False)
    assert not any(storage.tmp.iterdir())


def test_dependents_are_the_descendants_standing_on_a_layer(service) -> None:  # type: ignore[no-untyped-def]
    store, storage = service.store, service.storage
    records = [
        record("g", 1),
        record("g", 2, "g/1", ["gears/g/1/home"]),
        record("g", 3, "g/2", ["gears/g/2/home", "gears/g/1/home"]),
        record("g", 4, "g/1"),  # continued by copying: stands on nothing
    ]
    for item in records:
        store.create_execution("g", "alice", lambda id_, n, item=item: item)
    assert [r.id for r in layers.dependents(store, storage, records[0])] == ["g/2", "g/3"]
    assert [r.id for r in layers.dependents(store, storage, records[2])] == []
