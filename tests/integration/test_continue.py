"""Continue Execution on the real engine: overlays (copy-on-write), the copy fallback, code on continuation."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from hyperai_provider.core.gears import GearService
from hyperai_provider.core.settings import HyperAISettings
from hyperai_provider.exceptions import ConflictError
from hyperai_provider.models import ExecutionState
from hyperai_provider.models.spec import ExecutionSpec

pytestmark = pytest.mark.docker

GEAR = "cont"
PARENT_SCRIPT = (
    "mkdir -p data/sub keep && seq 1 1000 > data/big.txt && echo a > data/sub/a.txt "
    "&& echo k > keep/k.txt && echo old > notes.txt"
)


def task(**fields) -> ExecutionSpec:  # type: ignore[no-untyped-def]
    return ExecutionSpec.model_validate({"gear": GEAR, "image": "python", "compute_type": "cpu", **fields})


def digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def quiet(_: str) -> None:
    pass


def test_child_changes_stay_in_its_own_layer_and_the_parent_is_byte_identical(
    docker_service: GearService,
) -> None:
    parent = docker_service.run(task(command=PARENT_SCRIPT), on_line=quiet)
    before = digest(docker_service.workdir(parent))
    lines: list[str] = []
    child = docker_service.run(
        task(
            continue_from=parent.id,
            command="cat notes.txt && echo new > notes.txt && rm data/sub/a.txt && rm -r keep "
            "&& echo 1001 >> data/big.txt && mv data moved && ls moved moved/sub",
        ),
        on_line=lines.append,
    )
    assert child.state is ExecutionState.SUCCEEDED and child.parent == parent.id
    assert "old" in lines and "big.txt" in lines  # saw the parent's files; the directory rename worked
    assert any("without copying" in line for line in lines)
    assert digest(docker_service.workdir(parent)) == before
    assert child.lower_layers == [f"gears/{GEAR}/1/home"]

    view = docker_service.workdir_view(child)
    files = {e.relative: e.path.read_text() for e in view.walk() if e.kind == "file"}
    assert files["notes.txt"] == "new\n"
    assert files["moved/big.txt"].endswith("1000\n1001\n")
    assert "moved/sub/a.txt" not in files and "keep/k.txt" not in files and "data/big.txt" not in files
    # Its own layer holds only what it changed: the two files it wrote (big.txt copied up), not the rest.
    assert child.bytes_stored is not None and child.bytes_stored < 5000 + len("new\n")
    assert (
        docker_service.runner.client.volumes.list(filters={"label": f"io.hyperai.execution={child.id}"}) == []
    )

    # A grandchild stands on both layers and sees the renamed directory's contents.
    grandchild = docker_service.run(
        task(continue_from="latest", command="test -f moved/big.txt && test ! -e keep && cat notes.txt"),
        on_line=lines.append,
    )
    assert grandchild.parent == child.id and len(grandchild.lower_layers) == 2
    assert docker_service.workdirs.dependents(parent) == [child, docker_service.get(grandchild.id)]

    linked = docker_service.storage.temporary_dir("linked-")
    docker_service.workdirs.link(grandchild, linked)
    assert sorted(digest(linked)) == ["moved/big.txt", "notes.txt"]


def test_two_children_of_one_parent_at_once_do_not_see_each_other(docker_service: GearService) -> None:
    parent = docker_service.run(task(command="echo shared > shared.txt"), on_line=quiet)
    outputs: dict[str, list[str]] = {"x": [], "y": []}
    errors: list[BaseException] = []

    def child(tag: str) -> None:
        try:
            docker_service.run(
                task(
                    continue_from=parent.id,
                    command=f"echo {tag} > mine_{tag}.txt && echo {tag} >> shared.txt && sleep 1.5 && ls && cat shared.txt",
                ),
                on_line=outputs[tag].append,
            )
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=child, args=(tag,)) for tag in outputs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert "mine_y.txt" not in outputs["x"] and "mine_x.txt" not in outputs["y"]
    assert outputs["x"][-2:] == ["shared", "x"] and outputs["y"][-2:] == ["shared", "y"]
    assert (docker_service.workdir(parent) / "shared.txt").read_text() == "shared\n"


def test_copy_fallback_synchronizes_with_progress(storage_root: Path, docker_engine, base_image: str) -> None:  # type: ignore[no-untyped-def]
    service = GearService(HyperAISettings(storage_root=storage_root, user="alice", overlay="off"))
    parent = service.run(task(command=PARENT_SCRIPT), on_line=quiet)
    lines: list[str] = []
    child = service.run(
        task(continue_from=parent.id, command="rm notes.txt && cat data/sub/a.txt"), on_line=lines.append
    )
    assert [c.state for c in child.history][:3] == [
        ExecutionState.PREPARING,
        ExecutionState.SYNCHRONIZING,
        ExecutionState.RUNNING,
    ]
    assert any("files/s" in line and "MB/s" in line for line in lines)
    assert child.lower_layers == [] and child.synchronized
    assert (service.workdir(parent) / "notes.txt").is_file()
    assert (
        not (service.workdir(child) / "notes.txt").exists()
        and (service.workdir(child) / "keep/k.txt").is_file()
    )
    service.store.dispose()


@pytest.mark.parametrize("conflict", ["keep", "overwrite", "error"])
def test_code_on_continuation(docker_service: GearService, tmp_path: Path, conflict: str) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("print('v1')\n")
    parent = docker_service.run(task(code=code, command="python3 train.py"), on_line=quiet)
    (code / "train.py").write_text("print('v2')\n")
    (code / "extra.py").write_text("\n")
    lines: list[str] = []
    spec = task(continue_from=parent.id, code=code, command="python3 train.py", code_conflict=conflict)
    if conflict == "error":
        with pytest.raises(ConflictError, match="train.py"):
            docker_service.run(spec, on_line=lines.append)
        assert docker_service.get(f"{GEAR}/2").state is ExecutionState.FAILED
        return
    docker_service.run(spec, on_line=lines.append)
    assert ("v1" if conflict == "keep" else "v2") in lines
    kept_lines = [line for line in lines if "kept the continued working directory's train.py" in line]
    assert len(kept_lines) == (1 if conflict == "keep" else 0)
    assert (docker_service.workdir(parent) / "train.py").read_text() == "print('v1')\n"


def test_deep_chains_are_flattened(storage_root: Path, docker_engine, base_image: str) -> None:  # type: ignore[no-untyped-def]
    service = GearService(HyperAISettings(storage_root=storage_root, user="alice", overlay_max_depth=2))
    service.run(task(command="echo 1 > n1"), on_line=quiet)
    for n in (2, 3, 4):
        service.run(task(continue_from="latest", command=f"echo {n} > n{n} && rm n{n - 1}"), on_line=quiet)
    last = service.get(f"{GEAR}/4")
    assert last.lower_layers == [f"gears/{GEAR}/3/merged"]
    assert [e.relative for e in service.workdir_view(last).walk()] == ["n4"]
    service.store.dispose()


def test_a_continued_working_directory_mounts_read_only_as_its_merged_view(
    docker_service: GearService,
) -> None:
    import docker


    parent = docker_service.run(task(command=PARENT_SCRIPT), on_line=quiet)
    child = docker_service.run(
        task(continue_from=parent.id, command="rm notes.txt && echo c > child.txt"), on_line=quiet
    )
    mount = docker_service.workdirs.mount(child, "/hyperai/input/input0", for_execution=child)
    assert mount.kind == "volume" and mount.read_only
    client = docker_service.runner.client
    try:
        output = client.containers.run(
            "hyperai/base:bookworm-1",
            ["/bin/sh", "-c", "ls /hyperai/input/input0; touch /hyperai/input/input0/x || echo read-only"],
            mounts=[
                docker.types.Mount(target=mount.target, source=mount.source, type="volume", read_only=True)
            ],
            remove=True,
        ).decode()
    finally:
        docker_service.runner.remove_execution_volumes(child.id)
    assert output.split() == ["child.txt", "data", "keep", "read-only"]
    single = docker_service.workdirs.mount(parent, "/in", for_execution=child)
    assert single.kind == "bind" and single.source == str(docker_service.workdir(parent))


def test_a_continuation_inherits_code_and_may_change_compute_type_and_image(
    docker_service: GearService, tmp_path: Path
) -> None:
    (docker_service.settings.storage_root / "compute_types.yaml").write_text(
        "half:\n  cpus: 0.5\n  memory: 256MiB\n  disk_quota: 1GiB\n"
    )
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("print('trained')\n")
    parent = docker_service.run(task(code=code, command="python3 train.py"), on_line=quiet)
    lines: list[str] = []
    child = docker_service.run(
        task(continue_from=parent.id, command="python3 train.py", compute_type="half", image="numpy"),
        on_line=lines.append,
    )
    assert "trained" in lines
    assert child.code_source == parent.code_source == str(code)
    assert (
        (child.compute.name, child.image_name)
        == ("half", "numpy")
        != (parent.compute.name, parent.image_name)
    )
